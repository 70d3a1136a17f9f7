/*
 * test_router_route.c - the router's logic driven with envelopes, no
 * sockets: HELLO/indices, session table and conflict, RFC 6121 delivery
 * (R-ARCH-2, R-ARCH-3, R-ARCH-4), namespace dispatch, multicast split per
 * node, node loss (R-DROP-6), warm-up hold, undeliverable frames.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_log.h"
#include "kn_proto.h"
#include "router.h"

#define MAXOUT 64
typedef struct out {
    char node[64];
    kn_env_kind_t kind;
    kn_env_reason_t reason;
    uint64_t conn;
    uint32_t seq;
    uint64_t ack_id;
    uint16_t flags;
    char to[128];
    char from[128];
    size_t ntargets;
    uint64_t targets[8];
    char payload[1024];
} out_t;

static out_t outs[MAXOUT];
static int nout;
static const char *unreachable; /* a node whose frames fail, as in io_send */
static struct router *r;

static void cap_send(void *ud, const router_node_t *to, const kn_env_t *env,
                     const router_payload_t *pl)
{
    (void)ud;
    if (unreachable != NULL && strcmp(to->name, unreachable) == 0) {
        router_undeliverable(r, to, env, pl);
        return;
    }
    ck_assert_int_lt(nout, MAXOUT);
    out_t *o = &outs[nout++];
    memset(o, 0, sizeof(*o));
    snprintf(o->node, sizeof(o->node), "%s", to->name);
    o->kind = env->kind;
    o->reason = env->reason;
    o->conn = env->conn_id;
    o->seq = env->seq;
    o->ack_id = env->ack_id;
    o->flags = env->flags;
    snprintf(o->to, sizeof(o->to), "%.*s", (int)env->to_len, env->to);
    snprintf(o->from, sizeof(o->from), "%.*s", (int)env->from_len, env->from);
    o->ntargets = env->ntargets;
    for (size_t i = 0; i < env->ntargets && i < 8; i++)
        o->targets[i] = kn_env_target(env, i);
    snprintf(o->payload, sizeof(o->payload), "%.*s", (int)pl->len,
             (const char *)pl->data);
}

static double now = 100.0;

static void reset_out(void)
{
    nout = 0;
}

static void in(const char *node, const kn_env_t *env, const char *payload)
{
    router_payload_t pl = {payload, payload ? strlen(payload) : 0, NULL};
    router_handle(r, node, strlen(node), env, &pl, now);
}

static uint16_t hello(const char *node, uint16_t roles, uint32_t boot)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = roles | KN_F_FRESH;
    e.seq = boot;
    reset_out();
    in(node, &e, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_HELLO);
    ck_assert(outs[0].flags & KN_F_ACK);
    ck_assert_uint_eq(outs[0].seq, 77); /* router boot id */
    return kn_conn_node(outs[0].conn);
}

static void sess_up(const char *node, uint16_t idx, uint64_t local,
                    const char *full, int prio, bool avail)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.conn_id = kn_conn_make(idx, local);
    e.from = full;
    e.from_len = strlen(full);
    e.priority = (int16_t)prio;
    e.flags = avail ? KN_F_AVAILABLE : 0;
    in(node, &e, NULL);
}

static void send_stanza(const char *node, kn_env_stanza_t st, kn_env_type_t t,
                        const char *from, const char *to, const char *ns,
                        uint64_t conn)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = st;
    e.type = t;
    e.from = from;
    e.from_len = strlen(from);
    e.to = to;
    e.to_len = strlen(to);
    e.node = ns;
    e.node_len = ns ? strlen(ns) : 0;
    e.conn_id = conn;
    reset_out();
    in(node, &e, "<x/>");
}

static uint16_t ia, ib, ip;

static void setup(void)
{
    unreachable = NULL;
    r = router_new("localhost", 77, 15.0, cap_send, NULL);
    now = 100.0;
    ia = hello("c2s-a", KN_F_ROLE_C2S, 1);
    ib = hello("c2s-b", KN_F_ROLE_C2S, 2);
    ck_assert_uint_ne(ia, ib);
    ck_assert_uint_ne(ia, 0);
    reset_out();
}

/* The router restarts: a new one in its warm-up, nodes not known yet. */
static void router_restarted(void)
{
    router_free(&r);
    unreachable = NULL;
    r = router_new("localhost", 77, 15.0, cap_send, NULL);
    r->warm_until = now + 2.0;
}

static void teardown(void)
{
    router_free(&r);
    ck_assert_ptr_null(r);
}

START_TEST(full_jid_across_nodes_R_ARCH_2)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    sess_up("c2s-b", ib, 7, "bob@localhost/phone", 0, true);
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT,
                "alice@localhost/pc", "bob@localhost/phone", NULL,
                kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ib, 7));
    ck_assert_str_eq(outs[0].payload, "<x/>");
}
END_TEST

START_TEST(bare_jid_highest_priority_R_ARCH_3)
{
    sess_up("c2s-a", ia, 1, "bob@localhost/a", 1, true);
    sess_up("c2s-b", ib, 2, "bob@localhost/b", 5, true);
    sess_up("c2s-b", ib, 3, "bob@localhost/c", 5, true);
    sess_up("c2s-a", ia, 4, "bob@localhost/d", 9, false); /* unavailable */
    sess_up("c2s-a", ia, 5, "bob@localhost/e", -1, true);
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "x@localhost/1",
                "bob@localhost", NULL, 0);
    ck_assert_int_eq(nout, 2);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    ck_assert_str_eq(outs[1].node, "c2s-b");
    uint64_t c0 = outs[0].conn, c1 = outs[1].conn;
    ck_assert(c0 != c1);
    ck_assert(c0 == kn_conn_make(ib, 2) || c0 == kn_conn_make(ib, 3));
    ck_assert(c1 == kn_conn_make(ib, 2) || c1 == kn_conn_make(ib, 3));
    /* XEP-0191: only the first copy may answer a refusal */
    ck_assert(!(outs[0].flags & KN_F_EXTRA_COPY));
    ck_assert(outs[1].flags & KN_F_EXTRA_COPY);
}
END_TEST

START_TEST(message_to_unavailable_full_goes_to_bare_R_ARCH_3)
{
    sess_up("c2s-b", ib, 2, "bob@localhost/b", 0, true);
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_NORMAL, "x@localhost/1",
                "bob@localhost/gone", NULL, 0);
    ck_assert_int_eq(nout, 1);
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ib, 2));
}
END_TEST

START_TEST(offline_without_handler_bounces_and_with_handler_stores)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT,
                "alice@localhost/pc", "carol@localhost", NULL,
                kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].seq, KN_STE_SERVICE_UNAVAILABLE);
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 1));
    ck_assert_str_eq(outs[0].payload, "<x/>");

    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT,
                "alice@localhost/pc", "carol@localhost", NULL,
                kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_str_eq(outs[0].to, "carol@localhost");

    /* An error message is never bounced nor stored. */
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_ERROR,
                "alice@localhost/pc", "carol@localhost", NULL, 0);
    ck_assert_int_eq(nout, 0);
}
END_TEST

START_TEST(iq_and_presence_to_unavailable_full_R_ARCH_4)
{
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "a@localhost/1",
                "bob@localhost/gone", "urn:xmpp:ping", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_uint_eq(outs[0].seq, KN_STE_SERVICE_UNAVAILABLE);
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, "a@localhost/1",
                "bob@localhost/gone", NULL, 0);
    ck_assert_int_eq(nout, 0);
    send_stanza("c2s-a", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE,
                "a@localhost/1", "bob@localhost/gone", NULL, 0);
    ck_assert_int_eq(nout, 0);
}
END_TEST

START_TEST(iq_namespace_dispatch)
{
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "a@localhost/1",
                "localhost", "jabber:iq:version", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_IQ_NS;
    g.node = "jabber:iq:roster";
    g.node_len = strlen(g.node);
    in("presenced", &g, NULL);
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "a@localhost/1",
                "a@localhost", "jabber:iq:roster", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "presenced");
}
END_TEST

/* KN_REG_ACCOUNT_NS: an account's own services (PEP, its disco) get the
 * IQs to bare JIDs in that namespace; the server's IQs (to the domain) and
 * its disco stay with KN_REG_IQ_NS and the router. */
