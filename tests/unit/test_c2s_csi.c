/*
 * test_c2s_csi.c - XEP-0352 client state indication (c2s_csi.c): which
 * deliveries an inactive session holds (from canned envelopes and
 * payloads), the newest-per-sender rule, flush order, the limits.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_csi.h"
#include "kn_buf.h"
#include "kn_proto.h"

static kn_env_t env(kn_env_stanza_t st, kn_env_type_t type, const char *from)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = st;
    e.type = type;
    e.from = from;
    e.from_len = from ? strlen(from) : 0;
    return e;
}

static c2s_csi_class_t cls(kn_env_stanza_t st, kn_env_type_t type,
                           const char *from, const char *xml)
{
    kn_env_t e = env(st, type, from);
    return c2s_csi_classify(&e, xml, strlen(xml));
}

#define CS "xmlns='http://jabber.org/protocol/chatstates'"

START_TEST(classify_presence)
{
    const char *p = "<presence from='a@x/r' xmlns='jabber:client'>"
                    "<show>away</show></presence>";
    ck_assert_int_eq(cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, "a@x/r", p),
                     C2S_CSI_PRESENCE);
    ck_assert_int_eq(
        cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_UNAVAILABLE, "a@x/r", p),
        C2S_CSI_PRESENCE);
    /* subscriptions and errors are urgent */
    ck_assert_int_eq(cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_SUBSCRIBE, "a@x", p),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(
        cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_UNSUBSCRIBED, "a@x", p),
        C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_ERROR, "a@x", p),
                     C2S_CSI_URGENT);
    /* no sender: nothing to key the newest-only rule on */
    ck_assert_int_eq(cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, NULL, p),
                     C2S_CSI_URGENT);
    /* MUC self-presence (status 110) is urgent, other occupants held */
    const char *self =
        "<presence from='r@muc/me'><x "
        "xmlns='http://jabber.org/protocol/muc#user'><item "
        "role='participant'/><status code='110'/></x></presence>";
    ck_assert_int_eq(
        cls(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, "r@muc/me", self),
        C2S_CSI_URGENT);
    const char *occ = "<presence from='r@muc/bob'><x "
                      "xmlns='http://jabber.org/protocol/muc#user'><item "
                      "role='participant'/></x></presence>";
    kn_env_t e = env(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, "r@muc/bob");
    e.kind = KN_ENV_MULTICAST;
    ck_assert_int_eq(c2s_csi_classify(&e, occ, strlen(occ)), C2S_CSI_PRESENCE);
}
END_TEST

START_TEST(classify_messages_and_iq)
{
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
                         "<message type='chat'><composing " CS "/></message>"),
                     C2S_CSI_CHATSTATE);
    ck_assert_int_eq(
        cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
            "<message type='chat' id='x&gt;y'><thread>t1</thread><paused " CS
            "></paused></message>"),
        C2S_CSI_CHATSTATE);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_GROUPCHAT, "r@muc/bob",
                         "<message type='groupchat'><active " CS
                         "/></message>"),
                     C2S_CSI_CHATSTATE);
    /* a body, a subject, a receipt next to the chat state: urgent */
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
                         "<message type='chat'><body>hi &lt;composing " CS
                         "/&gt;</body><active " CS "/></message>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_GROUPCHAT, "r@muc",
                         "<message type='groupchat'><subject>s</subject>"
                         "<active " CS "/></message>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
                         "<message><received xmlns='urn:xmpp:receipts' "
                         "id='1'/><active " CS "/></message>"),
                     C2S_CSI_URGENT);
    /* a chat state nested in a forwarded copy is not a standalone one */
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x",
                         "<message><sent xmlns='urn:xmpp:carbons:2'><forwarded "
                         "xmlns='urn:xmpp:forward:0'><message><composing " CS
                         "/></message></forwarded></sent></message>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
                         "<message><body>hi</body></message>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_ERROR, "a@x/r",
                         "<message type='error'><composing " CS
                         "/><error/></message>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(cls(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r",
                         "<message><composing " CS),
                     C2S_CSI_URGENT); /* truncated: never held */
    ck_assert_int_eq(cls(KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "a@x/r",
                         "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"),
                     C2S_CSI_URGENT);
    ck_assert_int_eq(
        cls(KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, "a@x/r", "<iq type='result'/>"),
        C2S_CSI_URGENT);
    /* a stored offline message (R-PRES-5) is never held */
    const char *m = "<message><composing " CS "/></message>";
    kn_env_t e = env(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@x/r");
    e.flags = KN_F_ACK_WANTED;
    e.ack_id = 7;
    ck_assert_int_eq(c2s_csi_classify(&e, m, strlen(m)), C2S_CSI_URGENT);
    e.flags = KN_F_BLOCKLIST;
    ck_assert_int_eq(c2s_csi_classify(&e, m, strlen(m)), C2S_CSI_URGENT);
}
END_TEST

