/*
 * test_router_lease.c - two routers, one active (issue 14, "no single
 * router"): the lease and epoch state machine (router_lease.c), and the
 * router logic around it: a standby answers only heartbeats, with
 * KN_F_STANDBY, and routes nothing; taking over asks the nodes it heard of
 * to HELLO and carries the new epoch; losing the lease stops routing at
 * once; link sequences are acknowledged one period late and a frame sent
 * again after a re-sync is not routed twice.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_log.h"
#include "kn_proto.h"
#include "router.h"
#include "router_lease.h"

/* ---- the state machine ---- */

START_TEST(lease_off_is_always_active)
{
    router_lease_t rl;
    router_lease_init(&rl, 0, 10.0);
    ck_assert(router_lease_active(&rl));
    ck_assert_int_eq(router_lease_tick(&rl, 11.0), ROUTER_LEASE_NONE);
    ck_assert_int_eq(router_lease_tick(&rl, 1e9), ROUTER_LEASE_NONE);
    ck_assert(router_lease_active(&rl));
    ck_assert_uint_eq(rl.epoch, 0);
}
END_TEST

START_TEST(lease_acquire_renew_and_expire)
{
    router_lease_t rl;
    router_lease_init(&rl, 3000, 10.0);
    ck_assert(!router_lease_active(&rl));
    ck_assert_int_eq(router_lease_tick(&rl, 10.0), ROUTER_LEASE_ACQUIRE);
    uint64_t id = rl.req_id;
    /* Nothing more while the request is in flight. */
    ck_assert_int_eq(router_lease_tick(&rl, 10.1), ROUTER_LEASE_NONE);
    /* Refused: someone holds it; retry later, not at once. */
    router_lease_reply(&rl, id, false, false, 0, 10.2);
    ck_assert(!router_lease_active(&rl));
    ck_assert_int_eq(router_lease_tick(&rl, 10.3), ROUTER_LEASE_NONE);
    ck_assert_int_eq(router_lease_tick(&rl, 10.6), ROUTER_LEASE_ACQUIRE);
    id = rl.req_id;
    router_lease_reply(&rl, id, false, true, 42, 10.61);
    ck_assert(router_lease_active(&rl));
    ck_assert_uint_eq(rl.epoch, 42);
    /* Counted from when the request left, not from the answer, and a
     * sixteenth of the lease short. */
    ck_assert(rl.expires > 13.41 && rl.expires < 13.42);
    /* A stale answer changes nothing. */
    router_lease_reply(&rl, id, false, false, 0, 10.7);
    ck_assert(router_lease_active(&rl));
    /* Renewed after a third of the lease. */
    ck_assert_int_eq(router_lease_tick(&rl, 11.0), ROUTER_LEASE_NONE);
    ck_assert_int_eq(router_lease_tick(&rl, 11.7), ROUTER_LEASE_RENEW);
    router_lease_reply(&rl, rl.req_id, false, true, 0, 11.71);
    ck_assert(rl.expires > 14.51 && rl.expires < 14.52);
    /* Renewals stop being answered (Redis unreachable): we stop believing
     * in the lease when it expires by our count, with no answer needed. */
    ck_assert_int_eq(router_lease_tick(&rl, 12.8), ROUTER_LEASE_RENEW);
    ck_assert(router_lease_active(&rl));
    ck_assert_int_eq(router_lease_tick(&rl, 14.0), ROUTER_LEASE_NONE);
    ck_assert_int_eq(router_lease_tick(&rl, 14.4), ROUTER_LEASE_RENEW);
    router_lease_reply(&rl, rl.req_id, true, false, 0, 14.5); /* error */
    ck_assert(router_lease_active(&rl));
    router_lease_tick(&rl, 14.71);
    ck_assert(!router_lease_active(&rl));
    ck_assert_uint_eq(rl.lost, 1);
    /* A late answer to the last renewal does not bring it back. */
    router_lease_reply(&rl, rl.req_id, false, true, 0, 14.8);
    ck_assert(!router_lease_active(&rl));
}
END_TEST

/* Fencing (issue 14): a router cut off from Redis must stop before Redis
 * can let the key expire, with room for a timer that fires late, since
 * the other router may take the lease the moment Redis drops it. Redis
 * counts lease_ms from when it got our request, at the earliest when we
 * sent it. The cluster test saw a cut-off router stop 0.1 s after the
 * other took over when the stop waited for the next periodic tick. */
