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
    static const char *const refused[5] = {
        NULL, "reason=\"addr_unauth\"", "reason=\"node_unauth\"",
        "reason=\"addr_rate\"", "reason=\"node_rate\""};
    for (size_t i = 1; i < 5; i++)
        c2s_metrics.refused[i] = kn_metric_counter(
            "kiln_c2s_refused_total",
            "client connections closed at accept by the flood limits",
            refused[i]);
    c2s_metrics.throttled = kn_metric_counter(
        "kiln_c2s_throttled_total",
        "times a session's reading was paused for its input rate", "");
    c2s_metrics.closed_preauth = kn_metric_counter(
        "kiln_c2s_abuse_closed_total", "connections closed for abuse",
        "reason=\"preauth_timeout\"");
    c2s_metrics.closed_rate =
        kn_metric_counter("kiln_c2s_abuse_closed_total",
                          "connections closed for abuse", "reason=\"rate\"");
    c2s_metrics.closed_output = kn_metric_counter(
        "kiln_c2s_abuse_closed_total", "connections closed for abuse",
        "reason=\"output_full\"");
    c2s_metrics.tls_own_records = kn_metric_counter(
        "kiln_c2s_tls_own_records_total",
        "TLS 1.3 sessions whose records c2s protects itself after the "
        "handshake (tls.own_record_layer)",
        "");
    kn_metrics_add_renderer(c2s_conn_metrics, srv);
}