static void w(void *ud, const void *pl, size_t len)
{
    kn_buf_t *b = ud;
    kn_buf_append(b, pl, len);
    kn_buf_append_str(b, "|");
}

static bool hold(c2s_csi_t *q, c2s_csi_class_t c, const char *from,
                 const char *pl)
{
    return c2s_csi_hold(q, c, from, strlen(from), pl, strlen(pl));
}

START_TEST(newest_per_sender_in_order)
{
    c2s_csi_t *q = c2s_csi_new(100, 0);
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/1", "A1"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "b@x/1", "B1"));
    ck_assert(!hold(q, C2S_CSI_CHATSTATE, "a@x/1", "Ac"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/1", "A2"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/2", "a2"));
    ck_assert(!hold(q, C2S_CSI_CHATSTATE, "a@x/1", "Ad"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/1", "A3"));
    ck_assert_uint_eq(c2s_csi_count(q), 4);
    ck_assert_uint_eq(c2s_csi_bytes(q), 8);
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_uint_eq(c2s_csi_flush(q, w, &out), 4);
    kn_buf_append_byte(&out, 0);
    /* The survivors, each where its newest version arrived. */
    ck_assert_str_eq(out.data, "B1|a2|Ad|A3|");
    ck_assert_uint_eq(c2s_csi_count(q), 0);
    ck_assert_uint_eq(c2s_csi_bytes(q), 0);
    ck_assert_uint_eq(c2s_csi_stats(q)->held, 7);
    ck_assert_uint_eq(c2s_csi_stats(q)->dropped, 2 + 1);
    ck_assert_uint_eq(c2s_csi_stats(q)->dropped_bytes, 6);
    /* empty flush writes nothing */
    out.len = 0;
    ck_assert_uint_eq(c2s_csi_flush(q, w, &out), 0);
    ck_assert_uint_eq(out.len, 0);
    kn_buf_free(&out);
    c2s_csi_free(&q);
    ck_assert_ptr_null(q);
}
END_TEST

START_TEST(limits_ask_for_flush)
{
    c2s_csi_t *q = c2s_csi_new(3, 0);
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/1", "1"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "b@x/1", "2"));
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "c@x/1", "3"));
    /* replacing does not grow the queue */
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "c@x/1", "4"));
    ck_assert(hold(q, C2S_CSI_PRESENCE, "d@x/1", "5"));
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_uint_eq(c2s_csi_flush(q, w, &out), 4);
    kn_buf_append_byte(&out, 0);
    ck_assert_str_eq(out.data, "1|2|4|5|");
    kn_buf_free(&out);
    c2s_csi_free(&q);

    q = c2s_csi_new(0, 10);
    ck_assert(!hold(q, C2S_CSI_PRESENCE, "a@x/1", "12345"));
    ck_assert(!hold(q, C2S_CSI_CHATSTATE, "a@x/1", "12345"));
    ck_assert(hold(q, C2S_CSI_PRESENCE, "b@x/1", "1"));
    ck_assert_uint_eq(c2s_csi_bytes(q), 11);
    c2s_csi_free(&q); /* freeing a non-empty queue: ASan checks leaks */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_csi");
    TCase *t = tcase_create("core");
    tcase_add_test(t, classify_presence);
    tcase_add_test(t, classify_messages_and_iq);
    tcase_add_test(t, newest_per_sender_in_order);
    tcase_add_test(t, limits_ask_for_flush);
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