START_TEST(lease_stops_before_redis_can_expire_it)
{
    router_lease_t rl;
    router_lease_init(&rl, 1500, 0.0);
    ck_assert_int_eq(router_lease_tick(&rl, 0.0), ROUTER_LEASE_ACQUIRE);
    router_lease_reply(&rl, rl.req_id, false, true, 3, 0.0);
    ck_assert(router_lease_active(&rl));
    /* Redis lets it go at 1.5 s at the earliest: we stop a sixteenth of
     * a lease before (the caller wakes up at rl.expires). */
    ck_assert(rl.expires <= 1.5 - 1.5 / 16.0 + 1e-9);
    ck_assert(rl.expires > 1.0);
    router_lease_tick(&rl, rl.expires - 0.001);
    ck_assert(router_lease_active(&rl));
    router_lease_tick(&rl, rl.expires);
    ck_assert(!router_lease_active(&rl));
}
END_TEST

START_TEST(lease_renew_refused_stops_at_once)
{
    router_lease_t rl;
    router_lease_init(&rl, 2000, 0.0);
    ck_assert_int_eq(router_lease_tick(&rl, 0.0), ROUTER_LEASE_ACQUIRE);
    router_lease_reply(&rl, rl.req_id, false, true, 7, 0.01);
    ck_assert(router_lease_active(&rl));
    ck_assert_int_eq(router_lease_tick(&rl, 0.7), ROUTER_LEASE_RENEW);
    /* The key holds someone else's name|epoch: stop before expiry. */
    router_lease_reply(&rl, rl.req_id, false, false, 0, 0.71);
    ck_assert(!router_lease_active(&rl));
    ck_assert_uint_eq(rl.lost, 1);
    /* Try again later (a new epoch, if it ever wins). */
    ck_assert_int_eq(router_lease_tick(&rl, 0.72), ROUTER_LEASE_NONE);
    ck_assert_int_eq(router_lease_tick(&rl, 1.0), ROUTER_LEASE_ACQUIRE);
    router_lease_reply(&rl, rl.req_id, false, true, 9, 1.01);
    ck_assert(router_lease_active(&rl));
    ck_assert_uint_eq(rl.epoch, 9);
}
END_TEST

START_TEST(lease_unanswered_request_is_given_up)
{
    router_lease_t rl;
    router_lease_init(&rl, 2000, 0.0);
    ck_assert_int_eq(router_lease_tick(&rl, 0.0), ROUTER_LEASE_ACQUIRE);
    uint64_t id = rl.req_id;
    ck_assert_int_eq(router_lease_tick(&rl, 0.5), ROUTER_LEASE_NONE);
    /* Half a lease without an answer: a new request, the old id stale. */
    ck_assert_int_eq(router_lease_tick(&rl, 1.1), ROUTER_LEASE_ACQUIRE);
    router_lease_reply(&rl, id, false, true, 5, 1.2);
    ck_assert(!router_lease_active(&rl));
    router_lease_reply(&rl, rl.req_id, false, true, 6, 1.2);
    ck_assert(router_lease_active(&rl));
    ck_assert_uint_eq(rl.epoch, 6);
    router_lease_release(&rl);
    ck_assert(!router_lease_active(&rl));
}
END_TEST

/* ---- the router around it ---- */

#define MAXOUT 64
typedef struct out {
    char node[64];
    kn_env_kind_t kind;
    uint16_t flags;
    uint64_t conn, link;
    size_t ntargets;
    uint64_t targets[4];
    char to[128];
} out_t;

static out_t outs[MAXOUT];
static int nout;
/* The link ids of every stanza delivered since rsetup (across calls). */
static uint64_t got[MAXOUT];
static int ngot;
static router_t *r;
static double now = 100.0;

static void cap_send(void *ud, const router_node_t *to, const kn_env_t *env,
                     const router_payload_t *pl)
{
    (void)ud;
    (void)pl;
    ck_assert_int_lt(nout, MAXOUT);
    out_t *o = &outs[nout++];
    memset(o, 0, sizeof(*o));
    snprintf(o->node, sizeof(o->node), "%s", to->name);
    o->kind = env->kind;
    o->flags = env->flags;
    o->conn = env->conn_id;
    o->link = r->cur_link; /* what router_io.c stamps */
    o->ntargets = env->ntargets;
    for (size_t i = 0; i < env->ntargets && i < 4; i++)
        o->targets[i] = kn_env_target(env, i);
    snprintf(o->to, sizeof(o->to), "%.*s", (int)env->to_len, env->to);
    if (env->kind == KN_ENV_STANZA && ngot < MAXOUT)
        got[ngot++] = r->cur_link;
}

