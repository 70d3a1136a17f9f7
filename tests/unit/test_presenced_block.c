/*
 * test_presenced_block.c - blocking (XEP-0191) in presenced, driven with
 * envelopes and a capture sink, no database: the list each new session
 * gets for its c2s (KN_F_BLOCKLIST), the block and unblock commands (the
 * order of presence, result and push), presence fan-out that leaves out
 * blocked sessions both ways, domain items, and bad commands.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"

typedef struct cap {
    kn_env_kind_t kind;
    kn_env_stanza_t stanza;
    uint16_t flags;
    size_t ntargets;
    uint64_t targets[8];
    char to[128];
    char payload[1024];
} cap_t;

static cap_t caps[64];
static int ncap;

static void cap_send(void *ud, const kn_env_t *env, const void *payload,
                     size_t len)
{
    (void)ud;
    ck_assert_int_lt(ncap, 64);
    cap_t *c = &caps[ncap++];
    memset(c, 0, sizeof(*c));
    c->kind = env->kind;
    c->stanza = env->stanza;
    c->flags = env->flags;
    c->ntargets = env->ntargets;
    for (size_t i = 0; i < env->ntargets && i < 8; i++)
        c->targets[i] = kn_env_target(env, i);
    snprintf(c->to, sizeof(c->to), "%.*s", (int)env->to_len, env->to);
    snprintf(c->payload, sizeof(c->payload), "%.*s", (int)len,
             (const char *)payload);
}

static pres_t *mk(void)
{
    pres_conf_t conf = {0, 102400, 250, 1};
    pres_sink_t sink = {cap_send, NULL};
    ncap = 0;
    return pres_new(NULL, "x", &conf, &sink, NULL, NULL);
}

static void up(pres_t *p, const char *full, uint64_t conn)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.from = full;
    e.from_len = strlen(full);
    e.conn_id = conn;
    pres_handle(p, &e, NULL, 0);
}

static void presence(pres_t *p, const char *full, const char *status)
{
    char xml[256];
    snprintf(xml, sizeof(xml),
             "<presence xmlns='jabber:client' from='%s'><status>%s</status>"
             "</presence>",
             full, status);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_PRESENCE;
    e.type = KN_ENV_TYPE_AVAILABLE;
    e.from = full;
    e.from_len = strlen(full);
    pres_handle(p, &e, xml, strlen(xml));
}

static void block_iq(pres_t *p, const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    pres_block_iq(p, st);
    kn_stanza_unref(&st);
}

/* Give bare a cached roster with each contact as a shared (both) item. */
static void roster(pres_t *p, const char *bare, const char *contact)
{
    pres_user_t *u = pres_user_get(p, bare);
    if (u->roster == NULL)
        u->roster = kn_calloc(1, sizeof(*u->roster));
    pres_roster_merge_shared(u->roster, contact, "G");
}

static bool has(const cap_t *c, const char *s)
{
    return strstr(c->payload, s) != NULL;
}

#define A1 (((uint64_t)1 << KN_CONN_NODE_SHIFT) | 1)
#define A2 (((uint64_t)2 << KN_CONN_NODE_SHIFT) | 2)
#define C1 (((uint64_t)2 << KN_CONN_NODE_SHIFT) | 3)

static pres_t *two_users(void)
{
    pres_t *p = mk();
    up(p, "a@x/one", A1);
    up(p, "c@x/r", C1);
    ck_assert_int_eq(ncap, 2); /* the two (empty) lists */
    roster(p, "a@x", "c@x");
    roster(p, "c@x", "a@x");
    presence(p, "a@x/one", "a here");
    presence(p, "c@x/r", "c here");
    ncap = 0;
    return p;
}

