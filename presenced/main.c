/*
 * kiln-presenced: arguments, config, loop, router link, PostgreSQL pool,
 * Redis, signals. Everything else is in pres_*.c.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "kn_buf.h"
#include "kn_config.h"
#include "kn_credcache.h"
#include "kn_daemon.h"
#include "kn_err.h"
#include "kn_link.h"
#include "kn_log.h"
#include "kn_metrics.h"
#include "kn_proto.h"
#include "pres.h"
#include "pres_mam.h"
#include "pres_metrics.h"

typedef struct presd {
    struct ev_loop *loop;
    kn_link_t *link;
    pres_t *p;
    kn_pg_pool_t *pg, *pg_ord;
    kn_redis_t *redis;
    kn_redis_t *creds_sub; /* the credential cache's channel (archive) */
    bool restored;
} presd_t;

/* SIGTERM: the shared-group poll stops (no new work of our own); what the
 * router already sent us is still handled, since a message left unread
 * in the socket is lost with it. */
static void presd_on_stop(void *ud)
{
    presd_t *d = ud;
    pres_stop(d->p);
    /* Nothing more from the router for the offline handler: what it
     * sends us meanwhile (a row's ACK) would be lost at our exit. */
    pres_offline_stopping(d->p);
}

/* What a stop waits for: every queued PostgreSQL statement (last
 * presence and activity, offline messages, rosters...) and Redis write. */
static size_t presd_pending(void *ud)
{
    presd_t *d = ud;
    return kn_pg_pool_pending(d->pg) + kn_pg_pool_pending(d->pg_ord) +
           kn_redis_pending(d->redis) + pres_last_pending(d->p) +
           pres_offline_stop_pending(d->p);
}

static const kn_daemon_drain_ops_t presd_drain_ops = {presd_on_stop,
                                                      presd_pending};

static void presd_send(void *ud, const kn_env_t *env, const void *payload,
                       size_t len)
{
    presd_t *d = ud;
    if (d->link == NULL) {
        kn_log_debug("stopping: router link closed, send dropped");
        return;
    }
    int rc = kn_link_send(d->link, env, payload, len);
    if (rc < 0)
        kn_log_warn("router send failed: %s", kn_strerror(rc));
}

static void presd_on_message(void *ud, const kn_env_t *env, const void *payload,
                             size_t len)
{
    presd_t *d = ud;
    pres_handle(d->p, env, payload, len);
}

static void presd_on_ready(void *ud, bool resync)
{
    presd_t *d = ud;
    if (resync)
        kn_link_synced(d->link);
}

static void presd_on_redis(kn_redis_t *r, int connected, void *arg)
{
    (void)r;
    presd_t *d = arg;
    if (connected && !d->restored && d->p != NULL) {
        d->restored = true;
        pres_sess_restore(d->p);
    }
}

/* An account changed or was removed (kn_credcache.h): the archive's
 * cached preferences of it go (pres_mam.c). */
static void presd_on_creds_changed(kn_redis_t *r, const char *msg, size_t len,
                                   void *arg)
{
    (void)r;
    (void)len;
    presd_t *d = arg;
    if (d->p != NULL)
        pres_mam_account_changed(d->p, msg);
}

static void presd_on_creds_sub(kn_redis_t *r, int connected, void *arg)
{
    (void)r;
    presd_t *d = arg;
    /* Messages may have been missed while we were not subscribed. */
    if (connected && d->p != NULL)
        pres_mam_cache_clear(d->p);
}

static const kn_link_ops_t presd_link_ops = {presd_on_message, presd_on_ready};

static const char *const presd_features[] = {
    "jabber:iq:roster",   "jabber:iq:last",
    "jabber:iq:version",  "urn:xmpp:time",
    "jabber:iq:private",  "urn:xmpp:blocking",
    "vcard-temp",         "msgoffline",
    "jabber:iq:register", NULL,
};

/* IQs to an account's bare JID that we answer for it (KN_REG_ACCOUNT_NS):
 * PEP and the account's disco (pres_pep.c), push notification
 * registrations (XEP-0357, pres_push.c). */
static const char *const presd_account_namespaces[] = {
    "urn:xmpp:push:0",
    "urn:xmpp:mam:2", /* XEP-0313 (pres_mam.c) */
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#owner",
    "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items",
    NULL,
};

static const char *const presd_namespaces[] = {
    "jabber:iq:roster",
    "jabber:iq:last",
    "jabber:iq:version",
    "urn:xmpp:time",
    "jabber:iq:private",
    "urn:xmpp:blocking",
    "vcard-temp",
    "jabber:iq:register",
    "http://jabber.org/protocol/commands",
    NULL,
};