static void in(const char *node, const kn_env_t *env)
{
    router_payload_t pl = {"<message/>", 10, NULL};
    nout = 0;
    router_handle(r, node, strlen(node), env, &pl, now);
}

static void hb(const char *node, uint16_t flags)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.flags = flags;
    e.seq = 1;
    in(node, &e);
}

static uint16_t hello(const char *node, uint16_t idx)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S;
    e.seq = 1;
    e.conn_id = kn_conn_make(idx, 0);
    in(node, &e);
    return nout == 1 ? kn_conn_node(outs[0].conn) : 0;
}

static void msg(const char *node, uint16_t idx, const char *to, uint64_t link)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "a@localhost/x";
    e.from_len = strlen(e.from);
    e.to = to;
    e.to_len = strlen(to);
    e.conn_id = kn_conn_make(idx, 5);
    e.link = link;
    in(node, &e);
}

static void sess_up(const char *node, uint16_t idx, const char *full)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.conn_id = kn_conn_make(idx, 9);
    e.from = full;
    e.from_len = strlen(full);
    e.flags = KN_F_AVAILABLE;
    in(node, &e);
}

static void rsetup(void)
{
    r = router_new("localhost", 77, 5.0, cap_send, NULL);
    r->warm_s = 2.5;
    r->standby = true; /* as main.c does with router.lease_ms > 0 */
    now = 100.0;
    ngot = 0;
}

static void rteardown(void)
{
    router_free(&r);
}

START_TEST(standby_answers_heartbeats_only)
{
    hb("c2s-a", 0);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_HEARTBEAT);
    ck_assert(outs[0].flags & KN_F_STANDBY);
    ck_assert_uint_eq(outs[0].ntargets, KN_LINK_T_COUNT);
    /* A HELLO gets no ACK: the node is not taken into a table. */
    ck_assert_uint_eq(hello("c2s-a", 3), 0);
    ck_assert_int_eq(nout, 1);
    ck_assert(outs[0].flags & KN_F_STANDBY);
    ck_assert(!(outs[0].flags & KN_F_ACK));
    ck_assert_ptr_null(r->nodes_by_name);
    /* Data is not routed, nor answered. */
    msg("c2s-a", 3, "b@localhost/y", 1);
    ck_assert_int_eq(nout, 0);
    ck_assert_uint_eq(r->standby_dropped, 1);
}
END_TEST

START_TEST(takeover_tells_nodes_and_fences_with_epoch)
{
    hb("c2s-a", 0);
    hb("c2s-b", 0);
    nout = 0;
    router_become_active(r, 1234, now);
    ck_assert(!r->standby);
    router_wake_peers(r, now);
    /* Both nodes heard as a standby are asked to HELLO, with the epoch. */
    ck_assert_int_eq(nout, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(outs[i].kind, KN_ENV_HELLO);
        ck_assert(outs[i].flags & KN_F_REHELLO);
        ck_assert(!(outs[i].flags & KN_F_STANDBY));
        ck_assert_uint_eq(outs[i].targets[KN_LINK_T_EPOCH], 1234);
    }
    /* Nodes HELLO keeping their indices; the ACK carries the epoch. */
    ck_assert_uint_eq(hello("c2s-a", 3), 3);
    ck_assert(outs[0].flags & KN_F_ACK);
    ck_assert_uint_eq(outs[0].targets[KN_LINK_T_EPOCH], 1234);
    ck_assert_uint_eq(hello("c2s-b", 4), 4);
    sess_up("c2s-b", 4, "b@localhost/y");
    /* Warm-up: held until every node it heard of has re-synced. */
    msg("c2s-a", 3, "b@localhost/y", 11);
    ck_assert_int_eq(nout, 0);
    ck_assert_uint_eq(r->hold_count, 1);
    hb("c2s-a", KN_F_SYNCED);
    ck_assert_uint_eq(r->hold_count, 1);
    hb("c2s-b", KN_F_SYNCED);
    ck_assert_uint_eq(r->hold_count, 0);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    /* The delivery carries the origin's link id: index 3, sequence 11. */
    ck_assert(outs[0].link == ((uint64_t)3 << KN_CONN_NODE_SHIFT | 11));

    /* The lease is lost: nodes are told at once, the table is gone, and
     * nothing more is routed. */
    nout = 0;
    router_become_standby(r, now);
    ck_assert(r->standby);
    ck_assert_int_eq(nout, 2);
    ck_assert(outs[0].flags & KN_F_STANDBY);
    ck_assert(outs[1].flags & KN_F_STANDBY);
    ck_assert_ptr_null(r->sessions);
    ck_assert_ptr_null(r->nodes_by_name);
    msg("c2s-a", 3, "b@localhost/y", 12);
    ck_assert_int_eq(nout, 0);
}
END_TEST

