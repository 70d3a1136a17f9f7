/*
 * router_node.c - nodes: HELLO, heartbeats, liveness, loss.
 *
 * A note on node identity. A node is known by its name (its ZeroMQ routing
 * id) and by a 16-bit index that the router hands out at HELLO and that
 * prefixes every connection id the node issues (kn_proto.h). r->nodes[]
 * maps index to node, so routing a connection id to its node is an array
 * lookup. A node keeps its index across router restarts by asking for it
 * in HELLO (conn_id field); a node that starts fresh, or whose boot id
 * changed, loses every session the router still attributed to it.
 *
 * Liveness: every node sends HEARTBEAT each period and the router answers
 * with its own, carrying its boot id; a node silent for node_timeout is
 * lost, and each session it held ends with reason node_lost exactly as if
 * it had dropped (R-DROP-6).
 */
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

#define ROLE_MASK (KN_F_ROLE_C2S | KN_F_ROLE_DAEMON | KN_F_ROLE_COMPONENT)

router_node_t *router_node_by_name(router_t *r, const char *name, size_t len)
{
    router_node_t *n = NULL;
    HASH_FIND(hh, r->nodes_by_name, name, len, n);
    return n;
}

static uint16_t node_pick_index(router_t *r, uint16_t hint)
{
    if (hint != 0 && hint < ROUTER_MAX_NODES && r->nodes[hint] == NULL)
        return hint;
    for (uint16_t i = 1; i < ROUTER_MAX_NODES; i++)
        if (r->nodes[i] == NULL)
            return i;
    return 0;
}

/* End every session the router attributes to node n. */
static void node_drop_sessions(router_t *r, router_node_t *n,
                               kn_env_reason_t why)
{
    router_sess_t *s, *tmp;
    r->dropping_node = n->index;
    HASH_ITER(hh, r->sessions, s, tmp)
    {
        if (kn_conn_node(s->conn) == n->index)
            router_sess_remove(r, s, why);
    }
    r->dropping_node = 0;
    n->nsessions = 0;
}

void router_node_send_ctl(router_t *r, const router_node_t *n,
                          kn_env_kind_t kind, uint16_t flags)
{
    uint64_t t[KN_LINK_T_COUNT];
    t[KN_LINK_T_EPOCH] = r->epoch;
    t[KN_LINK_T_ACKED] = kind == KN_ENV_HEARTBEAT ? n->link_ack : 0;
    kn_env_t e = {0};
    e.ntargets = KN_LINK_T_COUNT;
    e.targets = t;
    e.kind = kind;
    e.flags = flags;
    e.seq = r->boot;
    e.conn_id = kn_conn_make(n->index, 0);
    e.node = n->name;
    e.node_len = strlen(n->name);
    router_payload_t none = {NULL, 0, NULL};
    r->send(r->send_ud, n, &e, &none);
    r->stats.out++;
}

void router_node_hello(router_t *r, const char *name, size_t len,
                       const kn_env_t *env, double now)
{
    if (len == 0 || len >= ROUTER_NODE_NAME_MAX) {
        kn_log_warn("HELLO with a bad node name (%zu bytes) ignored", len);
        return;
    }
    router_node_t *n = router_node_by_name(r, name, len);
    bool restarted =
        n != NULL && (env->flags & KN_F_FRESH || n->boot != env->seq);
    if (n == NULL) {
        uint16_t idx = node_pick_index(r, kn_conn_node(env->conn_id));
        if (idx == 0) {
            kn_log_err("node %.*s refused: %d nodes already", (int)len, name,
                       ROUTER_MAX_NODES - 1);
            return;
        }
        n = kn_calloc(1, sizeof(*n));
        memcpy(n->name, name, len);
        n->index = idx;
        r->nodes[idx] = n;
        HASH_ADD(hh, r->nodes_by_name, name, len, n);
    } else if (restarted) {
        kn_log_info("node %s restarted: ending its %zu stale sessions", n->name,
                    n->nsessions);
        node_drop_sessions(r, n, KN_ENV_REASON_NODE_LOST);
        router_unregister_node(r, n->index);
        /* A new run numbers from scratch. */
        n->link_rx = n->link_ack = n->link_mark = 0;
        n->restored = false;
    }
    n->roles = env->flags & ROLE_MASK;
    n->boot = env->seq;
    n->alive = true;
    n->synced = (env->flags & KN_F_FRESH) != 0;
    n->last_seen = now;
    kn_log_info("node %s is up (index %u%s)", n->name, n->index,
                env->flags & KN_F_FRESH ? ", fresh" : "");
    router_node_send_ctl(r, n, KN_ENV_HELLO, KN_F_ACK);
    router_redis_node_alive(r, n);
}

