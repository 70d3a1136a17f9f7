/*
 * pres_core.c - presenced's context and the dispatch of what the router
 * sends us: session-event copies, broadcast/subscription/probe presence,
 * messages for offline users, IQs in the namespaces we registered, and
 * the c2s nodes' ACKs of written offline messages.
 *
 * Payloads are parsed once here (kn_xml_parse_stanza); handlers get the
 * stanza borrowed. `from` and `to` come from the stanza (c2s stamped
 * from), falling back to the envelope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_mam.h"

pres_t *pres_new(struct ev_loop *loop, const char *domain,
                 const pres_conf_t *conf, const pres_sink_t *sink,
                 kn_pg_pool_t *pg, kn_redis_t *redis)
{
    pres_t *p = kn_calloc(1, sizeof(*p));
    p->loop = loop;
    p->domain = kn_strdup(domain);
    p->conf = *conf;
    p->sink = *sink;
    p->pg = pg;
    p->redis = redis;
    p->shared_ver = -1;
    p->started = loop ? ev_now(loop) : 0;
    p->b = kn_stanza_builder_new();
    p->subq_tail = &p->subq_head;
    return p;
}

void pres_free(pres_t **pp)
{
    pres_t *p = *pp;
    if (p == NULL)
        return;
    if (p->loop) {
        ev_timer_stop(p->loop, &p->shared_timer);
        ev_timer_stop(p->loop, &p->off_stop_timer);
    }
    if (p->shared_inflight != NULL)
        *p->shared_inflight = NULL; /* its callback comes after us */
    if (p->admin_inflight != NULL)
        *p->admin_inflight = NULL;
    pres_pep_free(p);
    pres_adhoc_free(p);
    pres_push_free(p);
    pres_caps_free(p);
    pres_mam_free(p);
    pres_last_free(p);
    pres_sess_t *s, *stmp;
    pres_offline_free(p);
    HASH_ITER(hh, p->sessions, s, stmp)
    {
        HASH_DEL(p->sessions, s);
        pres_caps_sess_gone(p, s);
        free(s->off_ids);
        kn_stanza_unref(&s->last);
        kn_stanza_unref(&s->shown);
        for (size_t i = 0; i < s->ndir; i++)
            free(s->dir[i]);
        free(s->dir);
        free(s->full);
        free(s);
    }
    pres_user_t *u, *utmp;
    HASH_ITER(hh, p->users, u, utmp)
    {
        HASH_DEL(p->users, u);
        pres_roster_free(&u->roster);
        while (u->waiters) {
            pres_roster_waiter_t *w = u->waiters;
            u->waiters = w->next;
            free(w);
        }
        pres_block_user_free(u);
        pres_broadcast_user_free(u);
        free(u->photo);
        free(u->bare);
        free(u);
    }
    kn_stanza_builder_free(&p->b);
    kn_buf_free(&p->out);
    kn_buf_free(&p->bundle);
    kn_stanza_unref(&p->bundle_one);
    free(p->targets);
    free(p->domain);
    free(p);
    *pp = NULL;
}

void pres_set_ordered_pg(pres_t *p, kn_pg_pool_t *pg_ord)
{
    p->pg_ord = pg_ord;
}

kn_pg_pool_t *pres_pg_ordered(const pres_t *p)
{
    return p->pg_ord != NULL ? p->pg_ord : p->pg;
}

static void core_on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pres_shared_poll(t->data);
    pres_admin_poll(t->data);
}

void pres_start(pres_t *p)
{
    double period = (double)p->conf.shared_poll_ms / 1000.0;
    ev_timer_init(&p->shared_timer, core_on_poll, 0., period);
    p->shared_timer.data = p;
    ev_timer_start(p->loop, &p->shared_timer);
    pres_mam_start(p);
}

void pres_stop(pres_t *p)
{
    if (p != NULL && p->loop != NULL)
        ev_timer_stop(p->loop, &p->shared_timer);
}

void pres_set_redis(pres_t *p, kn_redis_t *redis)
{
    p->redis = redis;
}