START_TEST(account_namespace_dispatch)
{
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    hello("other", KN_F_ROLE_DAEMON, 4);
    const char *disco = "http://jabber.org/protocol/disco#info";
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_ACCOUNT_NS;
    g.node = disco;
    g.node_len = strlen(disco);
    in("presenced", &g, NULL);
    g.node = "urn:x:acct";
    g.node_len = strlen(g.node);
    in("presenced", &g, NULL);
    g.node = "urn:x:both";
    g.node_len = strlen(g.node);
    in("presenced", &g, NULL);
    g.flags = KN_REG_IQ_NS;
    in("other", &g, NULL);
    /* to a bare JID: the account handler */
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "a@localhost/1",
                "b@localhost", disco, kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "presenced");
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_SET, "a@localhost/1",
                "b@localhost", "urn:x:both", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    /* to the domain: the server's handler, never the account one */
    send_stanza("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_SET, "a@localhost/1",
                "localhost", "urn:x:both", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "other");
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_IQ;
    e.type = KN_ENV_TYPE_GET;
    e.from = "a@localhost/1";
    e.from_len = strlen(e.from);
    e.to = "localhost";
    e.to_len = strlen(e.to);
    e.node = disco;
    e.node_len = strlen(disco);
    e.conn_id = kn_conn_make(ia, 1);
    reset_out();
    in("c2s-a", &e,
       "<iq xmlns='jabber:client' type='get' id='d2' from='a@localhost/1' "
       "to='localhost'><query "
       "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a"); /* answered by the router */
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "category='server'"));
    /* an account namespace is not a server feature */
    ck_assert_ptr_null(strstr(outs[0].payload, "urn:x:acct"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "urn:x:both"));
}
END_TEST

/* An answer (result, error) to an account's bare JID goes to the presence
 * daemon, which sends IQs for accounts (XEP-0357 publishes); an answer to
 * the domain, or with no presence daemon, is dropped. */
START_TEST(iq_answer_to_bare_jid_goes_to_presence_daemon_XEP_0357)
{
    send_stanza("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_ERROR, "app@localhost/p",
                "a@localhost", NULL, kn_conn_make(ib, 1));
    ck_assert_int_eq(nout, 0);
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_PRESENCE;
    in("presenced", &g, NULL);
    send_stanza("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_ERROR, "app@localhost/p",
                "a@localhost", NULL, kn_conn_make(ib, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "presenced");
    send_stanza("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, "app@localhost/p",
                "a@localhost", NULL, kn_conn_make(ib, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    /* to the domain (an answer to c2s's ping): dropped */
    send_stanza("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_RESULT, "app@localhost/p",
                "localhost", NULL, kn_conn_make(ib, 1));
    ck_assert_int_eq(nout, 0);
}
END_TEST

START_TEST(other_domain_and_registered_domain)
{
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "a@localhost/1",
                "x@example.net", NULL, kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_uint_eq(outs[0].seq, KN_STE_REMOTE_SERVER_NOT_FOUND);
    hello("mucd", KN_F_ROLE_DAEMON, 4);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_DOMAIN;
    g.node = "conference.localhost";
    g.node_len = strlen(g.node);
    in("mucd", &g, NULL);
    send_stanza("c2s-a", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE,
                "a@localhost/1", "room@conference.localhost/nick", NULL, 0);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "mucd");
}
END_TEST

START_TEST(conflict_kicks_old_session_R_DROP_7)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_SESSIONS;
    in("presenced", &g, NULL);
    sess_up("c2s-a", ia, 1, "bob@localhost/x", 0, true);
    reset_out();
    sess_up("c2s-b", ib, 9, "bob@localhost/x", 0, true);
    /* kick to a, session_down(conflict) and session_up to presenced */
    ck_assert_int_eq(nout, 3);
    ck_assert_int_eq(outs[0].kind, KN_ENV_KICK);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 1));
    ck_assert_int_eq(outs[0].reason, KN_ENV_REASON_CONFLICT);
    ck_assert_int_eq(outs[1].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(outs[1].reason, KN_ENV_REASON_CONFLICT);
    ck_assert_int_eq(outs[2].kind, KN_ENV_SESSION_UP);
    /* The old connection's late SESSION_DOWN does not remove the new route. */
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.reason = KN_ENV_REASON_CONFLICT;
    d.conn_id = kn_conn_make(ia, 1);
    d.from = "bob@localhost/x";
    d.from_len = strlen(d.from);
    reset_out();
    in("c2s-a", &d, NULL);
    ck_assert_int_eq(nout, 0);
    router_sess_t *s = router_sess_find(r, "bob@localhost/x", 15);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->conn, kn_conn_make(ib, 9));
    /* Its own SESSION_DOWN does. */
    d.conn_id = kn_conn_make(ib, 9);
    d.reason = KN_ENV_REASON_CLEAN;
    in("c2s-b", &d, NULL);
    ck_assert_ptr_null(router_sess_find(r, "bob@localhost/x", 15));
    ck_assert_ptr_null(router_bare_find(r, "bob@localhost", 13));
    ck_assert_int_eq(outs[nout - 1].kind, KN_ENV_SESSION_DOWN);
    ck_assert_int_eq(outs[nout - 1].reason, KN_ENV_REASON_CLEAN);
}
END_TEST

START_TEST(multicast_split_per_node)
{
    kn_env_t m = {0};
    uint64_t t[5] = {kn_conn_make(ia, 1), kn_conn_make(ib, 2),
                     kn_conn_make(ia, 3), kn_conn_make(ib, 4),
                     kn_conn_make(ia, 5)};
    m.kind = KN_ENV_MULTICAST;
    m.stanza = KN_ENV_ST_PRESENCE;
    m.type = KN_ENV_TYPE_AVAILABLE;
    m.targets = t;
    m.ntargets = 5;
    reset_out();
    in("c2s-a", &m, "<presence/>");
    ck_assert_int_eq(nout, 2);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].ntargets, 3);
    ck_assert_uint_eq(outs[0].targets[0], t[0]);
    ck_assert_uint_eq(outs[0].targets[1], t[2]);
    ck_assert_uint_eq(outs[0].targets[2], t[4]);
    ck_assert_str_eq(outs[1].node, "c2s-b");
    ck_assert_uint_eq(outs[1].ntargets, 2);
    ck_assert_str_eq(outs[1].payload, "<presence/>");
}
END_TEST

START_TEST(node_lost_ends_its_sessions_R_DROP_6)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_SESSIONS;
    in("presenced", &g, NULL);
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    sess_up("c2s-b", ib, 1, "bob@localhost/p1", 0, true);
    sess_up("c2s-b", ib, 2, "bob@localhost/p2", 0, true);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* b silent since 100 > 15 s */
    router_tick(r, now);
    int downs = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_SESSION_DOWN) {
            downs++;
            ck_assert_int_eq(outs[i].reason, KN_ENV_REASON_NODE_LOST);
            ck_assert_str_eq(outs[i].node, "presenced");
            ck_assert(strncmp(outs[i].from, "bob@localhost/", 14) == 0);
        }
    ck_assert_int_eq(downs, 2);
    ck_assert_ptr_null(router_bare_find(r, "bob@localhost", 13));
    ck_assert_ptr_nonnull(router_sess_find(r, "alice@localhost/pc", 18));
    /* A heartbeat from the lost node is answered with REHELLO. */
    reset_out();
    in("c2s-b", &hb, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_HELLO);
    ck_assert(outs[0].flags & KN_F_REHELLO);
}
END_TEST

START_TEST(restarted_node_clears_stale_sessions)
{
    sess_up("c2s-b", ib, 1, "bob@localhost/p1", 0, true);
    uint16_t again = hello("c2s-b", KN_F_ROLE_C2S, 99);
    ck_assert_uint_eq(again, ib);
    ck_assert_ptr_null(router_sess_find(r, "bob@localhost/p1", 16));
}
END_TEST

START_TEST(warm_up_holds_stanzas_until_sessions_return)
{
    /* A freshly started router: c2s-b's queued stanza arrives before
     * c2s-a re-announces alice; it must not bounce. */
    router_restarted();
    send_stanza("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "bob@localhost/p",
                "alice@localhost/pc", NULL, 0);
    ck_assert_int_eq(nout, 0);
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S;
    e.conn_id = kn_conn_make(5, 0); /* asks for its old index */
    in("c2s-a", &e, NULL);
    ck_assert_uint_eq(kn_conn_node(outs[0].conn), 5);
    sess_up("c2s-a", 5, 1, "alice@localhost/pc", 0, true);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    hb.flags = KN_F_SYNCED;
    in("c2s-a", &hb, NULL);
    reset_out();
    now += 3.0;
    router_tick(r, now);
    int delivered = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_STANZA) {
            delivered++;
            ck_assert_uint_eq(outs[i].conn, kn_conn_make(5, 1));
        }
    ck_assert_int_eq(delivered, 1);
}
END_TEST