router_node_t *router_node_restore(router_t *r, const char *name,
                                   uint16_t index, uint32_t boot, double now)
{
    size_t len = strlen(name);
    if (len == 0 || len >= ROUTER_NODE_NAME_MAX || index == 0 ||
        index >= ROUTER_MAX_NODES || r->nodes[index] != NULL ||
        router_node_by_name(r, name, len) != NULL)
        return NULL;
    router_node_t *n = kn_calloc(1, sizeof(*n));
    memcpy(n->name, name, len);
    n->index = index;
    n->boot = boot;
    n->alive = true;
    n->restored = true;
    n->last_seen = now;
    r->nodes[index] = n;
    HASH_ADD(hh, r->nodes_by_name, name, len, n);
    return n;
}

/* The node finished re-announcing: what was restored from Redis and not
 * re-announced has ended. */
static void node_drop_restored(router_t *r, router_node_t *n)
{
    n->restored = false;
    size_t gone = 0;
    router_sess_t *s, *tmp;
    HASH_ITER(hh, r->sessions, s, tmp)
    {
        if (s->restored && kn_conn_node(s->conn) == n->index) {
            router_sess_remove(r, s, KN_ENV_REASON_DROPPED);
            gone++;
        }
    }
    if (gone > 0)
        kn_log_info("node %s: %zu sessions from Redis were not re-announced: "
                    "ended",
                    n->name, gone);
}

void router_node_heartbeat(router_t *r, const char *name, size_t len,
                           const kn_env_t *env, double now)
{
    router_node_t *n = router_node_by_name(r, name, len);
    if (n == NULL || !n->alive) {
        /* We restarted, or declared this node lost: it must HELLO again
         * and re-announce its sessions. */
        router_node_t tmp = {0};
        if (len >= sizeof(tmp.name))
            return;
        memcpy(tmp.name, name, len);
        tmp.index = n ? n->index : 0;
        router_node_send_ctl(r, n ? n : &tmp, KN_ENV_HELLO, KN_F_REHELLO);
        return;
    }
    n->last_seen = now;
    if (env->flags & KN_F_SYNCED) {
        n->synced = true;
        if (n->restored)
            node_drop_restored(r, n);
    }
    router_redis_node_alive(r, n);
}

void router_node_lost(router_t *r, router_node_t *n, kn_env_reason_t why)
{
    kn_log_warn("node %s lost (%s): ending its %zu sessions", n->name,
                kn_env_reason_name(why), n->nsessions);
    n->alive = false;
    node_drop_sessions(r, n, why);
    router_unregister_node(r, n->index);
    router_redis_node_lost(r, n);
}

void router_tick_nodes(router_t *r, double now)
{
    router_node_t *n, *tmp;
    HASH_ITER(hh, r->nodes_by_name, n, tmp)
    {
        if (!n->alive)
            continue;
        if (now - n->last_seen > r->node_timeout) {
            router_node_lost(r, n, KN_ENV_REASON_NODE_LOST);
            continue;
        }
        router_node_send_ctl(r, n, KN_ENV_HEARTBEAT, 0);
    }
}

void router_ack_links(router_t *r)
{
    if (r->standby)
        return;
    router_node_t *n, *tmp;
    HASH_ITER(hh, r->nodes_by_name, n, tmp)
    {
        if (!n->alive)
            continue;
        if (n->link_mark > n->link_ack) {
            n->link_ack = n->link_mark;
            router_node_send_ctl(r, n, KN_ENV_HEARTBEAT, 0);
        }
        n->link_mark = n->link_rx;
    }
}
