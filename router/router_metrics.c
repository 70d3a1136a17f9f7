/*
 * router_metrics.c - the router's Prometheus series: its stats counters,
 * the routing table's size, the warm-up queue, and one liveness series
 * per known node (see kn_metrics.h).
 */
#include "router_metrics.h"

#include "kn_metrics.h"

static double rm_sessions(void *arg)
{
    router_t *r = arg;
    return (double)HASH_COUNT(r->sessions);
}

static double rm_held(void *arg)
{
    router_t *r = arg;
    return (double)r->hold_count;
}

static void rm_nodes(kn_buf_t *out, void *arg)
{
    router_t *r = arg;
    kn_buf_append_str(out, "# HELP kiln_node_up 1 while the node is alive "
                           "(heartbeats within node_timeout_ms)\n"
                           "# TYPE kiln_node_up gauge\n");
    for (const router_node_t *n = r->nodes_by_name; n != NULL; n = n->hh.next)
        kn_buf_printf(out, "kiln_node_up{node=\"%s\"} %d\n", n->name,
                      n->alive ? 1 : 0);
    kn_buf_append_str(out, "# HELP kiln_node_sessions sessions the router "
                           "routes to the node\n"
                           "# TYPE kiln_node_sessions gauge\n");
    for (const router_node_t *n = r->nodes_by_name; n != NULL; n = n->hh.next)
        kn_buf_printf(out, "kiln_node_sessions{node=\"%s\"} %zu\n", n->name,
                      n->nsessions);
}

void router_metrics_register(router_t *r)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } c[] = {
        {"kiln_router_envelopes_in_total", "envelopes received from nodes",
         offsetof(router_stats_t, in)},
        {"kiln_router_envelopes_out_total", "envelopes sent to nodes",
         offsetof(router_stats_t, out)},
        {"kiln_router_routed_total", "stanzas routed",
         offsetof(router_stats_t, routed)},
        {"kiln_router_bounced_total", "stanzas bounced with an error",
         offsetof(router_stats_t, bounced)},
        {"kiln_router_dropped_total", "stanzas dropped",
         offsetof(router_stats_t, dropped)},
        {"kiln_router_multicast_in_total", "multicast envelopes received",
         offsetof(router_stats_t, multicast_in)},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        kn_metric_ptr(KN_METRIC_COUNTER, c[i].name, c[i].help, "",
                      (const uint64_t *)((const char *)&r->stats + c[i].off));
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_router_sessions",
                 "sessions in the routing table", "", rm_sessions, r);
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_router_held_stanzas",
                 "stanzas held during warm-up (queue depth)", "", rm_held, r);
    kn_metrics_add_renderer(rm_nodes, r);
}
