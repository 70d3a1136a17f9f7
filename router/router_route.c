/*
 * router_route.c - RFC 6121 section 8.5 delivery on the envelope alone.
 *
 * A note on addressing. Envelope JIDs were prepared by the sender (c2s
 * prepares what clients send), so the router only splits them: bare =
 * up to the first '/', domain = after the '@' of the bare part. Stanzas
 * to our domain go to local sessions (full JID), to the highest-priority
 * available resources (bare JID, messages), to the daemon that registered
 * the IQ's namespace (IQs to the server or to a bare JID; the sender put
 * the namespace of the IQ's first child in the envelope's node field), or
 * to the offline handler. Stanzas to another domain go to the node that
 * registered that domain (mucd, components), else they bounce: there is
 * no server-to-server yet.
 *
 * A bounce is a BOUNCE envelope carrying the original payload back to the
 * sender's node, with the stanza error condition in seq; the sender's
 * node, which parses XML anyway, writes the error stanza. Errors are never
 * bounced.
 *
 * A note on stored offline messages (R-PRES-5). The offline handler sends
 * each stored message with KN_F_ACK_WANTED to the full JID and connection
 * of the session it is for, and deletes the row only when that c2s node
 * ACKs the write. Such a stanza is delivered to that connection or to no
 * one: a replaced session (same full JID, new connection) may get the row
 * from its own login, and must not get it twice. Whatever cannot be
 * delivered goes back to the offline handler, which still holds the row,
 * so it is neither stored a second time nor bounced.
 */
#include <stdio.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

typedef struct addr {
    const char *bare;
    size_t bare_len;
    const char *domain;
    size_t domain_len;
    bool has_local;
    bool has_resource;
} addr_t;

static void addr_split(const char *jid, size_t len, addr_t *a)
{
    const char *slash = memchr(jid, '/', len);
    a->bare = jid;
    a->bare_len = slash ? (size_t)(slash - jid) : len;
    a->has_resource = slash != NULL;
    const char *at = memchr(jid, '@', a->bare_len);
    a->has_local = at != NULL;
    a->domain = at ? at + 1 : jid;
    a->domain_len = a->bare_len - (size_t)(a->domain - jid);
}

void router_emit(router_t *r, const router_node_t *n, const kn_env_t *env,
                 const router_payload_t *payload)
{
    /* Archive copies queued for this node go first (router_mam_defer). */
    if (r->arch_unsent != NULL && n == r->arch_to && !r->arch_flushing)
        router_mam_flush(r);
    r->send(r->send_ud, n, env, payload);
    r->stats.out++;
}

/* Deliver to one session's connection. True when the stanza was handed
 * to the session's node, held for its move, or stands in its XEP-0198
 * copy; false when it came back undeliverable inside a fan-out
 * (route_message_bare) or the node is unknown or dead. */
static bool route_to_sess(router_t *r, const router_sess_t *s,
                          const kn_env_t *env, const router_payload_t *pl)
{
    kn_env_t e = *env;
    e.kind = KN_ENV_STANZA;
    e.conn_id = s->conn;
    e.flags &= (uint16_t)~KN_F_REROUTE;
    if (s->sm_id != NULL)
        router_sm_copy(r, (router_sess_t *)s, &e, pl);
    if (s->moving_to != 0 && router_sm_hold(r, (router_sess_t *)s, &e, pl))
        return true; /* XEP-0198: delivered once the session has moved */
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    if (n == NULL || !n->alive)
        return false;
    size_t failed = r->fanout.failed, nsm = r->fanout.nsm;
    router_emit(r, n, &e, pl);
    r->stats.routed++;
    return r->fanout.failed == failed && r->fanout.nsm == nsm;
}

bool router_fanout_delivered(const router_t *r, const router_sess_t *s,
                             uint64_t sess_serial, int16_t prio)
{
    uint16_t mine = kn_conn_node(s->conn);
    for (const router_sess_t *o = s->bare->sessions; o; o = o->next) {
        uint16_t idx = kn_conn_node(o->conn);
        const router_node_t *n = r->nodes[idx];
        if (o != s && o->serial <= sess_serial && o->avail && o->prio == prio &&
            idx != mine && idx != r->dropping_node && n != NULL && n->alive)
            return true;
    }
    return false;
}

