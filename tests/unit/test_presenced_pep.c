/*
 * test_presenced_pep.c - PEP (XEP-0163 on XEP-0060): request and
 * data-form parsing with the exact XEP-0060 errors, publish-options
 * matching, and the parts of pres_pep_iq that need no database (who may
 * do what, the account's disco#info, error stanzas with the pubsub#errors
 * condition).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_pep.h"

#define PS  "http://jabber.org/protocol/pubsub"
#define PSO "http://jabber.org/protocol/pubsub#owner"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_ge(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* Parse iq (type, payload) and return pep_req_parse's status. */
static int req(const char *type, const char *payload, pep_req_t *r,
               pep_err_t *e, kn_stanza_t **keep)
{
    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<iq xmlns='jabber:client' type='%s' id='q' "
             "from='a@x/r'>%s</iq>",
             type, payload);
    kn_stanza_t *st = parse(xml);
    int rc = pep_req_parse(st, 1000, r, e);
    if (keep != NULL)
        *keep = st;
    else
        kn_stanza_unref(&st);
    return rc;
}

/* Expect an error with cond and app (NULL: none). */
static void req_err(const char *type, const char *payload, kn_stanza_err_t cond,
                    const char *app)
{
    pep_req_t r;
    pep_err_t e;
    ck_assert_int_eq(req(type, payload, &r, &e, NULL), -KN_EPROTO);
    ck_assert_msg(e.cond == cond, "%s: cond %s, want %s", payload,
                  kn_stanza_err_name(e.cond), kn_stanza_err_name(cond));
    if (app == NULL)
        ck_assert_msg(e.app == NULL, "%s: app %s", payload, e.app);
    else
        ck_assert_msg(e.app != NULL && strcmp(e.app, app) == 0,
                      "%s: app %s, want %s", payload, e.app ? e.app : "-", app);
}

#define OPTS(fields)                                                           \
    "<publish-options><x xmlns='jabber:x:data' type='submit'><field "          \
    "var='FORM_TYPE' type='hidden'><value>" PS                                 \
    "#publish-options</value></field>" fields "</x></publish-options>"
#define F(var, val) "<field var='pubsub#" var "'><value>" val "</value></field>"

START_TEST(test_publish_parsed)
{
    pep_req_t r;
    pep_err_t e;
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PS "'><publish node='urn:xmpp:"
                         "bookmarks:1'><item id='room@conf'><conference "
                         "xmlns='urn:xmpp:bookmarks:1' autojoin='true'/>"
                         "</item></publish>" OPTS(
                             F("persist_items", "true") F("max_items", "max")
                                 F("send_last_published_item", "never") F(
                                     "access_model", "whitelist")) "</pubsub>",
                         &r, &e, &st),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_PUBLISH);
    ck_assert_str_eq(r.node, "urn:xmpp:bookmarks:1");
    ck_assert_str_eq(r.item_id, "room@conf");
    ck_assert_str_eq(kn_stanza_name(st, r.payload), "conference");
    ck_assert(r.has_opts);
    ck_assert_uint_eq(r.opts.set, PEP_OPT_ACCESS | PEP_OPT_PERSIST |
                                      PEP_OPT_MAX_ITEMS | PEP_OPT_SEND_LAST);
    ck_assert_int_eq(r.opts.v.access, PEP_ACCESS_WHITELIST);
    ck_assert(r.opts.v.persist);
    ck_assert_int_eq(r.opts.v.max_items, 1000); /* "max" */
    ck_assert_int_eq(r.opts.v.send_last, PEP_SEND_LAST_NEVER);
    kn_stanza_unref(&st);
    /* no id: the service names the item; no options */
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PS "'><publish node='n'><item>"
                         "<x xmlns='k'/></item></publish></pubsub>",
                         &r, &e, NULL),
                     0);
    ck_assert_ptr_null(r.item_id);
    ck_assert(!r.has_opts);
}
END_TEST

