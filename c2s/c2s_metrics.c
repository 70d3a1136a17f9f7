/*
 * c2s_metrics.c - register kiln-c2s's metrics (see c2s_metrics.h).
 */
#include "c2s_metrics.h"

#include "c2s_server.h"

c2s_metrics_t c2s_metrics;

void c2s_metrics_register(c2s_server_t *srv)
{
    c2s_metrics.logins = kn_metric_counter(
        "kiln_c2s_logins_total", "successful SASL authentications", "");
    c2s_metrics.login_failures = kn_metric_counter(
        "kiln_c2s_login_failures_total", "failed SASL authentications", "");
    c2s_metrics.stanzas_in =
        kn_metric_counter("kiln_c2s_stanzas_total",
                          "stanzas from and to clients", "direction=\"in\"");
    c2s_metrics.stanzas_out =
        kn_metric_counter("kiln_c2s_stanzas_total",
                          "stanzas from and to clients", "direction=\"out\"");
    c2s_metrics.bytes_in =
        kn_metric_counter("kiln_c2s_bytes_total",
                          "stream bytes from and to clients (after TLS and "
                          "framing)",
                          "direction=\"in\"");
    c2s_metrics.bytes_out =
        kn_metric_counter("kiln_c2s_bytes_total",
                          "stream bytes from and to clients (after TLS and "
                          "framing)",
                          "direction=\"out\"");
    c2s_metrics.tls_own_records = kn_metric_counter(
        "kiln_c2s_tls_own_records_total",
        "TLS 1.3 sessions whose records c2s protects itself after the "
        "handshake (tls.own_record_layer)",
        "");
    kn_metrics_add_renderer(c2s_conn_metrics, srv);
}
