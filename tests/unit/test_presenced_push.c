/*
 * test_presenced_push.c - push notifications (XEP-0357): enable/disable
 * parsing with its errors, the enable form (publish-options kept, our mute
 * field taken out), the reading of app-server errors, the body cut and the
 * notification stanza.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_xml.h"
#include "pres_push.h"

#define FT_OPTS                                                                \
    "<field var='FORM_TYPE' type='hidden'><value>"                             \
    "http://jabber.org/protocol/pubsub#publish-options</value></field>"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_ge(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

static int req(const char *type, const char *payload, push_req_t *r,
               kn_stanza_err_t *e)
{
    char xml[8192];
    snprintf(xml, sizeof(xml),
             "<iq xmlns='jabber:client' type='%s' id='q' from='a@x/r'>%s</iq>",
             type, payload);
    kn_stanza_t *st = parse(xml);
    int rc = push_req_parse(st, r, e);
    kn_stanza_unref(&st);
    return rc;
}

static void req_err(const char *type, const char *payload, kn_stanza_err_t cond)
{
    push_req_t r;
    kn_stanza_err_t e = KN_STE_COUNT_;
    ck_assert_int_eq(req(type, payload, &r, &e), -KN_EPROTO);
    ck_assert_msg(e == cond, "%s: %s, want %s", payload, kn_stanza_err_name(e),
                  kn_stanza_err_name(cond));
    ck_assert_ptr_null(r.jid);
    ck_assert_ptr_null(r.node);
    ck_assert_ptr_null(r.options);
    ck_assert_ptr_null(r.muted);
}

START_TEST(enable_plain)
{
    push_req_t r;
    kn_stanza_err_t e;
    ck_assert_int_eq(req("set",
                         "<enable xmlns='urn:xmpp:push:0' "
                         "jid='Push.Example.NET' node='yxs32'/>",
                         &r, &e),
                     0);
    ck_assert_int_eq(r.op, PUSH_OP_ENABLE);
    ck_assert_str_eq(r.jid, "push.example.net");
    ck_assert_str_eq(r.node, "yxs32");
    ck_assert_ptr_null(r.options);
    ck_assert_str_eq(r.muted, "");
    push_req_free(&r);
    /* a full JID app server keeps its resource */
    ck_assert_int_eq(req("set",
                         "<enable xmlns='urn:xmpp:push:0' "
                         "jid='App@Example.net/Dev' node='n'/>",
                         &r, &e),
                     0);
    ck_assert_str_eq(r.jid, "app@example.net/Dev");
    push_req_free(&r);
}
END_TEST

START_TEST(enable_with_form_and_mute)
{
    push_req_t r;
    kn_stanza_err_t e;
    ck_assert_int_eq(
        req("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n1'>"
            "<x xmlns='jabber:x:data' type='submit'>" FT_OPTS
            "<field var='secret'><value>s3cr&amp;t</value></field>"
            "<field var='kiln#muted'><value>Room@Conference.X/nick</value>"
            "<value>bob@x</value><value></value></field></x></enable>",
            &r, &e),
        0);
    ck_assert_ptr_nonnull(r.options);
    ck_assert_ptr_nonnull(strstr(r.options, "var='secret'"));
    ck_assert_ptr_nonnull(strstr(r.options, "s3cr&amp;t"));
    ck_assert_ptr_nonnull(strstr(r.options, "publish-options"));
    ck_assert_ptr_null(strstr(r.options, "kiln#muted"));
    ck_assert_str_eq(r.muted, "room@conference.x\nbob@x");
    /* the stored form parses back */
    kn_stanza_t *f = parse(r.options);
    ck_assert_str_eq(kn_stanza_name(f, 0), "x");
    ck_assert_str_eq(kn_stanza_ns(f, 0), "jabber:x:data");
    kn_stanza_unref(&f);
    push_req_free(&r);
    /* only FORM_TYPE left after the mute field: no options */
    ck_assert_int_eq(req("set",
                         "<enable xmlns='urn:xmpp:push:0' jid='push.x' "
                         "node='n1'><x xmlns='jabber:x:data'>" FT_OPTS
                         "<field var='kiln#muted'><value>g@c.x</value>"
                         "</field></x></enable>",
                         &r, &e),
                     0);
    ck_assert_ptr_null(r.options);
    ck_assert_str_eq(r.muted, "g@c.x");
    push_req_free(&r);
}
END_TEST

