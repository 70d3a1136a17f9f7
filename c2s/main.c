/*
 * kiln-c2s: arguments, config, loop, signals. Everything else is in
 * c2s_*.c (c2s_server.c builds the node).
 */
#include <ev.h>
#include <stdlib.h>

#include "c2s_conf.h"
#include "c2s_metrics.h"
#include "c2s_server.h"
#include "c2s_tls.h"
#include "kn_daemon.h"
#include "kn_log.h"

static void on_stop(void *arg)
{
    c2s_server_shutdown(arg);
}

/* SIGTERM: end the sessions, then run until the router acknowledged the
 * stop marker (c2s_server_shutdown), rerouting what it still sends. */
static const kn_daemon_drain_ops_t c2s_drain_ops = {on_stop,
                                                    c2s_server_pending};

static const char *g_node_arg; /* --node, for the reload */

/* SIGHUP: a new certificate and key (same paths or new ones), ciphers,
 * groups and minimum version serve new connections; sessions keep the
 * context they were made with. */
static void on_reload(void *arg, kn_conf_t *cf)
{
    c2s_server_t *srv = arg;
    char err[512];
    c2s_conf_t conf;
    if (c2s_conf_load(cf, g_node_arg, &conf, err, sizeof(err)) < 0) {
        kn_log_err("reload: %s (TLS unchanged)", err);
        return;
    }
    c2s_tls_ctx_t *t = c2s_server_tls_new(&conf, err, sizeof(err));
    if (t == NULL) {
        kn_log_err("reload: %s (TLS unchanged)", err);
    } else {
        c2s_tls_ctx_set_own_records(t, conf.tls_own_records != 0);
        c2s_tls_ctx_free(&srv->tls);
        srv->tls = t;
        kn_log_info("reload: TLS certificate %s", conf.tls_cert);
    }
    c2s_conf_free(&conf);
}

int main(int argc, char **argv)
{
    kn_daemon_args_t args;
    kn_daemon_parse_args(argc, argv, "kiln-c2s", &args);
    kn_conf_t *cf = NULL;
    kn_common_conf_t cc;
    if (kn_daemon_load(&args, "kiln-c2s", &cf, &cc) < 0)
        return 1;
    int rc = 1;
    char err[512];
    c2s_conf_t conf;
    if (c2s_conf_load(cf, args.node, &conf, err, sizeof(err)) < 0) {
        kn_log_err("%s", err);
        goto out_common;
    }
    const char *node = args.node ? args.node : "c2s";
    if (args.check_only) {
        c2s_tls_ctx_t *t = c2s_server_tls_new(&conf, err, sizeof(err));
        if (t == NULL) {
            kn_log_err("%s", err);
            goto out_conf;
        }
        c2s_tls_ctx_free(&t);
        kn_log_info("config ok: %s (node %s)", args.conf_path, node);
        rc = 0;
        goto out_conf;
    }
    c2s_server_rlimit(&conf);
    struct ev_loop *loop = EV_DEFAULT;
    c2s_server_t srv;
    if (c2s_server_init(&srv, loop, &cc, &conf, node) == 0 &&
        kn_metrics_serve(loop, cf, "c2s") == 0) {
        c2s_metrics_register(&srv);
        g_node_arg = args.node;
        kn_daemon_signals_drain(loop, &c2s_drain_ops, &srv,
                                (unsigned)cc.shutdown_drain_ms);
        kn_daemon_on_reload(on_reload, &srv);
        ev_run(loop, 0);
        rc = 0;
    }
    c2s_server_free(&srv);
out_conf:
    c2s_conf_free(&conf);
out_common:
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);
    return rc;
}
