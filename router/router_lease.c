/*
 * router_lease.c - the lease and epoch state machine (router_lease.h).
 */
#include "router_lease.h"

#include <string.h>

#include "kn_log.h"

/* Renew when a third of the lease has gone by; retry an acquisition
 * every eighth; a request unanswered for half a lease is given up. */
#define RENEW_AFTER(rl) ((rl)->lease_s / 3.0)
#define RETRY_EVERY(rl) ((rl)->lease_s / 8.0)
#define GIVE_UP(rl)     ((rl)->lease_s / 2.0)
/* We stop believing in the lease this much before Redis can let it
 * expire (Redis counts from when it received the request, we from when
 * we sent it), so that the other router, which may take it the moment
 * Redis drops it, never routes while we still do. main.c wakes up at
 * `expires` itself rather than at its next periodic tick (up to an
 * eighth of a lease later: the cluster test saw a cut-off router stop
 * 0.1 s after the other took over). The margin covers a late timer. */
#define STOP_EARLY(rl) ((rl)->lease_s / 16.0)

void router_lease_init(router_lease_t *rl, long long lease_ms, double now)
{
    memset(rl, 0, sizeof(*rl));
    if (lease_ms <= 0) {
        rl->state = ROUTER_LEASE_OFF;
        return;
    }
    rl->state = ROUTER_LEASE_STANDBY;
    rl->lease_s = (double)lease_ms / 1000.0;
    rl->next_try = now;
}

static router_lease_req_t lease_send(router_lease_t *rl, router_lease_req_t q,
                                     double now)
{
    rl->req_id++;
    rl->in_flight = q;
    rl->sent_at = now;
    return q;
}

static void lease_stop(router_lease_t *rl, double now, const char *why)
{
    kn_log_warn("lease: lost epoch %llu (%s): standby from now on",
                (unsigned long long)rl->epoch, why);
    rl->state = ROUTER_LEASE_STANDBY;
    rl->lost++;
    /* The key may still be ours in Redis for a while: try again later. */
    rl->next_try = now + RETRY_EVERY(rl);
}

router_lease_req_t router_lease_tick(router_lease_t *rl, double now)
{
    if (rl->state == ROUTER_LEASE_OFF)
        return ROUTER_LEASE_NONE;
    if (rl->state == ROUTER_LEASE_ACTIVE && now >= rl->expires)
        lease_stop(rl, now, "not renewed in time");
    if (rl->in_flight != ROUTER_LEASE_NONE) {
        if (now - rl->sent_at < GIVE_UP(rl))
            return ROUTER_LEASE_NONE;
        rl->in_flight = ROUTER_LEASE_NONE; /* no answer: forget it */
        rl->req_id++;
    }
    if (rl->state == ROUTER_LEASE_ACTIVE) {
        if (now >= rl->expires - rl->lease_s + RENEW_AFTER(rl))
            return lease_send(rl, ROUTER_LEASE_RENEW, now);
        return ROUTER_LEASE_NONE;
    }
    if (now >= rl->next_try)
        return lease_send(rl, ROUTER_LEASE_ACQUIRE, now);
    return ROUTER_LEASE_NONE;
}

void router_lease_reply(router_lease_t *rl, uint64_t id, bool err, bool ok,
                        uint64_t epoch, double now)
{
    if (rl->state == ROUTER_LEASE_OFF || id != rl->req_id ||
        rl->in_flight == ROUTER_LEASE_NONE)
        return;
    router_lease_req_t q = rl->in_flight;
    rl->in_flight = ROUTER_LEASE_NONE;
    if (q == ROUTER_LEASE_ACQUIRE) {
        if (!err && ok && rl->state == ROUTER_LEASE_STANDBY && epoch > 0) {
            rl->state = ROUTER_LEASE_ACTIVE;
            rl->epoch = epoch;
            rl->expires = rl->sent_at + rl->lease_s - STOP_EARLY(rl);
            rl->told_standby = false;
            kn_log_info("lease: acquired, epoch %llu",
                        (unsigned long long)epoch);
            return;
        }
        if (!err && !ok && !rl->told_standby) {
            rl->told_standby = true;
            kn_log_info("lease: held by another router: standby");
        }
        rl->next_try = now + RETRY_EVERY(rl);
        return;
    }
    /* RENEW */
    if (rl->state != ROUTER_LEASE_ACTIVE || err)
        return; /* expiry decides */
    if (ok)
        rl->expires = rl->sent_at + rl->lease_s - STOP_EARLY(rl);
    else
        lease_stop(rl, now, "another router holds the lease");
}

void router_lease_release(router_lease_t *rl)
{
    if (rl->state != ROUTER_LEASE_ACTIVE)
        return;
    rl->state = ROUTER_LEASE_STANDBY;
    rl->in_flight = ROUTER_LEASE_NONE;
    rl->req_id++;
}