router_reg_t *router_reg_find(router_t *r, uint16_t flags, const char *name,
                              size_t len)
{
    char key[KN_ENV_STR_MAX + 16];
    int n = snprintf(key, sizeof(key), "%04x:%.*s", flags, (int)len, name);
    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    router_reg_t *g = NULL;
    HASH_FIND_STR(r->regs, key, g);
    return g;
}

static router_node_t *reg_node(router_t *r, uint16_t flags, const char *name,
                               size_t len)
{
    router_reg_t *g = router_reg_find(r, flags, name, len);
    if (g == NULL)
        return NULL;
    router_node_t *n = r->nodes[g->node];
    return n != NULL && n->alive && !g->stopping ? n : NULL;
}

/* The live node holding a role registration (offline handler), not
 * stopping. */
static router_node_t *role_node(router_t *r, uint16_t flags)
{
    return reg_node(r, flags, "", 0);
}

/* The presence daemon: the node registered for presence, else the
 * offline handler (both are presenced). */
static router_node_t *presence_node(router_t *r)
{
    router_node_t *n = role_node(r, KN_REG_PRESENCE);
    return n != NULL ? n : role_node(r, KN_REG_OFFLINE);
}

void router_register(router_t *r, router_node_t *src, const kn_env_t *env)
{
    uint16_t flags = env->flags;
    if (flags == 0 || (flags & (flags - 1)) != 0) {
        kn_log_warn("node %s: REGISTER needs exactly one flag (got %04x)",
                    src->name, flags);
        return;
    }
    /* Session-event subscriptions are per node: the name is the node's. */
    const char *name = env->node;
    size_t name_len = env->node_len;
    if (flags == KN_REG_SESSIONS) {
        name = src->name;
        name_len = strlen(src->name);
    }
    router_reg_t *g = router_reg_find(r, flags, name, name_len);
    if (flags == KN_REG_OFFLINE && env->reason == KN_ENV_REASON_SHUTDOWN) {
        /* The handler is stopping: nothing more for it (hand-offs and
         * row ACKs are kept for the next one); the answer tells it that
         * no ACK of ours follows (kn_proto.h). */
        if (g != NULL && g->node == src->index && !g->stopping) {
            g->stopping = true;
            kn_log_info("offline handler %s stopping: hand-offs and "
                        "acknowledgements kept for the next one",
                        src->name);
        }
        kn_env_t a = {0};
        a.kind = KN_ENV_REGISTER;
        a.flags = KN_REG_OFFLINE;
        a.reason = KN_ENV_REASON_SHUTDOWN;
        router_emit(r, src, &a, &(router_payload_t){NULL, 0, NULL});
        return;
    }
    bool late = false;
    if (g == NULL) {
        late = flags == KN_REG_SESSIONS && r->sess_log != NULL;
        g = kn_calloc(1, sizeof(*g));
        kn_buf_t k = KN_BUF_INIT;
        kn_buf_printf(&k, "%04x:%.*s", flags, (int)name_len, name);
        g->key = kn_buf_release(&k, NULL);
        g->name = g->key + 5;
        g->flags = flags;
        HASH_ADD_KEYPTR(hh, r->regs, g->key, strlen(g->key), g);
    } else if (g->node != src->index) {
        /* keep the previous registrant as a stand-in (once) */
        bool known = false;
        for (size_t i = 0; i < g->nothers; i++)
            known = known || g->others[i] == g->node;
        if (!known) {
            g->others =
                kn_realloc(g->others, (g->nothers + 1) * sizeof(*g->others));
            g->others[g->nothers++] = g->node;
        }
        for (size_t i = 0; i < g->nothers; i++)
            if (g->others[i] == src->index)
                g->others[i--] = g->others[--g->nothers];
    }
    g->node = src->index;
    g->stopping = false;
    if (flags == KN_REG_OFFLINE) {
        g->handoff_acks = (env->seq & KN_OFFLINE_ACKS_HANDOFFS) != 0;
        r->off_on = g->handoff_acks;
    }
    kn_log_info("node %s registered %04x '%s'", src->name, flags, g->name);
    if (late) /* what it missed since the warm-up began, in order */
        router_sess_log_replay(r, src);
    if (flags == KN_REG_ARCHIVE)
        router_mam_resend(r);
    if (flags == KN_REG_OFFLINE) {
        router_acks_recent_again(r);
        router_acks_flush(r);
        router_off_resend(r, src);
    }
    if (flags == KN_REG_SESSIONS)
        router_sess_tell(r, src);
}