static void reg(const char *node, uint16_t flags)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_REGISTER;
    e.flags = flags;
    e.node = "";
    in(node, &e);
}

START_TEST(takeover_restores_table_from_redis)
{
    router_become_active(r, 9, now);
    /* The previous router's table, as router_redis.c reads it. */
    ck_assert_ptr_nonnull(router_node_restore(r, "c2s-a", 3, 0xA1, now));
    ck_assert_ptr_nonnull(router_node_restore(r, "c2s-b", 4, 0xB1, now));
    /* Same index or name again: skipped. */
    ck_assert_ptr_null(router_node_restore(r, "c2s-x", 3, 1, now));
    ck_assert_ptr_null(router_node_restore(r, "c2s-a", 7, 1, now));
    router_sess_restore(r, "u@localhost/1", kn_conn_make(3, 1), 0, true);
    router_sess_restore(r, "u@localhost/2", kn_conn_make(3, 2), 0, true);
    router_sess_restore(r, "v@localhost/1", kn_conn_make(4, 1), 0, true);
    ck_assert_uint_eq(HASH_COUNT(r->sessions), 3);
    router_wake_peers(r, now);
    kn_env_t h = {0};
    h.kind = KN_ENV_HELLO;
    h.flags = KN_F_ROLE_DAEMON;
    h.seq = 0xD1;
    in("presenced", &h);
    reg("presenced", KN_REG_SESSIONS);
    /* c2s-a HELLOs with the same boot: its sessions stay; it
     * re-announces one of them; the other ended while no router
     * listened and goes at its SYNCED. */
    h.flags = KN_F_ROLE_C2S;
    h.seq = 0xA1;
    h.conn_id = kn_conn_make(3, 0);
    in("c2s-a", &h);
    ck_assert_uint_eq(kn_conn_node(outs[0].conn), 3);
    ck_assert_uint_eq(HASH_COUNT(r->sessions), 3);
    kn_env_t up = {0};
    up.kind = KN_ENV_SESSION_UP;
    up.flags = KN_F_AVAILABLE | KN_F_REANNOUNCE;
    up.conn_id = kn_conn_make(3, 1);
    up.from = "u@localhost/1";
    up.from_len = strlen(up.from);
    in("c2s-a", &up);
    hb("c2s-a", KN_F_SYNCED);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_ptr_nonnull(router_sess_find(r, "u@localhost/1", 13));
    ck_assert_ptr_null(router_sess_find(r, "u@localhost/2", 13));
    /* c2s-b never comes back: lost after node_timeout, its session
     * ends with node_lost (presenced is told). */
    now += 6.0;
    hb("presenced", 0);
    hb("c2s-a", 0);
    nout = 0;
    router_tick(r, now);
    ck_assert_ptr_null(router_sess_find(r, "v@localhost/1", 13));
    bool told = false;
    for (int i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_SESSION_DOWN &&
            strcmp(outs[i].node, "presenced") == 0)
            told = true;
    ck_assert(told);
    ck_assert_ptr_nonnull(router_sess_find(r, "u@localhost/1", 13));
}
END_TEST

/* Issue 14, scenario 5 (the failover duplicate): the previous router
 * routed c2s-a's frame 11 to c2s-b and died before acknowledging it;
 * c2s-a resends it after the takeover, here before c2s-b has re-synced.
 * c2s-b reports at its re-sync that it received link (3, 11): the
 * resend, held by the warm-up until c2s-b said SYNCED, is not routed a
 * second time (the recipient, gone meanwhile, would get it again from
 * offline storage). Frame 12, which nobody reported, is routed. */