static void core_presence(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                          const char *from, const char *to)
{
    switch (env->type) {
    case KN_ENV_TYPE_SUBSCRIBE:
    case KN_ENV_TYPE_SUBSCRIBED:
    case KN_ENV_TYPE_UNSUBSCRIBE:
    case KN_ENV_TYPE_UNSUBSCRIBED:
        /* To an account, or to another domain's JID (a gateway is
         * subscribed to as its bare domain, R-GW-1); not to ourselves. */
        if (to != NULL &&
            (strchr(to, '@') != NULL || strcmp(to, p->domain) != 0))
            pres_subscr_handle(p, env, st, from, to);
        return;
    case KN_ENV_TYPE_PROBE:
        pres_probe_handle(p, st, from, to);
        return;
    case KN_ENV_TYPE_AVAILABLE:
    case KN_ENV_TYPE_UNAVAILABLE:
        if (to == NULL || strcmp(to, p->domain) == 0)
            pres_broadcast_handle(p, st, from);
        else
            pres_directed_handle(p, st, from, to);
        return;
    default:
        return;
    }
}

void pres_handle(pres_t *p, const kn_env_t *env, const void *payload,
                 size_t len)
{
    switch (env->kind) {
    case KN_ENV_SESSION_UP:
        pres_sess_up(p, env);
        return;
    case KN_ENV_SESSION_DOWN:
        pres_sess_down(p, env);
        return;
    case KN_ENV_PRIORITY:
        pres_sess_priority(p, env);
        return;
    case KN_ENV_STANZA:
        if (env->flags & KN_F_ARCHIVE) {
            pres_mam_archive(p, env, payload, len); /* XEP-0313 */
            return;
        }
        if (env->flags & KN_F_ACK_WANTED) {
            /* One of our stored rows, back undelivered: never stored
             * again (R-PRES-5). */
            pres_offline_returned(p, env);
            return;
        }
        break;
    case KN_ENV_ACK:
        pres_offline_ack(p, env);
        return;
    case KN_ENV_REGISTER:
        if (env->flags == KN_REG_OFFLINE &&
            env->reason == KN_ENV_REASON_SHUTDOWN)
            pres_offline_stop_answered(p);
        return;
    case KN_ENV_BOUNCE:
        if (env->stanza == KN_ENV_ST_MESSAGE &&
            (env->flags & KN_F_OFFLINE_RESENT))
            break; /* one we were asked to store and sent on: stored */
        kn_log_debug("bounced: %.*s", (int)len, (const char *)payload);
        return;
    default:
        return;
    }
    kn_stanza_t *st = NULL;
    if (len == 0 || kn_xml_parse_stanza(payload, len, NULL, &st) < 0) {
        kn_log_info("unparsable %s from %.*s dropped",
                    kn_env_stanza_name(env->stanza), (int)env->from_len,
                    env->from);
        pres_offline_handoff_done(p, env);
        return;
    }
    if (env->stanza != KN_ENV_ST_MESSAGE)
        pres_offline_handoff_done(p, env); /* (only messages are handed) */
    char fromb[KN_ENV_STR_MAX + 1], tob[KN_ENV_STR_MAX + 1];
    const char *from = kn_stanza_from(st);
    if (from == NULL && env->from_len > 0) {
        snprintf(fromb, sizeof(fromb), "%.*s", (int)env->from_len, env->from);
        from = fromb;
    }
    const char *to = kn_stanza_to(st);
    if (to == NULL && env->to_len > 0) {
        snprintf(tob, sizeof(tob), "%.*s", (int)env->to_len, env->to);
        to = tob;
    }
    switch (env->stanza) {
    case KN_ENV_ST_PRESENCE:
        if (from != NULL)
            core_presence(p, env, st, from, to);
        break;
    case KN_ENV_ST_MESSAGE:
        if (to != NULL && kn_stanza_to(st) == NULL) {
            kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", to);
            pres_offline_store(p, env, t, payload, len);
            kn_stanza_unref(&t);
        } else {
            pres_offline_store(p, env, st, payload, len);
        }
        break;
    case KN_ENV_ST_IQ:
        if (from != NULL && kn_stanza_from(st) == NULL) {
            kn_stanza_t *t = kn_stanza_with_attr(st, 0, "from", from);
            pres_iq_handle(p, env, t);
            kn_stanza_unref(&t);
        } else {
            pres_iq_handle(p, env, st);
        }
        break;
    default:
        break;
    }
    kn_stanza_unref(&st);
}