void router_unregister_node(router_t *r, uint16_t node)
{
    router_comp_drop_node(r, node);
    router_reg_t *g, *tmp;
    HASH_ITER(hh, r->regs, g, tmp)
    {
        for (size_t i = 0; i < g->nothers; i++)
            if (g->others[i] == node)
                g->others[i--] = g->others[--g->nothers];
        if (g->node != node)
            continue;
        if (g->nothers > 0) { /* another registrant takes over */
            g->node = g->others[--g->nothers];
            continue;
        }
        HASH_DEL(r->regs, g);
        free(g->others);
        free(g->key);
        free(g);
    }
}

static router_node_t *route_sender_node(router_t *r, const kn_env_t *env);

void router_bounce(router_t *r, router_node_t *src, const kn_env_t *env,
                   const router_payload_t *payload, kn_stanza_err_t cond)
{
    if (src == NULL)
        src = route_sender_node(r, env);
    if (env->type == KN_ENV_TYPE_ERROR || src == NULL || !src->alive) {
        r->stats.dropped++;
        return;
    }
    kn_env_t e = *env;
    e.kind = KN_ENV_BOUNCE;
    e.seq = (uint32_t)cond;
    router_emit(r, src, &e, payload);
    r->stats.bounced++;
}

/* Highest priority among available sessions with priority >= 0, or -1. */
static int route_best_prio(const router_bare_t *b)
{
    int best = -1;
    for (const router_sess_t *s = b ? b->sessions : NULL; s; s = s->next)
        if (s->avail && s->prio >= 0 && s->prio > best)
            best = s->prio;
    return best;
}

/* A message for a user with no available resource: the offline handler
 * (presenced) stores it (its copy kept until it acknowledges the
 * hand-off, router_offline.c); without one the sender learns it was not
 * delivered. */
static void route_offline(router_t *r, router_node_t *src, const kn_env_t *env,
                          const router_payload_t *pl)
{
    router_node_t *h =
        (env->flags & KN_F_NO_OFFLINE) ? NULL : role_node(r, KN_REG_OFFLINE);
    if (!(env->flags & KN_F_NO_OFFLINE) && router_off_handoff(r, h, env, pl))
        return; /* kept until the handler acknowledges it */
    if (h != NULL) {
        kn_env_t e = *env;
        e.kind = KN_ENV_STANZA;
        e.flags &= (uint16_t)~KN_F_OFFLINE_HANDOFF;
        router_emit(r, h, &e, pl);
        r->stats.routed++;
        return;
    }
    router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
}

/* A stored offline message that cannot reach its connection: back to the
 * offline handler (the row's owner); without one, the row waits. */
static void route_back(router_t *r, const kn_env_t *env,
                       const router_payload_t *pl)
{
    router_node_t *h = role_node(r, KN_REG_OFFLINE);
    if (h == NULL) {
        r->stats.dropped++;
        return;
    }
    kn_env_t e = *env;
    e.kind = KN_ENV_STANZA;
    e.flags |= KN_F_REROUTE;
    router_emit(r, h, &e, pl);
    r->stats.routed++;
}

static void route_acked(router_t *r, const kn_env_t *env,
                        const router_payload_t *pl)
{
    router_sess_t *s = NULL;
    if (!(env->flags & KN_F_REROUTE))
        s = router_sess_find(r, env->to, env->to_len);
    if (s != NULL && s->conn == env->conn_id) {
        route_to_sess(r, s, env, pl);
        return;
    }
    route_back(r, env, pl);
}

static void acks_hold(router_t *r, const kn_env_t *env);

#define ROUTER_ACKS_RECENT 16384

/* Remember env's row ids as sent on (r->acks_recent). */
static void acks_remember(router_t *r, const kn_env_t *env)
{
    if (r->acks_recent == NULL)
        r->acks_recent =
            kn_malloc(ROUTER_ACKS_RECENT * sizeof(*r->acks_recent));
    for (size_t i = 0; i < env->ntargets; i++) {
        r->acks_recent[r->acks_recent_next] = kn_env_target(env, i);
        r->acks_recent_next = (r->acks_recent_next + 1) % ROUTER_ACKS_RECENT;
        if (r->nacks_recent < ROUTER_ACKS_RECENT)
            r->nacks_recent++;
    }
}