START_TEST(undeliverable_message_goes_offline_or_bounces)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "alice@localhost/pc";
    e.from_len = strlen(e.from);
    e.to = "bob@localhost/p";
    e.to_len = strlen(e.to);
    router_payload_t pl = {"<m/>", 4, NULL};
    reset_out();
    router_undeliverable(r, NULL, &e, &pl);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    /* With an offline handler: stored; but when the handler itself is the
     * unreachable node, bounced, not handed to it again (that looped). */
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t reg = {0};
    reg.kind = KN_ENV_REGISTER;
    reg.flags = KN_REG_OFFLINE;
    in("presenced", &reg, NULL);
    reset_out();
    router_undeliverable(r, NULL, &e, &pl);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    const router_node_t *h = NULL;
    for (size_t i = 0; i < ROUTER_MAX_NODES && h == NULL; i++)
        if (r->nodes[i] != NULL && strcmp(r->nodes[i]->name, "presenced") == 0)
            h = r->nodes[i];
    ck_assert_ptr_nonnull(h);
    reset_out();
    router_undeliverable(r, h, &e, &pl);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].seq, KN_STE_SERVICE_UNAVAILABLE);
}
END_TEST

/* A stored offline message from presenced (R-PRES-5). */
static void send_row(uint16_t flags, uint64_t conn, const char *to,
                     uint64_t row)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = flags;
    e.conn_id = conn;
    e.ack_id = row;
    e.from = "alice@localhost/pc";
    e.from_len = strlen(e.from);
    e.to = to;
    e.to_len = strlen(to);
    reset_out();
    in("presenced", &e, "<m/>");
}

static void expect_back(uint64_t row)
{
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert(outs[0].flags & KN_F_ACK_WANTED);
    ck_assert(outs[0].flags & KN_F_REROUTE);
    ck_assert(outs[0].ack_id == row);
    ck_assert_str_eq(outs[0].payload, "<m/>");
}

START_TEST(offline_row_only_to_its_connection_R_PRES_5)
{
    uint64_t ids[] = {5, 6};
    kn_env_t ack = {0};
    ack.kind = KN_ENV_ACK;
    ack.targets = ids;
    ack.ntargets = 2;
    /* No offline handler: an ACK has nowhere to go (the rows stay). */
    reset_out();
    in("c2s-a", &ack, NULL);
    ck_assert_int_eq(nout, 0);

    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
    sess_up("c2s-a", ia, 1, "bob@localhost/pc", 0, true);
    sess_up("c2s-b", ib, 2, "bob@localhost/phone", 5, true);

    /* To its connection, with the flag and the row id for c2s. */
    send_row(KN_F_ACK_WANTED, kn_conn_make(ia, 1), "bob@localhost/pc", 42);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 1));
    ck_assert(outs[0].flags & KN_F_ACK_WANTED);
    ck_assert(outs[0].ack_id == 42);

    /* The full JID now belongs to another connection: back, not there,
     * and not to the other resource either. */
    send_row(KN_F_ACK_WANTED, kn_conn_make(ia, 9), "bob@localhost/pc", 43);
    expect_back(43);
    /* The session is gone. */
    send_row(KN_F_ACK_WANTED, kn_conn_make(ia, 3), "bob@localhost/gone", 44);
    expect_back(44);
    /* c2s found the connection closed and rerouted it. */
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = KN_F_ACK_WANTED | KN_F_REROUTE;
    e.ack_id = 45;
    e.from = "alice@localhost/pc";
    e.from_len = strlen(e.from);
    e.to = "bob@localhost/pc";
    e.to_len = strlen(e.to);
    reset_out();
    in("c2s-a", &e, "<m/>");
    expect_back(45);
    /* The node is unreachable: back to presenced, never a bounce. */
    e.flags = KN_F_ACK_WANTED;
    e.conn_id = kn_conn_make(ia, 1);
    router_payload_t pl = {"<m/>", 4, NULL};
    reset_out();
    router_undeliverable(r, NULL, &e, &pl);
    expect_back(45);

    /* The ACK goes to the offline handler with its ids. */
    reset_out();
    in("c2s-a", &ack, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_ACK);
    ck_assert_uint_eq(outs[0].ntargets, 2);
    ck_assert(outs[0].targets[0] == 5 && outs[0].targets[1] == 6);
}
END_TEST

/* A message the offline handler was given and sent on to the bare JID
 * (KN_F_OFFLINE_RESENT: presenced counted the user available) is routed
 * like any message: where the router finds no resource for it, directly,
 * after c2s rerouted it, or when its node is unreachable, it goes back
 * to the offline handler with the flag (presenced stores it then), never
 * bounced (KN_F_NO_OFFLINE did, and presenced dropped the bounce: lost). */
static void resend(const char *to)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = KN_F_OFFLINE_RESENT;
    e.from = "alice@localhost/pc";
    e.from_len = strlen(e.from);
    e.to = to;
    e.to_len = strlen(to);
    reset_out();
    in("presenced", &e, "<m/>");
}

static void expect_stored(const char *to)
{
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert(outs[0].flags & KN_F_OFFLINE_RESENT);
    ck_assert(!(outs[0].flags & KN_F_NO_OFFLINE));
    ck_assert_str_eq(outs[0].to, to);
    ck_assert_str_eq(outs[0].payload, "<m/>");
}

START_TEST(offline_resent_message_back_to_offline_handler_R_PRES_5)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    /* No resource at all. */
    resend("carol@localhost");
    expect_stored("carol@localhost");
    /* A resource the router delivers it to, whose connection c2s found
     * closed: c2s reroutes it (c2s_reroute_env keeps the flags). */
    sess_up("c2s-b", ib, 2, "bob@localhost/phone", 0, true);
    resend("bob@localhost");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    ck_assert(outs[0].flags & KN_F_OFFLINE_RESENT);
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.conn_id = kn_conn_make(ib, 2);
    d.from = "bob@localhost/phone";
    d.from_len = strlen(d.from);
    in("c2s-b", &d, NULL);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = KN_F_OFFLINE_RESENT | KN_F_REROUTE;
    e.from = "alice@localhost/pc";
    e.from_len = strlen(e.from);
    e.to = "bob@localhost";
    e.to_len = strlen(e.to);
    reset_out();
    in("c2s-b", &e, "<m/>");
    expect_stored("bob@localhost");
    /* The resource's node is unreachable. */
    sess_up("c2s-b", ib, 3, "bob@localhost/tablet", 0, true);
    unreachable = "c2s-b";
    resend("bob@localhost");
    expect_stored("bob@localhost");
}
END_TEST

START_TEST(unreachable_offline_handler_does_not_recurse)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    sess_up("c2s-b", ib, 2, "bob@localhost/pc", 0, true);
    /* Every frame for presenced fails: a message for an offline user is
     * bounced to its sender once, not handed back and forth until the
     * stack runs out. */
    unreachable = "presenced";
    send_stanza("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT,
                "alice@localhost/pc", "carol@localhost", NULL,
                kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert(!r->undeliverable);
    /* c2s-b unreachable: its stored message comes back once. */
    unreachable = "c2s-b";
    send_row(KN_F_ACK_WANTED, kn_conn_make(ib, 2), "bob@localhost/pc", 7);
    expect_back(7);
    ck_assert(!r->undeliverable);
}
END_TEST

