/*
 * router_redis.h - write-through of the routing table to Redis.
 */
#ifndef ROUTER_REDIS_H
#define ROUTER_REDIS_H

#include <ev.h>
#include <stddef.h>

#include "router.h"

typedef struct router_redis router_redis_t;

/* Connect (asynchronously, reconnecting) to address and set r->redis.
 * node_ttl_s is the TTL of each node's liveness key. */
router_redis_t *router_redis_new(struct ev_loop *loop, router_t *r,
                                 const char *address, long node_ttl_s);
void router_redis_free(router_redis_t **rrp);
/* Writes sent and not answered yet (a stop waits for them); 0 for NULL. */
size_t router_redis_pending(const router_redis_t *rr);

#endif