void router_acks_recent_again(router_t *r)
{
    if (r->nacks_recent == 0)
        return;
    size_t n = r->nacks_recent;
    size_t first =
        (r->acks_recent_next + ROUTER_ACKS_RECENT - n) % ROUTER_ACKS_RECENT;
    uint64_t *ids = kn_malloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        ids[i] = r->acks_recent[(first + i) % ROUTER_ACKS_RECENT];
    r->nacks_recent = 0;
    r->acks_recent_next = 0;
    kn_env_t e = {0};
    e.kind = KN_ENV_ACK;
    e.targets = ids;
    e.ntargets = n;
    acks_hold(r, &e);
    free(ids);
}

void router_route_ack(router_t *r, const kn_env_t *env)
{
    if (env->flags & KN_F_ARCHIVE) {
        router_mam_ack(r, env); /* the archiver's */
        return;
    }
    if (env->flags & KN_F_OFFLINE_HANDOFF) {
        router_off_ack(r, env); /* the offline handler's */
        return;
    }
    if (env->ntargets == 0) {
        r->stats.dropped++;
        return;
    }
    router_node_t *h = role_node(r, KN_REG_OFFLINE);
    if (h != NULL && r->nacks_held == 0) {
        router_payload_t none = {NULL, 0, NULL};
        router_emit(r, h, env, &none); /* unreachable: acks_hold */
        if (r->nacks_held == 0)
            acks_remember(r, env); /* sent on */
        return;
    }
    acks_hold(r, env);
    router_acks_flush(r);
}

#define ROUTER_ACKS_MAX     65536
#define ROUTER_ACKS_PER_ENV 8192

/* Keep env's ack ids for the next offline handler (the oldest are
 * forgotten past ROUTER_ACKS_MAX: those rows are delivered again). */
static void acks_hold(router_t *r, const kn_env_t *env)
{
    if (r->acks_held == NULL)
        r->acks_held = kn_malloc(ROUTER_ACKS_MAX * sizeof(*r->acks_held));
    for (size_t i = 0; i < env->ntargets; i++) {
        if (r->nacks_held == ROUTER_ACKS_MAX) {
            memmove(r->acks_held, r->acks_held + 1,
                    (ROUTER_ACKS_MAX - 1) * sizeof(*r->acks_held));
            r->nacks_held--;
            r->stats.dropped++;
        }
        r->acks_held[r->nacks_held++] = kn_env_target(env, i);
    }
}

void router_acks_flush(router_t *r)
{
    router_node_t *h = role_node(r, KN_REG_OFFLINE);
    if (h == NULL || r->nacks_held == 0 || r->acks_flushing)
        return;
    size_t n = r->nacks_held;
    uint64_t *ids = r->acks_held;
    r->acks_held = NULL;
    r->nacks_held = 0;
    r->acks_flushing = true;
    kn_log_info("offline handler %s: %zu held acknowledgements sent", h->name,
                n);
    for (size_t off = 0; off < n; off += ROUTER_ACKS_PER_ENV) {
        kn_env_t e = {0};
        e.kind = KN_ENV_ACK;
        e.targets = ids + off;
        e.ntargets =
            n - off < ROUTER_ACKS_PER_ENV ? n - off : ROUTER_ACKS_PER_ENV;
        size_t held = r->nacks_held;
        router_payload_t none = {NULL, 0, NULL};
        router_emit(r, h, &e, &none); /* unreachable: held again */
        if (r->nacks_held == held)
            acks_remember(r, &e); /* sent on */
    }
    r->acks_flushing = false;
    free(ids);
}

/* A client's message not seen before (not a reroute), eligible for
 * carbons (kn_msgrules.h, set by c2s). */
static bool carbon_ok(const kn_env_t *env)
{
    return (env->flags & (KN_F_CARBON_OK | KN_F_REROUTE)) == KN_F_CARBON_OK;
}