START_TEST(session_events_go_to_every_subscriber)
{
    const char *daemons[2] = {"presenced", "mucd"};
    for (int i = 0; i < 2; i++) {
        hello(daemons[i], KN_F_ROLE_DAEMON, 10 + (uint32_t)i);
        kn_env_t g = {0};
        g.kind = KN_ENV_REGISTER;
        g.flags = KN_REG_SESSIONS;
        in(daemons[i], &g, NULL);
    }
    reset_out();
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    ck_assert_int_eq(nout, 2);
    ck_assert_int_eq(outs[0].kind, KN_ENV_SESSION_UP);
    ck_assert_int_eq(outs[1].kind, KN_ENV_SESSION_UP);
    ck_assert_str_ne(outs[0].node, outs[1].node);
    /* Broadcast presence goes to the presence daemon only. */
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_PRESENCE;
    in("presenced", &g, NULL);
    send_stanza("c2s-a", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE,
                "alice@localhost/pc", "", NULL, kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
}
END_TEST

START_TEST(client_presence_hooks_for_presence_daemon_R_PRES_7)
{
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_PRESENCE;
    in("presenced", &g, NULL);
    hello("mucd", KN_F_ROLE_DAEMON, 4);
    g.flags = KN_REG_DOMAIN;
    g.node = "conference.localhost";
    g.node_len = strlen(g.node);
    in("mucd", &g, NULL);
    sess_up("c2s-b", ib, 2, "bob@localhost/b", 0, true);
    /* A subscription request to an online full JID goes to presenced. */
    send_stanza("c2s-a", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_SUBSCRIBE,
                "a@localhost/1", "bob@localhost/b", NULL, kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    /* Directed presence to a room: delivered, and copied to presenced. */
    send_stanza("c2s-a", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE,
                "a@localhost/1", "room@conference.localhost/nick", NULL,
                kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 2);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert(outs[0].flags & KN_F_COPY);
    ck_assert_str_eq(outs[1].node, "mucd");
    ck_assert(!(outs[1].flags & KN_F_COPY));
    /* The same from a daemon is routed directly (no loop). */
    send_stanza("presenced", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_SUBSCRIBE,
                "a@localhost", "bob@localhost/b", NULL, 0);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-b");
}
END_TEST

/* Every c2s node registers the upload domain (and its features): when the
 * latest registrant stops, an earlier one serves it again, instead of the
 * name vanishing from the server's disco#items (test_25's upload.localhost
 * went missing once test_20b's extra node had stopped). */
START_TEST(registration_outlives_its_latest_registrant)
{
    uint16_t ic = hello("c2s-c", KN_F_ROLE_C2S, 9);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_DOMAIN;
    g.node = "upload.localhost";
    g.node_len = strlen(g.node);
    in("c2s-a", &g, NULL);
    in("c2s-b", &g, NULL);
    in("c2s-c", &g, NULL);
    router_reg_t *reg = router_reg_find(r, KN_REG_DOMAIN, g.node, g.node_len);
    ck_assert_ptr_nonnull(reg);
    ck_assert_uint_eq(reg->node, ic);
    router_unregister_node(r, ic);
    reg = router_reg_find(r, KN_REG_DOMAIN, g.node, g.node_len);
    ck_assert_ptr_nonnull(reg);
    ck_assert(reg->node == ia || reg->node == ib);
    router_unregister_node(r, ia);
    router_unregister_node(r, ib);
    ck_assert_ptr_null(router_reg_find(r, KN_REG_DOMAIN, g.node, g.node_len));
}
END_TEST

START_TEST(server_disco_from_registrations)
{
    hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_IQ_NS;
    g.node = "jabber:iq:roster";
    g.node_len = strlen(g.node);
    in("presenced", &g, NULL);
    /* The same name as a feature too (presenced registers both): listed
     * once (Profanity showed each of presenced's features twice). */
    g.flags = KN_REG_FEATURE;
    in("presenced", &g, NULL);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_IQ;
    e.type = KN_ENV_TYPE_GET;
    e.from = "a@localhost/1";
    e.from_len = strlen(e.from);
    e.to = "localhost";
    e.to_len = strlen(e.to);
    e.node = "http://jabber.org/protocol/disco#info";
    e.node_len = strlen(e.node);
    e.conn_id = kn_conn_make(ia, 4);
    reset_out();
    in("c2s-a", &e,
       "<iq xmlns='jabber:client' type='get' id='d1' from='a@localhost/1' "
       "to='localhost'><query "
       "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 4));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "id='d1'"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "type='result'"));
    const char *roster = strstr(outs[0].payload, "'jabber:iq:roster'");
    ck_assert_ptr_nonnull(roster);
    ck_assert_ptr_null(strstr(roster + 1, "'jabber:iq:roster'"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "urn:xmpp:ping"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "category='server'"));
}
END_TEST

/* ---- XEP-0198 resumption through the router (router_sm.c, R-DROP-5) ---- */

#define SM_ID "0123456789abcdef0123456789abcdef"

static void sm_env(const char *node, uint16_t flags, const char *from,
                   uint64_t conn, uint64_t ack_id, const char *payload)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SM;
    e.flags = flags;
    e.from = from;
    e.from_len = strlen(from);
    e.conn_id = conn;
    e.ack_id = ack_id;
    e.node = SM_ID;
    e.node_len = strlen(SM_ID);
    reset_out();
    in(node, &e, payload);
}

static void msg_to(const char *to, const char *body)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "bob@localhost/x";
    e.from_len = strlen(e.from);
    e.to = to;
    e.to_len = strlen(to);
    reset_out();
    in("c2s-b", &e, body);
}

static void sessions_and_offline(void)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, 3);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_SESSIONS;
    in("presenced", &g, NULL);
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
}

/* Issue 14 (kill -9 of presenced): a message for an offline user handed
 * to presenced within a few ms of its kill died in the socket (nothing
 * stored, nothing bounced). The router now keeps every hand-off until the
 * handler acknowledges it and hands what is left to the next handler. */
static void offline_handler(uint32_t boot, bool acks)
{
    ip = hello("presenced", KN_F_ROLE_DAEMON, boot);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    g.seq = acks ? KN_OFFLINE_ACKS_HANDOFFS : 0;
    reset_out();
    in("presenced", &g, NULL);
}

static void handoff_ack(uint64_t id)
{
    kn_env_t a = {0};
    a.kind = KN_ENV_ACK;
    a.flags = KN_F_OFFLINE_HANDOFF;
    a.targets = &id;
    a.ntargets = 1;
    reset_out();
    in("presenced", &a, NULL);
}

START_TEST(offline_handoff_kept_until_acked_and_handed_again_R_PRES_5)
{
    offline_handler(3, true);
    ck_assert_int_eq(nout, 0);
    msg_to("carol@localhost", "<m1/>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert(outs[0].flags & KN_F_OFFLINE_HANDOFF);
    uint64_t id1 = outs[0].ack_id;
    ck_assert_uint_ne(id1, 0);
    msg_to("carol@localhost", "<m2/>");
    ck_assert_int_eq(nout, 1);
    uint64_t id2 = outs[0].ack_id;
    ck_assert_uint_gt(id2, id1);
    handoff_ack(id1);
    ck_assert_int_eq(nout, 0); /* not passed on as a row ACK */
    /* presenced killed and started again: the message it did not
     * acknowledge is handed to the new one, the acknowledged one not. */
    offline_handler(4, true);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert(outs[0].flags & KN_F_OFFLINE_HANDOFF);
    ck_assert_uint_eq(outs[0].ack_id, id2);
    ck_assert_str_eq(outs[0].to, "carol@localhost");
    ck_assert_str_eq(outs[0].payload, "<m2/>");
    handoff_ack(id2);
    offline_handler(5, true);
    ck_assert_int_eq(nout, 0);
}
END_TEST

/* The handler killed and not declared lost yet (ZeroMQ says it is
 * unreachable): the message is kept for the next handler, not bounced
 * (it was accepted: a bounce tells the sender it was not delivered). */
START_TEST(offline_handoff_to_unreachable_handler_kept_R_DROP_1)
{
    offline_handler(3, true);
    sess_up("c2s-b", ib, 2, "bob@localhost/x", 0, true);
    unreachable = "presenced";
    msg_to("carol@localhost", "<m1/>");
    ck_assert_int_eq(nout, 0); /* no bounce to bob */
    unreachable = NULL;
    offline_handler(4, true);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert(outs[0].flags & KN_F_OFFLINE_HANDOFF);
    ck_assert_str_eq(outs[0].payload, "<m1/>");
}
END_TEST

/* Issue 14 (presenced stopped): c2s's ACK of a written row reached
 * presenced after it had exited, and the row was delivered again at the
 * next login. A stopping handler says so; the router answers, then keeps
 * row ACKs and hand-offs for the next handler. */
START_TEST(stopping_offline_handler_gets_nothing_more_R_PRES_5)
{
    offline_handler(3, true);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    g.reason = KN_ENV_REASON_SHUTDOWN;
    in("presenced", &g, NULL);
    ck_assert_int_eq(nout, 1); /* the answer: no ACK of ours follows */
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_REGISTER);
    ck_assert_int_eq(outs[0].reason, KN_ENV_REASON_SHUTDOWN);
    uint64_t row = 41;
    kn_env_t ack = {0};
    ack.kind = KN_ENV_ACK;
    ack.targets = &row;
    ack.ntargets = 1;
    reset_out();
    in("c2s-a", &ack, NULL);
    ck_assert_int_eq(nout, 0);
    sess_up("c2s-b", ib, 2, "bob@localhost/x", 0, true);
    msg_to("carol@localhost", "<m1/>");
    ck_assert_int_eq(nout, 0); /* neither handed nor bounced */
    offline_handler(4, true);
    ck_assert_int_eq(nout, 2);
    ck_assert_int_eq(outs[0].kind, KN_ENV_ACK);
    ck_assert(outs[0].ntargets == 1 && outs[0].targets[0] == 41);
    ck_assert_int_eq(outs[1].kind, KN_ENV_STANZA);
    ck_assert(outs[1].flags & KN_F_OFFLINE_HANDOFF);
    ck_assert_str_eq(outs[1].payload, "<m1/>");
}
END_TEST

