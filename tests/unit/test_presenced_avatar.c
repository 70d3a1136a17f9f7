/*
 * test_presenced_avatar.c - vCard-based avatars (XEP-0153): the SHA-1 of
 * the decoded PHOTO/BINVAL, the server's x replacing the client's in
 * presence, and the re-broadcast when the hash changes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"

#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_ge(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

START_TEST(test_hash_binval)
{
    char hex[41];
    /* folded base64 of "abc" */
    ck_assert_int_eq(pres_avatar_hash_xml("<vCard xmlns='vcard-temp'><PHOTO>"
                                          "<TYPE>image/png</TYPE><BINVAL>YW\n"
                                          " Jj</BINVAL></PHOTO></vCard>",
                                          hex, sizeof(hex)),
                     0);
    ck_assert_str_eq(hex, SHA1_ABC);
    ck_assert_int_eq(pres_avatar_hash_xml("<vCard xmlns='vcard-temp'><FN>x"
                                          "</FN></vCard>",
                                          hex, sizeof(hex)),
                     0);
    ck_assert_str_eq(hex, "");
    ck_assert_int_lt(pres_avatar_hash_xml("<vCard xmlns='vcard-temp'><PHOTO>"
                                          "<BINVAL>!!</BINVAL></PHOTO>"
                                          "</vCard>",
                                          hex, sizeof(hex)),
                     0);
    ck_assert_str_eq(hex, "");
}
END_TEST

static void no_send(void *ud, const kn_env_t *env, const void *payload,
                    size_t len)
{
    (void)ud;
    (void)env;
    (void)payload;
    (void)len;
}

START_TEST(test_stamp_replaces_client_x)
{
    pres_conf_t conf = {0, 102400, 250, 1};
    pres_sink_t sink = {no_send, NULL};
    pres_t *p = pres_new(NULL, "x", &conf, &sink, NULL, NULL);
    kn_stanza_t *in = parse("<presence xmlns='jabber:client' from='a@x/r' "
                            "xml:lang='en'><status>hi</status><x "
                            "xmlns='vcard-temp:x:update'><photo>bogus</photo>"
                            "</x><priority>5</priority></presence>");
    kn_stanza_t *out = pres_avatar_stamp(p, in, SHA1_ABC);
    kn_buf_t b = KN_BUF_INIT;
    kn_stanza_serialize(out, &b, NULL);
    ck_assert_ptr_null(strstr(b.data, "bogus"));
    ck_assert_ptr_nonnull(strstr(b.data, "<photo>" SHA1_ABC "</photo>"));
    ck_assert_ptr_nonnull(strstr(b.data, "xml:lang='en'"));
    ck_assert_ptr_nonnull(strstr(b.data, "<status>hi</status>"));
    ck_assert_ptr_nonnull(strstr(b.data, "<priority>5</priority>"));
    ck_assert_ptr_nonnull(strstr(b.data, "from='a@x/r'"));
    kn_stanza_unref(&out);
    b.len = 0;
    out = pres_avatar_stamp(p, in, "");
    kn_stanza_serialize(out, &b, NULL);
    ck_assert_ptr_nonnull(strstr(b.data, "<photo/>"));
    kn_stanza_unref(&out);
    b.len = 0;
    out = pres_avatar_stamp(p, in, NULL); /* not known: empty x */
    kn_stanza_serialize(out, &b, NULL);
    ck_assert_ptr_null(strstr(b.data, "photo"));
    ck_assert_ptr_nonnull(strstr(b.data, "vcard-temp:x:update"));
    kn_stanza_unref(&out);
    kn_buf_free(&b);
    kn_stanza_unref(&in);
    pres_free(&p);
}
END_TEST

/* ---- the flow, with a capture sink ---- */

static char last_payload[4096];
static int nmulticast;

static void cap_send(void *ud, const kn_env_t *env, const void *payload,
                     size_t len)
{
    (void)ud;
    if (env->kind != KN_ENV_MULTICAST)
        return;
    nmulticast++;
    snprintf(last_payload, sizeof(last_payload), "%.*s", (int)len,
             (const char *)payload);
}

static void env_to(pres_t *p, kn_env_kind_t kind, const char *full,
                   uint64_t conn, const char *xml)
{
    kn_env_t e = {0};
    e.kind = kind;
    e.from = full;
    e.from_len = strlen(full);
    e.conn_id = conn;
    if (xml != NULL) {
        e.stanza = KN_ENV_ST_PRESENCE;
        e.type = KN_ENV_TYPE_AVAILABLE;
    }
    pres_handle(p, &e, xml, xml ? strlen(xml) : 0);
}

#define C1 (((uint64_t)1 << KN_CONN_NODE_SHIFT) | 1)
#define C2 (((uint64_t)2 << KN_CONN_NODE_SHIFT) | 7)

START_TEST(test_new_hash_rebroadcasts)
{
    pres_conf_t conf = {0, 102400, 250, 1};
    pres_sink_t sink = {cap_send, NULL};
    pres_t *p = pres_new(NULL, "x", &conf, &sink, NULL, NULL);
    env_to(p, KN_ENV_SESSION_UP, "a@x/one", C1, NULL);
    env_to(p, KN_ENV_SESSION_UP, "a@x/two", C2, NULL);
    env_to(p, KN_ENV_STANZA, "a@x/one", C1,
           "<presence xmlns='jabber:client' from='a@x/one'/>");
    env_to(p, KN_ENV_STANZA, "a@x/two", C2,
           "<presence xmlns='jabber:client' from='a@x/two'/>");
    ck_assert_int_eq(nmulticast, 2); /* each echoed (RFC 6121 4.2.2) */
    ck_assert_ptr_nonnull(strstr(last_payload, "vcard-temp:x:update"));
    nmulticast = 0;
    pres_avatar_set(p, "a@x", SHA1_ABC);
    /* each available resource's presence, to the other one */
    ck_assert_int_eq(nmulticast, 2);
    ck_assert_ptr_nonnull(strstr(last_payload, "<photo>" SHA1_ABC));
    pres_sess_t *s = pres_sess_find(p, "a@x/one");
    ck_assert_ptr_nonnull(s);
    kn_buf_t b = KN_BUF_INIT;
    kn_stanza_serialize(s->last, &b, NULL);
    ck_assert_ptr_nonnull(strstr(b.data, SHA1_ABC));
    kn_buf_free(&b);
    /* the same hash again: nothing new to say */
    nmulticast = 0;
    pres_avatar_set(p, "a@x", SHA1_ABC);
    ck_assert_int_eq(nmulticast, 0);
    pres_free(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_avatar");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hash_binval);
    tcase_add_test(tc, test_stamp_replaces_client_x);
    tcase_add_test(tc, test_new_hash_rebroadcasts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