static void route_message_bare(router_t *r, router_node_t *src,
                               const kn_env_t *env, const addr_t *to,
                               const router_payload_t *pl)
{
    router_bare_t *b = router_bare_find(r, to->bare, to->bare_len);
    switch (env->type) {
    case KN_ENV_TYPE_GROUPCHAT:
        router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
        return;
    case KN_ENV_TYPE_HEADLINE: {
        for (router_sess_t *s = b ? b->sessions : NULL; s; s = s->next)
            if (s->avail && s->prio >= 0)
                route_to_sess(r, s, env, pl);
        return;
    }
    default: {
        int best = route_best_prio(b);
        if (carbon_ok(env))
            router_carbons_received(r, env, pl, b, NULL, best);
        if (best < 0) {
            if (env->type == KN_ENV_TYPE_ERROR)
                r->stats.dropped++;
            else
                route_offline(r, src, env, pl);
            return;
        }
        /* All but the first copy are marked, so a resource that refuses
         * it (XEP-0191) does not answer the sender once per copy. */
        kn_env_t e = *env;
        size_t targets = 0;
        for (router_sess_t *s = b->sessions; s; s = s->next)
            targets += s->avail && s->prio == best;
        if (targets < 2 || r->fanout.active || r->undeliverable) {
            for (router_sess_t *s = b->sessions; s; s = s->next) {
                if (s->avail && s->prio == best) {
                    route_to_sess(r, s, &e, pl);
                    e.flags |= KN_F_EXTRA_COPY;
                }
            }
            return;
        }
        /* Several copies: one that cannot reach its session (a node
         * that died and is not declared lost yet, say the old session
         * of a client that already logged in again elsewhere) must not
         * be rerouted to the resources that got theirs; only when no
         * copy got through does the message go on (offline storage). */
        r->fanout.active = true;
        r->fanout.prio = (int16_t)best;
        r->fanout.failed = 0;
        r->fanout.nsm = 0;
        size_t ok = 0;
        for (router_sess_t *s = b->sessions; s; s = s->next) {
            if (s->avail && s->prio == best) {
                ok += route_to_sess(r, s, &e, pl);
                e.flags |= KN_F_EXTRA_COPY;
            }
        }
        r->fanout.active = false;
        /* A resumable session's copy whose send failed stands in for it
         * (rerouted when its node is declared lost): forgotten when
         * another copy got through, as a failed copy is not rerouted
         * then; else it still stands in, so nothing goes on now. */
        size_t nsm = r->fanout.nsm;
        if (nsm > sizeof(r->fanout.sm) / sizeof(r->fanout.sm[0]))
            nsm = sizeof(r->fanout.sm) / sizeof(r->fanout.sm[0]);
        for (size_t i = 0; ok > 0 && i < nsm; i++)
            for (router_sess_t *s = b->sessions; s; s = s->next)
                if (s->conn == r->fanout.sm[i].conn)
                    router_sm_copy_forget(s, r->fanout.sm[i].seq);
        if (r->fanout.failed > 0 && ok == 0 && r->fanout.nsm == 0) {
            kn_env_t f;
            if (kn_env_decode(r->fanout.env.data, r->fanout.env.len, &f) == 0) {
                f.flags &= (uint16_t)~KN_F_EXTRA_COPY;
                router_payload_t fp = {r->fanout.payload.data,
                                       r->fanout.payload.len, NULL};
                router_undeliverable(r, NULL, &f, &fp);
            }
        } else if (r->fanout.failed > 0) {
            r->stats.dropped += r->fanout.failed;
            kn_log_info("message to %.*s: %zu of its copies did not reach "
                        "their sessions, %zu did: not rerouted",
                        (int)to->bare_len, to->bare, r->fanout.failed, ok);
        }
        r->fanout.failed = 0;
        return;
    }
    }
}

/* IQ handled by the server on behalf of a bare JID or the domain. */
static void route_iq_server(router_t *r, router_node_t *src,
                            const kn_env_t *env, const router_payload_t *pl)
{
    addr_t to;
    addr_split(env->to, env->to_len, &to);
    if (env->type == KN_ENV_TYPE_RESULT || env->type == KN_ENV_TYPE_ERROR) {
        /* An answer to an IQ the server sent. To the domain (c2s's ping):
         * nothing to do. To an account's bare JID: the presence daemon
         * sends IQs on behalf of accounts (XEP-0357 push publishes, whose
         * errors it must see), so it gets the answer; else dropped. */
        router_node_t *p = to.has_local ? presence_node(r) : NULL;
        if (p != NULL) {
            router_emit(r, p, env, pl);
            r->stats.routed++;
        } else {
            r->stats.dropped++;
        }
        return;
    }
    if (env->type == KN_ENV_TYPE_SET && router_carbons_iq(r, src, env, pl))
        return; /* XEP-0280 enable/disable */
    /* An account's own services (PEP, its disco) before the server's. */
    router_node_t *h =
        to.has_local ? reg_node(r, KN_REG_ACCOUNT_NS, env->node, env->node_len)
                     : NULL;
    if (h == NULL)
        h = reg_node(r, KN_REG_IQ_NS, env->node, env->node_len);
    if (h != NULL) {
        kn_env_t e = *env;
        router_emit(r, h, &e, pl);
        r->stats.routed++;
        return;
    }
    if (!to.has_local && router_disco_answer(r, src, env, pl))
        return;
    router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
}

