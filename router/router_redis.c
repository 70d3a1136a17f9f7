/*
 * router_redis.c - write-through of the routing table to Redis, so that
 * other daemons (presenced, mucd) and operators can read the cluster's
 * sessions, and a restarted router can see which nodes existed.
 *
 * Keys (no TTL unless said; Redis runs with noeviction, R-CACHE-2):
 *   sessions:<bare>        hash  full JID -> "<node>|<conn hex>|<prio>|<a>"
 *                                 (a = 1 when available)
 *   node:<name>:sessions   set   full JIDs owned by the node
 *   node:<name>:alive      str   the node's boot id, EX = node timeout
 *   nodes                  hash  node name -> index
 *   router:marker          str   set when the table was last written whole
 * Writes are fire-and-forget: the router's memory is the truth while it
 * runs. The whole table is written again when Redis comes back after an
 * outage, and when the marker key has vanished (someone ran FLUSHALL, or
 * Redis restarted empty without us noticing a disconnect): the router
 * checks it every tick (R-CACHE-1).
 */
#include "router_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_redis.h"

struct router_redis {
    kn_redis_t *rc;
    router_t *r;
    long ttl;
};

static void rr_reply(kn_redis_t *rc, redisReply *reply, int err, void *arg)
{
    (void)rc;
    (void)arg;
    if (err != 0)
        kn_log_debug("redis write failed: %d", err);
    else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        kn_log_warn("redis: %s", reply->str);
}

/* A standby writes nothing: the table in Redis is the active router's. */
static kn_redis_t *rr_conn(router_t *r)
{
    router_redis_t *rr = r->redis;
    return rr != NULL && !r->standby && kn_redis_is_connected(rr->rc) ? rr->rc
                                                                      : NULL;
}

void router_redis_sess_up(router_t *r, const router_sess_t *s)
{
    kn_redis_t *rc = rr_conn(r);
    if (rc == NULL)
        return;
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    const char *node = n ? n->name : "?";
    char val[160];
    snprintf(val, sizeof(val), "%s|%016" PRIx64 "|%d|%d", node, s->conn,
             s->prio, s->avail ? 1 : 0);
    kn_redis_command(rc, rr_reply, NULL, "HSET sessions:%b %s %s", s->full,
                     s->bare_len, s->full, val);
    kn_redis_command(rc, rr_reply, NULL, "SADD node:%s:sessions %s", node,
                     s->full);
}

void router_redis_sess_down(router_t *r, const router_sess_t *s)
{
    kn_redis_t *rc = rr_conn(r);
    if (rc == NULL)
        return;
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    kn_redis_command(rc, rr_reply, NULL, "HDEL sessions:%b %s", s->full,
                     s->bare_len, s->full);
    kn_redis_command(rc, rr_reply, NULL, "SREM node:%s:sessions %s",
                     n ? n->name : "?", s->full);
}

void router_redis_node_alive(router_t *r, const router_node_t *n)
{
    kn_redis_t *rc = rr_conn(r);
    if (rc == NULL)
        return;
    router_redis_t *rr = r->redis;
    kn_redis_command(rc, rr_reply, NULL, "SET node:%s:alive %08x EX %ld",
                     n->name, n->boot, rr->ttl);
    kn_redis_command(rc, rr_reply, NULL, "HSET nodes %s %u", n->name, n->index);
}

void router_redis_node_lost(router_t *r, const router_node_t *n)
{
    kn_redis_t *rc = rr_conn(r);
    if (rc == NULL)
        return;
    kn_redis_command(rc, rr_reply, NULL, "DEL node:%s:alive", n->name);
    kn_redis_command(rc, rr_reply, NULL, "DEL node:%s:sessions", n->name);
}

static void rr_rewrite(router_redis_t *rr)
{
    router_t *r = rr->r;
    if (r->standby)
        return;
    size_t count = 0;
    router_node_t *n, *ntmp;
    HASH_ITER(hh, r->nodes_by_name, n, ntmp)
    {
        if (n->alive)
            router_redis_node_alive(r, n);
    }
    router_sess_t *s, *stmp;
    HASH_ITER(hh, r->sessions, s, stmp)
    {
        router_redis_sess_up(r, s);
        count++;
    }
    kn_redis_command(rr->rc, rr_reply, NULL, "SET router:marker %08x", r->boot);
    kn_log_info("redis: wrote the routing table (%zu sessions)", count);
}

