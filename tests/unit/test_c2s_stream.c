/*
 * test_c2s_stream.c - the c2s stream state machine (c2s_stream.c,
 * c2s_sasl.c, c2s_bind.c, c2s_stanza.c) driven with canned bytes, no
 * sockets: header errors, features before and after TLS, STARTTLS, SASL
 * PLAIN and SCRAM (with a client written here on OpenSSL), the failure
 * delay, binding, 'from' stamping and invalid-from, local IQs, presence
 * priority, framing (R-ARCH-1), delivery, the close path, and blocking
 * (XEP-0191): held deliveries until the list, refusals, pushes, the
 * outbound check.
 *
 * The fake owner records what the stream asks of the world: envelopes
 * for the router, credential lookups, STARTTLS, failure delays.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kn_b64.h"
#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_mem.h"
#include "kn_proto.h"

#define HDR                                                                    \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "          \
    "version='1.0'>"

typedef struct rec {
    kn_env_kind_t kind;
    kn_env_stanza_t stanza;
    kn_env_type_t type;
    kn_env_reason_t reason;
    uint16_t flags;
    int16_t priority;
    uint64_t conn;
    char from[128], to[128], node[128];
    char payload[4096];
} rec_t;

typedef struct fake {
    kn_buf_t out;
    c2s_stream_t *s;
    rec_t rec[32];
    int nrec;
    char user[64];
    int lookups;
    int starttls;
    unsigned delay;
    int fails, oks;
    int block_waits;
    uint64_t acks[8]; /* ack_mark calls: id and output length then */
    size_t ack_at[8];
    int nacks;
    uint64_t next_ack_id; /* dlv() puts it in the envelope */
    int reg_allowed;      /* register_allowed() answers: 1 yes, 0 no */
    int regs;             /* register_user() calls */
    char reg_user[64];
    c2s_creds_t reg_creds;
    int lock_checks; /* lock_check() calls, with what they asked */
    char lock_user[64], lock_mech[32];
    char failed_user[64], failed_mech[32]; /* as auth_failed() saw them */
    int counts; /* session_count() calls, with what they asked */
    char count_bare[64], count_full[64];
} fake_t;

static fake_t F;
static c2s_stream_conf_t CF = {"localhost", KN_XML_LIMITS_DEFAULT};

