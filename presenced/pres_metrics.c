/*
 * pres_metrics.c - presenced's Prometheus series: its stats counters and
 * the depth of its PostgreSQL and Redis queues (see kn_metrics.h).
 */
#include "pres_metrics.h"

#include "kn_metrics.h"

static kn_pg_pool_t *g_pg, *g_pg_ord;
static kn_redis_t *g_redis;

static double pm_pg(void *arg)
{
    (void)arg;
    return (double)kn_pg_pool_pending(g_pg);
}

static double pm_pg_ord(void *arg)
{
    (void)arg;
    return (double)kn_pg_pool_pending(g_pg_ord);
}

static double pm_redis(void *arg)
{
    (void)arg;
    return (double)kn_redis_pending(g_redis);
}

void pres_metrics_register(pres_t *p, kn_pg_pool_t *pg, kn_pg_pool_t *pg_ord,
                           kn_redis_t *redis)
{
#define PM(f, h)                                                               \
    kn_metric_ptr(KN_METRIC_COUNTER, "kiln_presenced_" #f "_total", h, "",     \
                  &p->stats.f)
    PM(broadcasts, "presence broadcasts");
    PM(multicast_targets, "targets of multicast presence");
    PM(offline_stored, "messages stored offline");
    PM(offline_sent, "offline messages sent at login");
    PM(offline_acked, "offline messages acknowledged");
    PM(offline_returned, "offline messages returned to storage");
    PM(offline_bounced, "offline messages bounced");
    PM(offline_resent, "messages to store sent on to an available resource");
    PM(offline_resent_stored,
       "messages sent on to an available resource that came back: stored");
    PM(offline_dups, "messages handed again by the router, stored already");
    PM(pushes, "push notifications triggered");
    PM(push_sent, "push notifications sent");
    PM(push_removed, "push registrations removed");
    PM(caps_queries, "entity caps queries");
    PM(caps_hits, "entity caps cache hits");
    PM(caps_bad, "bad entity caps answers");
    PM(pep_contact_notified, "PEP notifications to contacts");
    PM(pep_last_sent, "PEP last items sent");
    PM(bundles, "login bundles sent (one envelope, several stanzas)");
    PM(bundled, "stanzas sent in login bundles");
#undef PM
    g_pg = pg;
    g_pg_ord = pg_ord;
    g_redis = redis;
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_queue_depth",
                 "queued or in-flight writes (PostgreSQL, Redis)",
                 "queue=\"pg\"", pm_pg, NULL);
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_queue_depth",
                 "queued or in-flight writes (PostgreSQL, Redis)",
                 "queue=\"pg_ordered\"", pm_pg_ord, NULL);
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_queue_depth",
                 "queued or in-flight writes (PostgreSQL, Redis)",
                 "queue=\"redis\"", pm_redis, NULL);
}
