/*
 * kiln-router: arguments, config, loop, signals. Everything else is in
 * router_*.c.
 */
#include <ev.h>
#include <stdlib.h>

#include "kn_daemon.h"
#include "kn_log.h"
#include "kn_metrics.h"
#include "router.h"
#include "router_io.h"
#include "router_metrics.h"
#include "router_redis.h"

static router_t *g_router;
static router_redis_t *g_redis;

/* A stop waits for the routing table's Redis writes (session ends the
 * nodes just reported) to be answered. */
static size_t router_pending(void *arg)
{
    (void)arg;
    return router_redis_pending(g_redis);
}

static const kn_daemon_drain_ops_t router_drain_ops = {NULL, router_pending};

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    router_tick(g_router, ev_now(loop));
}

int main(int argc, char **argv)
{
    kn_daemon_args_t args;
    kn_daemon_parse_args(argc, argv, "kiln-router", &args);
    kn_conf_t *cf = NULL;
    kn_common_conf_t cc;
    if (kn_daemon_load(&args, "kiln-router", &cf, &cc) < 0)
        return 1;
    if (args.check_only) {
        kn_log_info("config ok: %s", args.conf_path);
        kn_common_conf_free(&cc);
        kn_conf_close(&cf);
        return 0;
    }
    struct ev_loop *loop = EV_DEFAULT;
    router_io_t *io =
        router_io_new(loop, cc.router_bind, &g_router, cc.domain,
                      kn_daemon_boot_id(), (double)cc.node_timeout_ms / 1000.0);
    if (io == NULL)
        return 1;
    router_metrics_register(g_router);
    if (kn_metrics_serve(loop, cf, "router") < 0)
        return 1;
    double period = (double)cc.heartbeat_ms / 1000.0;
    /* Hold stanzas until nodes had time to notice us and re-sync. */
    g_router->warm_until = ev_now(loop) + 2.5 * period;
    g_redis = router_redis_new(loop, g_router, cc.redis_address,
                               (long)(cc.node_timeout_ms / 1000));
    ev_timer tick;
    ev_timer_init(&tick, on_tick, period, period);
    ev_timer_start(loop, &tick);
    kn_daemon_signals_drain(loop, &router_drain_ops, NULL,
                            (unsigned)cc.shutdown_drain_ms);
    kn_daemon_ready(cc.router_bind);
    ev_run(loop, 0);
    kn_metrics_serve_stop(loop);
    router_redis_free(&g_redis);
    router_io_free(&io);
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);
    return 0;
}