START_TEST(test_publish_errors)
{
    req_err("set",
            "<pubsub xmlns='" PS "'><publish><item><x xmlns='k'/></item>"
            "</publish></pubsub>",
            KN_STE_BAD_REQUEST, "nodeid-required");
    req_err("set", "<pubsub xmlns='" PS "'><publish node=''/></pubsub>",
            KN_STE_BAD_REQUEST, "nodeid-required");
    req_err("set", "<pubsub xmlns='" PS "'><publish node='n'/></pubsub>",
            KN_STE_BAD_REQUEST, "item-required");
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item id='1'/>"
            "</publish></pubsub>",
            KN_STE_BAD_REQUEST, "payload-required");
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "<b xmlns='k'/></item></publish></pubsub>",
            KN_STE_BAD_REQUEST, "invalid-payload");
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item><item><a xmlns='k'/></item></publish></pubsub>",
            KN_STE_BAD_REQUEST, "invalid-payload");
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item id=''><a "
            "xmlns='k'/></item></publish></pubsub>",
            KN_STE_BAD_REQUEST, "item-required");
    /* publish is a set */
    req_err("get",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish></pubsub>",
            KN_STE_BAD_REQUEST, NULL);
    /* forms */
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("access_model", "roster")) "</pubsub>",
            KN_STE_FEATURE_NOT_IMPLEMENTED, "unsupported");
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("max_items", "-3")) "</pubsub>",
            KN_STE_BAD_REQUEST, NULL);
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("max_items", "1001")) "</pubsub>",
            KN_STE_NOT_ACCEPTABLE, NULL);
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("persist_items", "maybe")) "</pubsub>",
            KN_STE_BAD_REQUEST, NULL);
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("deliver_payloads", "0")) "</pubsub>",
            KN_STE_NOT_ACCEPTABLE, NULL);
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish>" OPTS(F("title", "x")) "</pubsub>",
            KN_STE_NOT_ACCEPTABLE, NULL);
    /* a form of another type */
    req_err("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'/>"
            "</item></publish><publish-options><x xmlns='jabber:x:data' "
            "type='submit'><field var='FORM_TYPE'><value>urn:other</value>"
            "</field></x></publish-options></pubsub>",
            KN_STE_BAD_REQUEST, NULL);
}
END_TEST

START_TEST(test_fixed_fields_accepted)
{
    pep_req_t r;
    pep_err_t e;
    ck_assert_int_eq(
        req("set",
            "<pubsub xmlns='" PS "'><publish node='n'><item><a "
            "xmlns='k'/></item></publish>" OPTS(
                F("deliver_payloads", "true") F("notify_retract", "1")
                    F("notification_type", "headline")) "</"
                                                        "pubsu"
                                                        "b>",
            &r, &e, NULL),
        0);
    ck_assert(!r.has_opts); /* nothing we store was named */
}
END_TEST