START_TEST(list_to_each_new_session)
{
    pres_t *p = mk();
    up(p, "a@x/one", A1);
    ck_assert_int_eq(ncap, 1);
    ck_assert_int_eq(caps[0].kind, KN_ENV_STANZA);
    ck_assert(caps[0].flags & KN_F_BLOCKLIST);
    ck_assert_str_eq(caps[0].to, "a@x/one");
    ck_assert(has(&caps[0], "<blocklist xmlns='urn:xmpp:blocking'/>"));
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='Evil.Example'/><item jid='m@x/Res'/></block></iq>");
    /* a second session gets the list as it is now, prepared and sorted */
    ncap = 0;
    up(p, "a@x/two", A2);
    ck_assert_int_eq(ncap, 1);
    ck_assert_str_eq(caps[0].to, "a@x/two");
    ck_assert(caps[0].flags & KN_F_BLOCKLIST);
    ck_assert(has(&caps[0], "<item jid='evil.example'/><item jid='m@x/Res'/>"));
    /* a re-announced session (router restart) does not get it again */
    ncap = 0;
    up(p, "a@x/two", A2);
    ck_assert_int_eq(ncap, 0);
    pres_free(&p);
}
END_TEST

START_TEST(block_then_unblock_presence)
{
    pres_t *p = two_users();
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b1' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='C@X'/></block></iq>");
    /* 1. the user's resources see the contact go offline (before the
     *    push, or their c2s would drop it); 2. the push to every session,
     *    flagged for c2s (before the result, so c2s filters whatever the
     *    client sends once it has the result); 3. the result; 4. the
     *    contact sees the user go offline. */
    ck_assert_int_eq(ncap, 4);
    ck_assert_int_eq(caps[0].kind, KN_ENV_MULTICAST);
    ck_assert(caps[0].targets[0] == A1);
    ck_assert(has(&caps[0], "from='c@x/r'") && has(&caps[0], "unavailable"));
    ck_assert_int_eq(caps[1].kind, KN_ENV_MULTICAST);
    ck_assert(caps[1].flags & KN_F_BLOCKLIST);
    ck_assert(has(&caps[1], "<block xmlns='urn:xmpp:blocking'><item "
                            "jid='c@x'/></block>"));
    ck_assert_int_eq(caps[2].kind, KN_ENV_STANZA);
    ck_assert(has(&caps[2], "type='result'") && has(&caps[2], "id='b1'"));
    ck_assert_int_eq(caps[3].kind, KN_ENV_STANZA);
    ck_assert_str_eq(caps[3].to, "c@x/r");
    ck_assert(has(&caps[3], "from='a@x/one'") && has(&caps[3], "unavailable"));
    ck_assert(pres_is_blocked(p, "a@x", "c@x/r"));
    ck_assert(pres_block_between(p, "c@x/r", "a@x/one"));
    ck_assert(!pres_block_between(p, "a@x/one", "a@x"));

    /* while blocked, presence flows neither way: each sender gets only
     * its own back (RFC 6121 4.4.2) */
    ncap = 0;
    presence(p, "a@x/one", "a again");
    presence(p, "c@x/r", "c again");
    ck_assert_int_eq(ncap, 2);
    ck_assert_uint_eq(caps[0].ntargets, 1);
    ck_assert(caps[0].targets[0] == A1);
    ck_assert_uint_eq(caps[1].ntargets, 1);
    ck_assert(caps[1].targets[0] == C1);

    /* unblock all: push, result, then current presence both ways */
    ncap = 0;
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='u1' "
                "from='a@x/one'><unblock xmlns='urn:xmpp:blocking'/></iq>");
    ck_assert_int_eq(ncap, 4);
    ck_assert(caps[0].flags & KN_F_BLOCKLIST);
    ck_assert(has(&caps[0], "<unblock xmlns='urn:xmpp:blocking'/>"));
    ck_assert(has(&caps[1], "type='result'") && has(&caps[1], "id='u1'"));
    ck_assert_str_eq(caps[2].to, "c@x/r");
    ck_assert(has(&caps[2], "a again"));
    ck_assert_str_eq(caps[3].to, "a@x/one");
    ck_assert(has(&caps[3], "c again"));
    ck_assert(!pres_is_blocked(p, "a@x", "c@x/r"));
    ncap = 0;
    presence(p, "c@x/r", "c after");
    ck_assert_int_eq(ncap, 1);
    ck_assert_uint_eq(caps[0].ntargets, 2); /* its own echo, and a */
    ck_assert(caps[0].targets[0] == C1 || caps[0].targets[1] == C1);
    ck_assert(caps[0].targets[0] == A1 || caps[0].targets[1] == A1);
    pres_free(&p);
}
END_TEST