/* Redis (re)connected: write the whole table again. */
static void rr_state(kn_redis_t *rc, int connected, void *arg)
{
    router_redis_t *rr = arg;
    (void)rc;
    if (!connected) {
        kn_log_warn("redis connection lost; routing goes on from memory");
        return;
    }
    rr_rewrite(rr);
}

static void rr_marker_reply(kn_redis_t *rc, redisReply *reply, int err,
                            void *arg)
{
    (void)rc;
    if (err == 0 && reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer == 0) {
        kn_log_warn("redis lost the routing table (flushed?): rewriting it");
        rr_rewrite(arg);
    }
}

void router_redis_check(router_t *r)
{
    kn_redis_t *rc = rr_conn(r);
    if (rc != NULL)
        kn_redis_command(rc, rr_marker_reply, r->redis, "EXISTS router:marker");
}

router_redis_t *router_redis_new(struct ev_loop *loop, router_t *r,
                                 const char *address, long node_ttl_s)
{
    router_redis_t *rr = kn_calloc(1, sizeof(*rr));
    rr->r = r;
    rr->ttl = node_ttl_s > 0 ? node_ttl_s : 1;
    kn_redis_config_t cfg = {0};
    cfg.addr = address;
    if (kn_redis_new(loop, &cfg, rr_state, rr, &rr->rc) < 0) {
        kn_log_err("bad redis address '%s': routing without Redis", address);
        free(rr);
        return NULL;
    }
    r->redis = rr;
    return rr;
}

void router_redis_free(router_redis_t **rrp)
{
    router_redis_t *rr = *rrp;
    if (rr == NULL)
        return;
    rr->r->redis = NULL;
    kn_redis_free(&rr->rc);
    free(rr);
    *rrp = NULL;
}

size_t router_redis_pending(const router_redis_t *rr)
{
    return rr != NULL ? kn_redis_pending(rr->rc) : 0;
}

/* ---- the lease (router_lease.h) ---- */

/* Take the lease if nobody holds it; the epoch is raised with INCR and
 * kept at least at Redis's clock in ms, so it never goes back, even
 * after Redis restarted empty. */
static const char lease_acquire_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "local t = redis.call('TIME') "
    "local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local e = redis.call('INCR', KEYS[2]) "
    "if e < ms then e = ms redis.call('SET', KEYS[2], string.format('%d', e)) "
    "end "
    "redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%d', e), "
    "'PX', ARGV[2]) "
    "return e end return 0";
static const char lease_renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
static const char lease_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";

typedef struct lease_req {
    router_redis_lease_cb cb;
    void *ud;
    uint64_t id;
} lease_req_t;

static void rr_lease_reply(kn_redis_t *rc, redisReply *reply, int err,
                           void *arg)
{
    lease_req_t *q = arg;
    (void)rc;
    bool failed = err != 0 || reply == NULL;
    if (!failed && reply->type == REDIS_REPLY_ERROR) {
        kn_log_warn("redis lease script: %s", reply->str);
        failed = true;
    }
    long long v =
        !failed && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    q->cb(q->ud, q->id, failed, v > 0, v > 0 ? (uint64_t)v : 0);
    free(q);
}

void router_redis_lease(router_redis_t *rr, router_lease_req_t req, uint64_t id,
                        const char *name, uint64_t epoch, long long lease_ms,
                        router_redis_lease_cb cb, void *ud)
{
    if (rr == NULL || !kn_redis_is_connected(rr->rc)) {
        cb(ud, id, true, false, 0);
        return;
    }
    lease_req_t *q = kn_calloc(1, sizeof(*q));
    q->cb = cb;
    q->ud = ud;
    q->id = id;
    if (req == ROUTER_LEASE_ACQUIRE)
        kn_redis_command(rr->rc, rr_lease_reply, q,
                         "EVAL %s 2 router:lease router:epoch %s %lld",
                         lease_acquire_lua, name, lease_ms);
    else
        kn_redis_command(rr->rc, rr_lease_reply, q,
                         "EVAL %s 1 router:lease %s|%llu %lld", lease_renew_lua,
                         name, (unsigned long long)epoch, lease_ms);
}

