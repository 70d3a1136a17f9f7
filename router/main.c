/*
 * kiln-router: arguments, config, loop, signals. Everything else is in
 * router_*.c.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "kn_daemon.h"
#include "kn_log.h"
#include "kn_metrics.h"
#include "router.h"
#include "router_io.h"
#include "router_lease.h"
#include "router_metrics.h"
#include "router_redis.h"

static router_t *g_router;
static router_redis_t *g_redis;
static router_lease_t g_lease;
static char g_name[64];
static long long g_lease_ms;
static struct ev_loop *g_loop;

/* A stop waits for the routing table's Redis writes (session ends the
 * nodes just reported) to be answered. */
static size_t router_pending(void *arg)
{
    (void)arg;
    return router_redis_pending(g_redis);
}

/* A stop of the active router of two: stop routing now and give the
 * lease back, so the standby takes over at once rather than at expiry. */
static void router_stop(void *arg)
{
    (void)arg;
    router_stop_routing(g_router);
    if (g_lease.state != ROUTER_LEASE_ACTIVE)
        return;
    uint64_t epoch = g_lease.epoch;
    router_lease_release(&g_lease);
    router_become_standby(g_router, ev_now(g_loop));
    router_redis_lease_release(g_redis, g_name, epoch);
}

static const kn_daemon_drain_ops_t router_drain_ops = {router_stop,
                                                       router_pending};

static bool lease_still(uint64_t epoch)
{
    return g_lease.state == ROUTER_LEASE_ACTIVE && g_lease.epoch == epoch;
}

/* Act on a change of the lease state. */
static void lease_follow(bool was_active, double now)
{
    bool active = router_lease_active(&g_lease);
    if (active && !was_active)
        router_redis_takeover(g_redis, g_router, g_lease.epoch, now,
                              lease_still);
    else if (!active && was_active)
        router_become_standby(g_router, now);
}

static void on_lease_tick(struct ev_loop *loop, ev_timer *w, int revents);

/* While active, wake up exactly when the lease runs out by our count,
 * not at the next periodic tick (router_lease.c: STOP_EARLY). */
static ev_timer g_expiry;

static void lease_arm_expiry(struct ev_loop *loop)
{
    ev_timer_stop(loop, &g_expiry);
    if (!router_lease_active(&g_lease) || g_lease.state == ROUTER_LEASE_OFF)
        return;
    double in = g_lease.expires - ev_now(loop);
    ev_timer_set(&g_expiry, in > 0 ? in : 0.0, 0.0);
    ev_timer_start(loop, &g_expiry);
}

static void on_lease_reply(void *ud, uint64_t id, bool err, bool ok,
                           uint64_t epoch)
{
    (void)ud;
    bool was = router_lease_active(&g_lease);
    router_lease_reply(&g_lease, id, err, ok, epoch, ev_now(g_loop));
    lease_follow(was, ev_now(g_loop));
    lease_arm_expiry(g_loop);
}

static void on_lease_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    bool was = router_lease_active(&g_lease);
    router_lease_req_t q = router_lease_tick(&g_lease, ev_now(loop));
    lease_follow(was, ev_now(loop));
    if (q != ROUTER_LEASE_NONE)
        router_redis_lease(g_redis, q, g_lease.req_id, g_name, g_lease.epoch,
                           g_lease_ms, on_lease_reply, NULL);
    lease_arm_expiry(loop);
}

static void on_ack_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    router_ack_links(g_router);
}

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
    g_loop = loop;
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
    g_router->warm_s = 2.5 * period;
    g_router->warm_until = ev_now(loop) + g_router->warm_s;
    g_redis = router_redis_new(loop, g_router, cc.redis_address,
                               (long)(cc.node_timeout_ms / 1000));
    ev_timer tick;
    ev_timer_init(&tick, on_tick, period, period);
    ev_timer_start(loop, &tick);
    ev_timer ack_tick;
    ev_timer_init(&ack_tick, on_ack_tick, ROUTER_ACK_EVERY, ROUTER_ACK_EVERY);
    ev_timer_start(loop, &ack_tick);
    /* Hot standby: active only while holding the Redis lease. */
    g_lease_ms = cc.lease_ms;
    router_lease_init(&g_lease, cc.lease_ms, ev_now(loop));
    ev_timer lease_tick;
    if (cc.lease_ms > 0) {
        if (cc.router_name != NULL && cc.router_name[0] != '\0')
            snprintf(g_name, sizeof(g_name), "%s", cc.router_name);
        else
            snprintf(g_name, sizeof(g_name), "router-%08x",
                     kn_daemon_boot_id());
        g_router->standby = true;
        g_router->warm_until = 0;
        kn_log_info("hot standby: %s waits for the lease (%lld ms)", g_name,
                    cc.lease_ms);
        double every = (double)cc.lease_ms / 8000.0;
        ev_timer_init(&lease_tick, on_lease_tick, 0.0, every);
        ev_timer_start(loop, &lease_tick);
        ev_timer_init(&g_expiry, on_lease_tick, 0.0, 0.0);
    }
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