START_TEST(test_other_requests)
{
    pep_req_t r;
    pep_err_t e;
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(req("get",
                         "<pubsub xmlns='" PS "'><items node='n' max_items="
                         "'5'><item id='a'/><item id='b'/></items></pubsub>",
                         &r, &e, &st),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_ITEMS);
    ck_assert_int_eq(r.max_items, 5);
    ck_assert_uint_eq(r.nids, 2);
    kn_stanza_unref(&st);
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PS "'><retract node='n' notify="
                         "'1'><item id='a'/></retract></pubsub>",
                         &r, &e, &st),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_RETRACT);
    ck_assert_str_eq(r.item_id, "a");
    kn_stanza_unref(&st);
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PSO "'><delete node='n'/>"
                         "</pubsub>",
                         &r, &e, NULL),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_DELETE);
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PSO "'><purge node='n'/></pubsub>",
                         &r, &e, NULL),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_PURGE);
    ck_assert_int_eq(req("get",
                         "<pubsub xmlns='" PSO "'><configure node='n'/>"
                         "</pubsub>",
                         &r, &e, NULL),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_CONFIG_GET);
    ck_assert_int_eq(
        req("set",
            "<pubsub xmlns='" PSO "'><configure node='n'><x xmlns='jabber:x:"
            "data' type='submit'><field var='FORM_TYPE'><value>" PS
            "#node_config</value></field>" F("access_model", "open")
                F("max_items", "7") "</x></configure></pubsub>",
            &r, &e, NULL),
        0);
    ck_assert_int_eq(r.op, PEP_OP_CONFIG_SET);
    ck_assert_int_eq(r.opts.v.access, PEP_ACCESS_OPEN);
    ck_assert_int_eq(r.opts.v.max_items, 7);
    ck_assert_int_eq(req("set",
                         "<pubsub xmlns='" PS "'><create node='c'/>"
                         "<configure/></pubsub>",
                         &r, &e, NULL),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_CREATE);
    ck_assert(!r.has_opts);
    ck_assert_int_eq(req("get",
                         "<query xmlns='http://jabber.org/protocol/"
                         "disco#info'/>",
                         &r, &e, NULL),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_DISCO_INFO);
    ck_assert_ptr_null(r.node);
    ck_assert_int_eq(req("get",
                         "<query xmlns='http://jabber.org/protocol/"
                         "disco#items' node='n'/>",
                         &r, &e, &st),
                     0);
    ck_assert_int_eq(r.op, PEP_OP_DISCO_ITEMS);
    ck_assert_str_eq(r.node, "n");
    kn_stanza_unref(&st);

    req_err("get", "<pubsub xmlns='" PS "'><items/></pubsub>",
            KN_STE_BAD_REQUEST, "nodeid-required");
    req_err("get",
            "<pubsub xmlns='" PS "'><items node='n' max_items='0'/>"
            "</pubsub>",
            KN_STE_BAD_REQUEST, NULL);
    req_err("get",
            "<pubsub xmlns='" PS "'><items node='n'><item/></items>"
            "</pubsub>",
            KN_STE_BAD_REQUEST, "item-required");
    req_err("set", "<pubsub xmlns='" PS "'><retract node='n'/></pubsub>",
            KN_STE_BAD_REQUEST, "item-required");
    req_err("set", "<pubsub xmlns='" PS "'><create/></pubsub>",
            KN_STE_NOT_ACCEPTABLE, "nodeid-required");
    req_err("set",
            "<pubsub xmlns='" PS "'><subscribe node='n' jid='a@x'/>"
            "</pubsub>",
            KN_STE_FEATURE_NOT_IMPLEMENTED, "unsupported");
    req_err("get",
            "<pubsub xmlns='" PSO "'><affiliations node='n'/>"
            "</pubsub>",
            KN_STE_FEATURE_NOT_IMPLEMENTED, "unsupported");
    req_err("set", "<pubsub xmlns='" PSO "'><delete/></pubsub>",
            KN_STE_BAD_REQUEST, "nodeid-required");
    req_err("set", "<pubsub xmlns='" PSO "'><configure node='n'/></pubsub>",
            KN_STE_BAD_REQUEST, NULL);
    req_err("set", "<pubsub xmlns='" PS "'/>", KN_STE_BAD_REQUEST, NULL);
    req_err("set", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
            KN_STE_BAD_REQUEST, NULL);
}
END_TEST