static void route_presence_bare(router_t *r, const kn_env_t *env,
                                const addr_t *to, const router_payload_t *pl)
{
    /* Subscription management and probes belong to the presence daemon;
     * without one, directed presence still reaches available resources
     * and the rest is dropped (RFC 6121 8.5.2.1.3: no error for
     * presence). */
    bool subscr =
        env->type >= KN_ENV_TYPE_SUBSCRIBE && env->type <= KN_ENV_TYPE_PROBE;
    router_node_t *p = presence_node(r);
    if (subscr) {
        if (p != NULL)
            router_emit(r, p, env, pl);
        else
            r->stats.dropped++;
        return;
    }
    router_bare_t *b = router_bare_find(r, to->bare, to->bare_len);
    for (router_sess_t *s = b ? b->sessions : NULL; s; s = s->next)
        if (s->avail)
            route_to_sess(r, s, env, pl);
}

static void route_local(router_t *r, router_node_t *src, const kn_env_t *env,
                        const addr_t *to, const router_payload_t *pl)
{
    if (!to->has_local) {
        /* To the server itself. */
        if (env->stanza == KN_ENV_ST_IQ) {
            route_iq_server(r, src, env, pl);
        } else if (env->stanza == KN_ENV_ST_PRESENCE) {
            router_node_t *p = presence_node(r);
            if (p != NULL)
                router_emit(r, p, env, pl);
        } else {
            router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
        }
        return;
    }
    if (to->has_resource && !(env->flags & KN_F_REROUTE)) {
        router_sess_t *s = router_sess_find(r, env->to, env->to_len);
        if (s != NULL) {
            route_to_sess(r, s, env, pl);
            if (env->stanza == KN_ENV_ST_MESSAGE && carbon_ok(env))
                router_carbons_received(r, env, pl, s->bare, s, -1);
            return;
        }
        switch (env->stanza) {
        case KN_ENV_ST_MESSAGE:
            if (env->type == KN_ENV_TYPE_HEADLINE ||
                env->type == KN_ENV_TYPE_ERROR) {
                r->stats.dropped++;
                return;
            }
            break; /* R-ARCH-3: treated as to the bare JID */
        case KN_ENV_ST_IQ:
            /* R-ARCH-4 */
            if (env->type == KN_ENV_TYPE_GET || env->type == KN_ENV_TYPE_SET)
                router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
            else
                r->stats.dropped++;
            return;
        case KN_ENV_ST_PRESENCE:
            if (env->type < KN_ENV_TYPE_SUBSCRIBE ||
                env->type > KN_ENV_TYPE_UNSUBSCRIBED) {
                r->stats.dropped++; /* R-ARCH-4: silently */
                return;
            }
            break; /* subscription states are about the bare JID */
        default:
            return;
        }
    }
    switch (env->stanza) {
    case KN_ENV_ST_MESSAGE:
        route_message_bare(r, src, env, to, pl);
        break;
    case KN_ENV_ST_IQ:
        if (to->has_resource) /* a rerouted IQ: its target vanished */
            router_bounce(r, src, env, pl, KN_STE_SERVICE_UNAVAILABLE);
        else
            route_iq_server(r, src, env, pl);
        break;
    case KN_ENV_ST_PRESENCE:
        route_presence_bare(r, env, to, pl);
        break;
    default:
        break;
    }
}

/*
 * Presence from a client that the presence daemon must see first:
 * subscription presences, wherever they go (RFC 6121 section 3: the
 * server of each side updates the roster; to a component too, R-GW-1),
 * are handed to it and routed on by it; directed available/unavailable
 * presence (to a contact, a room, a component) is delivered as usual and
 * copied to it with KN_F_COPY, so it can send unavailable to the same
 * recipients when the session ends (R-PRES-7). Returns true when the
 * stanza was handed over (the caller stops).
 */
static bool route_presence_hooks(router_t *r, const kn_env_t *env,
                                 const addr_t *to, bool local,
                                 const router_payload_t *pl)
{
    router_node_t *p = presence_node(r);
    if (p == NULL)
        return false;
    if (env->type >= KN_ENV_TYPE_SUBSCRIBE &&
        env->type <= KN_ENV_TYPE_UNSUBSCRIBED) {
        router_emit(r, p, env, pl);
        r->stats.routed++;
        return true;
    }
    bool to_server = local && !to->has_local;
    if ((env->type == KN_ENV_TYPE_AVAILABLE ||
         env->type == KN_ENV_TYPE_UNAVAILABLE) &&
        !to_server) {
        kn_env_t c = *env;
        c.flags |= KN_F_COPY;
        router_emit(r, p, &c, pl);
    }
    return false;
}

