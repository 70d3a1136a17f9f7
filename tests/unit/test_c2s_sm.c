/*
 * test_c2s_sm.c - XEP-0198 on the stream (c2s_sm.c, R-DROP-5, R-PRES-5)
 * driven with canned bytes and fake router deliveries: <enable/> once and
 * only when bound, our h answers <r/>, the server's <r/> after
 * request_after stanzas, a stored offline message acknowledged by the
 * client's <a/> and not by the write, h too high, the bound on unacked
 * stanzas, rerouting at the end of a session, and a handover from one
 * stream to another (<resume/> ... <resumed/> with exactly the unacked
 * stanzas).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_sm.h"
#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_proto.h"

#define HDR                                                                    \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "          \
    "version='1.0'>"
#define SMNS "urn:xmpp:sm:3"

typedef struct rec {
    kn_env_kind_t kind;
    uint16_t flags;
    uint64_t ack_id;
    char node[64];
    char payload[512];
} rec_t;

typedef struct fake {
    kn_buf_t out;
    c2s_stream_t *s;
    rec_t rec[32];
    int nrec;
    uint64_t marks[8], done[8];
    int nmarks, ndone;
    uint64_t conn;
} fake_t;

static fake_t A, B;
static c2s_stream_conf_t CF = {
    .domain = "localhost",
    .limits = KN_XML_LIMITS_DEFAULT,
    .sm_max_unacked = 10,
    .sm_request_after = 5,
    .sm_resume_timeout = 300,
};

static int f_route(void *ud, const kn_env_t *e, const void *pl, size_t len)
{
    fake_t *f = ud;
    ck_assert_int_lt(f->nrec, 32);
    rec_t *r = &f->rec[f->nrec++];
    r->kind = e->kind;
    r->flags = e->flags;
    r->ack_id = e->ack_id;
    snprintf(r->node, sizeof(r->node), "%.*s", (int)e->node_len,
             e->node ? e->node : "");
    snprintf(r->payload, sizeof(r->payload), "%.*s", (int)len,
             pl ? (const char *)pl : "");
    return 0;
}

static void f_lookup(void *ud, const char *user)
{
    (void)ud;
    (void)user;
}

static uint64_t f_conn(void *ud)
{
    return ((fake_t *)ud)->conn;
}

static void f_mark(void *ud, uint64_t id)
{
    fake_t *f = ud;
    f->marks[f->nmarks++] = id;
}

static void f_done(void *ud, uint64_t id)
{
    fake_t *f = ud;
    f->done[f->ndone++] = id;
}

static const c2s_stream_ops_t OPS = {
    .route = f_route,
    .creds_lookup = f_lookup,
    .conn_id = f_conn,
    .ack_mark = f_mark,
    .ack_done = f_done,
};

static void setup(void)
{
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
    A.conn = kn_conn_make(1, 5);
    B.conn = kn_conn_make(2, 9);
}

static void teardown(void)
{
    c2s_stream_free(&A.s);
    c2s_stream_free(&B.s);
    kn_buf_free(&A.out);
    kn_buf_free(&B.out);
}

static c2s_act_t in(fake_t *f, const char *s)
{
    return c2s_stream_input(f->s, s, strlen(s));
}

static bool has(fake_t *f, const char *needle)
{
    return f->out.data != NULL && strstr(f->out.data, needle) != NULL;
}

#define ck_out(f, needle)                                                      \
    ck_assert_msg(has(f, needle), "no %s in: %s", needle,                      \
                  (f)->out.data ? (f)->out.data : "")

static size_t count(fake_t *f, const char *needle)
{
    size_t n = 0;
    for (const char *p = f->out.data; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* alice authenticated over TLS (PLAIN), bound to res unless NULL. */
static void login(fake_t *f, const char *res)
{
    f->s = c2s_stream_new(&CF, &OPS, f, &f->out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(f->s, 0);
    in(f, HDR);
    in(f, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
          "AGFsaWNlAHNlY3JldA==</auth>");
    c2s_creds_t c;
    static const uint8_t salt[16] = "saltsaltsaltsalt";
    kn_scram_creds_derive(&c.sha1, KN_SCRAM_SHA1, "secret", salt, 16, 4096);
    kn_scram_creds_derive(&c.sha256, KN_SCRAM_SHA256, "secret", salt, 16, 4096);
    ck_assert_int_eq(c2s_stream_creds_done(f->s, 0, &c), C2S_ACT_MORE);
    in(f, HDR);
    ck_out(f, "<sm xmlns='" SMNS "'/>");
    if (res != NULL) {
        char b[256];
        snprintf(b, sizeof(b),
                 "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
                 "xmpp-bind'><resource>%s</resource></bind></iq>",
                 res);
        ck_assert_int_eq(in(f, b), C2S_ACT_MORE);
        c2s_stream_block_loaded(f->s, NULL, NULL, 0);
    }
    kn_buf_reset(&f->out);
    f->nrec = 0;
}

static c2s_act_t dlv(fake_t *f, kn_env_stanza_t st, uint64_t ack_id,
                     const char *xml)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = st;
    e.type = st == KN_ENV_ST_MESSAGE ? KN_ENV_TYPE_CHAT : KN_ENV_TYPE_AVAILABLE;
    e.flags = ack_id ? KN_F_ACK_WANTED : 0;
    e.ack_id = ack_id;
    e.from = "bob@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "alice@localhost/pc";
    e.to_len = strlen(e.to);
    e.conn_id = f->conn;
    return c2s_stream_inbound(f->s, &e, xml, strlen(xml));
}

