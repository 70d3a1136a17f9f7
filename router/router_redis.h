/*
 * router_redis.h - write-through of the routing table to Redis.
 */
#ifndef ROUTER_REDIS_H
#define ROUTER_REDIS_H

#include <ev.h>
#include <stddef.h>

#include "router.h"
#include "router_lease.h"

typedef struct router_redis router_redis_t;

/* Connect (asynchronously, reconnecting) to address and set r->redis.
 * node_ttl_s is the TTL of each node's liveness key. */
router_redis_t *router_redis_new(struct ev_loop *loop, router_t *r,
                                 const char *address, long node_ttl_s);
void router_redis_free(router_redis_t **rrp);
/* Writes sent and not answered yet (a stop waits for them); 0 for NULL. */
size_t router_redis_pending(const router_redis_t *rr);

/* The lease (router_lease.h): send request req (id) for router name;
 * cb gets the answer (err: none; ok and the epoch for an acquisition).
 * Called back at once with err when Redis is not connected. */
typedef void (*router_redis_lease_cb)(void *ud, uint64_t id, bool err, bool ok,
                                      uint64_t epoch);
void router_redis_lease(router_redis_t *rr, router_lease_req_t req, uint64_t id,
                        const char *name, uint64_t epoch, long long lease_ms,
                        router_redis_lease_cb cb, void *ud);
/* A clean stop: delete the lease if it is still name|epoch. */
void router_redis_lease_release(router_redis_t *rr, const char *name,
                                uint64_t epoch);
/* The lease was taken (epoch): read the previous router's table (nodes
 * still alive by their liveness key, and their sessions), then, if
 * still(epoch), become active with it (router_become_active, the
 * restores, router_wake_peers). Until the answer the router stays
 * standby, so no node HELLOs into an index a restored node needs.
 * Without Redis: active at once, with an empty table. */
void router_redis_takeover(router_redis_t *rr, router_t *r, uint64_t epoch,
                           double now, bool (*still)(uint64_t epoch));

#endif