/* A handler that does not acknowledge hand-offs (a presenced of an
 * older build) gets plain messages, and nothing is kept for it. */
START_TEST(offline_handler_without_handoff_acks_unchanged)
{
    offline_handler(3, false);
    msg_to("carol@localhost", "<m1/>");
    ck_assert_int_eq(nout, 1);
    ck_assert(!(outs[0].flags & KN_F_OFFLINE_HANDOFF));
    ck_assert_uint_eq(outs[0].ack_id, 0);
    offline_handler(4, false);
    ck_assert_int_eq(nout, 0);
}
END_TEST

START_TEST(resume_moves_route_and_releases_held_in_order_R_DROP_5)
{
    sessions_and_offline();
    uint64_t old = kn_conn_make(ia, 1), neu = kn_conn_make(ib, 9);
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 3, true);
    sm_env("c2s-a", KN_F_SM_ENABLE, "alice@localhost/pc", old, 0, NULL);
    msg_to("alice@localhost/pc", "<m1/>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert(outs[0].flags & KN_F_SM_COPY);
    ck_assert(outs[0].ack_id == 1);
    /* <resume/> on c2s-b: forwarded to the owner with both connections. */
    sm_env("c2s-b", KN_F_SM_RESUME, "alice@localhost", neu, 0, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_int_eq(outs[0].kind, KN_ENV_SM);
    ck_assert(outs[0].flags & KN_F_SM_RESUME);
    ck_assert(outs[0].conn == old && outs[0].ack_id == neu);
    /* A second <resume/> meanwhile fails at once. */
    sm_env("c2s-b", KN_F_SM_RESUME, "alice@localhost", kn_conn_make(ib, 10), 0,
           NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert(outs[0].flags & KN_F_SM_FAILED);
    ck_assert(outs[0].ack_id == kn_conn_make(ib, 10));
    /* While moving, deliveries are held. */
    msg_to("alice@localhost/pc", "<m2/>");
    ck_assert_int_eq(nout, 0);
    msg_to("alice@localhost", "<m3/>");
    ck_assert_int_eq(nout, 0);
    /* The owner's STATE: route switched, STATE forwarded, then the held
     * stanzas in order, to the new connection. */
    sm_env("c2s-a", KN_F_SM_STATE | KN_F_SM_AVAIL, "alice@localhost/pc", old,
           neu, "QUEUE");
    ck_assert_int_eq(nout, 4);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_SESSION_UP);
    ck_assert(outs[0].flags & KN_F_MOVED);
    ck_assert(outs[0].conn == neu);
    ck_assert_str_eq(outs[1].node, "c2s-b");
    ck_assert_int_eq(outs[1].kind, KN_ENV_SM);
    ck_assert_str_eq(outs[1].payload, "QUEUE");
    ck_assert_str_eq(outs[2].payload, "<m2/>");
    ck_assert_str_eq(outs[3].payload, "<m3/>");
    ck_assert(outs[2].conn == neu && outs[3].conn == neu);
    ck_assert_str_eq(outs[2].node, "c2s-b");
    ck_assert(router_sess_find(r, "alice@localhost/pc", 18)->conn == neu);
    /* The old connection's late SESSION_DOWN does not remove the route. */
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.from = "alice@localhost/pc";
    d.from_len = 18;
    d.conn_id = old;
    reset_out();
    in("c2s-a", &d, NULL);
    ck_assert_ptr_nonnull(router_sess_find(r, "alice@localhost/pc", 18));
    /* Deliveries go to the new connection. */
    msg_to("alice@localhost/pc", "<m4/>");
    ck_assert_int_eq(nout, 1);
    ck_assert(outs[0].conn == neu);
}
END_TEST

START_TEST(resume_unknown_id_or_unreachable_owner_fails_R_DROP_5)
{
    sessions_and_offline();
    uint64_t old = kn_conn_make(ib, 1), neu = kn_conn_make(ia, 5);
    sm_env("c2s-a", KN_F_SM_RESUME, "alice@localhost", neu, 0, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert(outs[0].flags & KN_F_SM_FAILED);
    ck_assert_int_eq(outs[0].kind, KN_ENV_SM);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    sess_up("c2s-b", ib, 1, "alice@localhost/pc", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/pc", old, 0, NULL);
    /* Another user cannot resume alice's session. */
    sm_env("c2s-a", KN_F_SM_RESUME, "mallory@localhost", neu, 0, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert(outs[0].flags & KN_F_SM_FAILED);
    /* The owner's node cannot be reached: FAILED. */
    unreachable = "c2s-b";
    sm_env("c2s-a", KN_F_SM_RESUME, "alice@localhost", neu, 0, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert(outs[0].flags & KN_F_SM_FAILED);
    ck_assert(outs[0].ack_id == neu);
    ck_assert(router_sess_find(r, "alice@localhost/pc", 18)->moving_to == 0);
}
END_TEST

START_TEST(copies_rerouted_when_owner_node_is_lost_R_DROP_5)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/pc", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/pc", conn, 0, NULL);
    const char *bodies[] = {"<k1/>", "<k2/>", "<k3/>"};
    for (int i = 0; i < 3; i++) {
        msg_to("alice@localhost/pc", bodies[i]);
        ck_assert(outs[0].ack_id == (uint64_t)i + 1);
    }
    /* The client acknowledged the first. */
    sm_env("c2s-b", KN_F_SM_ACKED, "alice@localhost/pc", conn, 1, NULL);
    ck_assert_uint_eq(router_sess_find(r, "alice@localhost/pc", 18)->sm_ncopies,
                      2);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* c2s-b silent: lost */
    router_tick(r, now);
    int k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].node, "presenced");
        ck_assert(outs[i].flags & KN_F_REROUTE);
        ck_assert_str_eq(outs[i].payload, bodies[1 + k]);
        k++;
    }
    ck_assert_int_eq(k, 2);
}
END_TEST

/* A message for a resumable session whose node is dead but not yet
 * declared lost (its frames fail): not sent to offline storage at once
 * (a second copy, or a bounce while presenced still counts the session),
 * only its copy, once, when the node is lost (issue 16's soak). */
START_TEST(undeliverable_with_copy_waits_for_node_loss_R_DROP_5)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/pc", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/pc", conn, 0, NULL);
    unreachable = "c2s-b";
    msg_to("alice@localhost", "<k1/>");
    for (int i = 0; i < nout; i++)
        ck_assert_int_ne(outs[i].kind, KN_ENV_STANZA);
    ck_assert_uint_eq(router_sess_find(r, "alice@localhost/pc", 18)->sm_ncopies,
                      1);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* c2s-b silent: lost */
    router_tick(r, now);
    int k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].node, "presenced");
        ck_assert(outs[i].flags & KN_F_REROUTE);
        ck_assert_str_eq(outs[i].payload, "<k1/>");
        k++;
    }
    ck_assert_int_eq(k, 1);
}
END_TEST

/* The same full JID logs in on another node while the old one's node is
 * dead (its KICK undeliverable): nobody reroutes the old session's queue,
 * so its XEP-0198 copies are, at once (issue 16's soak lost them). */
