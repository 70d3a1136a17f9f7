/*
 * c2s_metrics.h - kiln-c2s's Prometheus series (kn_metrics.h): counters
 * the stream and connection code bump (NULL until registered, and
 * kn_metric_* ignore NULL, so unit tests need nothing), and sessions by
 * transport counted at scrape time (c2s_conn_metrics in c2s_conn.c).
 */
#ifndef C2S_METRICS_H
#define C2S_METRICS_H

#include "kn_metrics.h"

typedef struct c2s_metrics {
    kn_metric_t *logins, *login_failures;
    kn_metric_t *stanzas_in, *stanzas_out;
    kn_metric_t *bytes_in, *bytes_out;
    /* issue 16: connections refused at accept (by c2s_flood_verdict_t),
     * sessions whose reading was paused for their rate, and connections
     * closed for abuse */
    kn_metric_t *refused[5];
    kn_metric_t *throttled;
    kn_metric_t *closed_preauth, *closed_rate, *closed_output;
    kn_metric_t *tls_own_records; /* handshakes whose records c2s took over */
} c2s_metrics_t;

extern c2s_metrics_t c2s_metrics;

struct c2s_server;
void c2s_metrics_register(struct c2s_server *srv);

/* c2s_conn.c: connections and bound sessions by transport. */
void c2s_conn_metrics(kn_buf_t *out, void *srv);

#endif