int main(int argc, char **argv)
{
    kn_daemon_args_t args;
    kn_daemon_parse_args(argc, argv, "kiln-presenced", &args);
    kn_conf_t *cf = NULL;
    kn_common_conf_t cc;
    if (kn_daemon_load(&args, "kiln-presenced", &cf, &cc) < 0)
        return 1;
    pres_conf_t pc;
    char err[256];
    if (pres_conf_load(cf, &pc, err, sizeof(err)) < 0) {
        kn_log_err("config: %s", err);
        kn_common_conf_free(&cc);
        kn_conf_close(&cf);
        return 1;
    }
    if (args.check_only) {
        kn_log_info("config ok: %s", args.conf_path);
        pres_conf_free(&pc);
        kn_common_conf_free(&cc);
        kn_conf_close(&cf);
        return 0;
    }
    int rc = 1;
    presd_t d = {0};
    d.loop = EV_DEFAULT;
    kn_pg_config_t pgc = {0};
    pgc.conninfo = cc.db_conninfo;
    pgc.pool_min = (size_t)cc.db_pool_min;
    pgc.pool_max = (size_t)cc.db_pool_max;
    pgc.checkout_timeout_ms = (unsigned)cc.db_checkout_timeout_ms;
    /* Queries that waited for a connection go out together on the next
     * free one (libpq pipeline mode, kn_pg.c): in a login burst the
     * logins' reads (account, roster, vCard hash...) share round trips.
     * Measured (docs/PERFORMANCE.md, issue 15): PostgreSQL's CPU per
     * login with 100-contact rosters about a quarter lower. Queries sent
     * together wait for each other, so a slow one (an archive query)
     * delays at most 7 others, and only when every connection was busy. */
    pgc.pipeline_max = 8;
    if (kn_pg_pool_new(d.loop, &pgc, &d.pg) < 0) {
        kn_log_err("presenced: bad database settings");
        goto out_conf;
    }
    /* The ordered queue (pres.h, pg_ord): one connection, so statements
     * run and commit in the order they were queued; pipelined for
     * throughput (one connection still executes them in order). */
    kn_pg_config_t ordc = pgc;
    ordc.pool_min = 1;
    ordc.pool_max = 1;
    ordc.pipeline_max = 32;
    if (kn_pg_pool_new(d.loop, &ordc, &d.pg_ord) < 0) {
        kn_log_err("presenced: bad database settings");
        goto out_pg;
    }
    kn_redis_config_t rcfg = {0};
    rcfg.addr = cc.redis_address;
    if (kn_redis_new(d.loop, &rcfg, presd_on_redis, &d, &d.redis) < 0) {
        kn_log_err("presenced: bad redis address");
        goto out_pg;
    }
    if (pc.mam_enabled) {
        if (kn_redis_new(d.loop, &rcfg, presd_on_creds_sub, &d, &d.creds_sub) <
            0) {
            kn_log_err("presenced: bad redis address");
            goto out_pg;
        }
        kn_redis_subscribe(d.creds_sub, KN_CREDCACHE_CHANNEL,
                           presd_on_creds_changed, &d);
    }
    pres_sink_t sink = {presd_send, &d};
    d.p = pres_new(d.loop, cc.domain, &pc, &sink, d.pg, d.redis);
    pres_set_ordered_pg(d.p, d.pg_ord);
    /* The MUC service publishes group bookmarks for members (R-GRP-6): the
     * same domain kiln-mucd serves (mucd.service, else conference.<domain>). */
    char *svc = kn_conf_muc_service(cf, cc.domain);
    pres_pep_set_trusted(d.p, svc);
    free(svc);
    d.link = kn_link_new(d.loop, &cc, "presenced", KN_F_ROLE_DAEMON,
                         &presd_link_ops, &d);
    if (d.link == NULL)
        goto out_pres;
    kn_link_register(d.link, KN_REG_SESSIONS, "");
    kn_link_register(d.link, KN_REG_PRESENCE, "");
    /* We acknowledge the messages the router hands us to store. */
    kn_link_register_seq(d.link, KN_REG_OFFLINE, "", KN_OFFLINE_ACKS_HANDOFFS);
    if (pc.mam_enabled) /* XEP-0313: the router's archive copies */
        kn_link_register(d.link, KN_REG_ARCHIVE, "");
    for (size_t i = 0; presd_namespaces[i] != NULL; i++)
        kn_link_register(d.link, KN_REG_IQ_NS, presd_namespaces[i]);
    for (size_t i = 0; presd_account_namespaces[i] != NULL; i++)
        kn_link_register(d.link, KN_REG_ACCOUNT_NS,
                         presd_account_namespaces[i]);
    for (size_t i = 0; presd_features[i] != NULL; i++)
        kn_link_register(d.link, KN_REG_FEATURE, presd_features[i]);
    if (kn_redis_is_connected(d.redis))
        presd_on_redis(d.redis, 1, &d);
    pres_start(d.p);
    pres_metrics_register(d.p, d.pg, d.pg_ord, d.redis);
    if (kn_metrics_serve(d.loop, cf, "presenced") < 0)
        goto out_link;
    kn_daemon_signals_drain(d.loop, &presd_drain_ops, &d,
                            (unsigned)cc.shutdown_drain_ms);
    kn_daemon_ready("presenced");
    ev_run(d.loop, 0);
    rc = 0;
out_link:
    kn_metrics_serve_stop(d.loop);
    kn_link_free(&d.link);
out_pres:
    /* What is still queued (a drain that expired) gets its -KN_ECLOSED
     * callback while the context those callbacks use is alive: Redis,
     * then the pools, pres_free last. Each handle leaves the context as
     * it is freed, so a later callback cannot reach it (a pool callback
     * may write to Redis or queue on the other pool; sends after the
     * link is gone are dropped by presd_send). */
    kn_redis_free(&d.creds_sub);
    kn_redis_free(&d.redis);
    if (d.p != NULL)
        pres_set_redis(d.p, NULL);
    kn_pg_pool_free(&d.pg_ord);
    if (d.p != NULL)
        pres_set_ordered_pg(d.p, NULL);
    kn_pg_pool_free(&d.pg);
    pres_free(&d.p);
out_pg:
    kn_pg_pool_free(&d.pg_ord);
    kn_pg_pool_free(&d.pg);
    kn_redis_free(&d.creds_sub);
    kn_redis_free(&d.redis);
out_conf:
    pres_conf_free(&pc);
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);
    return rc;
}
