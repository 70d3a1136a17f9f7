/*
 * c2s_router.c - what arrives from the router (kn_link callbacks).
 *
 * STANZA: the payload is written to the target connection as is, once
 * the XEP-0191 filter let it through (c2s_block.c). If that
 * connection vanished in flight, a message or an iq get/set goes back to
 * the router with KN_F_REROUTE (the router then treats it as addressed to
 * the bare JID: another resource, offline storage, or a bounce to the
 * sender; a stored offline message, KN_F_ACK_WANTED, goes back to the
 * offline handler that holds its row); anything else (presence, iq
 * results and errors) is dropped, as RFC 6121 allows for presence and as
 * there is no one left to answer. A stored offline message that was
 * written is acknowledged (c2s_conn_ack_mark, R-PRES-5).
 * MULTICAST: the same payload to each target of ours (gone ones skipped).
 * With KN_F_BUNDLE the payload is a bundle of STANZA deliveries (presenced's
 * login flow, kn_env.h): each target gets each item in order, as if it
 * had come in its own envelope; an item that is not a plain STANZA (an
 * acknowledged offline row, block-list data, a bundle) is skipped, and a
 * malformed bundle ends at the bad item (logged).
 * BOUNCE: the router could not deliver a stanza this node sent; the
 * original sender (env->conn_id, or the full JID in env->from when the
 * id is not ours, e.g. after a reroute) gets the error reply.
 * KICK: end that connection; reason conflict gives <conflict/>.
 */
#include <stdio.h>
#include <string.h>

#include "c2s_server.h"
#include "kn_daemon.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_proto.h"

static c2s_conn_t *router_bound_conn(c2s_server_t *srv, uint64_t id)
{
    c2s_conn_t *c = c2s_conn_find(srv, id);
    if (c == NULL || c2s_conn_stream(c)->state != C2S_ST_SESSION)
        return NULL;
    if (kn_conn_node(id) != kn_conn_node(kn_link_conn_id(srv->link, 0)))
        return NULL;
    return c;
}

static void router_deliver(c2s_server_t *srv, uint64_t id, const kn_env_t *env,
                           const void *pl, size_t len, bool *delivered)
{
    c2s_conn_t *c = router_bound_conn(srv, id);
    *delivered = c != NULL;
    if (c == NULL)
        return;
    c2s_stream_t *st = c2s_conn_stream(c);
    if (c2s_stream_inbound(st, env, pl, len) == C2S_ACT_CLOSE) {
        c2s_conn_close(c, KN_SE_NONE, st->reason);
        return;
    }
    c2s_conn_output(c);
}

static void router_on_bundle(c2s_server_t *srv, uint64_t id, const void *pl,
                             size_t len)
{
    size_t off = 0;
    kn_env_t e;
    const void *ipl;
    size_t ilen;
    int rc;
    while ((rc = kn_env_bundle_next(pl, len, &off, &e, &ipl, &ilen)) > 0) {
        if (e.kind != KN_ENV_STANZA ||
            (e.flags & (KN_F_ACK_WANTED | KN_F_BLOCKLIST | KN_F_CARBONS_SET |
                        KN_F_SM_COPY | KN_F_COPY | KN_F_BUNDLE))) {
            kn_log_warn("c2s: a %s item with flags 0x%x in a bundle: skipped",
                        kn_env_kind_name(e.kind), (unsigned)e.flags);
            continue;
        }
        e.conn_id = id;
        bool ok;
        router_deliver(srv, id, &e, ipl, ilen, &ok);
        if (!ok)
            return; /* gone, or closed by this delivery */
    }
    if (rc < 0)
        kn_log_warn("c2s: a malformed bundle for connection %llx: %s",
                    (unsigned long long)id, kn_strerror(rc));
}

static void router_on_stanza(c2s_server_t *srv, const kn_env_t *env,
                             const void *pl, size_t len)
{
    bool ok;
    router_deliver(srv, env->conn_id, env, pl, len, &ok);
    kn_env_t e;
    if (ok || !c2s_reroute_env(env, &e))
        return;
    int rc = kn_link_send(srv->link, &e, pl, len);
    if (rc < 0)
        kn_log_warn("c2s: reroute of a stanza for a vanished connection "
                    "failed: %s",
                    kn_strerror(rc));
    else if (srv->stopping)
        kn_log_info("c2s: stopping: rerouted a stanza for %.*s",
                    (int)env->to_len, env->to ? env->to : "");
}

static void router_on_bounce(c2s_server_t *srv, const kn_env_t *env,
                             const void *pl, size_t len)
{
    c2s_conn_t *c = router_bound_conn(srv, env->conn_id);
    if (c == NULL && env->from_len > 0)
        c = c2s_conn_find_jid(srv, env->from, env->from_len);
    if (c == NULL || env->seq >= KN_STE_COUNT_)
        return;
    kn_stanza_t *orig = NULL;
    if (kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &orig) < 0)
        return;
    kn_stanza_t *r =
        kn_stanza_error_reply(orig, (kn_stanza_err_t)env->seq, NULL);
    if (r != NULL) {
        c2s_stream_write_stanza(c2s_conn_stream(c), r);
        c2s_conn_output(c);
    }
    kn_stanza_unref(&r);
    kn_stanza_unref(&orig);
}