START_TEST(conflict_with_dead_node_reroutes_copies_R_DROP_7)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/pc", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/pc", conn, 0, NULL);
    msg_to("alice@localhost", "<k1/>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    unreachable = "c2s-b";
    reset_out();
    sess_up("c2s-a", ia, 7, "alice@localhost/pc", 0, false);
    int k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].node, "presenced");
        ck_assert(outs[i].flags & KN_F_REROUTE);
        ck_assert_str_eq(outs[i].payload, "<k1/>");
        k++;
    }
    ck_assert_int_eq(k, 1);
    ck_assert(router_sess_find(r, "alice@localhost/pc", 18)->conn ==
              kn_conn_make(ia, 7));
    /* With the old node alive, it reroutes its own queue: no copy. */
    unreachable = NULL;
    sm_env("c2s-a", KN_F_SM_ENABLE, "alice@localhost/pc", kn_conn_make(ia, 7),
           0, NULL);
    msg_to("alice@localhost/pc", "<k2/>");
    reset_out();
    sess_up("c2s-b", ib, 8, "alice@localhost/pc", 0, false);
    for (int i = 0; i < nout; i++)
        ck_assert_int_ne(outs[i].kind, KN_ENV_STANZA);
}
END_TEST

/* Issue 14 (tests/cluster, kill -9 of a c2s node): a client logs in again
 * on another node while its old session still has a route on the dead
 * one. A message to the bare JID goes to both; the copy that cannot
 * reach the dead node must not be rerouted (offline storage, then the
 * new session again: delivered twice). */
START_TEST(fanout_copy_to_unreachable_node_not_rerouted_R_DROP_6)
{
    sessions_and_offline();
    sess_up("c2s-a", ia, 1, "alice@localhost/new", 0, true);
    sess_up("c2s-b", ib, 2, "alice@localhost/old", 0, true);
    unreachable = "c2s-b";
    msg_to("alice@localhost", "<m1/>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert(outs[0].conn == kn_conn_make(ia, 1));
    ck_assert_str_eq(outs[0].payload, "<m1/>");
    /* Every copy fails: the message goes on once (offline storage). */
    sess_up("c2s-b", ib, 3, "carol@localhost/pc", 0, true);
    sess_up("c2s-b", ib, 4, "carol@localhost/phone", 0, true);
    msg_to("carol@localhost", "<m2/>");
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert(!(outs[0].flags & KN_F_EXTRA_COPY));
    ck_assert_str_eq(outs[0].payload, "<m2/>");
}
END_TEST

/* The same with the router's XEP-0198 copies: the node is declared lost
 * later; the copy of a message that the user's other session got is not
 * rerouted, a copy of one only the lost session had is. */
START_TEST(fanout_copy_of_lost_session_not_rerouted_R_DROP_5)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/old", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/old", conn, 0, NULL);
    msg_to("alice@localhost", "<only-old/>");
    ck_assert_int_eq(nout, 1);
    sess_up("c2s-a", ia, 1, "alice@localhost/new", 0, true);
    msg_to("alice@localhost", "<both/>");
    ck_assert_int_eq(nout, 2);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* c2s-b silent: lost */
    router_tick(r, now);
    int k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].payload, "<only-old/>");
        ck_assert_str_eq(outs[i].node, "c2s-a"); /* rerouted to /new */
        k++;
    }
    ck_assert_int_eq(k, 1);
}
END_TEST

/* Issue 14 (kill -9 of presenced): c2s's ACKs of written offline rows
 * while no offline handler is there are kept for the next one, which
 * deletes the rows; they used to be dropped and the rows delivered
 * again at the next login. */
START_TEST(offline_acks_held_until_a_handler_registers_R_PRES_5)
{
    uint64_t ids[2] = {5, 6};
    kn_env_t ack = {0};
    ack.kind = KN_ENV_ACK;
    ack.targets = ids;
    ack.ntargets = 2;
    reset_out();
    in("c2s-a", &ack, NULL);
    ck_assert_int_eq(nout, 0);
    sessions_and_offline();
    int k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_ACK)
            continue;
        ck_assert_str_eq(outs[i].node, "presenced");
        ck_assert_uint_eq(outs[i].ntargets, 2);
        ck_assert(outs[i].targets[0] == 5 && outs[i].targets[1] == 6);
        k++;
    }
    ck_assert_int_eq(k, 1);
    /* Unreachable handler: held again, sent when it registers anew. */
    unreachable = "presenced";
    uint64_t id7 = 7;
    ack.targets = &id7;
    ack.ntargets = 1;
    in("c2s-a", &ack, NULL);
    unreachable = NULL;
    reset_out();
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    in("presenced", &g, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_ACK);
    /* the held one, then those sent on before (row_acks_sent_on_...) */
    ck_assert_uint_eq(outs[0].ntargets, 3);
    ck_assert(outs[0].targets[0] == 7 && outs[0].targets[1] == 5 &&
              outs[0].targets[2] == 6);
}
END_TEST

/* Issue 14 (kill -9 of presenced): a row ACK the router had sent on to
 * presenced just before its kill died in the socket (or its delete had
 * not committed), and the row was delivered again at the next login. The
 * router gives the row ACKs it sent on recently to the next handler that
 * registers (deleting a row twice is harmless). */
START_TEST(row_acks_sent_on_given_again_to_the_next_handler_R_PRES_5)
{
    sessions_and_offline();
    uint64_t id = 11;
    kn_env_t ack = {0};
    ack.kind = KN_ENV_ACK;
    ack.targets = &id;
    ack.ntargets = 1;
    reset_out();
    in("c2s-a", &ack, NULL);
    ck_assert_int_eq(nout, 1); /* sent on: presenced is there */
    ck_assert_str_eq(outs[0].node, "presenced");
    /* killed now; the next presenced registers */
    hello("presenced", KN_F_ROLE_DAEMON, 4);
    kn_env_t g = {0};
    g.kind = KN_ENV_REGISTER;
    g.flags = KN_REG_OFFLINE;
    reset_out();
    in("presenced", &g, NULL);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_ACK);
    ck_assert(outs[0].ntargets == 1 && outs[0].targets[0] == 11);
}
END_TEST

/* Issue 14 (tests/cluster, rolling restart): a client logged out while
 * the router restarted; its node's SESSION_DOWN reached the new router
 * before the node's HELLO and was dropped, and the session was not
 * re-announced (it was gone): presenced, which did not restart, kept the
 * resource available for good, so a message to the user while offline
 * was resent to the bare JID instead of stored, and bounced: lost. The
 * SESSION_DOWN is held with the warm-up and reaches the subscribers. */
START_TEST(session_down_during_router_restart_reaches_subscribers_R_DROP_1)
{
    router_restarted();
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.reason = KN_ENV_REASON_CLEAN;
    d.conn_id = kn_conn_make(5, 1);
    d.from = "alice@localhost/pc";
    d.from_len = strlen(d.from);
    in("c2s-a", &d, NULL);
    sessions_and_offline();
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S;
    e.conn_id = kn_conn_make(5, 0);
    in("c2s-a", &e, NULL);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    hb.flags = KN_F_SYNCED;
    in("c2s-a", &hb, NULL);
    reset_out();
    now += 3.0;
    router_tick(r, now);
    int downs = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_SESSION_DOWN) {
            downs++;
            ck_assert_str_eq(outs[i].node, "presenced");
            ck_assert_uint_eq(outs[i].conn, kn_conn_make(5, 1));
        }
    ck_assert_int_eq(downs, 1);
}
END_TEST

/* Issue 14 (tests/cluster, partition): the router declared a c2s node
 * lost and rerouted its copies of the unacknowledged messages; after the
 * heal, before the node heard of it, a client logged out there and the
 * node rerouted its own queue, the same messages: stored twice. A
 * reroute of a copied message (KN_F_SM_COPY) from a node declared lost
 * is dropped. */
START_TEST(reroute_of_copied_message_from_lost_node_dropped_R_DROP_6)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/pc", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/pc", conn, 0, NULL);
    msg_to("alice@localhost/pc", "<k1/>");
    ck_assert(outs[0].flags & KN_F_SM_COPY);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* c2s-b silent: lost, its copy rerouted once */
    router_tick(r, now);
    int k = 0;
    for (int i = 0; i < nout; i++)
        k += outs[i].kind == KN_ENV_STANZA;
    ck_assert_int_eq(k, 1);
    /* c2s-b's own reroute of the same message */
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = KN_F_REROUTE | KN_F_SM_COPY;
    e.ack_id = 1;
    e.from = "bob@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "alice@localhost/pc";
    e.to_len = strlen(e.to);
    reset_out();
    in("c2s-b", &e, "<k1/>");
    /* a message it had not got a copy for still goes on */
    e.flags = KN_F_REROUTE;
    e.ack_id = 0;
    in("c2s-b", &e, "<k2/>");
    now = 117.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    now = 120.0; /* past the warm-up */
    router_tick(r, now);
    k = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].payload, "<k2/>");
        k++;
    }
    ck_assert_int_eq(k, 1);
}
END_TEST

