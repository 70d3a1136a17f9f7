/*
 * kn_daemon.h - what every Kiln process's main() shares: the command line
 * (-c FILE, --node NAME, --check-config, -h), loading the common config,
 * readiness (sd_notify READY=1 and a "ready" log line that tests wait
 * for), and SIGINT/SIGTERM/SIGHUP on the libev loop.
 */
#ifndef KN_DAEMON_H
#define KN_DAEMON_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "kn_config.h"

typedef struct kn_daemon_args {
    const char *conf_path; /* -c; default $KILN_CONF or /etc/kiln/kiln.conf */
    const char *node;      /* --node; NULL when not given */
    bool check_only;       /* --check-config */
} kn_daemon_args_t;

/* Parse argv. Prints usage and exits 2 on a bad command line, 0 on -h
 * (this is main()'s job, so exiting here is allowed). */
void kn_daemon_parse_args(int argc, char **argv, const char *prog,
                          kn_daemon_args_t *out);

/* Open the config and load the common part; logs the error and returns
 * -KN_EINVAL on failure. Sets up logging (ident = prog, level from
 * config). *cfp is owned by the caller. */
int kn_daemon_load(const kn_daemon_args_t *a, const char *prog, kn_conf_t **cfp,
                   kn_common_conf_t *cc);

/* Tell systemd and the log that the process is ready to serve. */
void kn_daemon_ready(const char *what);

/* Stop the loop (ev_break) on SIGINT/SIGTERM after calling on_stop (may
 * be NULL); ignore SIGPIPE. The watchers live in static storage. The
 * same as kn_daemon_signals_drain with nothing to drain. */
void kn_daemon_signals(struct ev_loop *loop, void (*on_stop)(void *),
                       void *arg);

/*
 * Graceful stop: what a process accepted is finished, not dropped.
 *
 * On the first SIGINT/SIGTERM: log "signal N: stopping", sd_notify
 * STOPPING=1, call ops->stop (stop taking new work; may be NULL), then
 * keep the loop running while ops->pending(arg) (queued or in-flight
 * writes, may be NULL: nothing) is not 0, at most drain_ms
 * (shutdown_drain_ms); then ev_break. A second signal stops at once.
 * The log says how it ended ("drained" or "drain expired: N pending").
 */
typedef struct kn_daemon_drain_ops {
    void (*stop)(void *arg);
    size_t (*pending)(void *arg);
} kn_daemon_drain_ops_t;

void kn_daemon_signals_drain(struct ev_loop *loop,
                             const kn_daemon_drain_ops_t *ops, void *arg,
                             unsigned drain_ms);

/* The drain's state machine, on its own for unit tests. */
typedef enum kn_drain_state {
    KN_DRAIN_RUNNING,  /* no stop asked yet */
    KN_DRAIN_DRAINING, /* stop asked: waiting for pending work */
    KN_DRAIN_DONE,     /* nothing pending: stop now */
    KN_DRAIN_EXPIRED,  /* the bound passed, or a second stop: stop now */
} kn_drain_state_t;

typedef struct kn_drain {
    kn_drain_state_t state;
    double deadline; /* ev_now() seconds */
} kn_drain_t;

/* A stop signal at now: RUNNING -> DRAINING until now + bound_ms; a
 * second one while DRAINING -> EXPIRED. Returns the new state. */
kn_drain_state_t kn_drain_signal(kn_drain_t *d, double now, unsigned bound_ms);

/* Look at the work left while DRAINING: none -> DONE; the deadline
 * reached -> EXPIRED; else still DRAINING. Other states are kept.
 * Returns the new state. */
kn_drain_state_t kn_drain_check(kn_drain_t *d, double now, size_t pending);

/* A random 32-bit boot id (this run of the process). */
unsigned kn_daemon_boot_id(void);

#endif
