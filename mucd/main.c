/*
 * main.c - kiln-mucd: parse arguments, load config, build the loop, the
 * PostgreSQL pool and its ordered queue, load the rooms, then join the
 * router (register the MUC domain and session events) and run. The
 * protocol lives in muc_service.c and the modules it calls.
 *
 * The domain is registered only after the rooms are loaded, so no join
 * reaches a persistent room before its affiliations are known (a member
 * would be refused as a non-member). A failed load is retried.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kn_metrics.h"
#include "kn_config.h"
#include "kn_daemon.h"
#include "kn_err.h"
#include "kn_link.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_pg.h"
#include "kn_proto.h"
#include "muc_metrics.h"
#include "muc_listen.h"
#include "muc_load.h"
#include "muc_room.h"
#include "muc_service.h"
#include "muc_store.h"

typedef struct mucd_conf {
    char *service; /* "" -> conference.<domain> */
    long long history_hard_max;
    int anyone_creates;
    long long room_retire_days;
    long long voice_request_interval;
    long long max_rooms_per_user;
    long long max_occupants;
} mucd_conf_t;

static const kn_conf_def_t mucd_defs[] = {
    {"service", KN_CONF_STR, offsetof(mucd_conf_t, service), 0, "", 0, 0, NULL,
     "MUC service domain (default conference.<domain>)"},
    {"history_hard_max", KN_CONF_INT, offsetof(mucd_conf_t, history_hard_max),
     1000, NULL, 0, 100000, NULL,
     "most messages any room keeps in memory for history on join"},
    {"anyone_creates", KN_CONF_BOOL, offsetof(mucd_conf_t, anyone_creates), 0,
     NULL, 0, 1, NULL, "let users of other domains create rooms"},
    {"room_retire_days", KN_CONF_INT, offsetof(mucd_conf_t, room_retire_days),
     30, NULL, 0, 36500, NULL,
     "days a destroyed persistent room's name cannot be taken again"},
    {"voice_request_interval", KN_CONF_INT,
     offsetof(mucd_conf_t, voice_request_interval), 60, NULL, 0, 86400, NULL,
     "seconds between two voice requests of one visitor (0: no limit)"},
    {"max_rooms_per_user", KN_CONF_INT,
     offsetof(mucd_conf_t, max_rooms_per_user), 100, NULL, 0, 1000000, NULL,
     "rooms one user may own (created, or made owner); creating one more "
     "gets <not-allowed/> (0: no limit)"},
    {"max_occupants", KN_CONF_INT, offsetof(mucd_conf_t, max_occupants), 1000,
     NULL, 0, 1000000, NULL,
     "occupants of any room, whatever its own maxusers says; a join beyond "
     "gets <service-unavailable/> (0: no ceiling)"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct mucd {
    struct ev_loop *loop;
    kn_common_conf_t cc;
    muc_t m;
    kn_pg_pool_t *pg;
    muc_store_t *store;
    muc_listen_t *listen;
    kn_link_t *link;
    bool loaded;
    ev_timer reload;
} mucd_t;

/* A stop waits for the queued queries (archive inserts, room and
 * affiliation writes, which the store retries while the database is
 * unreachable), at most shutdown_drain_ms. */
static size_t mucd_pending(void *ud)
{
    mucd_t *d = ud;
    return (d->store ? muc_store_pending(d->store) : 0) +
           kn_pg_pool_pending(d->pg);
}

static const kn_daemon_drain_ops_t mucd_drain_ops = {NULL, mucd_pending};

static void mucd_send(void *ud, const kn_env_t *env, const char *payload,
                      size_t len)
{
    mucd_t *d = ud;
    if (d->link == NULL)
        return;
    int rc = kn_link_send(d->link, env, payload, len);
    if (rc < 0)
        kn_log_warn("mucd: send to router failed: %s", kn_strerror(rc));
}

static void mucd_on_message(void *ud, const kn_env_t *env, const void *payload,
                            size_t len)
{
    mucd_t *d = ud;
    muc_service_handle(&d->m, env, payload, len);
}

static void mucd_on_ready(void *ud, bool resync)
{
    mucd_t *d = ud;
    if (resync)
        kn_link_synced(d->link);
}

static const kn_link_ops_t mucd_link_ops = {mucd_on_message, mucd_on_ready};

static void mucd_on_loaded(int err, void *arg)
{
    mucd_t *d = arg;
    if (err < 0) {
        kn_log_warn("mucd: loading rooms failed (%s); retrying",
                    kn_strerror(err));
        ev_timer_set(&d->reload, 1., 0.);
        ev_timer_start(d->loop, &d->reload);
        return;
    }
    d->loaded = true;
    kn_log_info("mucd: %u rooms loaded", (unsigned)HASH_COUNT(d->m.rooms));
    d->link = kn_link_new(d->loop, &d->cc, "mucd", KN_F_ROLE_DAEMON,
                          &mucd_link_ops, d);
    if (d->link == NULL) {
        ev_break(d->loop, EVBREAK_ALL);
        return;
    }
    kn_link_register(d->link, KN_REG_DOMAIN, d->m.set.service);
    kn_link_register(d->link, KN_REG_SESSIONS, "");
    char what[256];
    snprintf(what, sizeof(what), "mucd serving %s", d->m.set.service);
    kn_daemon_ready(what);
}

static void mucd_on_reload(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    mucd_t *d = t->data;
    muc_load(&d->m, NULL, mucd_on_loaded, d);
}

static void mucd_on_inval(const char *payload, void *arg)
{
    mucd_t *d = arg;
    if (!d->loaded)
        return;
    if (payload == NULL) {
        /* (Re)connected: anything may have changed meanwhile. */
        for (muc_room_t *r = d->m.rooms; r; r = r->hh.next)
            if (r->stored)
                muc_load(&d->m, r->jid, NULL, NULL);
        return;
    }
    const char *bar = strchr(payload, '|');
    if (bar == NULL)
        return;
    size_t olen = (size_t)(bar - payload);
    const char *me = d->m.set.origin;
    if (olen == strlen(me) && memcmp(payload, me, olen) == 0)
        return;
    kn_log_debug("mucd: room %s changed elsewhere, reloading", bar + 1);
    muc_load(&d->m, bar + 1, NULL, NULL);
}

int main(int argc, char **argv)
{
    kn_daemon_args_t args;
    kn_conf_t *cf = NULL;
    mucd_t d;
    mucd_conf_t mc;
    char err[512];
    int rc = 1;

    memset(&d, 0, sizeof(d));
    memset(&mc, 0, sizeof(mc));
    kn_daemon_parse_args(argc, argv, "kiln-mucd", &args);
    if (kn_daemon_load(&args, "kiln-mucd", &cf, &d.cc) < 0)
        return 1;
    if (kn_conf_apply(cf, "mucd", mucd_defs, &mc, err, sizeof(err)) < 0) {
        kn_log_err("%s: %s", args.conf_path, err);
        goto out_conf;
    }
    if (args.check_only) {
        printf("config ok\n");
        rc = 0;
        goto out_conf;
    }
    char *svc = kn_conf_muc_service(cf, d.cc.domain);
    d.loop = EV_DEFAULT;
    muc_sink_t sink = {mucd_send, &d};
    muc_init(&d.m, d.cc.domain, svc, &sink);
    free(svc);
    d.m.set.history_hard_max = (size_t)mc.history_hard_max;
    d.m.set.anyone_creates = mc.anyone_creates != 0;
    d.m.set.retire_days = (unsigned)mc.room_retire_days;
    d.m.set.voice_interval = (unsigned)mc.voice_request_interval;
    d.m.set.max_rooms_per_user = (size_t)mc.max_rooms_per_user;
    d.m.set.max_occupants = (size_t)mc.max_occupants;
    kn_buf_t origin = KN_BUF_INIT;
    kn_buf_printf(&origin, "mucd:%08x", kn_daemon_boot_id());
    d.m.set.origin = kn_buf_release(&origin, NULL);

    kn_pg_config_t pc = {0};
    pc.conninfo = d.cc.db_conninfo;
    pc.pool_min = (size_t)d.cc.db_pool_min;
    pc.pool_max = (size_t)d.cc.db_pool_max;
    pc.checkout_timeout_ms = (unsigned)d.cc.db_checkout_timeout_ms;
    if (kn_pg_pool_new(d.loop, &pc, &d.pg) < 0) {
        kn_log_err("mucd: bad database settings");
        goto out_muc;
    }
    d.store = muc_store_new(d.loop, d.pg);
    d.m.store = (struct muc_store *)d.store;
    d.listen = muc_listen_new(d.loop, d.cc.db_conninfo, mucd_on_inval, &d);
    ev_timer_init(&d.reload, mucd_on_reload, 0., 0.);
    d.reload.data = &d;
    kn_daemon_signals_drain(d.loop, &mucd_drain_ops, &d,
                            (unsigned)d.cc.shutdown_drain_ms);
    muc_load(&d.m, NULL, mucd_on_loaded, &d);
    muc_metrics_register(&d.m, d.pg);
    if (kn_metrics_serve(d.loop, cf, "mucd") == 0) {
        ev_run(d.loop, 0);
        rc = 0;
    }
    kn_metrics_serve_stop(d.loop);

    ev_timer_stop(d.loop, &d.reload);
    kn_link_free(&d.link);
    muc_listen_free(&d.listen);
    kn_pg_pool_free(&d.pg);
    muc_store_free(&d.store);
    d.m.store = NULL;
out_muc:
    muc_fini(&d.m);
out_conf:
    kn_conf_free_fields(mucd_defs, &mc);
    kn_common_conf_free(&d.cc);
    kn_conf_close(&cf);
    return rc;
}