START_TEST(blocked_by_contact_hides_user)
{
    /* The contact blocks the user: the user's broadcasts leave it out. */
    pres_t *p = two_users();
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b' from='c@x/r'>"
                "<block xmlns='urn:xmpp:blocking'><item jid='a@x'/></block>"
                "</iq>");
    ncap = 0;
    presence(p, "a@x/one", "a again");
    ck_assert_int_eq(ncap, 1); /* to itself only (RFC 6121 4.4.2) */
    ck_assert_uint_eq(caps[0].ntargets, 1);
    ck_assert(caps[0].targets[0] == A1);
    pres_free(&p);
}
END_TEST

START_TEST(domain_item_spares_own_resources)
{
    pres_t *p = two_users();
    up(p, "a@x/two", A2);
    presence(p, "a@x/two", "two");
    /* a blocks its own domain: every contact there, never itself */
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='x'/></block></iq>");
    ck_assert(pres_is_blocked(p, "a@x", "c@x/r"));
    ck_assert(!pres_is_blocked(p, "a@x", "a@x/two"));
    ncap = 0;
    presence(p, "a@x/one", "again");
    ck_assert_int_eq(ncap, 1);
    ck_assert_uint_eq(caps[0].ntargets, 2); /* its other resource, itself */
    ck_assert(caps[0].targets[0] == A2 || caps[0].targets[1] == A2);
    ck_assert(caps[0].targets[0] == A1 || caps[0].targets[1] == A1);
    pres_free(&p);
}
END_TEST

START_TEST(full_jid_item_only_that_resource)
{
    pres_t *p = two_users();
    up(p, "c@x/s", A2);
    presence(p, "c@x/s", "other");
    ncap = 0;
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='c@x/r'/></block></iq>");
    ncap = 0;
    presence(p, "a@x/one", "again");
    ck_assert_int_eq(ncap, 1);
    ck_assert_uint_eq(caps[0].ntargets, 2); /* c@x/s (not c@x/r), itself */
    ck_assert(caps[0].targets[0] == A2 || caps[0].targets[1] == A2);
    ck_assert(caps[0].targets[0] == A1 || caps[0].targets[1] == A1);
    pres_free(&p);
}
END_TEST

START_TEST(bad_commands_change_nothing)
{
    pres_t *p = two_users();
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='e1' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='c@x'/><item jid='@bad'/></block></iq>");
    ck_assert_int_eq(ncap, 1);
    ck_assert(has(&caps[0], "jid-malformed"));
    ck_assert(!pres_is_blocked(p, "a@x", "c@x"));
    ncap = 0;
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='e2' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'/></iq>");
    ck_assert_int_eq(ncap, 1);
    ck_assert(has(&caps[0], "bad-request"));
    ncap = 0;
    /* another user's list is not ours to change */
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='e3' "
                "from='a@x/one' to='c@x'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='a@x'/></block></iq>");
    ck_assert_int_eq(ncap, 1);
    ck_assert(has(&caps[0], "forbidden"));
    ck_assert(!pres_is_blocked(p, "c@x", "a@x"));
    pres_free(&p);
}
END_TEST

START_TEST(get_lists_items)
{
    pres_t *p = two_users();
    block_iq(p, "<iq xmlns='jabber:client' type='set' id='b' "
                "from='a@x/one'><block xmlns='urn:xmpp:blocking'>"
                "<item jid='z@x'/><item jid='b.example'/></block></iq>");
    ncap = 0;
    block_iq(p, "<iq xmlns='jabber:client' type='get' id='g' "
                "from='a@x/one'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    ck_assert_int_eq(ncap, 1);
    ck_assert(has(&caps[0], "<blocklist xmlns='urn:xmpp:blocking'><item "
                            "jid='b.example'/><item jid='z@x'/></blocklist>"));
    pres_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("presenced_block");
    TCase *tc = tcase_create("block");
    tcase_add_test(tc, list_to_each_new_session);
    tcase_add_test(tc, block_then_unblock_presence);
    tcase_add_test(tc, blocked_by_contact_hides_user);
    tcase_add_test(tc, domain_item_spares_own_resources);
    tcase_add_test(tc, full_jid_item_only_that_resource);
    tcase_add_test(tc, bad_commands_change_nothing);
    tcase_add_test(tc, get_lists_items);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