START_TEST(test_opts_match_and_apply)
{
    pep_conf_t c;
    pep_conf_default(&c);
    ck_assert_int_eq(c.access, PEP_ACCESS_PRESENCE);
    ck_assert(c.persist);
    ck_assert_int_eq(c.max_items, 1);
    pep_opts_t o = {0};
    ck_assert(pep_opts_match(&c, &o)); /* no options: always */
    o.set = PEP_OPT_ACCESS | PEP_OPT_MAX_ITEMS;
    o.v.access = PEP_ACCESS_WHITELIST;
    o.v.max_items = 1000;
    ck_assert(!pep_opts_match(&c, &o));
    pep_conf_apply(&c, &o);
    ck_assert(pep_opts_match(&c, &o));
    ck_assert_int_eq(c.access, PEP_ACCESS_WHITELIST);
    ck_assert_int_eq(c.max_items, 1000);
    ck_assert(c.persist); /* untouched */
    o.set = PEP_OPT_PERSIST;
    o.v.persist = false;
    ck_assert(!pep_opts_match(&c, &o));
    ck_assert_str_eq(pep_access_name(PEP_ACCESS_OPEN), "open");
    ck_assert_int_eq(pep_access_parse("whitelist"), PEP_ACCESS_WHITELIST);
    ck_assert_int_eq(pep_access_parse("roster"), -1);
    ck_assert_int_eq(pep_send_last_parse("on_sub"), PEP_SEND_LAST_ON_SUB);
    ck_assert_int_eq(pep_send_last_parse(NULL), -1);
}
END_TEST

/* ---- pres_pep_iq without a database --------------------------------- */

static char sent[8][2048];
static int nsent;

static void cap_send(void *ud, const kn_env_t *env, const void *payload,
                     size_t len)
{
    (void)ud;
    (void)env;
    ck_assert_int_lt(nsent, 8);
    snprintf(sent[nsent++], sizeof(sent[0]), "%.*s", (int)len,
             (const char *)payload);
}

static pres_t *new_pres(void)
{
    pres_conf_t conf = {0};
    conf.pep_max_items = 1000;
    conf.pep_max_nodes = 10;
    pres_sink_t sink = {cap_send, NULL};
    pres_t *p = pres_new(NULL, "x", &conf, &sink, NULL, NULL);
    pres_pep_set_trusted(p, "conference.x");
    nsent = 0;
    return p;
}

static void iq_in(pres_t *p, const char *from, const char *to, const char *type,
                  const char *payload)
{
    char xml[2048];
    snprintf(xml, sizeof(xml),
             "<iq xmlns='jabber:client' type='%s' id='q' from='%s'%s%s%s>%s"
             "</iq>",
             type, from, to ? " to='" : "", to ? to : "", to ? "'" : "",
             payload);
    kn_stanza_t *st = parse(xml);
    kn_env_t env = {0};
    env.kind = KN_ENV_STANZA;
    env.stanza = KN_ENV_ST_IQ;
    env.to = "a@x";
    env.to_len = 3;
    pres_pep_iq(p, &env, st);
    kn_stanza_unref(&st);
}

START_TEST(test_who_may_do_what)
{
    pres_t *p = new_pres();
    const char *pub = "<pubsub xmlns='" PS "'><publish node='n'><item><a "
                      "xmlns='k'/></item></publish></pubsub>";
    /* a foreign user may not publish */
    iq_in(p, "b@x/r", "a@x", "set", pub);
    ck_assert_int_eq(nsent, 1);
    ck_assert_ptr_nonnull(strstr(sent[0], "type='error'"));
    ck_assert_ptr_nonnull(strstr(sent[0], "<forbidden"));
    ck_assert_ptr_nonnull(strstr(sent[0], "to='b@x/r'"));
    /* the trusted MUC service may publish, but not delete the node */
    nsent = 0;
    iq_in(p, "conference.x", "a@x", "set",
          "<pubsub xmlns='" PSO "'><delete node='n'/></pubsub>");
    ck_assert_int_eq(nsent, 1);
    ck_assert_ptr_nonnull(strstr(sent[0], "<forbidden"));
    /* a user of that domain is not the service */
    nsent = 0;
    iq_in(p, "conference.x@x/r", "a@x", "set", pub);
    ck_assert_ptr_nonnull(strstr(sent[0], "<forbidden"));
    /* allowed ones reach the database step: none here, so
     * service-unavailable rather than forbidden */
    nsent = 0;
    iq_in(p, "conference.x", "a@x", "set", pub);
    iq_in(p, "a@x/r", NULL, "set", pub);
    ck_assert_int_eq(nsent, 2);
    ck_assert_ptr_nonnull(strstr(sent[0], "<service-unavailable"));
    ck_assert_ptr_nonnull(strstr(sent[1], "<service-unavailable"));
    /* an account of another domain is not ours */
    nsent = 0;
    iq_in(p, "a@x/r", "a@y", "get",
          "<pubsub xmlns='" PS "'><items node='n'/></pubsub>");
    ck_assert_ptr_nonnull(strstr(sent[0], "<service-unavailable"));
    /* a parse error carries the pubsub#errors condition */
    nsent = 0;
    iq_in(p, "a@x/r", NULL, "set",
          "<pubsub xmlns='" PS "'><publish node='n'/></pubsub>");
    ck_assert_ptr_nonnull(strstr(sent[0], "<bad-request"));
    ck_assert_ptr_nonnull(
        strstr(sent[0], "<item-required xmlns='" PS "#errors'/>"));
    /* errors are never answered */
    nsent = 0;
    iq_in(p, "b@x/r", "a@x", "error", pub);
    ck_assert_int_eq(nsent, 0);
    pres_free(&p);
}
END_TEST

