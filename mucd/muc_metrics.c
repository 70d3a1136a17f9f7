/*
 * muc_metrics.c - mucd's Prometheus series: its stats counters, rooms and
 * occupants' users, and its PostgreSQL queue depth (see kn_metrics.h).
 */
#include "muc_metrics.h"

#include "kn_metrics.h"

static double mm_rooms(void *arg)
{
    muc_t *m = arg;
    return (double)HASH_COUNT(m->rooms);
}

static double mm_pg(void *arg)
{
    return (double)kn_pg_pool_pending(arg);
}

void muc_metrics_register(muc_t *m, kn_pg_pool_t *pg)
{
#define MM(f, h)                                                               \
    kn_metric_ptr(KN_METRIC_COUNTER, "kiln_mucd_" #f "_total", h, "",          \
                  &m->stats.f)
    MM(joins, "room joins");
    MM(leaves, "room leaves");
    MM(messages, "groupchat messages");
    MM(deliveries, "groupchat deliveries to occupants");
    MM(offline, "group messages stored for offline members");
#undef MM
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_mucd_rooms", "rooms in memory", "",
                 mm_rooms, m);
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_queue_depth",
                 "queued or in-flight writes (PostgreSQL, Redis)",
                 "queue=\"pg\"", mm_pg, pg);
}