void router_route_stanza(router_t *r, router_node_t *src, const kn_env_t *env,
                         const router_payload_t *payload)
{
    if (env->to_len == 0 && env->stanza == KN_ENV_ST_PRESENCE) {
        /* Broadcast presence: the presence daemon fans it out. */
        router_node_t *p = presence_node(r);
        if (p != NULL)
            router_emit(r, p, env, payload);
        else
            r->stats.dropped++;
        return;
    }
    if (env->to_len == 0) {
        kn_log_debug("stanza without to from %s dropped",
                     src ? src->name : "?");
        r->stats.dropped++;
        return;
    }
    if (env->flags & KN_F_ACK_WANTED) {
        route_acked(r, env, payload);
        return;
    }
    router_payload_t mpl;
    if (env->stanza == KN_ENV_ST_MESSAGE && src != NULL &&
        (src->roles & KN_F_ROLE_C2S) && !(env->flags & KN_F_REROUTE) &&
        (env->flags & (KN_F_ARCHIVE_OK | KN_F_CARBON_OK))) {
        /* XEP-0313 archive copy and the recipient's stanza-id, then
         * XEP-0280 <sent/> copies (router_mam.c, router_carbons.c). */
        uint64_t sid = 0;
        mpl = *payload;
        if (env->flags & KN_F_ARCHIVE_OK)
            sid = router_mam_message(r, env, payload, &mpl);
        if (env->flags & KN_F_CARBON_OK)
            router_carbons_sent(r, env, payload, sid);
        payload = &mpl;
    }
    addr_t to;
    addr_split(env->to, env->to_len, &to);
    size_t dl = strlen(r->domain);
    bool local = to.domain_len == dl && memcmp(to.domain, r->domain, dl) == 0;
    if (env->stanza == KN_ENV_ST_PRESENCE && src != NULL &&
        (src->roles & KN_F_ROLE_C2S) &&
        route_presence_hooks(r, env, &to, local, payload))
        return;
    if (local) {
        route_local(r, src, env, &to, payload);
        return;
    }
    router_comp_t *comp = router_comp_find(r, to.domain, to.domain_len);
    if (comp != NULL) {
        router_comp_route(r, src, comp, env, payload);
        return;
    }
    router_node_t *h = reg_node(r, KN_REG_DOMAIN, to.domain, to.domain_len);
    if (h != NULL) {
        router_emit(r, h, env, payload);
        r->stats.routed++;
        return;
    }
    router_bounce(r, src, env, payload, KN_STE_REMOTE_SERVER_NOT_FOUND);
}

void router_route_multicast(router_t *r, const kn_env_t *env,
                            const router_payload_t *payload)
{
    /* Split the target list per owning node: one message per node, each
     * node's targets in their original order. The work arrays belong to
     * the router and only grow: no allocation per multicast. */
    if (r->mc_cap < env->ntargets) {
        r->mc_split =
            kn_realloc(r->mc_split, env->ntargets * sizeof(*r->mc_split));
        r->mc_done = kn_realloc(r->mc_done, env->ntargets * sizeof(bool));
        r->mc_cap = env->ntargets;
    }
    uint64_t *split = r->mc_split;
    bool *done = r->mc_done;
    if (env->ntargets > 0)
        memset(done, 0, env->ntargets * sizeof(bool));
    r->stats.multicast_in++;
    for (size_t i = 0; i < env->ntargets; i++) {
        if (done[i])
            continue;
        uint16_t node = kn_conn_node(kn_env_target(env, i));
        size_t k = 0;
        for (size_t j = i; j < env->ntargets; j++) {
            uint64_t c = kn_env_target(env, j);
            if (!done[j] && kn_conn_node(c) == node) {
                split[k++] = c;
                done[j] = true;
            }
        }
        router_node_t *n = r->nodes[node];
        if (n == NULL || !n->alive)
            continue;
        kn_env_t e = *env;
        e.targets = split;
        e.targets_wire = NULL;
        e.ntargets = k;
        router_emit(r, n, &e, payload);
        r->stats.routed += k;
    }
}

/* The sender of env, found from its from address: the node owning the
 * full JID's session, or the node that registered from's domain. */