START_TEST(enable_r_a_and_offline_ack_R_PRES_5)
{
    login(&A, NULL);
    in(&A, "<enable xmlns='" SMNS "'/>"); /* not bound yet */
    ck_out(&A, "<failed xmlns='" SMNS "'><unexpected-request");
    in(&A, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
           "xmpp-bind'><resource>pc</resource></bind></iq>");
    c2s_stream_block_loaded(A.s, NULL, NULL, 0);
    kn_buf_reset(&A.out);
    A.nrec = 0;
    in(&A, "<enable xmlns='" SMNS "' resume='true'/>");
    ck_out(&A, "<enabled xmlns='" SMNS "' id='");
    ck_out(&A, "resume='true' max='300'/>");
    ck_assert_int_eq(A.nrec, 1);
    ck_assert_int_eq(A.rec[0].kind, KN_ENV_SM);
    ck_assert(A.rec[0].flags & KN_F_SM_ENABLE);
    ck_assert_uint_eq(strlen(A.rec[0].node), 32);
    in(&A, "<enable xmlns='" SMNS "'/>");
    ck_out(&A, "<failed xmlns='" SMNS "'><unexpected-request");
    /* Two stanzas from the client; <r/> and <a/> are not counted. */
    in(&A, "<presence/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/>"
           "</iq>");
    kn_buf_reset(&A.out);
    in(&A, "<r xmlns='" SMNS "'/>");
    ck_out(&A, "<a xmlns='" SMNS "' h='2'/>");
    kn_buf_reset(&A.out);
    /* Deliveries: the ping result was 1; the server asks after 5. */
    dlv(&A, KN_ENV_ST_MESSAGE, 77, "<message><body>o</body></message>");
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>1</body></message>");
    dlv(&A, KN_ENV_ST_PRESENCE, 0, "<presence/>");
    ck_assert_uint_eq(count(&A, "<r xmlns"), 0);
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>2</body></message>");
    ck_assert_uint_eq(count(&A, "<r xmlns='" SMNS "'/>"), 1);
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>3</body></message>");
    ck_assert_uint_eq(count(&A, "<r xmlns='" SMNS "'/>"), 1); /* one out */
    /* The offline row waits for <a/>, not for the write. */
    ck_assert_int_eq(A.nmarks, 0);
    ck_assert_int_eq(A.ndone, 0);
    in(&A, "<a xmlns='" SMNS "' h='1'/>");
    ck_assert_int_eq(A.ndone, 0);
    in(&A, "<a xmlns='" SMNS "' h='2'/>");
    ck_assert_int_eq(A.ndone, 1);
    ck_assert(A.done[0] == 77);
    /* More than was sent (6): a stream error. */
    ck_assert_int_eq(in(&A, "<a xmlns='" SMNS "' h='7'/>"), C2S_ACT_CLOSE);
    ck_out(&A, "<undefined-condition");
}
END_TEST

START_TEST(too_many_unacked_ends_the_stream)
{
    login(&A, "pc");
    in(&A, "<enable xmlns='" SMNS "'/>");
    ck_out(&A, "<enabled xmlns='" SMNS "'/>");
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message/>"),
                         C2S_ACT_MORE);
    ck_assert_int_eq(dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message/>"),
                     C2S_ACT_CLOSE);
    ck_out(&A, "<resource-constraint");
    ck_assert(!c2s_sm_resumable(A.s));
}
END_TEST

