/*
 * test_presenced_caps.c - entity capabilities (XEP-0115): the
 * verification string of the 5.2 (simple) and 5.3 (complex) generation
 * examples, byte for byte, the 5.4 rules for ill-formed answers, and the
 * <c/> of a presence.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_xml.h"
#include "pres_caps.h"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_ge(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* An iq result around query (the answer to our disco#info). */
static kn_stanza_t *answer(const char *query)
{
    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<iq xmlns='jabber:client' type='result' id='x'>%s</iq>", query);
    return parse(xml);
}

/* XEP-0115 5.2, the simple generation example (Exodus). */
#define SIMPLE                                                                 \
    "<query xmlns='http://jabber.org/protocol/disco#info' "                    \
    "node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>"     \
    "<identity category='client' name='Exodus 0.9.1' type='pc'/>"              \
    "<feature var='http://jabber.org/protocol/caps'/>"                         \
    "<feature var='http://jabber.org/protocol/disco#info'/>"                   \
    "<feature var='http://jabber.org/protocol/disco#items'/>"                  \
    "<feature var='http://jabber.org/protocol/muc'/>"                          \
    "</query>"

/* XEP-0115 5.3, the complex generation example (Psi, two identities and
 * a software-information form), in a different order from S's. */
#define COMPLEX                                                                \
    "<query xmlns='http://jabber.org/protocol/disco#info' "                    \
    "node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"                   \
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"    \
    "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' "          \
    "type='pc'/>"                                                              \
    "<feature var='http://jabber.org/protocol/disco#items'/>"                  \
    "<feature var='http://jabber.org/protocol/caps'/>"                         \
    "<feature var='http://jabber.org/protocol/disco#info'/>"                   \
    "<feature var='http://jabber.org/protocol/muc'/>"                          \
    "<x xmlns='jabber:x:data' type='result'>"                                  \
    "<field var='FORM_TYPE' type='hidden'>"                                    \
    "<value>urn:xmpp:dataforms:softwareinfo</value></field>"                   \
    "<field var='ip_version'><value>ipv6</value><value>ipv4</value></field>"   \
    "<field var='os'><value>Mac</value></field>"                               \
    "<field var='os_version'><value>10.5.1</value></field>"                    \
    "<field var='software'><value>Psi</value></field>"                         \
    "<field var='software_version'><value>0.11</value></field>"                \
    "</x></query>"

