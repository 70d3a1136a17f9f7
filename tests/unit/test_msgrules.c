/*
 * test_msgrules.c - which messages are carbon-copied (XEP-0280 section 6,
 * XEP-0334 hints) and archived (XEP-0313), and the removal of forged
 * XEP-0359 stanza-ids (common/kn_msgrules.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_msgrules.h"
#include "kn_proto.h"
#include "kn_xml.h"

static uint16_t rules(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), KN_NS_CLIENT, &st),
                     0);
    kn_env_type_t t;
    ck_assert_int_eq(
        kn_env_type_from_str(KN_ENV_ST_MESSAGE, kn_stanza_type(st), &t), 0);
    uint16_t f = kn_msg_rules(st, t);
    kn_stanza_unref(&st);
    return f;
}

#define C KN_F_CARBON_OK
#define A KN_F_ARCHIVE_OK

START_TEST(chat_and_normal)
{
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body></message>"),
                      C | A);
    ck_assert_uint_eq(rules("<message type='chat'/>"), C);
    ck_assert_uint_eq(rules("<message><body>x</body></message>"), C | A);
    /* normal without a body: only with an IM payload */
    ck_assert_uint_eq(rules("<message><thread>t</thread></message>"), 0);
    ck_assert_uint_eq(rules("<message><received xmlns='urn:xmpp:receipts' "
                            "id='1'/></message>"),
                      C);
    ck_assert_uint_eq(rules("<message><active xmlns='http://jabber.org/"
                            "protocol/chatstates'/></message>"),
                      C);
    ck_assert_uint_eq(rules("<message><displayed xmlns='urn:xmpp:chat-"
                            "markers:0' id='1'/></message>"),
                      C);
}
END_TEST

START_TEST(error_headline_groupchat)
{
    ck_assert_uint_eq(rules("<message type='error'><body>x</body></message>"),
                      C);
    ck_assert_uint_eq(
        rules("<message type='headline'><body>x</body></message>"), 0);
    ck_assert_uint_eq(
        rules("<message type='groupchat'><body>x</body></message>"), 0);
}
END_TEST

START_TEST(private_and_hints)
{
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body><private "
                            "xmlns='urn:xmpp:carbons:2'/><no-copy "
                            "xmlns='urn:xmpp:hints'/></message>"),
                      A);
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body><no-copy "
                            "xmlns='urn:xmpp:hints'/></message>"),
                      A);
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body><no-store "
                            "xmlns='urn:xmpp:hints'/></message>"),
                      C);
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body><no-permanent-"
                            "store xmlns='urn:xmpp:hints'/></message>"),
                      C);
    ck_assert_uint_eq(rules("<message><store xmlns='urn:xmpp:hints'/>"
                            "</message>"),
                      A);
    /* a <body/> in another namespace is not a body */
    ck_assert_uint_eq(rules("<message><html xmlns='http://jabber.org/protocol/"
                            "xhtml-im'><body xmlns='http://www.w3.org/1999/"
                            "xhtml'>x</body></html></message>"),
                      0);
}
END_TEST

START_TEST(carbons_and_muc_pm)
{
    ck_assert_uint_eq(rules("<message type='chat'><received xmlns='urn:xmpp:"
                            "carbons:2'/></message>"),
                      0);
    ck_assert_uint_eq(rules("<message type='chat'><sent xmlns='urn:xmpp:"
                            "carbons:2'/><body>x</body></message>"),
                      0);
    ck_assert_uint_eq(rules("<message type='chat'><body>x</body><x xmlns='"
                            "http://jabber.org/protocol/muc#user'/></message>"),
                      0);
}
END_TEST

static char *strip(const char *xml, const char *domain)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), KN_NS_CLIENT, &st),
                     0);
    kn_stanza_t *out = kn_msg_strip_sid(st, domain);
    char *s = NULL;
    if (out != NULL) {
        kn_buf_t b = KN_BUF_INIT;
        kn_stanza_serialize(out, &b, KN_NS_CLIENT);
        s = strdup(b.data);
        kn_buf_free(&b);
    }
    kn_stanza_unref(&out);
    kn_stanza_unref(&st);
    return s;
}

/* XEP-0353: JMI messages are call history (archived, carbon-copied) even
 * without a body or a <store/> hint; ringing is copied, not archived. */
START_TEST(jingle_message_initiation)
{
    ck_assert_uint_eq(
        rules("<message type='chat'><propose xmlns='urn:xmpp:jingle-message:0' "
              "id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' "
              "media='audio'/></propose></message>"),
        C | A);
    ck_assert_uint_eq(rules("<message><retract "
                            "xmlns='urn:xmpp:jingle-message:0' id='c1'/>"
                            "</message>"),
                      C | A);
    ck_assert_uint_eq(rules("<message type='chat'><ringing "
                            "xmlns='urn:xmpp:jingle-message:0' id='c1'/>"
                            "</message>"),
                      C);
    ck_assert_uint_eq(rules("<message type='chat'><proceed "
                            "xmlns='urn:xmpp:jingle-message:0' id='c1'/>"
                            "<no-store xmlns='urn:xmpp:hints'/></message>"),
                      C);
    ck_assert_uint_eq(rules("<message type='error'><propose "
                            "xmlns='urn:xmpp:jingle-message:0' id='c1'/>"
                            "</message>"),
                      C);
}
END_TEST

START_TEST(strip_forged_sid)
{
    char *s = strip("<message to='b@d' xml:lang='en'><body>x</body>"
                    "<stanza-id xmlns='urn:xmpp:sid:0' by='b@d' id='1'/>"
                    "<stanza-id xmlns='urn:xmpp:sid:0' by='d' id='2'/>"
                    "<stanza-id xmlns='urn:xmpp:sid:0' by='room@other' "
                    "id='3'/><origin-id xmlns='urn:xmpp:sid:0' id='o'/>"
                    "</message>",
                    "d");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "id='1'") == NULL && strstr(s, "id='2'") == NULL,
                  "%s", s);
    ck_assert_msg(strstr(s, "by='room@other'") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "origin-id") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "<body>x</body>") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "xml:lang='en'") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "to='b@d'") != NULL, "%s", s);
    free(s);
    /* nothing of ours: NULL (no copy made) */
    ck_assert_ptr_null(strip("<message><body>x</body><stanza-id xmlns='urn:"
                             "xmpp:sid:0' by='x@other' id='1'/></message>",
                             "d"));
    ck_assert_ptr_null(strip("<message><body>x</body></message>", "d"));
    /* by a full JID at our domain, case-insensitive domain */
    s = strip("<message><stanza-id xmlns='urn:xmpp:sid:0' by='u@D/r' "
              "id='1'/></message>",
              "d");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "stanza-id") == NULL, "%s", s);
    free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("msgrules");
    TCase *tc = tcase_create("msgrules");
    tcase_add_test(tc, chat_and_normal);
    tcase_add_test(tc, error_headline_groupchat);
    tcase_add_test(tc, private_and_hints);
    tcase_add_test(tc, carbons_and_muc_pm);
    tcase_add_test(tc, jingle_message_initiation);
    tcase_add_test(tc, strip_forged_sid);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