START_TEST(enable_errors)
{
    req_err("set", "<enable xmlns='urn:xmpp:push:0' node='n'/>",
            KN_STE_BAD_REQUEST);
    req_err("set", "<enable xmlns='urn:xmpp:push:0' jid='' node='n'/>",
            KN_STE_BAD_REQUEST);
    req_err("set", "<enable xmlns='urn:xmpp:push:0' jid='push.x'/>",
            KN_STE_BAD_REQUEST);
    req_err("set", "<enable xmlns='urn:xmpp:push:0' jid='push.x' node=''/>",
            KN_STE_BAD_REQUEST);
    req_err("get", "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'/>",
            KN_STE_BAD_REQUEST);
    req_err("set", "<toggle xmlns='urn:xmpp:push:0' jid='push.x' node='n'/>",
            KN_STE_BAD_REQUEST);
    req_err("set", "<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>",
            KN_STE_JID_MALFORMED);
    /* a form that is not submitted, with another FORM_TYPE, without one,
     * a field without var, a muted JID that does not prepare */
    req_err("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'>"
            "<x xmlns='jabber:x:data' type='form'>" FT_OPTS "</x></enable>",
            KN_STE_BAD_REQUEST);
    req_err("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'>"
            "<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:x"
            "</value></field></x></enable>",
            KN_STE_BAD_REQUEST);
    req_err("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'>"
            "<x xmlns='jabber:x:data'><field var='secret'><value>s</value>"
            "</field></x></enable>",
            KN_STE_BAD_REQUEST);
    req_err("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'>"
            "<x xmlns='jabber:x:data'>" FT_OPTS
            "<field><value>s</value></field></x></enable>",
            KN_STE_BAD_REQUEST);
    req_err("set",
            "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'>"
            "<x xmlns='jabber:x:data'>" FT_OPTS
            "<field var='kiln#muted'><value>@bad</value></field></x>"
            "</enable>",
            KN_STE_JID_MALFORMED);
    /* a node over 1023 bytes */
    char node[1100];
    memset(node, 'n', 1024);
    node[1024] = '\0';
    char payload[1300];
    snprintf(payload, sizeof(payload),
             "<enable xmlns='urn:xmpp:push:0' jid='push.x' node='%s'/>", node);
    req_err("set", payload, KN_STE_BAD_REQUEST);
    /* a form over PUSH_FORM_MAX */
    kn_buf_t big = KN_BUF_INIT;
    kn_buf_append_str(&big, "<enable xmlns='urn:xmpp:push:0' jid='push.x' "
                            "node='n'><x xmlns='jabber:x:data'>" FT_OPTS
                            "<field var='secret'><value>");
    for (int i = 0; i < PUSH_FORM_MAX; i++)
        kn_buf_append_byte(&big, 'v');
    kn_buf_append_str(&big, "</value></field></x></enable>");
    char *xml = NULL;
    size_t n = big.len + 100;
    xml = malloc(n);
    snprintf(xml, n, "<iq xmlns='jabber:client' type='set' id='q'>%s</iq>",
             big.data);
    kn_stanza_t *st = parse(xml);
    push_req_t r;
    kn_stanza_err_t e;
    ck_assert_int_eq(push_req_parse(st, &r, &e), -KN_EPROTO);
    ck_assert_int_eq(e, KN_STE_NOT_ACCEPTABLE);
    kn_stanza_unref(&st);
    free(xml);
    kn_buf_free(&big);
}
END_TEST

START_TEST(disable)
{
    push_req_t r;
    kn_stanza_err_t e;
    ck_assert_int_eq(req("set",
                         "<disable xmlns='urn:xmpp:push:0' jid='push.x' "
                         "node='n'/>",
                         &r, &e),
                     0);
    ck_assert_int_eq(r.op, PUSH_OP_DISABLE);
    ck_assert_str_eq(r.jid, "push.x");
    ck_assert_str_eq(r.node, "n");
    push_req_free(&r);
    ck_assert_int_eq(
        req("set", "<disable xmlns='urn:xmpp:push:0' jid='push.x'/>", &r, &e),
        0);
    ck_assert_ptr_null(r.node); /* every node */
    push_req_free(&r);
    req_err("set", "<disable xmlns='urn:xmpp:push:0' node='n'/>",
            KN_STE_BAD_REQUEST);
}
END_TEST

static bool transient(const char *err)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<iq xmlns='jabber:client' type='error' id='push-1' "
             "from='push.x'>%s</iq>",
             err);
    kn_stanza_t *st = parse(xml);
    bool t = push_error_is_transient(st);
    kn_stanza_unref(&st);
    return t;
}

#define STE "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"

