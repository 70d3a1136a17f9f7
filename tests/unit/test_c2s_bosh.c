/*
 * test_c2s_bosh.c - the BOSH <body/> parser (c2s_bosh.c): attributes
 * (rid, sid, to, type, wait, hold, xmpp:restart in its namespace), the
 * children passed on as the client sent them, and what is refused (not a
 * httpbind body, text in the body, a bad rid, a DOCTYPE, broken XML).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_bosh.h"
#include "kn_err.h"

static int parse(const char *s, c2s_bosh_body_t *b)
{
    return c2s_bosh_parse(s, strlen(s), b);
}

START_TEST(creation_request_attributes)
{
    c2s_bosh_body_t b;
    ck_assert_int_eq(
        parse("<body content='text/xml; charset=utf-8' hold='1' "
              "rid='1573741820' to='example.com' ver='1.6' wait='60' "
              "xml:lang='en' xmpp:version='1.0' "
              "xmlns='http://jabber.org/protocol/httpbind' "
              "xmlns:xmpp='urn:xmpp:xbosh'/>",
              &b),
        0);
    ck_assert(b.has_rid);
    ck_assert(b.rid == 1573741820u);
    ck_assert_str_eq(b.sid, "");
    ck_assert_str_eq(b.to, "example.com");
    ck_assert_str_eq(b.ver, "1.6");
    ck_assert_int_eq(b.wait, 60);
    ck_assert_int_eq(b.hold, 1);
    ck_assert(!b.restart);
    ck_assert_uint_eq(b.payload.len, 0);
    kn_buf_free(&b.payload);
}
END_TEST

START_TEST(children_kept_as_sent)
{
    c2s_bosh_body_t b;
    const char *msg = "<message xmlns='jabber:client' to='a@b'><body>x &amp; "
                      "y</body></message>";
    char req[512];
    snprintf(req, sizeof(req),
             "<body rid='7' sid='abc' xmlns='http://jabber.org/protocol/"
             "httpbind'>\n %s<presence xmlns='jabber:client'/>\n</body>",
             msg);
    ck_assert_int_eq(parse(req, &b), 0);
    ck_assert_str_eq(b.sid, "abc");
    char want[512];
    snprintf(want, sizeof(want), "%s<presence xmlns='jabber:client'/>", msg);
    ck_assert_uint_eq(b.payload.len, strlen(want));
    ck_assert(memcmp(b.payload.data, want, b.payload.len) == 0);
    kn_buf_free(&b.payload);
    /* restart and terminate */
    ck_assert_int_eq(parse("<body rid='8' sid='abc' xmpp:restart='true' "
                           "xmlns:xmpp='urn:xmpp:xbosh' type='terminate' "
                           "xmlns='http://jabber.org/protocol/httpbind'/>",
                           &b),
                     0);
    ck_assert(b.restart);
    ck_assert_str_eq(b.type, "terminate");
    kn_buf_free(&b.payload);
    /* restart outside the xbosh namespace does not count */
    ck_assert_int_eq(parse("<body rid='8' restart='true' xmlns='http://"
                           "jabber.org/protocol/httpbind'/>",
                           &b),
                     0);
    ck_assert(!b.restart);
    kn_buf_free(&b.payload);
}
END_TEST

START_TEST(refused_bodies)
{
    static const char *const bad[] = {
        "not xml",
        "<body rid='1' xmlns='urn:other'/>",
        "<body rid='1'/>",
        "<body rid='x' xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='99999999999999999999' "
        "xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'>text"
        "</body>",
        "<!DOCTYPE body [<!ENTITY a 'b'>]><body rid='1' "
        "xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'><a>"
        "</body>",
        "<body rid='1' wait='-3' xmlns='http://jabber.org/protocol/httpbind'/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c2s_bosh_body_t b;
        ck_assert_msg(parse(bad[i], &b) == -KN_EPROTO, "accepted: %s", bad[i]);
        ck_assert_ptr_null(b.payload.data);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_bosh");
    TCase *t = tcase_create("core");
    tcase_add_test(t, creation_request_attributes);
    tcase_add_test(t, children_kept_as_sent);
    tcase_add_test(t, refused_bodies);
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