static void report(const char *node, const uint64_t *ids, size_t n)
{
    unsigned char buf[64];
    ck_assert_uint_le(n * 8, sizeof(buf));
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            buf[8 * i + (size_t)b] = (unsigned char)(ids[i] >> (8 * b));
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.flags = KN_F_DELIVERED;
    e.seq = 1;
    router_payload_t pl = {buf, n * 8, NULL};
    nout = 0;
    router_handle(r, node, strlen(node), &e, &pl, now);
}

START_TEST(takeover_resend_delivered_before_not_routed_twice_R_ARCH_2)
{
    hb("c2s-a", 0);
    hb("c2s-b", 0);
    router_become_active(r, 9, now);
    router_wake_peers(r, now);
    ck_assert_uint_eq(hello("c2s-a", 3), 3);
    hb("c2s-a", KN_F_SYNCED);
    /* c2s-a resends what the old router had not acknowledged */
    msg("c2s-a", 3, "b@localhost/y", 11);
    msg("c2s-a", 3, "b@localhost/y", 12);
    ck_assert_int_eq(ngot, 0);
    ck_assert_uint_eq(hello("c2s-b", 4), 4);
    uint64_t ids[2] = {(uint64_t)3 << KN_CONN_NODE_SHIFT | 11,
                       (uint64_t)4 << KN_CONN_NODE_SHIFT | 11};
    report("c2s-b", ids, 2);
    sess_up("c2s-b", 4, "b@localhost/y");
    hb("c2s-b", KN_F_SYNCED);
    ck_assert_uint_eq(r->hold_count, 0);
    ck_assert_int_eq(ngot, 1);
    ck_assert(got[0] == ((uint64_t)3 << KN_CONN_NODE_SHIFT | 12));
    ck_assert_uint_eq(r->dlv_dups, 1);
    /* Sent again once more (a second re-sync): still once. */
    msg("c2s-a", 3, "b@localhost/y", 13);
    ck_assert_int_eq(ngot, 2);
    /* The reported ids are forgotten after a while. */
    now += 60.0;
    router_tick(r, now);
    ck_assert_ptr_null(r->dlv_slots);
}
END_TEST

/* A node that never reports (an older one) holds nothing up past the
 * warm-up's bound, and nothing is dropped. */
START_TEST(takeover_without_report_routes_after_the_bound)
{
    hb("c2s-a", 0);
    hb("c2s-b", 0);
    router_become_active(r, 9, now);
    router_wake_peers(r, now);
    hello("c2s-a", 3);
    hello("c2s-b", 4);
    sess_up("c2s-b", 4, "b@localhost/y");
    hb("c2s-a", KN_F_SYNCED);
    msg("c2s-a", 3, "b@localhost/y", 11);
    ck_assert_int_eq(ngot, 0);
    now += r->warm_s + 0.1;
    router_tick(r, now);
    ck_assert_int_eq(ngot, 0); /* waiting for c2s-b's SYNCED */
    now += r->node_timeout - 1.0;
    hb("c2s-b", 0); /* alive, still re-announcing */
    now += 1.1;
    router_tick(r, now);
    ck_assert_int_eq(ngot, 1);
    ck_assert_uint_eq(r->dlv_dups, 0);
}
END_TEST