static void cpy(char *dst, size_t cap, const char *s, size_t n)
{
    ck_assert_uint_lt(n, cap);
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

static int f_route(void *ud, const kn_env_t *e, const void *pl, size_t len)
{
    fake_t *f = ud;
    ck_assert_int_lt(f->nrec, 32);
    rec_t *r = &f->rec[f->nrec++];
    r->kind = e->kind;
    r->stanza = e->stanza;
    r->type = e->type;
    r->reason = e->reason;
    r->flags = e->flags;
    r->priority = e->priority;
    r->conn = e->conn_id;
    cpy(r->from, sizeof(r->from), e->from, e->from_len);
    cpy(r->to, sizeof(r->to), e->to, e->to_len);
    cpy(r->node, sizeof(r->node), e->node, e->node_len);
    cpy(r->payload, sizeof(r->payload), pl, len);
    return 0;
}

static void f_lookup(void *ud, const char *user)
{
    fake_t *f = ud;
    snprintf(f->user, sizeof(f->user), "%s", user);
    f->lookups++;
}

static unsigned f_failed(void *ud)
{
    fake_t *f = ud;
    f->fails++;
    const char *u = c2s_stream_sasl_user(f->s);
    const char *m = c2s_stream_sasl_mech(f->s);
    snprintf(f->failed_user, sizeof(f->failed_user), "%s", u ? u : "(null)");
    snprintf(f->failed_mech, sizeof(f->failed_mech), "%s", m ? m : "(null)");
    return f->delay;
}

static void f_ok(void *ud)
{
    ((fake_t *)ud)->oks++;
}

static void f_starttls(void *ud)
{
    ((fake_t *)ud)->starttls++;
}

static const uint8_t CB[32] = "0123456789abcdef0123456789abcdef";

static int f_cb(void *ud, kn_scram_cb_t type, uint8_t *out, size_t cap)
{
    (void)ud;
    if (type != KN_SCRAM_CB_TLS_EXPORTER || cap < 32)
        return -KN_ENOENT;
    memcpy(out, CB, 32);
    return 32;
}

static uint64_t f_conn(void *ud)
{
    (void)ud;
    return kn_conn_make(3, 42);
}

static void f_block_wait(void *ud)
{
    ((fake_t *)ud)->block_waits++;
}

static void f_ack_mark(void *ud, uint64_t id)
{
    fake_t *f = ud;
    ck_assert_int_lt(f->nacks, 8);
    f->acks[f->nacks] = id;
    f->ack_at[f->nacks++] = f->out.len;
}

static bool f_reg_allowed(void *ud)
{
    return ((fake_t *)ud)->reg_allowed != 0;
}

static void f_reg_user(void *ud, const char *user, const c2s_creds_t *cr)
{
    fake_t *f = ud;
    f->regs++;
    snprintf(f->reg_user, sizeof(f->reg_user), "%s", user);
    f->reg_creds = *cr;
}

static const c2s_stream_ops_t OPS = {
    f_route, f_lookup,     f_failed,   f_ok,          f_starttls, f_cb,
    f_conn,  f_block_wait, f_ack_mark, f_reg_allowed, f_reg_user};

static void f_lock_check(void *ud, const char *user, const char *mech)
{
    fake_t *f = ud;
    f->lock_checks++;
    snprintf(f->lock_user, sizeof(f->lock_user), "%s", user ? user : "(null)");
    snprintf(f->lock_mech, sizeof(f->lock_mech), "%s", mech ? mech : "(null)");
}

static void f_count(void *ud, const char *bare, const char *full)
{
    fake_t *f = ud;
    f->counts++;
    snprintf(f->count_bare, sizeof(f->count_bare), "%s", bare);
    snprintf(f->count_full, sizeof(f->count_full), "%s", full);
}

/* The owner of a node with the lock-out on and max_sessions = 2. */
static const c2s_stream_ops_t OPS_LIM = {
    .route = f_route,
    .creds_lookup = f_lookup,
    .auth_failed = f_failed,
    .auth_ok = f_ok,
    .conn_id = f_conn,
    .block_wait = f_block_wait,
    .lock_check = f_lock_check,
    .session_count = f_count,
};
static c2s_stream_conf_t CF_LIM = {.domain = "localhost",
                                   .limits = KN_XML_LIMITS_DEFAULT,
                                   .lockout = true,
                                   .max_sessions = 2};

static void setup(void)
{
    memset(&F, 0, sizeof(F));
}

static void teardown(void)
{
    c2s_stream_free(&F.s);
    kn_buf_free(&F.out);
}

static c2s_act_t in(const char *s)
{
    return c2s_stream_input(F.s, s, strlen(s));
}

static bool out_has(const char *needle)
{
    return F.out.data != NULL && strstr(F.out.data, needle) != NULL;
}

#define ck_out(needle)                                                         \
    ck_assert_msg(out_has(needle), "no %s in: %s", needle,                     \
                  F.out.data ? F.out.data : "")
#define ck_no_out(needle)                                                      \
    ck_assert_msg(!out_has(needle), "%s in: %s", needle, F.out.data)

static void open_plain(void)
{
    F.s = c2s_stream_new(&CF, &OPS, &F, &F.out, C2S_STREAM_F_STARTTLS);
}

static void open_tls(unsigned cb)
{
    F.s = c2s_stream_new(&CF, &OPS, &F, &F.out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(F.s, cb);
}

static c2s_creds_t creds(const char *pw)
{
    c2s_creds_t c;
    static const uint8_t salt[16] = "saltsaltsaltsalt";
    ck_assert_int_eq(
        kn_scram_creds_derive(&c.sha1, KN_SCRAM_SHA1, pw, salt, 16, 4096), 0);
    ck_assert_int_eq(
        kn_scram_creds_derive(&c.sha256, KN_SCRAM_SHA256, pw, salt, 16, 4096),
        0);
    return c;
}

static void b64(const char *s, size_t n, kn_buf_t *out)
{
    kn_b64_encode(s, n, out);
}

/* <auth mechanism='PLAIN'> for user/pw. */
static c2s_act_t auth_plain(const char *user, const char *pw)
{
    char raw[256];
    int n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, user, 0, pw);
    kn_buf_t x = KN_BUF_INIT;
    kn_buf_append_str(&x, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                          "mechanism='PLAIN'>");
    b64(raw, (size_t)n, &x);
    kn_buf_append_str(&x, "</auth>");
    c2s_act_t a = in(x.data);
    kn_buf_free(&x);
    return a;
}

/* A TLS stream logged in as alice (PLAIN) and bound to resource res. */
static void login(const char *res)
{
    open_tls(0);
    in(HDR);
    auth_plain("alice", "secret");
    c2s_creds_t c = creds("secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    ck_out("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'></success>");
    in(HDR);
    ck_out("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    ck_out("<optional/>");
    char b[256];
    if (res)
        snprintf(b, sizeof(b),
                 "<iq type='set' id='b1'><bind "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s"
                 "</resource></bind></iq>",
                 res);
    else
        snprintf(b, sizeof(b),
                 "<iq type='set' id='b1'><bind "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                 "</iq>");
    ck_assert_int_eq(in(b), C2S_ACT_MORE);
    kn_buf_reset(&F.out);
    F.nrec = 0;
}

/* ---- header ---------------------------------------------------------- */

START_TEST(header_bad_version)
{
    open_plain();
    ck_assert_int_eq(in("<stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='localhost' version='2.0'>"),
                     C2S_ACT_CLOSE);
    ck_out("<stream:stream");
    ck_out("<unsupported-version");
    ck_out("</stream:stream>");
    ck_assert_int_eq(F.s->state, C2S_ST_CLOSED);
}
END_TEST

START_TEST(header_no_version)
{
    open_plain();
    ck_assert_int_eq(in("<stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='localhost'>"),
                     C2S_ACT_CLOSE);
    ck_out("<unsupported-version");
}
END_TEST

START_TEST(header_bad_namespace)
{
    open_plain();
    ck_assert_int_eq(in("<stream:stream xmlns='jabber:server' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='localhost' version='1.0'>"),
                     C2S_ACT_CLOSE);
    ck_out("<stream:stream"); /* our header comes first */
    ck_out("<invalid-namespace");
}
END_TEST

START_TEST(header_unknown_host)
{
    open_plain();
    ck_assert_int_eq(in("<stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='example.net' version='1.0'>"),
                     C2S_ACT_CLOSE);
    ck_out("<host-unknown");
}
END_TEST

START_TEST(header_host_case_folded)
{
    open_plain();
    ck_assert_int_eq(in("<stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "to='LocalHost' version='1.0'>"),
                     C2S_ACT_MORE);
    ck_out("<stream:features>");
}
END_TEST

START_TEST(not_well_formed)
{
    open_plain();
    ck_assert_int_eq(in(HDR "<message><body></message>"), C2S_ACT_CLOSE);
    ck_out("<not-well-formed");
}
END_TEST

/* ---- features, STARTTLS --------------------------------------------- */

START_TEST(features_plain_stream)
{
    open_plain();
    ck_assert_int_eq(in(HDR), C2S_ACT_MORE);
    ck_out("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>");
    ck_no_out("<mechanisms");
    ck_no_out("PLAIN");
}
END_TEST

START_TEST(features_tls_stream)
{
    open_tls(0);
    in(HDR);
    ck_no_out("<starttls");
    ck_out("<mechanism>SCRAM-SHA-256</mechanism>");
    ck_out("<mechanism>SCRAM-SHA-1</mechanism>");
    ck_out("<mechanism>PLAIN</mechanism>");
    ck_no_out("-PLUS");
    c2s_stream_free(&F.s);
    kn_buf_reset(&F.out);
    open_tls(C2S_CB_EXPORTER | C2S_CB_END_POINT);
    in(HDR);
    ck_out("<mechanism>SCRAM-SHA-256-PLUS</mechanism>");
    ck_out("<mechanism>SCRAM-SHA-1-PLUS</mechanism>");
    ck_out("<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
           "<channel-binding type='tls-exporter'/>"
           "<channel-binding type='tls-server-end-point'/>");
}
END_TEST

START_TEST(auth_before_tls_refused)
{
    open_plain();
    in(HDR);
    ck_assert_int_eq(auth_plain("alice", "secret"), C2S_ACT_MORE);
    ck_out("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
           "<encryption-required/></failure>");
    ck_assert_int_eq(F.lookups, 0);
    ck_assert_int_ne(F.s->state, C2S_ST_CLOSED);
}
END_TEST

START_TEST(stanza_before_auth)
{
    open_tls(0);
    in(HDR);
    ck_assert_int_eq(in("<message to='bob@localhost'><body>x</body>"
                        "</message>"),
                     C2S_ACT_CLOSE);
    ck_out("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    ck_assert_int_eq(F.nrec, 0);
}
END_TEST

/* XEP-0077 before authentication: off by default, then TLS only, the
 * form, the pause while the account is written, answers in order. */
START_TEST(inband_registration_XEP_0077)
{
    static const char GET[] =
        "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>";
    open_tls(0);
    in(HDR);
    ck_no_out("iq-register");
    ck_assert_int_eq(in(GET), C2S_ACT_MORE);
    ck_out("<service-unavailable");
    ck_assert_int_ne(F.s->state, C2S_ST_CLOSED);
    c2s_stream_free(&F.s);
    kn_buf_reset(&F.out);

    CF.registration = true;
    open_plain();
    in(HDR);
    ck_no_out("iq-register"); /* not before TLS */
    ck_assert_int_eq(in(GET), C2S_ACT_MORE);
    ck_out("<not-authorized");
    c2s_stream_free(&F.s);
    kn_buf_reset(&F.out);

    open_tls(0);
    F.reg_allowed = 1;
    in(HDR);
    ck_out("<register xmlns='http://jabber.org/features/iq-register'/>");
    ck_assert_int_eq(in(GET), C2S_ACT_MORE);
    ck_out("<username/>");
    kn_buf_reset(&F.out);
    /* A bad name: no call out; then a good one, with the client's next
     * element pipelined behind it (held until the answer). */
    in("<iq type='set' id='r0'><query xmlns='jabber:iq:register'>"
       "<username>a b</username><password>x</password></query></iq>");
    ck_out("<jid-malformed");
    ck_assert_int_eq(F.regs, 0);
    kn_buf_reset(&F.out);
    ck_assert_int_eq(
        in("<iq type='set' id='r1'><query xmlns='jabber:iq:register'>"
           "<username>Carol</username><password>pw1</password></query></iq>"
           "<iq type='get' id='g2'><query xmlns='jabber:iq:register'/></iq>"),
        C2S_ACT_PAUSED);
    ck_assert_int_eq(F.regs, 1);
    ck_assert_str_eq(F.reg_user, "carol"); /* nodeprepped */
    ck_assert_uint_eq(F.reg_creds.sha256.hash, KN_SCRAM_SHA256);
    ck_assert_uint_eq(F.reg_creds.sha1.iterations, KN_SCRAM_DEFAULT_ITERATIONS);
    ck_no_out("id='g2'");
    ck_assert_int_eq(c2s_stream_register_done(F.s, 0), C2S_ACT_MORE);
    ck_assert_ptr_nonnull(strstr(F.out.data, "id='r1'"));
    ck_assert_ptr_nonnull(strstr(F.out.data, "id='g2'"));
    ck_assert(strstr(F.out.data, "id='r1'") < strstr(F.out.data, "id='g2'"));
    kn_buf_reset(&F.out);
    /* taken, then over the allowance */
    in("<iq type='set' id='r2'><query xmlns='jabber:iq:register'>"
       "<username>dave</username><password>pw1</password></query></iq>");
    ck_assert_int_eq(c2s_stream_register_done(F.s, -KN_EEXIST), C2S_ACT_MORE);
    ck_out("<conflict");
    F.reg_allowed = 0;
    in("<iq type='set' id='r3'><query xmlns='jabber:iq:register'>"
       "<username>erin</username><password>pw1</password></query></iq>");
    ck_out("<resource-constraint");
    ck_assert_int_eq(F.regs, 2);
    CF.registration = false;
}
END_TEST

START_TEST(starttls_flow)
{
    open_plain();
    in(HDR);
    /* Bytes pipelined after <starttls/> must not count (RFC 6120 5.3.3). */
    ck_assert_int_eq(in("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                        "mechanism='PLAIN'>AGEAYg==</auth>"),
                     C2S_ACT_PAUSED);
    ck_out("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    ck_assert_int_eq(F.starttls, 1);
    kn_buf_reset(&F.out);
    ck_assert_int_eq(c2s_stream_tls_done(F.s, C2S_CB_END_POINT), C2S_ACT_MORE);
    ck_assert_int_eq(F.out.len, 0);
    ck_assert_int_eq(in(HDR), C2S_ACT_MORE);
    ck_out("<mechanism>SCRAM-SHA-1-PLUS</mechanism>");
    ck_no_out("<starttls");
    ck_assert_int_eq(F.lookups, 0);
    /* A second STARTTLS on an encrypted stream is an error. */
    ck_assert_int_eq(in("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
                     C2S_ACT_CLOSE);
    ck_out("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}
END_TEST

/* ---- SASL ------------------------------------------------------------- */

/* RFC 6120 6.4.6: "</auth>\n" (go-sendxmpp) then the new stream with its
 * XML declaration, every byte its own read, while the credential lookup
 * is pending: the newline is the old stream's. XEP-0237: the rosterver
 * feature comes with bind, not before. */
START_TEST(restart_after_auth_newline)
{
    open_tls(0);
    in(HDR);
    ck_no_out("urn:xmpp:features:rosterver");
    kn_buf_reset(&F.out);
    char raw[64];
    int n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, "alice", 0, "secret");
    kn_buf_t x = KN_BUF_INIT;
    kn_buf_append_str(&x, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                          "mechanism='PLAIN'>");
    b64(raw, (size_t)n, &x);
    kn_buf_append_str(&x, "</auth>\n\r\n " HDR);
    for (size_t i = 0; i < x.len; i++)
        ck_assert_int_ne(c2s_stream_input(F.s, x.data + i, 1), C2S_ACT_CLOSE);
    kn_buf_free(&x);
    ck_assert_int_eq(F.lookups, 1);
    c2s_creds_t c = creds("secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    ck_out("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'></success>");
    ck_no_out("<stream:error>");
    ck_out("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    ck_out("<ver xmlns='urn:xmpp:features:rosterver'/>");
    ck_assert_int_eq(F.s->state, C2S_ST_BIND);
}
END_TEST

START_TEST(plain_login_bind)
{
    login("desk");
    ck_assert_str_eq(F.user, "alice");
    ck_assert_int_eq(F.oks, 1);
    ck_assert_str_eq(F.s->jid.str, "alice@localhost/desk");
    ck_assert_int_eq(F.s->state, C2S_ST_SESSION);
    ck_assert(F.s->session_up);
}
END_TEST

START_TEST(plain_bind_result_and_session_up)
{
    open_tls(0);
    in(HDR);
    auth_plain("Alice", "secret"); /* nodeprep folds case */
    ck_assert_str_eq(F.user, "alice");
    c2s_creds_t c = creds("secret");
    c2s_stream_creds_done(F.s, 0, &c);
    kn_buf_reset(&F.out);
    in(HDR "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
           "xmpp-bind'><resource>desk</resource></bind></iq>");
    ck_out("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
           "xmpp-bind'><jid>alice@localhost/desk</jid></bind></iq>");
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_UP);
    ck_assert_str_eq(F.rec[0].from, "alice@localhost/desk");
    ck_assert_uint_eq(F.rec[0].conn, kn_conn_make(3, 42));
    ck_assert_int_eq(F.rec[0].flags, 0);
    /* Session establishment is answered locally. */
    kn_buf_reset(&F.out);
    in("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:"
       "xmpp-session'/></iq>");
    ck_out("<iq type='result' id='s1'");
    ck_assert_int_eq(F.nrec, 1);
}
END_TEST

START_TEST(plain_wrong_password_delayed)
{
    open_tls(0);
    in(HDR);
    F.delay = 500;
    auth_plain("alice", "wrong");
    c2s_creds_t c = creds("secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_PAUSED);
    ck_assert_int_eq(F.fails, 1);
    ck_no_out("<failure");
    ck_assert_int_eq(c2s_stream_resume(F.s), C2S_ACT_MORE);
    ck_out("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
           "<not-authorized/></failure>");
    ck_assert_int_eq(F.s->state, C2S_ST_FEATURES);
    /* The stream stays: another attempt works. */
    kn_buf_reset(&F.out);
    auth_plain("alice", "secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    ck_out("<success");
}
END_TEST

START_TEST(plain_unknown_user)
{
    open_tls(0);
    in(HDR);
    auth_plain("nobody", "secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, -KN_ENOENT, NULL),
                     C2S_ACT_MORE);
    ck_out("<not-authorized/>");
    ck_assert_int_eq(F.fails, 1);
}
END_TEST

START_TEST(plain_db_down)
{
    open_tls(0);
    in(HDR);
    auth_plain("alice", "secret");
    c2s_stream_creds_done(F.s, -KN_EAGAIN, NULL);
    ck_out("<temporary-auth-failure/>");
}
END_TEST

START_TEST(sasl_bad_mechanism_and_encoding)
{
    open_tls(0);
    in(HDR);
    in("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-FOO'>"
       "AA==</auth>");
    ck_out("<invalid-mechanism/>");
    kn_buf_reset(&F.out);
    in("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
       "!!!</auth>");
    ck_out("<incorrect-encoding/>");
    kn_buf_reset(&F.out);
    /* -PLUS when the transport has no channel binding */
    in("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
       "mechanism='SCRAM-SHA-1-PLUS'>AA==</auth>");
    ck_out("<invalid-mechanism/>");
    ck_assert_int_eq(F.fails, 0);
}
END_TEST

/* A SCRAM client (RFC 5802) on OpenSSL, for the exchange tests. */
static char *scram_final(kn_scram_hash_t h, const char *pw, const char *gs2,
                         const uint8_t *cb, size_t cblen, const char *bare,
                         const char *sfirst)
{
    const char *r = strstr(sfirst, "r=") + 2;
    const char *sp = strstr(sfirst, ",s=") + 3;
    const char *ip = strstr(sfirst, ",i=") + 3;
    kn_buf_t salt = KN_BUF_INIT;
    ck_assert_int_eq(kn_b64_decode(sp, (size_t)(ip - 3 - sp), &salt), 0);
    unsigned iter = (unsigned)strtoul(ip, NULL, 10);
    size_t hl = kn_scram_hash_len(h);
    kn_buf_t cbind = KN_BUF_INIT, c = KN_BUF_INIT;
    kn_buf_append_str(&cbind, gs2);
    kn_buf_append(&cbind, cb, cblen);
    kn_b64_encode(cbind.data, cbind.len, &c);
    kn_buf_t wp = KN_BUF_INIT;
    kn_buf_printf(&wp, "c=%s,r=%.*s", c.data, (int)(sp - 3 - r), r);
    kn_buf_t am = KN_BUF_INIT;
    kn_buf_printf(&am, "%s,%s,%s", bare, sfirst, wp.data);
    uint8_t salted[32], ckey[32], skey[32], sig[32], proof[32];
    unsigned l;
    ck_assert_int_eq(kn_scram_hi(h, pw, strlen(pw), (uint8_t *)salt.data,
                                 salt.len, iter, salted),
                     0);
    kn_scram_client_key(h, salted, ckey);
    kn_scram_stored_key(h, ckey, skey);
    HMAC(h == KN_SCRAM_SHA256 ? EVP_sha256() : EVP_sha1(), skey, (int)hl,
         (const unsigned char *)am.data, am.len, sig, &l);
    for (size_t i = 0; i < hl; i++)
        proof[i] = ckey[i] ^ sig[i];
    kn_buf_append_str(&wp, ",p=");
    kn_b64_encode(proof, hl, &wp);
    kn_buf_free(&am);
    kn_buf_free(&salt);
    kn_buf_free(&cbind);
    kn_buf_free(&c);
    return kn_buf_release(&wp, NULL);
}

/* The base64 content of the first <el ...>...</el> in the output,
 * decoded. */
static void out_payload(const char *el, kn_buf_t *dec)
{
    char open[64];
    snprintf(open, sizeof(open),
             "<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", el);
    const char *p = strstr(F.out.data, open);
    ck_assert_ptr_nonnull(p);
    p += strlen(open);
    const char *e = strchr(p, '<');
    ck_assert_int_eq(kn_b64_decode(p, (size_t)(e - p), dec), 0);
}

static int scram_login(kn_scram_hash_t h, bool plus, const char *gs2,
                       const char *pw, bool empty_initial)
{
    open_tls(plus ? C2S_CB_EXPORTER : 0);
    in(HDR);
    kn_buf_reset(&F.out);
    const char *bare = "n=alice,r=clientnonce0123456789";
    kn_buf_t first = KN_BUF_INIT, x = KN_BUF_INIT;
    kn_buf_printf(&first, "%s%s", gs2, bare);
    kn_buf_printf(&x,
                  "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                  "mechanism='%s'>",
                  kn_scram_mech_name(h, plus));
    if (empty_initial) {
        kn_buf_append_str(&x, "=</auth>");
        in(x.data);
        ck_out("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
               "</challenge>");
        kn_buf_reset(&x);
        kn_buf_append_str(&x, "<response xmlns='urn:ietf:params:xml:ns:"
                              "xmpp-sasl'>");
    }
    kn_b64_encode(first.data, first.len, &x);
    kn_buf_append_str(&x, empty_initial ? "</response>" : "</auth>");
    ck_assert_int_eq(in(x.data), C2S_ACT_PAUSED);
    ck_assert_str_eq(F.user, "alice");
    c2s_creds_t c = creds("secret");
    kn_buf_reset(&F.out);
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    kn_buf_t sfirst = KN_BUF_INIT;
    out_payload("challenge", &sfirst);
    char *fin = scram_final(h, pw, gs2, plus ? CB : NULL, plus ? 32 : 0, bare,
                            sfirst.data);
    kn_buf_reset(&x);
    kn_buf_append_str(&x,
                      "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>");
    kn_b64_encode(fin, strlen(fin), &x);
    kn_buf_append_str(&x, "</response>");
    kn_buf_reset(&F.out);
    in(x.data);
    free(fin);
    kn_buf_free(&x);
    kn_buf_free(&first);
    kn_buf_free(&sfirst);
    if (out_has("<success")) {
        kn_buf_t v = KN_BUF_INIT;
        out_payload("success", &v);
        ck_assert(strncmp(v.data, "v=", 2) == 0);
        kn_buf_free(&v);
        return 0;
    }
    return -1;
}

START_TEST(scram_sha1)
{
    ck_assert_int_eq(scram_login(KN_SCRAM_SHA1, false, "n,,", "secret", false),
                     0);
    ck_assert_int_eq(F.s->state, C2S_ST_HEADER);
}
END_TEST

START_TEST(scram_sha256_empty_initial)
{
    ck_assert_int_eq(scram_login(KN_SCRAM_SHA256, false, "n,,", "secret", true),
                     0);
}
END_TEST

START_TEST(scram_wrong_password)
{
    ck_assert_int_eq(scram_login(KN_SCRAM_SHA256, false, "n,,", "bad", false),
                     -1);
    ck_out("<not-authorized/>");
    ck_assert_int_eq(F.fails, 1);
}
END_TEST

START_TEST(scram_y_flag_accepted)
{
    /* slixmpp 1.8 says "y" after its tls-unique -PLUS attempt failed. */
    ck_assert_int_eq(scram_login(KN_SCRAM_SHA1, false, "y,,", "secret", false),
                     0);
}
END_TEST

START_TEST(scram_plus_exporter)
{
    ck_assert_int_eq(
        scram_login(KN_SCRAM_SHA256, true, "p=tls-exporter,,", "secret", false),
        0);
}
END_TEST

START_TEST(scram_plus_unsupported_type)
{
    open_tls(C2S_CB_EXPORTER);
    in(HDR);
    kn_buf_t x = KN_BUF_INIT;
    kn_buf_append_str(&x, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                          "mechanism='SCRAM-SHA-1-PLUS'>");
    const char *m = "p=tls-unique,,n=alice,r=abc";
    kn_b64_encode(m, strlen(m), &x);
    kn_buf_append_str(&x, "</auth>");
    ck_assert_int_eq(in(x.data), C2S_ACT_MORE);
    ck_out("<not-authorized/>");
    ck_assert_int_eq(F.fails, 0); /* not a guess: no delay */
    ck_assert_int_eq(F.lookups, 0);
    kn_buf_free(&x);
}
END_TEST

/* ---- SASL lock-out and max_sessions (issue 16) -------------------------- */

START_TEST(sasl_lockout_refused_unchecked)
{
    F.s = c2s_stream_new(&CF_LIM, &OPS_LIM, &F, &F.out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(F.s, 0);
    in(HDR);
    /* The check comes first, with the prepared name and the mechanism. */
    ck_assert_int_eq(auth_plain("Alice", "secret"), C2S_ACT_PAUSED);
    ck_assert_int_eq(F.lock_checks, 1);
    ck_assert_str_eq(F.lock_user, "alice");
    ck_assert_str_eq(F.lock_mech, "PLAIN");
    ck_assert_int_eq(F.lookups, 0);
    /* Locked: refused at once, password unchecked, not a counted failure. */
    ck_assert_int_eq(c2s_stream_lock_done(F.s, 42), C2S_ACT_MORE);
    ck_out("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
           "<temporary-auth-failure/><text xml:lang='en'>Too many failed "
           "authentication attempts; try again in 42 s</text></failure>");
    ck_assert_int_eq(F.lookups, 0);
    ck_assert_int_eq(F.fails, 0);
    ck_assert_int_eq(F.s->state, C2S_ST_FEATURES);
    /* Not locked any more: the same stream goes on to the credentials. */
    kn_buf_reset(&F.out);
    auth_plain("alice", "wrong");
    ck_assert_int_eq(c2s_stream_lock_done(F.s, 0), C2S_ACT_PAUSED);
    ck_assert_int_eq(F.lookups, 1);
    c2s_creds_t c = creds("secret");
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    ck_out("<not-authorized/>");
    /* auth_failed() sees who failed, with which mechanism. */
    ck_assert_int_eq(F.fails, 1);
    ck_assert_str_eq(F.failed_user, "alice");
    ck_assert_str_eq(F.failed_mech, "PLAIN");
    kn_buf_reset(&F.out);
    auth_plain("alice", "secret");
    ck_assert_int_eq(F.lock_checks, 3);
    c2s_stream_lock_done(F.s, 0);
    ck_assert_int_eq(c2s_stream_creds_done(F.s, 0, &c), C2S_ACT_MORE);
    ck_out("<success");
    ck_assert_int_eq(F.oks, 1);
}
END_TEST

START_TEST(sasl_lockout_name_that_does_not_prepare)
{
    F.s = c2s_stream_new(&CF_LIM, &OPS_LIM, &F, &F.out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(F.s, 0);
    in(HDR);
    /* The address may still be locked: asked with no user. */
    ck_assert_int_eq(auth_plain("a b", "x"), C2S_ACT_PAUSED);
    ck_assert_str_eq(F.lock_user, "(null)");
    ck_assert_int_eq(c2s_stream_lock_done(F.s, 0), C2S_ACT_MORE);
    ck_out("<not-authorized/>");
    ck_assert_int_eq(F.fails, 1);
    ck_assert_str_eq(F.failed_user, "(null)");
}
END_TEST

/* Log in on CF_LIM and send a bind for res; it waits for the count. */
static void lim_login_bind(const char *res)
{
    F.s = c2s_stream_new(&CF_LIM, &OPS_LIM, &F, &F.out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(F.s, 0);
    in(HDR);
    auth_plain("alice", "secret");
    c2s_stream_lock_done(F.s, 0);
    c2s_creds_t c = creds("secret");
    c2s_stream_creds_done(F.s, 0, &c);
    in(HDR);
    kn_buf_reset(&F.out);
    char b[256];
    snprintf(b, sizeof(b),
             "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
             "xmpp-bind'><resource>%s</resource></bind></iq>",
             res);
    ck_assert_int_eq(in(b), C2S_ACT_PAUSED);
}

START_TEST(bind_max_sessions_resource_constraint)
{
    lim_login_bind("desk");
    ck_assert_int_eq(F.counts, 1);
    ck_assert_str_eq(F.count_bare, "alice@localhost");
    ck_assert_str_eq(F.count_full, "alice@localhost/desk");
    ck_no_out("<iq");
    /* Two others bound, max 2: refused with a text, still unbound. */
    ck_assert_int_eq(c2s_stream_bind_done(F.s, 2), C2S_ACT_MORE);
    ck_out("<iq id='b1' type='error'><error type='wait'>");
    ck_out(
        "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    ck_out("at most 2");
    ck_assert_int_eq(F.s->state, C2S_ST_BIND);
    ck_assert_int_eq(F.nrec, 0);
    ck_assert(!F.s->session_up);
    /* One ended meanwhile: the retry binds and announces the session. */
    kn_buf_reset(&F.out);
    ck_assert_int_eq(in("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:"
                        "xml:ns:xmpp-bind'><resource>desk</resource></bind>"
                        "</iq>"),
                     C2S_ACT_PAUSED);
    ck_assert_int_eq(c2s_stream_bind_done(F.s, 1), C2S_ACT_MORE);
    ck_out("<jid>alice@localhost/desk</jid>");
    ck_assert_int_eq(F.s->state, C2S_ST_SESSION);
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_UP);
}
END_TEST

START_TEST(bind_count_unknown_allows)
{
    lim_login_bind("phone");
    /* Redis down: the bind goes through rather than locking users out. */
    ck_assert_int_eq(c2s_stream_bind_done(F.s, -1), C2S_ACT_MORE);
    ck_out("<jid>alice@localhost/phone</jid>");
    ck_assert_int_eq(F.s->state, C2S_ST_SESSION);
}
END_TEST

START_TEST(bind_pending_count_freed_with_stream)
{
    /* The connection closes while the count is asked: nothing leaks
     * (the bind IQ and JID go with the stream; ASan checks). */
    lim_login_bind("gone");
    c2s_stream_free(&F.s);
}
END_TEST

/* ---- bind ------------------------------------------------------------- */

START_TEST(bind_generated_resource)
{
    login(NULL);
    ck_assert(strncmp(F.s->jid.str, "alice@localhost/kiln-", 21) == 0);
}
END_TEST

START_TEST(bind_bad_resource)
{
    open_tls(0);
    in(HDR);
    auth_plain("alice", "secret");
    c2s_creds_t c = creds("secret");
    c2s_stream_creds_done(F.s, 0, &c);
    in(HDR);
    kn_buf_reset(&F.out);
    /* U+0085 is legal XML but prohibited by resourceprep (C.2.2). */
    in("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:"
       "xmpp-bind'><resource>a\xc2\x85</resource></bind></iq>");
    ck_out("type='error'");
    ck_out("<bad-request");
    ck_assert_int_eq(F.s->state, C2S_ST_BIND);
    ck_assert_int_eq(F.nrec, 0);
    /* A message before binding ends the stream. */
    ck_assert_int_eq(in("<message to='bob@localhost'/>"), C2S_ACT_CLOSE);
    ck_out("<not-authorized");
}
END_TEST

/* ---- stanzas ---------------------------------------------------------- */

START_TEST(from_stamped)
{
    login("desk");
    in("<message to='Bob@LocalHost/Phone' type='chat' id='m1'><body>hi"
       "</body></message>");
    ck_assert_int_eq(F.nrec, 1);
    rec_t *r = &F.rec[0];
    ck_assert_int_eq(r->kind, KN_ENV_STANZA);
    ck_assert_int_eq(r->stanza, KN_ENV_ST_MESSAGE);
    ck_assert_int_eq(r->type, KN_ENV_TYPE_CHAT);
    ck_assert_str_eq(r->from, "alice@localhost/desk");
    ck_assert_str_eq(r->to, "bob@localhost/Phone");
    ck_assert_uint_eq(r->conn, kn_conn_make(3, 42));
    ck_assert_ptr_nonnull(strstr(r->payload, "from='alice@localhost/desk'"));
    ck_assert_ptr_nonnull(strstr(r->payload, "xmlns='jabber:client'"));
    /* A bare or full own 'from' is fine and replaced by the full JID. */
    in("<message from='alice@localhost' to='bob@localhost'/>");
    ck_assert_int_eq(F.nrec, 2);
    ck_assert_ptr_nonnull(
        strstr(F.rec[1].payload, "from='alice@localhost/desk'"));
    ck_assert_int_eq(F.rec[1].type, KN_ENV_TYPE_NORMAL);
}
END_TEST

START_TEST(invalid_from)
{
    login("desk");
    ck_assert_int_eq(in("<message from='mallory@localhost/x' "
                        "to='bob@localhost'/>"),
                     C2S_ACT_CLOSE);
    ck_out("<invalid-from");
    ck_assert_int_eq(F.nrec, 0);
    ck_assert_int_eq(F.s->reason, KN_ENV_REASON_DROPPED);
    c2s_stream_end(F.s);
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(F.rec[0].reason, KN_ENV_REASON_DROPPED);
}
END_TEST

START_TEST(to_malformed_and_missing)
{
    login("desk");
    ck_assert_int_eq(in("<message to='a@b@c' id='x'/>"), C2S_ACT_MORE);
    ck_out("<jid-malformed");
    ck_assert_int_eq(F.nrec, 0);
    /* No 'to' on an iq: the user's account (bare JID) handles it. */
    in("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_str_eq(F.rec[0].to, "alice@localhost");
    ck_assert_str_eq(F.rec[0].node, "jabber:iq:roster");
    ck_assert_int_eq(F.rec[0].type, KN_ENV_TYPE_GET);
    ck_assert_ptr_null(strstr(F.rec[0].payload, " to="));
}
END_TEST

START_TEST(iq_checks_and_ping)
{
    login("desk");
    in("<iq type='bogus' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>");
    ck_out("<bad-request");
    kn_buf_reset(&F.out);
    in("<iq type='get' id='q2'/>");
    ck_out("<bad-request");
    kn_buf_reset(&F.out);
    in("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
       "</iq>");
    ck_out("<iq type='result' id='p1' from='localhost' "
           "to='alice@localhost/desk'/>");
    in("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>");
    ck_out("id='p2'");
    ck_assert_int_eq(F.nrec, 0);
    in("<iq type='get' id='p3' to='bob@localhost/x'><ping "
       "xmlns='urn:xmpp:ping'/></iq>");
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_str_eq(F.rec[0].node, "urn:xmpp:ping");
}
END_TEST

/* R-DROP-4: the server's idle ping, the client's answer swallowed (not
 * routed), other results routed; the idle close says connection-timeout
 * and SESSION_DOWN carries reason idle. */
START_TEST(idle_ping_and_close_R_DROP_4)
{
    login("desk");
    c2s_stream_ping(F.s, 7);
    ck_out("<iq type='get' id='kiln-ping-7' from='localhost' "
           "to='alice@localhost/desk'><ping xmlns='urn:xmpp:ping'/></iq>");
    ck_assert(!c2s_stream_is_ping_reply(F.s, "kiln-ping-70"));
    ck_assert(!c2s_stream_is_ping_reply(F.s, NULL));
    /* Someone else's result with our id prefix goes on. */
    in("<iq type='result' id='kiln-ping-6' to='localhost'/>");
    ck_assert_int_eq(F.nrec, 1);
    /* A result with our id to a user is not ours either. */
    in("<iq type='result' id='kiln-ping-7' to='bob@localhost/x'/>");
    ck_assert_int_eq(F.nrec, 2);
    kn_buf_reset(&F.out);
    ck_assert_int_eq(in("<iq type='result' id='kiln-ping-7' to='localhost'/>"),
                     C2S_ACT_MORE);
    ck_assert_int_eq(F.nrec, 2);
    ck_assert_uint_eq(F.out.len, 0);
    ck_assert_uint_eq(F.s->ping_id, 0);
    /* Answered already: a second copy is routed like any result. */
    in("<iq type='result' id='kiln-ping-7'/>");
    ck_assert_int_eq(F.nrec, 3);
    /* An error answer (no 'to') is swallowed too. */
    c2s_stream_ping(F.s, 8);
    in("<iq type='error' id='kiln-ping-8'><error type='cancel'>"
       "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
       "</error></iq>");
    ck_assert_int_eq(F.nrec, 3);
    kn_buf_reset(&F.out);
    F.nrec = 0;
    c2s_stream_close(F.s, KN_SE_CONNECTION_TIMEOUT, KN_ENV_REASON_IDLE);
    ck_out("<stream:error><connection-timeout "
           "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
           "</stream:stream>");
    c2s_stream_end(F.s);
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(F.rec[0].reason, KN_ENV_REASON_IDLE);
}
END_TEST

START_TEST(presence_priority)
{
    login("desk");
    in("<presence><priority>5</priority></presence>");
    ck_assert_int_eq(F.nrec, 2);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_PRIORITY);
    ck_assert_int_eq(F.rec[0].priority, 5);
    ck_assert_int_eq(F.rec[0].flags, KN_F_AVAILABLE);
    ck_assert_int_eq(F.rec[1].kind, KN_ENV_STANZA);
    ck_assert_int_eq(F.rec[1].type, KN_ENV_TYPE_AVAILABLE);
    ck_assert_str_eq(F.rec[1].to, "");
    in("<presence type='unavailable'/>");
    ck_assert_int_eq(F.rec[2].kind, KN_ENV_PRIORITY);
    ck_assert_int_eq(F.rec[2].flags, 0);
    /* Directed presence does not change the priority table. */
    in("<presence to='bob@localhost'/>");
    ck_assert_int_eq(F.nrec, 5);
    ck_assert_int_eq(F.rec[4].kind, KN_ENV_STANZA);
    /* Unknown presence type */
    in("<presence type='sleepy' id='z'/>");
    ck_out("<bad-request");
    ck_assert_int_eq(F.nrec, 5);
}
END_TEST

START_TEST(framing_R_ARCH_1)
{
    login("desk");
    const char *two = "<message to='bob@localhost'><body>1</body></message>"
                      "<message to='bob@localhost'><body>2</body></message>";
    ck_assert_int_eq(in(two), C2S_ACT_MORE);
    ck_assert_int_eq(F.nrec, 2);
    const char *one = "<message to='bob@localhost'><body>split</body>"
                      "</message>";
    for (size_t i = 0; one[i]; i++)
        ck_assert_int_eq(c2s_stream_input(F.s, one + i, 1), C2S_ACT_MORE);
    ck_assert_int_eq(F.nrec, 3);
    ck_assert_ptr_nonnull(strstr(F.rec[2].payload, "<body>split</body>"));
}
END_TEST

START_TEST(deliver_splices_to)
{
    login("desk");
    const char *m = "<message xmlns='jabber:client' from='r@conf.localhost/n' "
                    "type='groupchat'><body>x</body></message>";
    c2s_stanza_deliver(F.s, m, strlen(m));
    ck_out("<message to='alice@localhost/desk' xmlns='jabber:client' "
           "from='r@conf.localhost/n'");
    kn_buf_reset(&F.out);
    const char *m2 = "<message from='a@localhost' to='alice@localhost'/>";
    c2s_stanza_deliver(F.s, m2, strlen(m2));
    ck_assert_str_eq(F.out.data, m2);
    kn_buf_reset(&F.out);
    const char *m3 = "<presence from='x@y' id='to'/>";
    c2s_stanza_deliver(F.s, m3, strlen(m3));
    ck_out("<presence to='alice@localhost/desk' from='x@y' id='to'/>");
}
END_TEST

/* ---- blocking (XEP-0191, c2s_block.c) ---------------------------------- */

static c2s_act_t dlv(kn_env_kind_t kind, kn_env_stanza_t st, kn_env_type_t type,
                     uint16_t flags, const char *from, const char *to,
                     const char *xml)
{
    kn_env_t e = {0};
    e.kind = kind;
    e.stanza = st;
    e.type = type;
    e.flags = flags;
    e.from = from;
    e.from_len = strlen(from);
    e.to = to;
    e.to_len = to ? strlen(to) : 0;
    e.ack_id = F.next_ack_id;
    return c2s_stream_inbound(F.s, &e, xml, strlen(xml));
}

#define LIST(items)                                                            \
    "<iq xmlns='jabber:client' type='set' id='kiln-blocklist' "                \
    "to='alice@localhost/desk'><blocklist xmlns='urn:xmpp:blocking'>" items    \
    "</blocklist></iq>"

static void give_list(const char *xml)
{
    ck_assert_int_eq(dlv(KN_ENV_STANZA, KN_ENV_ST_IQ, KN_ENV_TYPE_SET,
                         KN_F_BLOCKLIST, "", "alice@localhost/desk", xml),
                     C2S_ACT_MORE);
}

static void msg_from(const char *from, kn_env_type_t type, uint16_t flags,
                     const char *body)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<message xmlns='jabber:client' from='%s' to='alice@localhost' "
             "type='%s' id='m-%s'><body>%s</body></message>",
             from, type == KN_ENV_TYPE_GROUPCHAT ? "groupchat" : "chat", body,
             body);
    ck_assert_int_eq(dlv(KN_ENV_STANZA, KN_ENV_ST_MESSAGE, type, flags, from,
                         "alice@localhost", xml),
                     C2S_ACT_MORE);
}

START_TEST(block_hold_until_list_XEP_0191)
{
    login("desk");
    ck_assert_int_eq(F.block_waits, 1);
    /* before the list: held, nothing written */
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, 0, "early");
    msg_from("bob@localhost/r", KN_ENV_TYPE_CHAT, 0, "hello");
    ck_assert_uint_eq(F.out.len, 0);
    ck_assert_int_eq(F.nrec, 0);
    give_list(LIST("<item jid='EVE@localhost'/>"));
    /* the list is kept, not delivered; the held ones are filtered */
    ck_no_out("blocklist");
    ck_no_out("early");
    ck_out("hello");
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_STANZA);
    ck_assert_int_eq(F.rec[0].type, KN_ENV_TYPE_ERROR);
    ck_assert_str_eq(F.rec[0].to, "eve@localhost/r");
    ck_assert_str_eq(F.rec[0].from, "alice@localhost");
    ck_assert_ptr_nonnull(strstr(F.rec[0].payload, "<service-unavailable"));
    ck_assert_ptr_nonnull(strstr(F.rec[0].payload, "type='cancel'"));
    ck_assert_ptr_nonnull(strstr(F.rec[0].payload, "xmlns='jabber:client'"));
}
END_TEST

/* Stored offline messages (KN_F_ACK_WANTED, R-PRES-5) held until the
 * list came: each is marked for its ACK once released, the refused one
 * too (it is done with), the delivered one after its bytes. */
START_TEST(block_held_offline_rows_acked_R_PRES_5)
{
    login("desk");
    F.next_ack_id = 7;
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, KN_F_ACK_WANTED, "old");
    F.next_ack_id = 8;
    msg_from("bob@localhost/r", KN_ENV_TYPE_CHAT, KN_F_ACK_WANTED, "kept");
    F.next_ack_id = 0;
    msg_from("bob@localhost/r", KN_ENV_TYPE_CHAT, 0, "live");
    ck_assert_int_eq(F.nacks, 0); /* held: nothing written, nothing marked */
    give_list(LIST("<item jid='eve@localhost'/>"));
    ck_no_out("old");
    ck_out("kept");
    ck_out("live");
    ck_assert_int_eq(F.nacks, 2);
    ck_assert_uint_eq(F.acks[0], 7);
    ck_assert_uint_eq(F.ack_at[0], 0); /* refused: nothing before it */
    ck_assert_uint_eq(F.acks[1], 8);
    ck_assert_uint_gt(F.ack_at[1], 0); /* after "kept" was written */
    ck_assert_ptr_null(strstr(F.out.data, "live") < F.out.data + F.ack_at[1]
                           ? strstr(F.out.data, "live")
                           : NULL);
}
END_TEST

/* ---- client state indication (XEP-0352, c2s_csi.c) ------------------ */

static void pres_from(const char *from, const char *status)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<presence xmlns='jabber:client' from='%s'><status>%s</status>"
             "</presence>",
             from, status);
    ck_assert_int_eq(dlv(KN_ENV_MULTICAST, KN_ENV_ST_PRESENCE,
                         KN_ENV_TYPE_AVAILABLE, 0, from, "", xml),
                     C2S_ACT_MORE);
}

static void chatstate_from(const char *from, const char *state)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<message xmlns='jabber:client' from='%s' type='chat'><%s "
             "xmlns='http://jabber.org/protocol/chatstates'/></message>",
             from, state);
    ck_assert_int_eq(dlv(KN_ENV_STANZA, KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT,
                         F.next_ack_id ? KN_F_ACK_WANTED : 0, from,
                         "alice@localhost/desk", xml),
                     C2S_ACT_MORE);
}

static size_t out_at(const char *needle)
{
    const char *p = F.out.data ? strstr(F.out.data, needle) : NULL;
    ck_assert_msg(p != NULL, "'%s' not in output", needle);
    return (size_t)(p - F.out.data);
}

START_TEST(csi_hold_newest_then_flush_before_iq_XEP_0352)
{
    CF.csi_max_stanzas = 10;
    login("desk");
    give_list(LIST(""));
    kn_buf_reset(&F.out);
    ck_assert_int_eq(in("<inactive xmlns='urn:xmpp:csi:0'/>"), C2S_ACT_MORE);
    pres_from("bob@localhost/r", "st-1");
    pres_from("carol@localhost/r", "st-c");
    chatstate_from("bob@localhost/r", "composing");
    pres_from("bob@localhost/r", "st-2");
    chatstate_from("bob@localhost/r", "paused");
    ck_assert_uint_eq(F.out.len, 0); /* all held */
    ck_assert_int_eq(dlv(KN_ENV_STANZA, KN_ENV_ST_IQ, KN_ENV_TYPE_GET, 0,
                         "bob@localhost/r", "alice@localhost/desk",
                         "<iq xmlns='jabber:client' from='bob@localhost/r' "
                         "type='get' id='q1'><ping xmlns='urn:xmpp:ping'/>"
                         "</iq>"),
                     C2S_ACT_MORE);
    ck_no_out("st-1");
    ck_no_out("composing");
    /* the survivors in order, each where its newest version came, then
     * the urgent iq */
    ck_assert_uint_lt(out_at("st-c"), out_at("st-2"));
    ck_assert_uint_lt(out_at("st-2"), out_at("paused"));
    ck_assert_uint_lt(out_at("paused"), out_at("id='q1'"));
    /* still inactive: held again; <active/> flushes */
    kn_buf_reset(&F.out);
    pres_from("bob@localhost/r", "st-3");
    ck_assert_uint_eq(F.out.len, 0);
    ck_assert_int_eq(in("<active xmlns='urn:xmpp:csi:0'/>"), C2S_ACT_MORE);
    ck_out("st-3");
    /* active: written at once */
    kn_buf_reset(&F.out);
    pres_from("bob@localhost/r", "st-4");
    ck_out("st-4");
}
END_TEST

START_TEST(csi_overflow_and_offline_rows_XEP_0352)
{
    CF.csi_max_stanzas = 2;
    login("desk");
    give_list(LIST(""));
    kn_buf_reset(&F.out);
    in("<inactive xmlns='urn:xmpp:csi:0'/>");
    pres_from("a@localhost/r", "st-a");
    pres_from("b@localhost/r", "st-b");
    ck_assert_uint_eq(F.out.len, 0);
    pres_from("c@localhost/r", "st-c"); /* over the limit: all out */
    ck_assert_uint_lt(out_at("st-a"), out_at("st-b"));
    ck_assert_uint_lt(out_at("st-b"), out_at("st-c"));
    /* a stored offline message is never held, and acknowledged after its
     * bytes (R-PRES-5) */
    kn_buf_reset(&F.out);
    pres_from("a@localhost/r", "st-a2");
    F.next_ack_id = 9;
    chatstate_from("bob@localhost/r", "gone");
    F.next_ack_id = 0;
    ck_assert_uint_lt(out_at("st-a2"), out_at("gone"));
    ck_assert_int_eq(F.nacks, 1);
    ck_assert_uint_eq(F.acks[0], 9);
    ck_assert_uint_eq(F.ack_at[0], F.out.len);
    /* an unknown CSI element is a stream error */
    ck_assert_int_eq(in("<sleepy xmlns='urn:xmpp:csi:0'/>"), C2S_ACT_CLOSE);
    ck_out("unsupported-stanza-type");
}
END_TEST

START_TEST(csi_off_not_offered_XEP_0352)
{
    CF.csi_max_stanzas = 0;
    login("desk");
    ck_assert_int_eq(in("<inactive xmlns='urn:xmpp:csi:0'/>"), C2S_ACT_CLOSE);
    ck_out("unsupported-stanza-type");
}
END_TEST

/* What goes back to the router when a delivery cannot be written: one
 * rule for a vanished connection and for what a session still held. */
START_TEST(reroute_rule)
{
    kn_env_t e = {0}, out;
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.conn_id = kn_conn_make(3, 42);
    ck_assert(c2s_reroute_env(&e, &out));
    ck_assert(out.flags & KN_F_REROUTE);
    ck_assert_uint_eq(out.conn_id, 0);
    /* a stored offline message keeps its connection (R-PRES-5) */
    e.flags = KN_F_ACK_WANTED;
    ck_assert(c2s_reroute_env(&e, &out));
    ck_assert_uint_eq(out.conn_id, kn_conn_make(3, 42));
    /* not again, not the extra copies, not block-list data */
    e.flags = KN_F_REROUTE;
    ck_assert(!c2s_reroute_env(&e, &out));
    e.flags = KN_F_EXTRA_COPY;
    ck_assert(!c2s_reroute_env(&e, &out));
    e.flags = KN_F_BLOCKLIST;
    ck_assert(!c2s_reroute_env(&e, &out));
    /* nothing that nobody answers */
    e.flags = 0;
    e.type = KN_ENV_TYPE_GROUPCHAT;
    ck_assert(!c2s_reroute_env(&e, &out));
    e.stanza = KN_ENV_ST_IQ;
    e.type = KN_ENV_TYPE_RESULT;
    ck_assert(!c2s_reroute_env(&e, &out));
    e.type = KN_ENV_TYPE_GET;
    ck_assert(c2s_reroute_env(&e, &out));
    e.kind = KN_ENV_MULTICAST;
    ck_assert(!c2s_reroute_env(&e, &out));
}
END_TEST

START_TEST(block_refusals_XEP_0191)
{
    login("desk");
    give_list(LIST(""));
    ck_assert_ptr_null(F.s->blocked); /* nobody blocked: no list at all */
    /* a push from presenced: applied, then delivered to the client */
    const char *push = "<iq xmlns='jabber:client' type='set' id='block-push'>"
                       "<block xmlns='urn:xmpp:blocking'><item "
                       "jid='eve@localhost'/><item jid='evil.example'/>"
                       "<item jid='localhost'/></block></iq>";
    dlv(KN_ENV_MULTICAST, KN_ENV_ST_IQ, KN_ENV_TYPE_SET, KN_F_BLOCKLIST, "", "",
        push);
    ck_out("<block xmlns='urn:xmpp:blocking'>");
    kn_buf_reset(&F.out);
    /* message: refused once, not for the router's extra copies */
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, KN_F_EXTRA_COPY, "copy");
    ck_assert_int_eq(F.nrec, 0);
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, 0, "one");
    ck_assert_int_eq(F.nrec, 1);
    ck_assert_ptr_nonnull(strstr(F.rec[0].payload, "<service-unavailable"));
    /* a domain item blocks every JID at it */
    msg_from("spam@evil.example/bot", KN_ENV_TYPE_CHAT, 0, "spam");
    ck_assert_int_eq(F.nrec, 2);
    ck_assert_str_eq(F.rec[1].to, "spam@evil.example/bot");
    /* groupchat, presence, iq result: dropped without an answer */
    msg_from("eve@localhost/r", KN_ENV_TYPE_GROUPCHAT, 0, "gc");
    dlv(KN_ENV_STANZA, KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, 0,
        "eve@localhost/r", "alice@localhost/desk",
        "<presence xmlns='jabber:client' from='eve@localhost/r'/>");
    dlv(KN_ENV_STANZA, KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, 0, "eve@localhost/r",
        "alice@localhost/desk",
        "<iq xmlns='jabber:client' type='result' id='r' "
        "from='eve@localhost/r'/>");
    dlv(KN_ENV_MULTICAST, KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, 0,
        "eve@localhost/r", "", "<presence xmlns='jabber:client'/>");
    ck_assert_int_eq(F.nrec, 2);
    /* iq get: service-unavailable */
    dlv(KN_ENV_STANZA, KN_ENV_ST_IQ, KN_ENV_TYPE_GET, 0, "eve@localhost/r",
        "alice@localhost/desk",
        "<iq xmlns='jabber:client' type='get' id='v' from='eve@localhost/r' "
        "to='alice@localhost/desk'><query xmlns='jabber:iq:version'/></iq>");
    ck_assert_int_eq(F.nrec, 3);
    ck_assert_int_eq(F.rec[2].stanza, KN_ENV_ST_IQ);
    ck_assert_ptr_nonnull(strstr(F.rec[2].payload, "id='v'"));
    ck_assert_str_eq(F.rec[2].from, "alice@localhost/desk");
    ck_assert_uint_eq(F.out.len, 0); /* nothing reached the client */
    /* the user's own resources and the server are never blocked */
    msg_from("alice@localhost/phone", KN_ENV_TYPE_CHAT, 0, "mine");
    dlv(KN_ENV_STANZA, KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, 0, "localhost",
        "alice@localhost/desk",
        "<iq xmlns='jabber:client' type='result' id='srv' from='localhost'/>");
    ck_out("mine");
    ck_out("id='srv'");
    ck_assert_int_eq(F.nrec, 3);
    /* unblock all: delivered again */
    kn_buf_reset(&F.out);
    dlv(KN_ENV_MULTICAST, KN_ENV_ST_IQ, KN_ENV_TYPE_SET, KN_F_BLOCKLIST, "", "",
        "<iq xmlns='jabber:client' type='set' id='block-push'>"
        "<unblock xmlns='urn:xmpp:blocking'/></iq>");
    ck_assert_ptr_null(F.s->blocked);
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, 0, "after");
    ck_out("after");
    ck_assert_int_eq(F.nrec, 3);
}
END_TEST

START_TEST(block_outbound_XEP_0191)
{
    login("desk");
    give_list(LIST("<item jid='eve@localhost'/>"));
    ck_assert_int_eq(in("<message to='Eve@localhost/r' id='o1' type='chat'>"
                        "<body>hi</body></message>"),
                     C2S_ACT_MORE);
    ck_assert_int_eq(F.nrec, 0); /* not routed */
    ck_out("type='error'");
    ck_out("<error type='cancel'><not-acceptable "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><blocked "
           "xmlns='urn:xmpp:blocking:errors'/></error>");
    ck_out("from='Eve@localhost/r'");
    kn_buf_reset(&F.out);
    /* an iq result or an error to it: dropped silently */
    in("<iq to='eve@localhost/r' id='q' type='result'/>");
    in("<message to='eve@localhost' type='error'><error type='cancel'>"
       "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
       "</message>");
    ck_assert_uint_eq(F.out.len, 0);
    ck_assert_int_eq(F.nrec, 0);
    /* others are routed */
    in("<message to='bob@localhost' type='chat'><body>b</body></message>");
    in("<presence/>");
    ck_assert_int_eq(F.nrec, 3); /* message, PRIORITY, presence */
}
END_TEST

START_TEST(block_fallback_list_XEP_0191)
{
    login("desk");
    const char *jids[] = {"eve@localhost", "bad@@"};
    size_t lens[] = {13, 5};
    msg_from("eve@localhost/r", KN_ENV_TYPE_CHAT, 0, "held");
    c2s_stream_block_loaded(F.s, jids, lens, 2);
    ck_assert(F.s->block_ready);
    ck_assert_int_eq(F.nrec, 1); /* the held one refused */
    /* once known, a second read is ignored; presenced's list replaces */
    c2s_stream_block_loaded(F.s, NULL, NULL, 0);
    ck_assert_ptr_nonnull(F.s->blocked);
    give_list(LIST(""));
    ck_assert_ptr_null(F.s->blocked);
}
END_TEST

START_TEST(block_hold_overflow_reroutes_XEP_0191)
{
    c2s_stream_conf_t small = {"localhost", KN_XML_LIMITS_DEFAULT, 600};
    open_tls(0);
    F.s->cf = &small;
    in(HDR);
    auth_plain("alice", "secret");
    c2s_creds_t c = creds("secret");
    c2s_stream_creds_done(F.s, 0, &c);
    in(HDR);
    in("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
       "<resource>desk</resource></bind></iq>");
    kn_buf_reset(&F.out);
    F.nrec = 0;
    msg_from("bob@localhost/r", KN_ENV_TYPE_CHAT, 0, "one");
    dlv(KN_ENV_STANZA, KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, 0,
        "bob@localhost/r", "alice@localhost/desk",
        "<presence xmlns='jabber:client' from='bob@localhost/r'/>");
    msg_from("bob@localhost/r", KN_ENV_TYPE_CHAT, KN_F_EXTRA_COPY, "copy");
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "bob@localhost/r";
    e.from_len = 15;
    e.to = "alice@localhost/desk";
    e.to_len = 20;
    const char *big = "<message xmlns='jabber:client' from='bob@localhost/r' "
                      "type='chat'><body>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "</body></message>";
    ck_assert_int_eq(c2s_stream_inbound(F.s, &e, big, strlen(big)),
                     C2S_ACT_CLOSE);
    ck_out("<resource-constraint");
    c2s_stream_end(F.s);
    /* SESSION_DOWN first, then the held messages back to the router (not
     * the presence, not the extra copy) */
    ck_assert_int_eq(F.nrec, 3);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(F.rec[1].kind, KN_ENV_STANZA);
    ck_assert(F.rec[1].flags & KN_F_REROUTE);
    ck_assert_ptr_nonnull(strstr(F.rec[1].payload, "<body>one</body>"));
    ck_assert_str_eq(F.rec[1].to, "alice@localhost");
    ck_assert(F.rec[2].flags & KN_F_REROUTE);
    ck_assert_str_eq(F.rec[2].to, "alice@localhost/desk");
    ck_assert_ptr_null(F.s->held);
}
END_TEST

START_TEST(clean_close)
{
    login("desk");
    ck_assert_int_eq(in("</stream:stream>"), C2S_ACT_CLOSE);
    ck_out("</stream:stream>");
    c2s_stream_end(F.s);
    ck_assert_int_eq(F.rec[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(F.rec[0].reason, KN_ENV_REASON_CLEAN);
    c2s_stream_end(F.s); /* once */
    ck_assert_int_eq(F.nrec, 1);
}
END_TEST

START_TEST(kick_conflict)
{
    login("desk");
    c2s_stream_close(F.s, KN_SE_CONFLICT, KN_ENV_REASON_CONFLICT);
    ck_out("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    ck_out("</stream:stream>");
    c2s_stream_end(F.s);
    ck_assert_int_eq(F.rec[0].reason, KN_ENV_REASON_CONFLICT);
}
END_TEST

START_TEST(oversized_stanza)
{
    c2s_stream_conf_t small = {"localhost", {1024, 8, 8, 4096}};
    F.s = c2s_stream_new(&small, &OPS, &F, &F.out, C2S_STREAM_F_TLS);
    in(HDR);
    kn_buf_t big = KN_BUF_INIT;
    kn_buf_append_str(&big, "<message><body>");
    for (int i = 0; i < 2000; i++)
        kn_buf_append_str(&big, "x");
    ck_assert_int_eq(in(big.data), C2S_ACT_CLOSE);
    ck_out("<policy-violation");
    kn_buf_free(&big);
}
END_TEST

START_TEST(b64_round_trip)
{
    const char *v[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *e[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        kn_buf_t o = KN_BUF_INIT, d = KN_BUF_INIT;
        kn_b64_encode(v[i], strlen(v[i]), &o);
        ck_assert_str_eq(o.data ? o.data : "", e[i]);
        ck_assert_int_eq(kn_b64_decode(e[i], strlen(e[i]), &d), 0);
        ck_assert_int_eq(d.len, strlen(v[i]));
        kn_buf_free(&o);
        kn_buf_free(&d);
    }
    kn_buf_t d = KN_BUF_INIT;
    ck_assert_int_lt(kn_b64_decode("Zg=", 3, &d), 0);
    ck_assert_int_lt(kn_b64_decode("Z=g=", 4, &d), 0);
    ck_assert_int_lt(kn_b64_decode("Zm 9", 4, &d), 0);
    ck_assert_int_eq(d.len, 0);
    kn_buf_free(&d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_stream");
    TCase *t = tcase_create("all");
    tcase_set_timeout(t, 60);
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, header_bad_version);
    tcase_add_test(t, header_no_version);
    tcase_add_test(t, header_bad_namespace);
    tcase_add_test(t, header_unknown_host);
    tcase_add_test(t, header_host_case_folded);
    tcase_add_test(t, not_well_formed);
    tcase_add_test(t, features_plain_stream);
    tcase_add_test(t, features_tls_stream);
    tcase_add_test(t, auth_before_tls_refused);
    tcase_add_test(t, stanza_before_auth);
    tcase_add_test(t, starttls_flow);
    tcase_add_test(t, inband_registration_XEP_0077);
    tcase_add_test(t, plain_login_bind);
    tcase_add_test(t, restart_after_auth_newline);
    tcase_add_test(t, plain_bind_result_and_session_up);
    tcase_add_test(t, plain_wrong_password_delayed);
    tcase_add_test(t, plain_unknown_user);
    tcase_add_test(t, plain_db_down);
    tcase_add_test(t, sasl_bad_mechanism_and_encoding);
    tcase_add_test(t, scram_sha1);
    tcase_add_test(t, scram_sha256_empty_initial);
    tcase_add_test(t, scram_wrong_password);
    tcase_add_test(t, scram_y_flag_accepted);
    tcase_add_test(t, scram_plus_exporter);
    tcase_add_test(t, scram_plus_unsupported_type);
    tcase_add_test(t, sasl_lockout_refused_unchecked);
    tcase_add_test(t, sasl_lockout_name_that_does_not_prepare);
    tcase_add_test(t, bind_max_sessions_resource_constraint);
    tcase_add_test(t, bind_count_unknown_allows);
    tcase_add_test(t, bind_pending_count_freed_with_stream);
    tcase_add_test(t, bind_generated_resource);
    tcase_add_test(t, bind_bad_resource);
    tcase_add_test(t, from_stamped);
    tcase_add_test(t, invalid_from);
    tcase_add_test(t, to_malformed_and_missing);
    tcase_add_test(t, iq_checks_and_ping);
    tcase_add_test(t, idle_ping_and_close_R_DROP_4);
    tcase_add_test(t, presence_priority);
    tcase_add_test(t, framing_R_ARCH_1);
    tcase_add_test(t, deliver_splices_to);
    tcase_add_test(t, block_hold_until_list_XEP_0191);
    tcase_add_test(t, block_held_offline_rows_acked_R_PRES_5);
    tcase_add_test(t, reroute_rule);
    tcase_add_test(t, block_refusals_XEP_0191);
    tcase_add_test(t, block_outbound_XEP_0191);
    tcase_add_test(t, block_fallback_list_XEP_0191);
    tcase_add_test(t, block_hold_overflow_reroutes_XEP_0191);
    tcase_add_test(t, csi_hold_newest_then_flush_before_iq_XEP_0352);
    tcase_add_test(t, csi_overflow_and_offline_rows_XEP_0352);
    tcase_add_test(t, csi_off_not_offered_XEP_0352);
    tcase_add_test(t, clean_close);
    tcase_add_test(t, kick_conflict);
    tcase_add_test(t, oversized_stanza);
    tcase_add_test(t, b64_round_trip);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