START_TEST(end_reroutes_unacked_after_session_down_R_DROP_5)
{
    login(&A, "pc");
    in(&A, "<enable xmlns='" SMNS "' resume='true'/>");
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>a</body></message>");
    dlv(&A, KN_ENV_ST_PRESENCE, 0, "<presence/>");
    dlv(&A, KN_ENV_ST_MESSAGE, 31, "<message><body>b</body></message>");
    in(&A, "<a xmlns='" SMNS "' h='0'/>");
    ck_assert(c2s_sm_resumable(A.s));
    A.nrec = 0;
    c2s_stream_close(A.s, KN_SE_NONE, KN_ENV_REASON_DROPPED);
    c2s_stream_end(A.s);
    ck_assert_int_eq(A.nrec, 3);
    ck_assert_int_eq(A.rec[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(A.rec[1].kind, KN_ENV_STANZA);
    ck_assert(A.rec[1].flags & KN_F_REROUTE);
    ck_assert_str_eq(
        A.rec[1].payload,
        "<message to='alice@localhost/pc'><body>a</body></message>");
    /* The stored offline message goes back to its row. */
    ck_assert(A.rec[2].flags & KN_F_ACK_WANTED);
    ck_assert(A.rec[2].ack_id == 31);
    ck_assert_int_eq(A.ndone, 0);
}
END_TEST

START_TEST(handover_resends_exactly_the_unacked_R_DROP_5)
{
    login(&A, "pc");
    in(&A, "<enable xmlns='" SMNS "' resume='true'/>");
    char id[33];
    const char *p = strstr(A.out.data, "id='");
    ck_assert_ptr_nonnull(p);
    memcpy(id, p + 4, 32);
    id[32] = '\0';
    in(&A, "<presence/>");
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>m1</body></message>");
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>m2</body></message>");
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>m3</body></message>");
    c2s_sm_detach(A.s);
    dlv(&A, KN_ENV_ST_MESSAGE, 0, "<message><body>m4</body></message>");

    login(&B, NULL);
    char r[128];
    snprintf(r, sizeof(r), "<resume xmlns='" SMNS "' previd='%s' h='1'/>", id);
    ck_assert_int_eq(in(&B, r), C2S_ACT_PAUSED);
    ck_assert_int_eq(B.nrec, 1);
    ck_assert(B.rec[0].flags & KN_F_SM_RESUME);
    ck_assert(c2s_sm_resuming(B.s));

    /* The owner: wrong user or id refused, then the handover. */
    kn_env_t st;
    kn_buf_t q = KN_BUF_INIT;
    uint32_t h = 99;
    ck_assert_int_eq(
        c2s_sm_handover(A.s, id, 32, "mallory@localhost", 17, 1, &st, &q, &h),
        -1);
    ck_assert_int_eq(
        c2s_sm_handover(A.s, id, 32, "alice@localhost", 15, 9, &st, &q, &h),
        KN_SM_FAIL_UNDEFINED);
    ck_assert_uint_eq(h, 1);
    ck_assert_int_eq(
        c2s_sm_handover(A.s, id, 32, "alice@localhost", 15, 1, &st, &q, &h), 0);
    ck_assert(st.flags & KN_F_SM_STATE);
    ck_assert(st.flags & KN_F_SM_AVAIL);
    ck_assert_uint_eq(st.seq, 1); /* the presence */
    ck_assert(!A.s->session_up);
    /* The asking stream gets it. */
    kn_buf_reset(&B.out);
    st.ack_id = B.conn;
    ck_assert_int_eq(c2s_sm_answer(B.s, &st, q.data, q.len), C2S_ACT_MORE);
    snprintf(r, sizeof(r), "<resumed xmlns='" SMNS "' previd='%s' h='1'/>", id);
    ck_out(&B, r);
    ck_assert_uint_eq(count(&B, "<body>m1</body>"), 0);
    ck_assert_uint_eq(count(&B, "<body>m2</body>"), 1);
    ck_assert_uint_eq(count(&B, "<body>m3</body>"), 1);
    ck_assert_uint_eq(count(&B, "<body>m4</body>"), 1);
    ck_assert(strstr(B.out.data, "m2") < strstr(B.out.data, "m4"));
    ck_assert_int_eq(B.s->state, C2S_ST_SESSION);
    ck_assert_str_eq(B.s->jid.str, "alice@localhost/pc");
    /* Counting goes on from the client's h. */
    in(&B, "<a xmlns='" SMNS "' h='4'/>");
    kn_buf_reset(&B.out);
    in(&B, "<r xmlns='" SMNS "'/>");
    ck_out(&B, "<a xmlns='" SMNS "' h='1'/>");
    kn_buf_free(&q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("c2s_sm");
    TCase *tc = tcase_create("sm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, enable_r_a_and_offline_ack_R_PRES_5);
    tcase_add_test(tc, too_many_unacked_ends_the_stream);
    tcase_add_test(tc, end_reroutes_unacked_after_session_down_R_DROP_5);
    tcase_add_test(tc, handover_resends_exactly_the_unacked_R_DROP_5);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