START_TEST(test_payload_too_big_issue_16)
{
    pres_t *p = new_pres();
    p->conf.pep_item_max_bytes = 300;
    char pub[1024], fill[400];
    memset(fill, 'z', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    snprintf(pub, sizeof(pub),
             "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'>%s"
             "</a></item></publish></pubsub>",
             fill);
    iq_in(p, "a@x/r", NULL, "set", pub);
    ck_assert_int_eq(nsent, 1);
    ck_assert_ptr_nonnull(strstr(sent[0], "<not-acceptable"));
    ck_assert_ptr_nonnull(
        strstr(sent[0], "<payload-too-big xmlns='" PS "#errors'/>"));
    ck_assert_ptr_nonnull(strstr(sent[0], "(at most 300)"));
    /* a foreign publisher is told forbidden, not how big it may be */
    nsent = 0;
    iq_in(p, "b@x/r", "a@x", "set", pub);
    ck_assert_ptr_nonnull(strstr(sent[0], "<forbidden"));
    /* under the limit it goes on (to the missing database here) */
    nsent = 0;
    iq_in(p, "a@x/r", NULL, "set",
          "<pubsub xmlns='" PS "'><publish node='n'><item><a xmlns='k'>"
          "small</a></item></publish></pubsub>");
    ck_assert_ptr_nonnull(strstr(sent[0], "<service-unavailable"));
    pres_free(&p);
}
END_TEST

START_TEST(test_own_disco_info)
{
    pres_t *p = new_pres();
    iq_in(p, "a@x/r", "a@x", "get",
          "<query xmlns='http://jabber.org/protocol/disco#info'/>");
    ck_assert_int_eq(nsent, 1);
    ck_assert_ptr_nonnull(strstr(sent[0], "type='result'"));
    ck_assert_ptr_nonnull(
        strstr(sent[0], "<identity category='pubsub' type='pep'/>"));
    ck_assert_ptr_nonnull(
        strstr(sent[0], "<identity category='account' type='registered'/>"));
    ck_assert_ptr_nonnull(strstr(sent[0], PS "#publish-options"));
    ck_assert_ptr_nonnull(strstr(sent[0], PS "#auto-create"));
    pres_free(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_pep");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_publish_parsed);
    tcase_add_test(tc, test_publish_errors);
    tcase_add_test(tc, test_fixed_fields_accepted);
    tcase_add_test(tc, test_other_requests);
    tcase_add_test(tc, test_opts_match_and_apply);
    tcase_add_test(tc, test_who_may_do_what);
    tcase_add_test(tc, test_own_disco_info);
    tcase_add_test(tc, test_payload_too_big_issue_16);
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
