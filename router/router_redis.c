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

static kn_redis_t *rr_conn(router_t *r)
{
    router_redis_t *rr = r->redis;
    return rr != NULL && kn_redis_is_connected(rr->rc) ? rr->rc : NULL;
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