static router_node_t *route_sender_node(router_t *r, const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s != NULL)
        return r->nodes[kn_conn_node(s->conn)];
    addr_t a;
    addr_split(env->from, env->from_len, &a);
    if (router_comp_find(r, a.domain, a.domain_len) != NULL)
        return r->nodes[kn_conn_node(env->conn_id)]; /* its connection */
    return reg_node(r, KN_REG_DOMAIN, a.domain, a.domain_len);
}

void router_undeliverable(router_t *r, const router_node_t *to,
                          const kn_env_t *env, const router_payload_t *payload)
{
    if (env->kind == KN_ENV_SM && !r->undeliverable) {
        /* Held stanzas it releases may come back here once each. */
        router_sm_undeliverable(r, to, env);
        return;
    }
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_OFFLINE_HANDOFF)) {
        /* A hand-off to the offline handler: kept until acknowledged,
         * handed to the next one that registers (router_offline.c). */
        return;
    }
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_ARCHIVE)) {
        /* An archive copy: retained until acknowledged, sent again when
         * the archiver registers (router_mam.c). */
        r->stats.dropped++;
        return;
    }
    if (env->kind == KN_ENV_ACK && !(env->flags & KN_F_ARCHIVE)) {
        /* offline-row ACKs: the next offline handler gets them */
        acks_hold(r, env);
        return;
    }
    if (env->kind == KN_ENV_KICK) {
        /* Its node is gone: the session's copies must stand in for the
         * queue it would have rerouted (router_sess_up's conflict). */
        router_sess_t *s = router_sess_find(r, env->from, env->from_len);
        if (s != NULL && s->conn == env->conn_id)
            s->node_gone = true;
        r->stats.dropped++;
        return;
    }
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_SM_COPY) &&
        r->fanout.active && !(env->flags & KN_F_ACK_WANTED)) {
        /* one copy of several (route_message_bare decides after all) */
        if (r->fanout.nsm < sizeof(r->fanout.sm) / sizeof(r->fanout.sm[0])) {
            r->fanout.sm[r->fanout.nsm].conn = env->conn_id;
            r->fanout.sm[r->fanout.nsm].seq = env->ack_id;
        }
        r->fanout.nsm++;
        r->stats.dropped++;
        return;
    }
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_SM_COPY)) {
        /* To a resumable session whose node is gone (killed, not yet
         * declared lost): the router's copy stands in for it and is
         * rerouted once when the node is declared lost or says HELLO
         * again. Sending it to the offline handler now as well would
         * deliver it twice, or, while presenced still counts the session
         * available, bounce it to a sender whose message arrives. */
        r->stats.dropped++;
        return;
    }
    if (r->fanout.active && env->kind == KN_ENV_STANZA &&
        !(env->flags & (KN_F_ACK_WANTED | KN_F_ARCHIVE))) {
        /* One copy of several (route_message_bare decides after all) */
        if (r->fanout.failed++ == 0) {
            r->fanout.env.len = 0;
            r->fanout.payload.len = 0;
            if (kn_env_encode(env, &r->fanout.env) < 0)
                r->fanout.failed--; /* cannot happen: it was encoded */
            else
                kn_buf_append(&r->fanout.payload, payload->data, payload->len);
        }
        return;
    }
    if (env->kind != KN_ENV_STANZA || r->undeliverable) {
        /* From inside this function: the offline handler or the sender's
         * node is unreachable too. Dropping ends what would otherwise
         * recurse until the stack ran out. */
        r->stats.dropped++;
        return;
    }
    r->undeliverable = true;
    router_node_t *src = route_sender_node(r, env);
    bool offline_gone = to != NULL && to == role_node(r, KN_REG_OFFLINE);
    if (env->flags & KN_F_ACK_WANTED) {
        if (offline_gone)
            r->stats.dropped++; /* presenced still holds the row */
        else
            route_back(r, env, payload);
    } else if (env->stanza == KN_ENV_ST_MESSAGE && kn_env_wants_reply(env)) {
        if (offline_gone) /* the offline handler itself is unreachable */
            router_bounce(r, src, env, payload, KN_STE_SERVICE_UNAVAILABLE);
        else
            route_offline(r, src, env, payload);
    } else if (env->stanza == KN_ENV_ST_IQ && kn_env_wants_reply(env)) {
        router_bounce(r, src, env, payload, KN_STE_SERVICE_UNAVAILABLE);
    } else {
        r->stats.dropped++;
    }
    r->undeliverable = false;
}