START_TEST(error_transient_or_final)
{
    ck_assert(
        transient("<error type='wait'><resource-constraint " STE "/></error>"));
    ck_assert(
        transient("<error type='wait'><policy-violation " STE "/></error>"));
    ck_assert(transient("<error type='cancel'><internal-server-error " STE
                        "/></error>"));
    ck_assert(transient("<error type='cancel'><remote-server-timeout " STE
                        "/></error>"));
    ck_assert(
        !transient("<error type='cancel'><item-not-found " STE "/></error>"));
    ck_assert(
        !transient("<error type='auth'><not-authorized " STE "/></error>"));
    ck_assert(
        !transient("<error type='modify'><bad-request " STE "/></error>"));
    ck_assert(!transient("<error type='cancel'><internal-server-error/>"
                         "</error>")); /* not the stanza-errors namespace */
    ck_assert(!transient(""));
}
END_TEST

START_TEST(utf8_cut)
{
    ck_assert_uint_eq(push_utf8_cut("hello", 5, 10), 5);
    ck_assert_uint_eq(push_utf8_cut("hello", 5, 3), 3);
    /* "aé" = 61 c3 a9: a cut after 2 bytes would split é */
    ck_assert_uint_eq(push_utf8_cut("a\xc3\xa9z", 4, 2), 1);
    ck_assert_uint_eq(push_utf8_cut("a\xc3\xa9z", 4, 3), 3);
    /* a 4-byte sequence (emoji) */
    ck_assert_uint_eq(push_utf8_cut("\xf0\x9f\x98\x80!", 5, 3), 0);
    ck_assert_uint_eq(push_utf8_cut("\xf0\x9f\x98\x80!", 5, 4), 4);
}
END_TEST

static const char *field(const kn_stanza_t *st, int x, const char *var)
{
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        const char *v = kn_stanza_attr(st, f, "var", NULL);
        if (v != NULL && strcmp(v, var) == 0) {
            int val = kn_stanza_child(st, f, "value", NULL);
            return val >= 0 ? kn_stanza_cdata(st, val, NULL) : "";
        }
    }
    return NULL;
}

START_TEST(notification_stanza)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_t *opts =
        parse("<x xmlns='jabber:x:data' type='submit'>" FT_OPTS
              "<field var='secret'><value>s</value></field></x>");
    push_note_t n = {.id = "push-7",
                     .from = "a@x",
                     .to = "push.x",
                     .node = "n1",
                     .count = 3,
                     .sender = "b@x/r",
                     .body = "hi <there>",
                     .body_len = 10,
                     .options = opts};
    kn_stanza_t *st = push_note_build(b, &n);
    ck_assert_str_eq(kn_stanza_type(st), "set");
    ck_assert_str_eq(kn_stanza_id(st), "push-7");
    ck_assert_str_eq(kn_stanza_from(st), "a@x");
    ck_assert_str_eq(kn_stanza_to(st), "push.x");
    int ps = kn_stanza_child(st, 0, "pubsub", PUSH_NS_PUBSUB);
    ck_assert_int_ge(ps, 0);
    int pub = kn_stanza_child(st, ps, "publish", PUSH_NS_PUBSUB);
    ck_assert_str_eq(kn_stanza_attr(st, pub, "node", NULL), "n1");
    int it = kn_stanza_child(st, pub, "item", PUSH_NS_PUBSUB);
    int no = kn_stanza_child(st, it, "notification", PUSH_NS);
    int x = kn_stanza_child(st, no, "x", PUSH_NS_DATA);
    ck_assert_int_ge(x, 0);
    ck_assert_str_eq(field(st, x, "FORM_TYPE"), PUSH_NS_SUMMARY);
    ck_assert_str_eq(field(st, x, "message-count"), "3");
    ck_assert_str_eq(field(st, x, "last-message-sender"), "b@x/r");
    ck_assert_str_eq(field(st, x, "last-message-body"), "hi <there>");
    int po = kn_stanza_child(st, ps, "publish-options", PUSH_NS_PUBSUB);
    int px = kn_stanza_child(st, po, "x", PUSH_NS_DATA);
    ck_assert_str_eq(field(st, px, "secret"), "s");
    kn_stanza_unref(&st);
    /* no body, no options */
    n.body = NULL;
    n.options = NULL;
    st = push_note_build(b, &n);
    ps = kn_stanza_child(st, 0, "pubsub", PUSH_NS_PUBSUB);
    ck_assert_int_lt(kn_stanza_child(st, ps, "publish-options", NULL), 0);
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_serialize(st, &out, NULL);
    ck_assert_ptr_null(strstr(out.data, "last-message-body"));
    kn_buf_free(&out);
    kn_stanza_unref(&st);
    kn_stanza_unref(&opts);
    kn_stanza_builder_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("presenced_push");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, enable_plain);
    tcase_add_test(tc, enable_with_form_and_mute);
    tcase_add_test(tc, enable_errors);
    tcase_add_test(tc, disable);
    tcase_add_test(tc, error_transient_or_final);
    tcase_add_test(tc, utf8_cut);
    tcase_add_test(tc, notification_stanza);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