START_TEST(link_ack_one_period_late_and_resend_not_routed_twice)
{
    router_become_active(r, 5, now);
    hello("c2s-a", 1);
    hello("c2s-b", 2);
    sess_up("c2s-b", 2, "b@localhost/y");
    hb("c2s-a", KN_F_SYNCED);
    hb("c2s-b", KN_F_SYNCED);
    r->warm_until = 0;
    msg("c2s-a", 1, "b@localhost/y", 100);
    ck_assert_int_eq(nout, 1);
    msg("c2s-a", 1, "b@localhost/y", 101);
    ck_assert_int_eq(nout, 1);
    /* First ack tick: acknowledges what was routed before the previous
     * tick (nothing: no frame at all); the second acknowledges 101, to
     * c2s-a only; a third has nothing new to say. */
    nout = 0;
    router_ack_links(r);
    ck_assert_int_eq(nout, 0);
    router_ack_links(r);
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_int_eq(outs[0].kind, KN_ENV_HEARTBEAT);
    ck_assert_uint_eq(outs[0].targets[KN_LINK_T_ACKED], 101);
    nout = 0;
    router_ack_links(r);
    ck_assert_int_eq(nout, 0);
    /* The heartbeat repeats the last acknowledgement. */
    now += 1.0;
    router_tick(r, now);
    uint64_t acked = 0;
    for (int i = 0; i < nout; i++)
        if (strcmp(outs[i].node, "c2s-a") == 0)
            acked = outs[i].targets[KN_LINK_T_ACKED];
    ck_assert_uint_eq(acked, 101);
    /* The node re-syncs (same run) and sends 101 and 102 again: only
     * 102 is new. */
    msg("c2s-a", 1, "b@localhost/y", 101);
    ck_assert_int_eq(nout, 0);
    ck_assert_uint_eq(r->link_dups, 1);
    msg("c2s-a", 1, "b@localhost/y", 102);
    ck_assert_int_eq(nout, 1);
}
END_TEST

/* The soak's lost first messages (router14, reverted in f7bcd5a): at
 * start the router holds stanzas for a warm-up of 2.5 heartbeats, but
 * replays them only at the next tick (3 heartbeats). A frame arriving in
 * between was routed at once, raising the node's link high-water mark
 * past the held ones, which the replay then dropped as resends. Held
 * frames must go first, in order, and none is a duplicate. */
START_TEST(held_frames_replayed_before_a_later_frame_not_dropped)
{
    r->standby = false; /* one router, no lease: main.c's start-up */
    r->warm_until = now + r->warm_s;
    hello("c2s-a", 1);
    hello("c2s-b", 2);
    sess_up("c2s-b", 2, "b@localhost/y");
    /* both re-announced (else the router holds on past the warm-up) */
    hb("c2s-a", KN_F_SYNCED);
    hb("c2s-b", KN_F_SYNCED);
    for (uint64_t l = 1; l <= 3; l++)
        msg("c2s-a", 1, "b@localhost/y", l);
    ck_assert_int_eq(ngot, 0);
    ck_assert_uint_eq(r->hold_count, 3);
    /* The warm-up is over, the tick that replays has not fired yet. */
    now += r->warm_s + 0.1;
    msg("c2s-a", 1, "b@localhost/y", 4);
    router_tick(r, now);
    /* All four delivered, once each, in the order sent. */
    ck_assert_uint_eq(r->link_dups, 0);
    ck_assert_uint_eq(r->hold_count, 0);
    ck_assert_int_eq(ngot, 4);
    for (int i = 0; i < 4; i++)
        ck_assert(got[i] ==
                  ((uint64_t)1 << KN_CONN_NODE_SHIFT | (uint64_t)(i + 1)));
}
END_TEST

/* Same after a takeover: frames from a node held before it re-synced
 * (it was unknown: the second hold) are not overtaken either. Its HELLO
 * drops them (they are not acknowledged, so it sends them again after our
 * answer, kn_link's q_rewind, behind older ones the old router never
 * acknowledged); the resend is routed once, in order. */
START_TEST(held_unknown_sender_frames_not_overtaken)
{
    router_become_active(r, 3, now);
    hello("c2s-b", 2);
    sess_up("c2s-b", 2, "b@localhost/y");
    hb("c2s-b", KN_F_SYNCED);
    r->warm_until = 0;
    /* c2s-a speaks before its HELLO: held, it is asked to HELLO. */
    msg("c2s-a", 1, "b@localhost/y", 7);
    msg("c2s-a", 1, "b@localhost/y", 8);
    ck_assert_uint_eq(r->hold_count, 2);
    hello("c2s-a", 1);
    ck_assert_uint_eq(r->hold_count, 0);
    msg("c2s-a", 1, "b@localhost/y", 7); /* its resend */
    msg("c2s-a", 1, "b@localhost/y", 8);
    hb("c2s-a", KN_F_SYNCED);
    now += 1.1; /* the hold's own deadline passed, no tick yet */
    msg("c2s-a", 1, "b@localhost/y", 9);
    router_tick(r, now);
    ck_assert_uint_eq(r->link_dups, 0);
    ck_assert_uint_eq(r->hold_count, 0);
    ck_assert_int_eq(ngot, 3);
    for (int i = 0; i < 3; i++)
        ck_assert(got[i] ==
                  ((uint64_t)1 << KN_CONN_NODE_SHIFT | (uint64_t)(7 + i)));
}
END_TEST