/* Issue 14 (CI, tests/cluster short form, partition): the router declared
 * c2s-b lost; at the heal, frames c2s-b had sent during the partition came
 * out of its socket before it heard it was lost. The router held them for
 * the warm-up and routed them (the senders' messages, accepted by c2s-b);
 * c2s-b, re-synced, sent them again from its unacknowledged queue with the
 * same link ids, and the router, which had not counted them for the lost
 * node, routed them a second time: delivered twice. */
START_TEST(frames_of_lost_node_routed_once_across_its_resync_R_DROP_6)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "bob@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "alice@localhost/pc";
    e.to_len = strlen(e.to);
    e.link = 1;
    reset_out();
    in("c2s-b", &e, "<k1/>");
    ck_assert_int_eq(nout, 1);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    now = 116.0; /* c2s-b silent for node_timeout: lost */
    router_tick(r, now);
    in("c2s-a", &hb, NULL);
    /* the partition heals: k2 and k3 come out of c2s-b's socket */
    reset_out();
    e.link = 2;
    in("c2s-b", &e, "<k2/>");
    e.link = 3;
    in("c2s-b", &e, "<k3/>");
    now = 117.5; /* the hold of an unknown sender's frames ends */
    in("c2s-a", &hb, NULL);
    router_tick(r, now);
    /* c2s-b hears the REHELLO: the same run, it re-syncs and resends its
     * unacknowledged frames, then a new one */
    kn_env_t h = {0};
    h.kind = KN_ENV_HELLO;
    h.flags = KN_F_ROLE_C2S;
    h.seq = 2;
    h.conn_id = kn_conn_make(ib, 0);
    in("c2s-b", &h, NULL);
    for (uint64_t l = 1; l <= 3; l++) {
        e.link = l;
        in("c2s-b", &e, l == 1 ? "<k1/>" : l == 2 ? "<k2/>" : "<k3/>");
    }
    e.link = 4;
    in("c2s-b", &e, "<k4/>");
    now = 120.0;
    router_tick(r, now);
    int k2 = 0, k3 = 0, k4 = 0, other = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_str_eq(outs[i].node, "c2s-a");
        if (strcmp(outs[i].payload, "<k2/>") == 0)
            k2++;
        else if (strcmp(outs[i].payload, "<k3/>") == 0)
            k3++;
        else if (strcmp(outs[i].payload, "<k4/>") == 0)
            k4++;
        else
            other++;
    }
    ck_assert_int_eq(k2, 1);
    ck_assert_int_eq(k3, 1);
    ck_assert_int_eq(k4, 1);
    ck_assert_int_eq(other, 0);
}
END_TEST

/* Issue 14 (tests/cluster, rolling restart of the router, short runs:
 * 1 message lost in about 1 run in 4): a message sent just as the router
 * stopped stayed in its node's link queue (the old router never
 * acknowledged it); the node's next frames, sent to the new router
 * before it heard of the restart, were held (unknown sender); after its
 * HELLO it sent its unacknowledged frames again, the old one first. The
 * held newer frames were routed first, and the older one was then
 * dropped as already routed: lost. Held frames of a node that says HELLO
 * in the same run are dropped: its resend brings them, in order. */
START_TEST(frames_held_before_a_resync_routed_in_link_order_R_DROP_6)
{
    router_restarted();
    kn_env_t h = {0};
    h.kind = KN_ENV_HELLO;
    h.flags = KN_F_ROLE_C2S; /* not FRESH: it re-announces */
    h.seq = 1;
    h.conn_id = kn_conn_make(5, 0);
    in("c2s-a", &h, NULL);
    sess_up("c2s-a", 5, 1, "alice@localhost/pc", 0, true);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "bob@localhost/p";
    e.from_len = strlen(e.from);
    e.to = "alice@localhost/pc";
    e.to_len = strlen(e.to);
    e.link = 5; /* sent after the old router died: reaches us first */
    in("c2s-b", &e, "<k5/>");
    h.seq = 2;
    h.conn_id = kn_conn_make(6, 0);
    in("c2s-b", &h, NULL);
    sess_up("c2s-b", 6, 1, "bob@localhost/p", 0, true);
    e.link = 4; /* the old router's, never acknowledged: resent */
    in("c2s-b", &e, "<k4/>");
    e.link = 5;
    in("c2s-b", &e, "<k5/>");
    e.link = 6; /* a new one */
    in("c2s-b", &e, "<k6/>");
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    hb.flags = KN_F_SYNCED;
    in("c2s-a", &hb, NULL);
    reset_out();
    in("c2s-b", &hb, NULL);
    now += 3.0;
    router_tick(r, now);
    int k4 = 0, k5 = 0, k6 = 0, order = 0;
    for (int i = 0; i < nout; i++) {
        if (outs[i].kind != KN_ENV_STANZA)
            continue;
        ck_assert_uint_eq(outs[i].conn, kn_conn_make(5, 1));
        if (strcmp(outs[i].payload, "<k4/>") == 0)
            order = order * 10 + 4, k4++;
        else if (strcmp(outs[i].payload, "<k5/>") == 0)
            order = order * 10 + 5, k5++;
        else if (strcmp(outs[i].payload, "<k6/>") == 0)
            order = order * 10 + 6, k6++;
    }
    ck_assert_int_eq(k4, 1);
    ck_assert_int_eq(k5, 1);
    ck_assert_int_eq(k6, 1);
    ck_assert_int_eq(order, 456);
}
END_TEST

/* Issue 14 (tests/cluster, rolling restart of the router): a message the
 * router delivered just before its SIGTERM was not acknowledged to its
 * sender's node yet (it acknowledges what it routed 250 ms before); the
 * node sent it again to the next router, which routed it again: a second
 * copy, through offline storage when the recipient had logged out
 * meanwhile. At the stop the router acknowledges every frame it routed
 * and routes no more data frames (their nodes send them to the next
 * router); control frames still count. */
START_TEST(stopping_router_acks_what_it_routed_and_routes_no_more_R_DROP_6)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 0, true);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "bob@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "alice@localhost/pc";
    e.to_len = strlen(e.to);
    e.link = 7;
    reset_out();
    in("c2s-b", &e, "<k7/>");
    ck_assert_int_eq(nout, 1);
    reset_out();
    router_stop_routing(r);
    int acked_b = 0;
    for (int i = 0; i < nout; i++) {
        ck_assert_int_eq(outs[i].kind, KN_ENV_HEARTBEAT);
        if (strcmp(outs[i].node, "c2s-b") == 0) {
            ck_assert_uint_ge(outs[i].ntargets, KN_LINK_T_COUNT);
            ck_assert(outs[i].targets[KN_LINK_T_ACKED] == 7);
            acked_b++;
        }
    }
    ck_assert_int_eq(acked_b, 1);
    /* A later frame is left to the next router: not routed. */
    reset_out();
    e.link = 8;
    in("c2s-b", &e, "<k8/>");
    ck_assert_int_eq(nout, 0);
    /* A session's end still counts. */
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.conn_id = kn_conn_make(ia, 1);
    d.from = "alice@localhost/pc";
    d.from_len = strlen(d.from);
    in("c2s-a", &d, NULL);
    ck_assert_ptr_null(router_sess_find(r, "alice@localhost/pc",
                                        strlen("alice@localhost/pc")));
}
END_TEST

/* Issue 14 (tests/cluster, rolling restart at 1,000 users): after the
 * fixed warm-up a node may still be re-announcing its sessions; the
 * router holds on until it said SYNCED (a message routed before found no
 * session, went offline, was sent back by presenced, which still had the
 * resource, and bounced: lost), at most node_timeout. */
