/*
 * kn_daemon.c - shared main() plumbing (see kn_daemon.h).
 */
#include "kn_daemon.h"

#include <getopt.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "kn_err.h"
#include "kn_log.h"

static void daemon_usage(const char *prog, FILE *f)
{
    fprintf(f,
            "usage: %s [-c FILE] [--node NAME] [--check-config]\n"
            "  -c, --config FILE   config file (default $KILN_CONF, else "
            "/etc/kiln/kiln.conf)\n"
            "  --node NAME         which node entry of the config to run\n"
            "  --check-config      load the config, report, and exit\n",
            prog);
}

void kn_daemon_parse_args(int argc, char **argv, const char *prog,
                          kn_daemon_args_t *out)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"node", required_argument, NULL, 'n'},
        {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(out, 0, sizeof(*out));
    out->conf_path = getenv("KILN_CONF");
    if (out->conf_path == NULL)
        out->conf_path = "/etc/kiln/kiln.conf";
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            out->conf_path = optarg;
            break;
        case 'n':
            out->node = optarg;
            break;
        case 'k':
            out->check_only = true;
            break;
        case 'h':
            daemon_usage(prog, stdout);
            exit(0);
        default:
            daemon_usage(prog, stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        daemon_usage(prog, stderr);
        exit(2);
    }
}

int kn_daemon_load(const kn_daemon_args_t *a, const char *prog, kn_conf_t **cfp,
                   kn_common_conf_t *cc)
{
    char err[512];
    kn_log_init(prog, KN_LOG_INFO);
    int rc = kn_conf_open(cfp, a->conf_path, err, sizeof(err));
    if (rc == 0) {
        rc = kn_common_conf_load(*cfp, cc, err, sizeof(err));
        if (rc < 0)
            kn_conf_close(cfp);
    }
    if (rc < 0) {
        kn_log_err("%s: %s", a->conf_path, err);
        return rc;
    }
    kn_log_init(prog, cc->log_level);
    return 0;
}

void kn_daemon_ready(const char *what)
{
    sd_notify(0, "READY=1");
    kn_log_info("ready: %s", what);
}

kn_drain_state_t kn_drain_signal(kn_drain_t *d, double now, unsigned bound_ms)
{
    if (d->state == KN_DRAIN_RUNNING) {
        d->state = KN_DRAIN_DRAINING;
        d->deadline = now + (double)bound_ms / 1000.0;
    } else if (d->state == KN_DRAIN_DRAINING) {
        d->state = KN_DRAIN_EXPIRED;
    }
    return d->state;
}

kn_drain_state_t kn_drain_check(kn_drain_t *d, double now, size_t pending)
{
    if (d->state != KN_DRAIN_DRAINING)
        return d->state;
    if (pending == 0)
        d->state = KN_DRAIN_DONE;
    else if (now >= d->deadline)
        d->state = KN_DRAIN_EXPIRED;
    return d->state;
}

/* One process, one stop: the watchers and the state are static. */
static struct {
    kn_daemon_drain_ops_t ops;
    void *arg;
    unsigned drain_ms;
    kn_drain_t drain;
    ev_prepare prepare; /* after each iteration's callbacks */
    ev_timer deadline;
    double began;
    bool had_pending; /* something to drain when the signal came */
} daemon_stop;

static size_t daemon_pending(void)
{
    return daemon_stop.ops.pending ? daemon_stop.ops.pending(daemon_stop.arg)
                                   : 0;
}

static void daemon_finish(struct ev_loop *loop)
{
    ev_prepare_stop(loop, &daemon_stop.prepare);
    ev_timer_stop(loop, &daemon_stop.deadline);
    ev_break(loop, EVBREAK_ALL);
}

static void daemon_drain_check(struct ev_loop *loop)
{
    size_t left = daemon_pending();
    switch (kn_drain_check(&daemon_stop.drain, ev_now(loop), left)) {
    case KN_DRAIN_DONE:
        if (daemon_stop.had_pending)
            kn_log_info("drained in %.0f ms",
                        (ev_now(loop) - daemon_stop.began) * 1000.0);
        daemon_finish(loop);
        return;
    case KN_DRAIN_EXPIRED:
        kn_log_warn("drain expired after %u ms: %zu pending dropped",
                    daemon_stop.drain_ms, left);
        daemon_finish(loop);
        return;
    default:
        return;
    }
}

static void daemon_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    KN_UNUSED(w);
    KN_UNUSED(revents);
    daemon_drain_check(loop);
}

static void daemon_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    KN_UNUSED(w);
    KN_UNUSED(revents);
    daemon_drain_check(loop);
}

static void daemon_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    kn_drain_state_t st =
        kn_drain_signal(&daemon_stop.drain, ev_now(loop), daemon_stop.drain_ms);
    if (st == KN_DRAIN_EXPIRED) {
        kn_log_warn("signal %d again: stopping now, %zu pending dropped",
                    w->signum, daemon_pending());
        daemon_finish(loop);
        return;
    }
    if (st != KN_DRAIN_DRAINING)
        return;
    kn_log_info("signal %d: stopping", w->signum);
    sd_notify(0, "STOPPING=1");
    daemon_stop.began = ev_now(loop);
    if (daemon_stop.ops.stop != NULL)
        daemon_stop.ops.stop(daemon_stop.arg);
    size_t left = daemon_pending();
    daemon_stop.had_pending = left > 0;
    if (left > 0)
        kn_log_info("draining %zu pending (at most %u ms)", left,
                    daemon_stop.drain_ms);
    ev_prepare_init(&daemon_stop.prepare, daemon_on_prepare);
    ev_prepare_start(loop, &daemon_stop.prepare);
    ev_timer_init(&daemon_stop.deadline, daemon_on_deadline,
                  (double)daemon_stop.drain_ms / 1000.0, 0.);
    ev_timer_start(loop, &daemon_stop.deadline);
    daemon_drain_check(loop);
}

void kn_daemon_signals_drain(struct ev_loop *loop,
                             const kn_daemon_drain_ops_t *ops, void *arg,
                             unsigned drain_ms)
{
    static ev_signal sigint, sigterm;
    memset(&daemon_stop, 0, sizeof(daemon_stop));
    if (ops != NULL)
        daemon_stop.ops = *ops;
    daemon_stop.arg = arg;
    daemon_stop.drain_ms = drain_ms;
    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sigint, daemon_on_signal, SIGINT);
    ev_signal_init(&sigterm, daemon_on_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_unref(loop);
    ev_unref(loop);
}

void kn_daemon_signals(struct ev_loop *loop, void (*on_stop)(void *), void *arg)
{
    kn_daemon_drain_ops_t ops = {on_stop, NULL};
    kn_daemon_signals_drain(loop, &ops, arg, 0);
}

unsigned kn_daemon_boot_id(void)
{
    unsigned id = 0;
    if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
        id = (unsigned)time(NULL) ^ (unsigned)getpid();
    return id ? id : 1;
}