void router_redis_lease_release(router_redis_t *rr, const char *name,
                                uint64_t epoch)
{
    if (rr == NULL || !kn_redis_is_connected(rr->rc))
        return;
    kn_redis_command(rr->rc, rr_reply, NULL, "EVAL %s 1 router:lease %s|%llu",
                     lease_release_lua, name, (unsigned long long)epoch);
}

/* The previous router's table, in one round trip: for each node in
 * `nodes` whose liveness key has not expired, its name, index, boot id,
 * and its sessions (full JID, "node|conn|prio|avail"). */
static const char restore_lua[] =
    "local out = {} "
    "local nodes = redis.call('HGETALL', 'nodes') "
    "for i = 1, #nodes, 2 do "
    "local name = nodes[i] "
    "local boot = redis.call('GET', 'node:' .. name .. ':alive') "
    "if boot then "
    "local fulls = redis.call('SMEMBERS', 'node:' .. name .. ':sessions') "
    "out[#out + 1] = name out[#out + 1] = nodes[i + 1] "
    "out[#out + 1] = boot out[#out + 1] = tostring(#fulls) "
    "for _, f in ipairs(fulls) do "
    "local bare = string.match(f, '^[^/]*') "
    "out[#out + 1] = f "
    "out[#out + 1] = redis.call('HGET', 'sessions:' .. bare, f) or '' "
    "end end end return out";

typedef struct restore_req {
    router_t *r;
    uint64_t epoch;
    double now;
    bool (*still)(uint64_t epoch);
} restore_req_t;

static const char *rr_elem(const redisReply *a, size_t i)
{
    return i < a->elements && a->element[i]->type == REDIS_REPLY_STRING
               ? a->element[i]->str
               : NULL;
}

static void rr_restore_reply(kn_redis_t *rc, redisReply *reply, int err,
                             void *arg)
{
    restore_req_t *q = arg;
    (void)rc;
    router_t *r = q->r;
    if (!q->still(q->epoch)) {
        free(q); /* the lease went meanwhile */
        return;
    }
    router_become_active(r, q->epoch, q->now);
    if (err != 0 || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        kn_log_warn("takeover: the table in Redis could not be read");
        router_wake_peers(r, q->now);
        free(q);
        return;
    }
    size_t nodes = 0, sessions = 0, i = 0;
    while (i + 4 <= reply->elements) {
        const char *name = rr_elem(reply, i), *idx = rr_elem(reply, i + 1);
        const char *boot = rr_elem(reply, i + 2), *cnt = rr_elem(reply, i + 3);
        if (!name || !idx || !boot || !cnt)
            break;
        i += 4;
        size_t count = strtoul(cnt, NULL, 10);
        router_node_t *n =
            router_node_restore(r, name, (uint16_t)strtoul(idx, NULL, 10),
                                (uint32_t)strtoul(boot, NULL, 16), q->now);
        if (n != NULL)
            nodes++;
        for (size_t k = 0; k < count && i + 2 <= reply->elements; k++, i += 2) {
            const char *full = rr_elem(reply, i), *val = rr_elem(reply, i + 1);
            if (n == NULL || full == NULL || val == NULL)
                continue;
            /* "<node>|<conn hex>|<prio>|<avail>" */
            const char *p1 = strchr(val, '|');
            const char *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
            const char *p3 = p2 ? strchr(p2 + 1, '|') : NULL;
            if (p3 == NULL)
                continue;
            uint64_t conn = strtoull(p1 + 1, NULL, 16);
            if (kn_conn_node(conn) != n->index)
                continue;
            router_sess_restore(r, full, conn, (int16_t)atoi(p2 + 1),
                                p3[1] == '1');
            sessions++;
        }
    }
    kn_log_info("takeover: %zu nodes and %zu sessions restored from Redis "
                "(kept until their node re-announces or is lost)",
                nodes, sessions);
    router_wake_peers(r, q->now);
    free(q);
}

void router_redis_takeover(router_redis_t *rr, router_t *r, uint64_t epoch,
                           double now, bool (*still)(uint64_t epoch))
{
    if (rr == NULL || !kn_redis_is_connected(rr->rc)) {
        router_become_active(r, epoch, now);
        router_wake_peers(r, now);
        return;
    }
    restore_req_t *q = kn_calloc(1, sizeof(*q));
    q->r = r;
    q->epoch = epoch;
    q->now = now;
    q->still = still;
    kn_redis_command(rr->rc, rr_restore_reply, q, "EVAL %s 0", restore_lua);
}