/* Found by the netns failover scenario: after a takeover, c2s nodes
 * re-announced (and their restored sessions that had ended were dropped)
 * before presenced registered for session events, so presenced kept a
 * session that no longer existed (messages to the user went to it and
 * came back as bounces, lost) and never learnt of one opened during the
 * outage. Such events now reach a node at its late registration. */
START_TEST(session_events_reach_a_late_subscriber)
{
    router_become_active(r, 4, now);
    ck_assert_ptr_nonnull(router_node_restore(r, "c2s-a", 3, 0xA1, now));
    router_sess_restore(r, "u@localhost/1", kn_conn_make(3, 1), 0, true);
    router_wake_peers(r, now);
    kn_env_t h = {0};
    h.kind = KN_ENV_HELLO;
    h.flags = KN_F_ROLE_C2S;
    h.seq = 0xA1;
    h.conn_id = kn_conn_make(3, 0);
    in("c2s-a", &h);
    /* c2s-a re-announces a session opened while no router listened, and
     * its SYNCED ends u/1 (it ended meanwhile): nobody subscribed yet. */
    kn_env_t up = {0};
    up.kind = KN_ENV_SESSION_UP;
    up.flags = KN_F_AVAILABLE | KN_F_REANNOUNCE;
    up.conn_id = kn_conn_make(3, 2);
    up.from = "u@localhost/2";
    up.from_len = strlen(up.from);
    in("c2s-a", &up);
    hb("c2s-a", KN_F_SYNCED);
    ck_assert_ptr_null(router_sess_find(r, "u@localhost/1", 13));
    /* presenced HELLOs and registers: it hears of the session that
     * ended (the warm-up's log) and of the one in the table (told to
     * every subscriber at registration), once each. */
    h.flags = KN_F_ROLE_DAEMON;
    h.seq = 0xD1;
    h.conn_id = kn_conn_make(1, 0);
    in("presenced", &h);
    reg("presenced", KN_REG_SESSIONS);
    ck_assert_int_eq(nout, 2);
    ck_assert_str_eq(outs[0].node, "presenced");
    ck_assert_int_eq(outs[0].kind, KN_ENV_SESSION_DOWN);
    ck_assert(outs[0].conn == kn_conn_make(3, 1));
    ck_assert_str_eq(outs[1].node, "presenced");
    ck_assert_int_eq(outs[1].kind, KN_ENV_SESSION_UP);
    ck_assert(outs[1].conn == kn_conn_make(3, 2));
    /* Registering again (a re-sync) repeats only the table, not the
     * ended session. */
    reg("presenced", KN_REG_SESSIONS);
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_SESSION_UP);
    /* Once the warm-up is over, nothing is kept. */
    hb("presenced", KN_F_SYNCED);
    now += 10.0;
    router_tick(r, now);
    ck_assert_ptr_null(r->sess_log);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("router_lease");
    TCase *tc = tcase_create("lease");
    tcase_add_test(tc, lease_off_is_always_active);
    tcase_add_test(tc, lease_acquire_renew_and_expire);
    tcase_add_test(tc, lease_renew_refused_stops_at_once);
    tcase_add_test(tc, lease_stops_before_redis_can_expire_it);
    tcase_add_test(tc, lease_unanswered_request_is_given_up);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("router");
    tcase_add_checked_fixture(tr, rsetup, rteardown);
    tcase_add_test(tr, standby_answers_heartbeats_only);
    tcase_add_test(tr, takeover_tells_nodes_and_fences_with_epoch);
    tcase_add_test(tr, link_ack_one_period_late_and_resend_not_routed_twice);
    tcase_add_test(tr,
                   takeover_resend_delivered_before_not_routed_twice_R_ARCH_2);
    tcase_add_test(tr, takeover_without_report_routes_after_the_bound);
    tcase_add_test(tr, takeover_restores_table_from_redis);
    tcase_add_test(tr, held_frames_replayed_before_a_later_frame_not_dropped);
    tcase_add_test(tr, held_unknown_sender_frames_not_overtaken);
    tcase_add_test(tr, session_events_reach_a_late_subscriber);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    kn_log_init("test", KN_LOG_ERR);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