START_TEST(warm_up_waits_for_nodes_to_sync_R_DROP_6)
{
    router_restarted();
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S; /* not FRESH: it re-announces */
    e.conn_id = kn_conn_make(5, 0);
    in("c2s-a", &e, NULL);
    send_stanza("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "bob@localhost/p",
                "alice@localhost/pc", NULL, 0);
    reset_out();
    now += 3.0;
    router_tick(r, now); /* fixed warm-up over, c2s-a not synced */
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    in("c2s-a", &hb, NULL);
    now += 1.0;
    router_tick(r, now);
    for (int i = 0; i < nout; i++)
        ck_assert_int_ne(outs[i].kind, KN_ENV_STANZA);
    sess_up("c2s-a", 5, 1, "alice@localhost/pc", 0, true);
    hb.flags = KN_F_SYNCED;
    in("c2s-a", &hb, NULL);
    reset_out();
    now += 1.0;
    router_tick(r, now);
    int delivered = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_STANZA) {
            delivered++;
            ck_assert_uint_eq(outs[i].conn, kn_conn_make(5, 1));
        }
    ck_assert_int_eq(delivered, 1);
}
END_TEST

/* A node that never syncs holds nothing back past node_timeout. */
START_TEST(warm_up_wait_bounded_by_node_timeout_R_DROP_6)
{
    router_restarted();
    sessions_and_offline();
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S;
    e.conn_id = kn_conn_make(5, 0);
    in("c2s-a", &e, NULL);
    send_stanza("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "bob@localhost/p",
                "alice@localhost/pc", NULL, 0);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    hb.flags = KN_F_SYNCED;
    in("presenced", &hb, NULL);
    now += 3.0;
    router_tick(r, now);
    reset_out();
    now += 16.0;
    in("presenced", &hb, NULL);
    router_tick(r, now);
    int stored = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_STANZA) {
            stored++;
            ck_assert_str_eq(outs[i].node, "presenced");
        }
    ck_assert_int_eq(stored, 1);
}
END_TEST

/* Issue 14 (tests/cluster, rolling restart): after a router restart a
 * client bound a session on a node that had said HELLO before presenced
 * registered again; presenced never heard of it, dropped its presence
 * ("without a session") and ran no login flow: its offline messages
 * stayed stored. A new session-event subscriber is told every session. */
START_TEST(session_subscriber_told_existing_sessions_R_PRES_7)
{
    sess_up("c2s-a", ia, 1, "alice@localhost/pc", 3, true);
    reset_out();
    sessions_and_offline();
    int ups = 0;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_SESSION_UP) {
            ups++;
            ck_assert_str_eq(outs[i].node, "presenced");
            ck_assert_uint_eq(outs[i].conn, kn_conn_make(ia, 1));
            ck_assert(outs[i].flags & KN_F_AVAILABLE);
        }
    ck_assert_int_eq(ups, 1);
}
END_TEST

/* Issue 14 (tests/cluster, kill -9 of c2s1): a client that logged in
 * again elsewhere got a message to its bare JID on the new session (the
 * send to the old, resumable one on the dead node failed) and logged out
 * cleanly before the node was declared lost; the old session's copy was
 * rerouted then: delivered twice. A failed copy of a fan-out that
 * reached another session is forgotten. */
START_TEST(fanout_failed_copy_forgotten_when_another_got_it_R_DROP_5)
{
    sessions_and_offline();
    uint64_t conn = kn_conn_make(ib, 4);
    sess_up("c2s-b", ib, 4, "alice@localhost/old", 0, true);
    sm_env("c2s-b", KN_F_SM_ENABLE, "alice@localhost/old", conn, 0, NULL);
    sess_up("c2s-a", ia, 1, "alice@localhost/new", 0, true);
    unreachable = "c2s-b";
    msg_to("alice@localhost", "<m/>");
    unreachable = NULL;
    int k = 0;
    for (int i = 0; i < nout; i++)
        k += outs[i].kind == KN_ENV_STANZA;
    ck_assert_int_eq(k, 1); /* c2s-a's */
    kn_env_t d = {0};
    d.kind = KN_ENV_SESSION_DOWN;
    d.reason = KN_ENV_REASON_CLEAN;
    d.conn_id = kn_conn_make(ia, 1);
    d.from = "alice@localhost/new";
    d.from_len = strlen(d.from);
    in("c2s-a", &d, NULL);
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    now = 110.0;
    in("c2s-a", &hb, NULL);
    in("presenced", &hb, NULL);
    reset_out();
    now = 116.0; /* c2s-b silent: lost */
    router_tick(r, now);
    for (int i = 0; i < nout; i++)
        ck_assert_int_ne(outs[i].kind, KN_ENV_STANZA);
}
END_TEST

int main(void)
{
    kn_log_init("test", KN_LOG_ERR);
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("route");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, full_jid_across_nodes_R_ARCH_2);
    tcase_add_test(tc, bare_jid_highest_priority_R_ARCH_3);
    tcase_add_test(tc, message_to_unavailable_full_goes_to_bare_R_ARCH_3);
    tcase_add_test(tc, offline_without_handler_bounces_and_with_handler_stores);
    tcase_add_test(tc, iq_and_presence_to_unavailable_full_R_ARCH_4);
    tcase_add_test(tc, iq_namespace_dispatch);
    tcase_add_test(tc, account_namespace_dispatch);
    tcase_add_test(tc, other_domain_and_registered_domain);
    tcase_add_test(tc, conflict_kicks_old_session_R_DROP_7);
    tcase_add_test(tc, multicast_split_per_node);
    tcase_add_test(tc, node_lost_ends_its_sessions_R_DROP_6);
    tcase_add_test(tc, registration_outlives_its_latest_registrant);
    tcase_add_test(tc, restarted_node_clears_stale_sessions);
    tcase_add_test(tc, warm_up_holds_stanzas_until_sessions_return);
    tcase_add_test(tc,
                   fanout_failed_copy_forgotten_when_another_got_it_R_DROP_5);
    tcase_add_test(tc, session_subscriber_told_existing_sessions_R_PRES_7);
    tcase_add_test(tc,
                   frames_held_before_a_resync_routed_in_link_order_R_DROP_6);
    tcase_add_test(
        tc, stopping_router_acks_what_it_routed_and_routes_no_more_R_DROP_6);
    tcase_add_test(tc, warm_up_waits_for_nodes_to_sync_R_DROP_6);
    tcase_add_test(tc, warm_up_wait_bounded_by_node_timeout_R_DROP_6);
    tcase_add_test(tc, undeliverable_message_goes_offline_or_bounces);
    tcase_add_test(tc, undeliverable_with_copy_waits_for_node_loss_R_DROP_5);
    tcase_add_test(tc, conflict_with_dead_node_reroutes_copies_R_DROP_7);
    tcase_add_test(tc, offline_row_only_to_its_connection_R_PRES_5);
    tcase_add_test(tc, offline_resent_message_back_to_offline_handler_R_PRES_5);
    tcase_add_test(tc, unreachable_offline_handler_does_not_recurse);
    tcase_add_test(tc, server_disco_from_registrations);
    tcase_add_test(tc, session_events_go_to_every_subscriber);
    tcase_add_test(tc, client_presence_hooks_for_presence_daemon_R_PRES_7);
    tcase_add_test(tc, iq_answer_to_bare_jid_goes_to_presence_daemon_XEP_0357);
    tcase_add_test(tc, resume_moves_route_and_releases_held_in_order_R_DROP_5);
    tcase_add_test(tc, resume_unknown_id_or_unreachable_owner_fails_R_DROP_5);
    tcase_add_test(tc, copies_rerouted_when_owner_node_is_lost_R_DROP_5);
    tcase_add_test(tc, fanout_copy_to_unreachable_node_not_rerouted_R_DROP_6);
    tcase_add_test(tc, fanout_copy_of_lost_session_not_rerouted_R_DROP_5);
    tcase_add_test(tc, offline_acks_held_until_a_handler_registers_R_PRES_5);
    tcase_add_test(tc,
                   row_acks_sent_on_given_again_to_the_next_handler_R_PRES_5);
    tcase_add_test(tc,
                   offline_handoff_kept_until_acked_and_handed_again_R_PRES_5);
    tcase_add_test(tc, offline_handoff_to_unreachable_handler_kept_R_DROP_1);
    tcase_add_test(tc, stopping_offline_handler_gets_nothing_more_R_PRES_5);
    tcase_add_test(tc, offline_handler_without_handoff_acks_unchanged);
    tcase_add_test(
        tc, session_down_during_router_restart_reaches_subscribers_R_DROP_1);
    tcase_add_test(tc,
                   reroute_of_copied_message_from_lost_node_dropped_R_DROP_6);
    tcase_add_test(tc,
                   frames_of_lost_node_routed_once_across_its_resync_R_DROP_6);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