START_TEST(test_simple_example)
{
    kn_stanza_t *st = answer(SIMPLE);
    kn_buf_t s = KN_BUF_INIT;
    ck_assert_int_eq(pres_caps_s(st, 1, &s), 0);
    ck_assert_str_eq(s.data, "client/pc//Exodus 0.9.1<"
                             "http://jabber.org/protocol/caps<"
                             "http://jabber.org/protocol/disco#info<"
                             "http://jabber.org/protocol/disco#items<"
                             "http://jabber.org/protocol/muc<");
    kn_buf_free(&s);
    char ver[64];
    ck_assert_int_eq(pres_caps_ver(st, 1, "sha-1", ver, sizeof(ver)), 0);
    ck_assert_str_eq(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
    kn_stanza_unref(&st);
}
END_TEST

START_TEST(test_complex_example)
{
    kn_stanza_t *st = answer(COMPLEX);
    kn_buf_t s = KN_BUF_INIT;
    ck_assert_int_eq(pres_caps_s(st, 1, &s), 0);
    ck_assert_str_eq(s.data, "client/pc/el/\xce\xa8 0.11<"
                             "client/pc/en/Psi 0.11<"
                             "http://jabber.org/protocol/caps<"
                             "http://jabber.org/protocol/disco#info<"
                             "http://jabber.org/protocol/disco#items<"
                             "http://jabber.org/protocol/muc<"
                             "urn:xmpp:dataforms:softwareinfo<"
                             "ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<"
                             "software<Psi<software_version<0.11<");
    kn_buf_free(&s);
    char ver[64];
    ck_assert_int_eq(pres_caps_ver(st, 1, "sha-1", ver, sizeof(ver)), 0);
    ck_assert_str_eq(ver, "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    kn_stanza_unref(&st);
}
END_TEST

/* One feature more or less changes the string: a forged ver fails. */
START_TEST(test_other_answer_other_ver)
{
    kn_stanza_t *st =
        answer("<query xmlns='http://jabber.org/protocol/disco#info'>"
               "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
               "<feature var='http://jabber.org/protocol/caps'/>"
               "<feature var='http://jabber.org/protocol/disco#info'/>"
               "<feature var='http://jabber.org/protocol/disco#items'/>"
               "<feature var='http://jabber.org/protocol/muc'/>"
               "<feature var='urn:xmpp:avatar:metadata+notify'/></query>");
    char ver[64];
    ck_assert_int_eq(pres_caps_ver(st, 1, "sha-1", ver, sizeof(ver)), 0);
    ck_assert_str_ne(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
    ck_assert_int_eq(pres_caps_ver(st, 1, "md5", ver, sizeof(ver)), -KN_EINVAL);
    ck_assert_int_eq(pres_caps_ver(st, 1, "sha-256", ver, sizeof(ver)), 0);
    ck_assert_int_eq((int)strlen(ver), 44);
    kn_stanza_unref(&st);
}
END_TEST

/* XEP-0115 5.4: repeated identity, feature or FORM_TYPE, or a FORM_TYPE
 * with two values, make the answer ill-formed; a form whose FORM_TYPE is
 * not hidden, or without one, is ignored. */
START_TEST(test_ill_formed)
{
    static const char *const bad[] = {
        "<identity category='client' type='pc'/>"
        "<identity category='client' type='pc'/>",
        "<feature var='a'/><feature var='a'/>",
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
        "type='hidden'><value>u</value></field></x>"
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
        "type='hidden'><value>u</value></field></x>",
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
        "type='hidden'><value>u</value><value>v</value></field></x>",
        NULL,
    };
    char xml[2048], ver[64];
    for (int i = 0; bad[i] != NULL; i++) {
        snprintf(xml, sizeof(xml),
                 "<query xmlns='http://jabber.org/protocol/disco#info'>%s"
                 "</query>",
                 bad[i]);
        kn_stanza_t *st = answer(xml);
        ck_assert_int_eq(pres_caps_ver(st, 1, "sha-1", ver, sizeof(ver)),
                         -KN_EPROTO);
        kn_stanza_unref(&st);
    }
    kn_stanza_t *st =
        answer("<query xmlns='http://jabber.org/protocol/disco#info'>"
               "<feature var='a'/><x xmlns='jabber:x:data' type='result'>"
               "<field var='FORM_TYPE'><value>u</value></field></x>"
               "<x xmlns='jabber:x:data' type='result'><field var='f'>"
               "<value>1</value></field></x></query>");
    kn_buf_t s = KN_BUF_INIT;
    ck_assert_int_eq(pres_caps_s(st, 1, &s), 0);
    ck_assert_str_eq(s.data, "a<");
    kn_buf_free(&s);
    kn_stanza_unref(&st);
}
END_TEST

START_TEST(test_claim)
{
    pres_caps_claim_t c;
    kn_stanza_t *st =
        parse("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/"
              "protocol/caps' hash='sha-1' node='http://x' ver='abc='/>"
              "</presence>");
    ck_assert_int_eq(pres_caps_claim(st, &c), 0);
    ck_assert_str_eq(c.hash, "sha-1");
    ck_assert_str_eq(c.node, "http://x");
    ck_assert_str_eq(c.ver, "abc=");
    kn_stanza_unref(&st);
    /* legacy caps (no hash): not verifiable */
    st = parse("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/"
               "protocol/caps' node='http://x' ver='1.0' ext='a b'/>"
               "</presence>");
    ck_assert_int_eq(pres_caps_claim(st, &c), -KN_ENOENT);
    kn_stanza_unref(&st);
    st = parse("<presence xmlns='jabber:client'/>");
    ck_assert_int_eq(pres_caps_claim(st, &c), -KN_ENOENT);
    kn_stanza_unref(&st);
    ck_assert(pres_caps_hash_known("sha-1"));
    ck_assert(!pres_caps_hash_known("md5"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_caps");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_simple_example);
    tcase_add_test(tc, test_complex_example);
    tcase_add_test(tc, test_other_answer_other_ver);
    tcase_add_test(tc, test_ill_formed);
    tcase_add_test(tc, test_claim);
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
