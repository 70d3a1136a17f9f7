/*
 * router_lease.h - which of two routers is active: a lease in Redis with
 * a fencing epoch, as a pure state machine (unit tested; the Redis side
 * is router_redis.c).
 *
 * Redis holds `router:lease` = "<name>|<epoch>" with a PX expiry of
 * lease_ms, taken with SET NX by a script that also raises
 * `router:epoch` (INCR, and at least Redis's clock in ms, so an epoch
 * never goes back even if Redis restarted empty) and renewed by a script
 * that extends it only if the value is still ours. The active router
 * counts its lease from when it *sent* the request that took or renewed
 * it, so it believes in it a little less long than Redis keeps it: when
 * renewals stop being answered (Redis unreachable, the host partitioned)
 * it stops acting before any other router can take the lease. A renewal
 * Redis refuses (the lease is someone else's) stops it at once.
 *
 * States: OFF (no lease configured: always active, epoch 0), STANDBY,
 * ACTIVE. The machine says what to ask Redis; the caller sends it and
 * hands the answer back with the request id.
 */
#ifndef ROUTER_LEASE_H
#define ROUTER_LEASE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum router_lease_state {
    ROUTER_LEASE_OFF = 0,
    ROUTER_LEASE_STANDBY,
    ROUTER_LEASE_ACTIVE,
} router_lease_state_t;

typedef enum router_lease_req {
    ROUTER_LEASE_NONE = 0,
    ROUTER_LEASE_ACQUIRE, /* SET NX PX + new epoch */
    ROUTER_LEASE_RENEW,   /* PEXPIRE if still ours */
} router_lease_req_t;

typedef struct router_lease {
    router_lease_state_t state;
    double lease_s;
    double expires;  /* ACTIVE: when we stop believing in the lease
                      * (a sixteenth of a lease before Redis could let it
                      * go; the caller wakes up then) */
    double next_try; /* STANDBY: the next acquisition attempt */
    uint64_t epoch;  /* ACTIVE: ours; else the last we held (0: none) */
    uint64_t req_id; /* id of the request in flight */
    router_lease_req_t in_flight;
    double sent_at;    /* when the request in flight was sent */
    uint64_t lost;     /* times we were active and stopped */
    bool told_standby; /* logged that another router holds it */
} router_lease_t;

/* lease_ms 0: OFF. */
void router_lease_init(router_lease_t *rl, long long lease_ms, double now);

/* Call often (every lease/8): returns the request to send now (its id is
 * rl->req_id), or NONE. May move ACTIVE -> STANDBY (lease expired
 * unrenewed); compare router_lease_active() before and after. */
router_lease_req_t router_lease_tick(router_lease_t *rl, double now);

/* The answer to request id: ok (acquired / renewed; for ACQUIRE, epoch
 * is the new epoch), or refused (someone else holds it). err: no answer
 * (Redis error or disconnected). Stale ids are ignored. */
void router_lease_reply(router_lease_t *rl, uint64_t id, bool err, bool ok,
                        uint64_t epoch, double now);

/* A clean stop: no longer active (the caller deletes the key if it is
 * still ours, so the standby takes over at once). */
void router_lease_release(router_lease_t *rl);

static inline bool router_lease_active(const router_lease_t *rl)
{
    return rl->state == ROUTER_LEASE_OFF || rl->state == ROUTER_LEASE_ACTIVE;
}

#endif
