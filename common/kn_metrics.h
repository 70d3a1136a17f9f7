/*
 * kn_metrics.h - Prometheus metrics: a process-wide registry of counters,
 * gauges and histograms, the text exposition format (version 0.0.4), and
 * a tiny HTTP responder for the daemons without an HTTP server of their
 * own (router, presenced, mucd; c2s answers /metrics on its HTTP port).
 *
 * A series is a metric name plus a fixed label string (`transport="tcp"`,
 * or "" for none). Series of one name are rendered together under one
 * HELP/TYPE. A series either owns its value (kn_metric_inc/add/set), or
 * points at a uint64_t the process already keeps (its stats struct), or
 * asks a callback at scrape time (queue depths). Single-threaded: every
 * call comes from the process's event loop.
 */
#ifndef KN_METRICS_H
#define KN_METRICS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"
#include "kn_config.h"

typedef enum kn_metric_type {
    KN_METRIC_COUNTER,
    KN_METRIC_GAUGE,
    KN_METRIC_HISTOGRAM,
} kn_metric_type_t;

typedef struct kn_metric kn_metric_t;
typedef double (*kn_metric_fn_t)(void *arg);

/* Register a series; the same (name, labels) twice returns the first.
 * name/help/labels are copied. */
kn_metric_t *kn_metric_counter(const char *name, const char *help,
                               const char *labels);
kn_metric_t *kn_metric_gauge(const char *name, const char *help,
                             const char *labels);
/* bounds: ascending upper bounds (the +Inf bucket is implied). */
kn_metric_t *kn_metric_histogram(const char *name, const char *help,
                                 const char *labels, const double *bounds,
                                 size_t nbounds);
/* A series whose value is read from *p (a counter or gauge kept
 * elsewhere; p must outlive the registry or be unregistered). */
kn_metric_t *kn_metric_ptr(kn_metric_type_t type, const char *name,
                           const char *help, const char *labels,
                           const uint64_t *p);
/* A series whose value is fn(arg) at scrape time. */
kn_metric_t *kn_metric_fn(kn_metric_type_t type, const char *name,
                          const char *help, const char *labels,
                          kn_metric_fn_t fn, void *arg);

void kn_metric_inc(kn_metric_t *m);
void kn_metric_dec(kn_metric_t *m);
void kn_metric_add(kn_metric_t *m, double v);
void kn_metric_set(kn_metric_t *m, double v);
void kn_metric_observe(kn_metric_t *m, double v);
double kn_metric_value(const kn_metric_t *m);

/* Latency buckets in seconds (100 us .. 10 s) for kn_metric_histogram. */
extern const double kn_metric_latency_bounds[];
extern const size_t kn_metric_latency_nbounds;

/* A callback that appends whole families (HELP, TYPE and series) at
 * scrape time, for series whose labels come and go (one per node). */
typedef void (*kn_metrics_render_fn_t)(kn_buf_t *out, void *arg);
void kn_metrics_add_renderer(kn_metrics_render_fn_t fn, void *arg);

/*
 * The event loop's iteration times (stalls made visible): how long each
 * iteration of `loop` spends in callbacks, from the poll's return to the
 * next poll (an ev_check at EV_MAXPRI starts the clock, an ev_prepare at
 * EV_MINPRI, after the process's own prepare hooks, stops it), in
 * kiln_loop_iteration_seconds, and the longest one so far in
 * kiln_loop_iteration_max_seconds. Neither watcher keeps the loop alive.
 * One loop per process; the watchers are static.
 */
void kn_metrics_watch_loop(struct ev_loop *loop);
void kn_metrics_unwatch_loop(struct ev_loop *loop);

/* Bounds of kiln_loop_iteration_seconds (10 us .. 2.5 s). */
extern const double kn_metric_loop_bounds[];
extern const size_t kn_metric_loop_nbounds;

/* Append the exposition text of every series to out. */
void kn_metrics_render(kn_buf_t *out);

/* Drop every series (unit tests only: kn_pg and kn_redis keep pointers to
 * their histograms, so a daemon never resets; the registry stays
 * reachable, which leak checkers accept). */
void kn_metrics_reset(void);

/*
 * Serve GET /metrics for process `proc` ("router", "presenced", "mucd")
 * on the port of the config's top-level `metrics` group:
 *   metrics = { bind = "127.0.0.1"; router_port = 9470; ... };
 * No group or port 0: nothing is served (returns 0); c2s calls it with
 * "c2s" to load metrics.allow only. Returns -KN_E* when
 * the port cannot be bound. Also registers kiln_up and
 * kiln_start_time_seconds, and watches the loop's iteration times
 * (kn_metrics_watch_loop; kn_metrics_serve_stop stops that).
 */
int kn_metrics_serve(struct ev_loop *loop, const kn_conf_t *cf,
                     const char *proc);
void kn_metrics_serve_stop(struct ev_loop *loop);

/* May this peer read /metrics? Loopback always; others when their address
 * is in metrics.allow (a comma list; "*": anyone). Applies to every
 * metrics endpoint, c2s's HTTP port included. */
struct sockaddr;
bool kn_metrics_peer_allowed(const struct sockaddr *sa);

/* The answer to one raw HTTP request head (pure; unit-tested): 200 with
 * the metrics for GET/HEAD /metrics, 404 or 405 otherwise. */
void kn_metrics_http_answer(const char *req, size_t len, kn_buf_t *out);

#endif