static void router_on_kick(c2s_server_t *srv, const kn_env_t *env)
{
    c2s_conn_t *c = c2s_conn_find(srv, env->conn_id);
    if (c == NULL)
        return;
    kn_stream_err_t err;
    switch (env->reason) {
    case KN_ENV_REASON_CONFLICT:
        err = KN_SE_CONFLICT;
        break;
    case KN_ENV_REASON_IDLE:
        err = KN_SE_CONNECTION_TIMEOUT;
        break;
    case KN_ENV_REASON_SHUTDOWN:
        err = KN_SE_SYSTEM_SHUTDOWN;
        break;
    case KN_ENV_REASON_REMOVED: /* XEP-0077 §3.2: the account is gone */
        err = KN_SE_NOT_AUTHORIZED;
        break;
    default:
        err = KN_SE_POLICY_VIOLATION;
        break;
    }
    kn_log_info("c2s: %s kicked (%s)",
                c2s_conn_stream(c)->jid.str ? c2s_conn_stream(c)->jid.str : "?",
                kn_env_reason_name(env->reason));
    c2s_conn_close(c, err, env->reason ? env->reason : KN_ENV_REASON_DROPPED);
}

static void c2s_on_message(void *ud, const kn_env_t *env, const void *payload,
                           size_t len)
{
    c2s_server_t *srv = ud;
    /* Stopping: every session ended, so a stanza still coming is for a
     * vanished connection and is rerouted (router_on_stanza); the rest
     * has no one left to reach. */
    if (srv->stopping && env->kind != KN_ENV_STANZA)
        return;
    if (c2s_comp_on_message(srv, env, payload, len))
        return;
    switch (env->kind) {
    case KN_ENV_STANZA:
        router_on_stanza(srv, env, payload, len);
        break;
    case KN_ENV_MULTICAST:
        for (size_t i = 0; i < env->ntargets; i++) {
            bool ok;
            if (env->flags & KN_F_BUNDLE)
                router_on_bundle(srv, kn_env_target(env, i), payload, len);
            else
                router_deliver(srv, kn_env_target(env, i), env, payload, len,
                               &ok);
        }
        break;
    case KN_ENV_BOUNCE:
        router_on_bounce(srv, env, payload, len);
        break;
    case KN_ENV_KICK:
        router_on_kick(srv, env);
        break;
    case KN_ENV_SM:
        c2s_sm_on_router(srv, env, payload, len);
        break;
    default:
        kn_log_debug("c2s: ignoring %s from the router",
                     kn_env_kind_name(env->kind));
        break;
    }
}

static void c2s_on_ready(void *ud, bool resync)
{
    c2s_server_t *srv = ud;
    if (resync && kn_link_declared_lost(srv->link)) {
        /* The router ended our sessions while it could not hear us
         * (partition): contacts got their unavailable presence and the
         * router rerouted its copies of their unacknowledged messages
         * (offline storage). End them here too, so that the clients log
         * in again and fetch what was stored; c2s_sm_end leaves out the
         * queued messages the router already rerouted (KN_F_SM_COPY). */
        size_t n = 0;
        for (size_t i = 0; i < srv->nslots; i++) {
            c2s_conn_t *c = srv->slots[i];
            if (c == NULL || !c2s_conn_stream(c)->session_up)
                continue;
            /* also a session detached meanwhile (its stream closed as
             * dropped): c2s_sm_end goes by this reason */
            c2s_conn_stream(c)->reason = KN_ENV_REASON_NODE_LOST;
            c2s_conn_close(c, KN_SE_RESET, KN_ENV_REASON_NODE_LOST);
            n++;
        }
        kn_log_warn("c2s: the router had declared %s lost: ended its %zu "
                    "sessions",
                    srv->node_name, n);
        kn_link_synced(srv->link);
    } else if (resync) {
        size_t n = 0;
        for (size_t i = 0; i < srv->nslots; i++) {
            c2s_conn_t *c = srv->slots[i];
            if (c == NULL)
                continue;
            c2s_stream_t *st = c2s_conn_stream(c);
            if (st->session_up) {
                c2s_stream_reannounce(st);
                n++;
            }
        }
        kn_log_info("c2s: re-announced %zu sessions", n);
        kn_link_synced(srv->link);
    }
    c2s_comp_on_ready(srv);
    if (srv->listeners == NULL && !srv->stopping) {
        if (c2s_listen_start(srv) < 0 || c2s_comp_start(srv) < 0) {
            ev_break(srv->loop, EVBREAK_ALL);
            return;
        }
        char what[256];
        snprintf(what, sizeof(what),
                 "%s listening on %s (starttls %lld, "
                 "tls %lld)",
                 srv->node_name, srv->conf->bind, srv->conf->starttls_port,
                 srv->conf->tls_port);
        kn_daemon_ready(what);
    }
}

const kn_link_ops_t c2s_link_ops = {c2s_on_message, c2s_on_ready};
