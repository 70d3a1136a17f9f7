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
/* After a takeover: ask every node named in Redis's `nodes` hash that we
 * have not heard of to HELLO (router_wake_names). */
void router_redis_wake_nodes(router_redis_t *rr, double now);

#endif
