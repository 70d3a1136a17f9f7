/*
 * router_sm.c - XEP-0198 resumption through the router: how a session
 * moves from one connection to another, on the same c2s node or another.
 *
 * A note on the exchange (kn_proto.h, docs/ARCHITECTURE.md). A c2s node
 * announces a resumable session's id (SM ENABLE); the router keeps it
 * with the route. A <resume/> on any node becomes an SM RESUME naming the
 * authenticated bare JID and the id; the router finds the session among
 * that bare JID's routes, marks it moving (moving_to = the new
 * connection) and forwards the request to the node that owns it. That
 * node gives the session up and answers STATE with the unacked queue
 * (or FAILED). On STATE the route is switched to the new connection in
 * one step (router_sess_move: table, session-event copies with
 * KN_F_MOVED, Redis), the STATE goes on to the new node, and then the
 * stanzas that arrived for the session while it was moving, which were
 * held here, follow it in order. Everything routed to the session
 * before the RESUME reached the old node was in that node's queue, since
 * the router-to-node stream is FIFO; everything after it was held: so
 * each unacked stanza reaches the new connection exactly once and in
 * order.
 *
 * A note on copies (the owning node dies). A resumable session's unacked
 * stanzas live in its c2s node's memory; if that node is killed they
 * would be lost. So the router keeps a copy of every message that wants
 * an answer (chat, normal) it routes to a resumable session, except
 * stored offline messages (their rows are durable), numbered per session
 * (KN_F_SM_COPY, the number in ack_id). The c2s node reports the highest
 * number the client acknowledged (SM ACKED) and the router forgets the
 * copies up to it. When the router declares the node lost, the copies
 * of its sessions are routed as for a vanished connection: offline
 * storage, or another resource. When a session ends any other way, its
 * c2s node reroutes its own queue and the copies are forgotten. At most
 * SM_COPY_MAX copies per session (then the oldest is forgotten, logged).
 *
 * Failures: an unknown id, a session already moving, or an owner that is
 * not alive get FAILED item-not-found at once; an owner that cannot be
 * reached (ZMQ_ROUTER_MANDATORY) or that is declared lost while the
 * request is out fails it too, and the held stanzas are routed as for a
 * vanished connection (another resource, offline storage, bounce).
 */
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

#define SM_HOLD_MAX 10000 /* stanzas held per moving session */
#define SM_COPY_MAX 10000 /* copies per resumable session */

typedef struct router_sm_held {
    uint64_t seq;        /* copies: the sequence number */
    uint64_t fan_serial; /* copies of a message sent to several sessions:
                          * r->sess_serial then (else 0) */
    int16_t fan_prio;    /* and the priority it went to */
    kn_buf_t env;
    kn_buf_t payload;
    struct router_sm_held *next;
} sm_held_t;

static void sm_list_free(sm_held_t *h)
{
    while (h != NULL) {
        sm_held_t *next = h->next;
        kn_buf_free(&h->env);
        kn_buf_free(&h->payload);
        free(h);
        h = next;
    }
}

void router_sm_sess_free(router_sess_t *s)
{
    free(s->sm_id);
    s->sm_id = NULL;
    sm_list_free(s->sm_held);
    s->sm_held = NULL;
    s->sm_tail = NULL;
    s->sm_nheld = 0;
    sm_list_free(s->sm_copies);
    s->sm_copies = NULL;
    s->sm_ctail = NULL;
    s->sm_ncopies = 0;
}

static sm_held_t *sm_item(const kn_env_t *env, const router_payload_t *pl)
{
    sm_held_t *h = kn_calloc(1, sizeof(*h));
    if (kn_env_encode(env, &h->env) < 0) {
        free(h);
        return NULL;
    }
    kn_buf_append(&h->payload, pl->data, pl->len);
    return h;
}

void router_sm_copy(router_t *r, router_sess_t *s, kn_env_t *e,
                    const router_payload_t *payload)
{
    if (!kn_env_wants_reply(e) || e->stanza != KN_ENV_ST_MESSAGE ||
        (e->flags & KN_F_ACK_WANTED))
        return;
    e->flags |= KN_F_SM_COPY;
    e->ack_id = ++s->sm_seq;
    sm_held_t *h = sm_item(e, payload);
    if (h == NULL)
        return;
    h->seq = e->ack_id;
    if (r->fanout.active) {
        h->fan_serial = r->sess_serial;
        h->fan_prio = r->fanout.prio;
    }
    if (s->sm_ncopies >= SM_COPY_MAX) {
        sm_held_t *old = s->sm_copies;
        s->sm_copies = old->next;
        if (s->sm_copies == NULL)
            s->sm_ctail = &s->sm_copies;
        old->next = NULL;
        sm_list_free(old);
        s->sm_ncopies--;
        kn_log_warn("%s: over %d unacked messages: the oldest copy is "
                    "forgotten",
                    s->full, SM_COPY_MAX);
    }
    if (s->sm_copies == NULL)
        s->sm_ctail = &s->sm_copies;
    *s->sm_ctail = h;
    s->sm_ctail = &h->next;
    s->sm_ncopies++;
}

void router_sm_copy_forget(router_sess_t *s, uint64_t seq)
{
    sm_held_t **pp = &s->sm_copies, *prev = NULL;
    while (*pp != NULL && (*pp)->seq != seq) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    sm_held_t *h = *pp;
    *pp = h->next;
    if (s->sm_ctail == &h->next)
        s->sm_ctail = prev != NULL ? &prev->next : &s->sm_copies;
    h->next = NULL;
    sm_list_free(h);
    s->sm_ncopies--;
    if (s->sm_copies == NULL)
        s->sm_ctail = NULL;
}

/* The client acknowledged every copy up to seq. */
static void sm_acked(router_t *r, const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s == NULL || s->conn != env->conn_id)
        return;
    while (s->sm_copies != NULL && s->sm_copies->seq <= env->ack_id) {
        sm_held_t *h = s->sm_copies;
        s->sm_copies = h->next;
        h->next = NULL;
        sm_list_free(h);
        s->sm_ncopies--;
    }
    if (s->sm_copies == NULL)
        s->sm_ctail = NULL;
}

/* FAILED (cond) to the asking connection conn, with from as given. */
static void sm_fail(router_t *r, uint64_t conn, const char *from,
                    size_t from_len, int cond)
{
    router_node_t *n = r->nodes[kn_conn_node(conn)];
    if (n == NULL || !n->alive)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_SM;
    e.flags = KN_F_SM_FAILED;
    e.priority = (int16_t)cond;
    e.ack_id = conn;
    e.from = from;
    e.from_len = from_len;
    router_payload_t none = {NULL, 0, NULL};
    router_emit(r, n, &e, &none);
}

static size_t sm_bare_len(const char *jid, size_t len)
{
    const char *slash = memchr(jid, '/', len);
    return slash ? (size_t)(slash - jid) : len;
}

/* The session of bare JID jid[0..bare) matching pred. */
static router_sess_t *sm_find_id(router_t *r, const char *jid, size_t len,
                                 const char *id, size_t id_len)
{
    router_bare_t *b = router_bare_find(r, jid, sm_bare_len(jid, len));
    for (router_sess_t *s = b ? b->sessions : NULL; s; s = s->next)
        if (s->sm_id != NULL && strlen(s->sm_id) == id_len &&
            memcmp(s->sm_id, id, id_len) == 0)
            return s;
    return NULL;
}

static router_sess_t *sm_find_moving(router_t *r, const char *jid, size_t len,
                                     uint64_t to)
{
    router_bare_t *b = router_bare_find(r, jid, sm_bare_len(jid, len));
    for (router_sess_t *s = b ? b->sessions : NULL; s; s = s->next)
        if (s->moving_to == to)
            return s;
    return NULL;
}

bool router_sm_hold(router_t *r, router_sess_t *s, const kn_env_t *env,
                    const router_payload_t *payload)
{
    (void)r;
    if (s->sm_nheld >= SM_HOLD_MAX)
        return false;
    sm_held_t *h = sm_item(env, payload);
    if (h == NULL)
        return false;
    if (s->sm_held == NULL)
        s->sm_tail = &s->sm_held;
    *s->sm_tail = h;
    s->sm_tail = &h->next;
    s->sm_nheld++;
    return true;
}

static sm_held_t *sm_take_held(router_sess_t *s)
{
    sm_held_t *h = s->sm_held;
    s->sm_held = NULL;
    s->sm_tail = NULL;
    s->sm_nheld = 0;
    return h;
}

/* The move is over (done or not): what was held goes to s's connection,
 * in order. */
static void sm_release(router_t *r, router_sess_t *s)
{
    sm_held_t *h = sm_take_held(s);
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    while (h != NULL) {
        sm_held_t *next = h->next;
        kn_env_t e;
        if (kn_env_decode(h->env.data, h->env.len, &e) == 0) {
            e.conn_id = s->conn;
            router_payload_t pl = {h->payload.data, h->payload.len, NULL};
            if (n != NULL && n->alive) {
                router_emit(r, n, &e, &pl);
                r->stats.routed++;
            } else {
                router_undeliverable(r, n, &e, &pl);
            }
        }
        kn_buf_free(&h->env);
        kn_buf_free(&h->payload);
        free(h);
        h = next;
    }
}

struct router_sm_held *router_sm_sess_gone(router_t *r, router_sess_t *s,
                                           kn_env_reason_t why)
{
    sm_held_t *held = NULL;
    if (s->moving_to != 0) {
        kn_log_info("route %s removed while resuming: resumption failed",
                    s->full);
        sm_fail(r, s->moving_to, s->full, strlen(s->full),
                KN_SM_FAIL_ITEM_NOT_FOUND);
        s->moving_to = 0;
        held = sm_take_held(s);
    }
    if ((why != KN_ENV_REASON_NODE_LOST && !s->node_gone) ||
        s->sm_copies == NULL)
        return held; /* the c2s node reroutes its own queue */
    /* The node died with the queue: the copies stand in for it. Held
     * messages that have a copy are among them. */
    /* A copy of a message that also went to another session which is
     * still there stays with that one (router_fanout_delivered). */
    sm_held_t *out = NULL, **tail = &out;
    size_t n = 0, kept = 0;
    for (sm_held_t *h = s->sm_copies, *next; h != NULL; h = next) {
        next = h->next;
        h->next = NULL;
        if (h->fan_serial != 0 &&
            router_fanout_delivered(r, s, h->fan_serial, h->fan_prio)) {
            sm_list_free(h);
            kept++;
            continue;
        }
        *tail = h;
        tail = &h->next;
        n++;
    }
    kn_log_info("route %s lost with its node: %zu unacked messages "
                "rerouted from copies (%zu more reached another resource)",
                s->full, n, kept);
    s->sm_copies = NULL;
    s->sm_ctail = NULL;
    s->sm_ncopies = 0;
    while (held != NULL) {
        sm_held_t *next = held->next;
        kn_env_t e;
        held->next = NULL;
        if (kn_env_decode(held->env.data, held->env.len, &e) == 0 &&
            !(e.flags & KN_F_SM_COPY)) {
            *tail = held;
            tail = &held->next;
        } else {
            sm_list_free(held);
        }
        held = next;
    }
    return out;
}

void router_sm_release_gone(router_t *r, struct router_sm_held *h)
{
    while (h != NULL) {
        sm_held_t *next = h->next;
        kn_env_t e;
        if (kn_env_decode(h->env.data, h->env.len, &e) == 0 &&
            (kn_env_wants_reply(&e) || (e.flags & KN_F_ACK_WANTED)) &&
            !(e.flags & KN_F_REROUTE)) {
            e.flags |= KN_F_REROUTE;
            if (!(e.flags & KN_F_ACK_WANTED))
                e.conn_id = 0;
            router_payload_t pl = {h->payload.data, h->payload.len, NULL};
            router_route_stanza(r, NULL, &e, &pl);
        }
        kn_buf_free(&h->env);
        kn_buf_free(&h->payload);
        free(h);
        h = next;
    }
}

static void sm_enable(router_t *r, const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s == NULL || s->conn != env->conn_id || env->node_len == 0)
        return;
    free(s->sm_id);
    s->sm_id = kn_strndup(env->node, env->node_len);
}

static void sm_resume(router_t *r, const kn_env_t *env)
{
    router_sess_t *s =
        sm_find_id(r, env->from, env->from_len, env->node, env->node_len);
    router_node_t *old = s ? r->nodes[kn_conn_node(s->conn)] : NULL;
    if (s == NULL || s->moving_to != 0 || old == NULL || !old->alive ||
        s->conn == env->conn_id) {
        kn_log_info("resumption of %.*s by %.*s: %s", (int)env->node_len,
                    env->node, (int)env->from_len, env->from,
                    s == NULL ? "unknown id" : "not possible now");
        sm_fail(r, env->conn_id, env->from, env->from_len,
                KN_SM_FAIL_ITEM_NOT_FOUND);
        return;
    }
    s->moving_to = env->conn_id;
    kn_env_t e = *env;
    e.conn_id = s->conn;
    e.ack_id = env->conn_id;
    router_payload_t none = {NULL, 0, NULL};
    router_emit(r, old, &e, &none);
}

/* STATE or FAILED from the node that owned the session. */
static void sm_answer(router_t *r, const kn_env_t *env,
                      const router_payload_t *payload)
{
    router_sess_t *s = sm_find_moving(r, env->from, env->from_len, env->ack_id);
    router_node_t *to = r->nodes[kn_conn_node(env->ack_id)];
    kn_env_t e = *env;
    if (s == NULL ||
        ((env->flags & KN_F_SM_STATE) && s->conn != env->conn_id)) {
        /* The session went meanwhile (replaced, removed): the asking
         * node gets a FAILED and reroutes the queue, if one came. */
        if (env->flags & KN_F_SM_STATE) {
            e.flags = KN_F_SM_FAILED;
            e.priority = KN_SM_FAIL_ITEM_NOT_FOUND;
        }
    } else {
        s->moving_to = 0;
        if (env->flags & KN_F_SM_STATE)
            router_sess_move(r, s, env->ack_id,
                             (env->flags & KN_F_SM_AVAIL) != 0, env->priority);
    }
    if (to != NULL && to->alive)
        router_emit(r, to, &e, payload);
    else if (payload->len > 0)
        kn_log_warn("XEP-0198 queue of %.*s lost: node of the new "
                    "connection is gone",
                    (int)env->from_len, env->from);
    if (s != NULL && s->moving_to == 0)
        sm_release(r, s);
}

void router_sm_handle(router_t *r, router_node_t *src, const kn_env_t *env,
                      const router_payload_t *payload)
{
    if (!(src->roles & KN_F_ROLE_C2S))
        return;
    if (env->flags & KN_F_SM_ENABLE)
        sm_enable(r, env);
    else if (env->flags & KN_F_SM_RESUME)
        sm_resume(r, env);
    else if (env->flags & (KN_F_SM_STATE | KN_F_SM_FAILED))
        sm_answer(r, env, payload);
    else if (env->flags & KN_F_SM_ACKED)
        sm_acked(r, env);
}

void router_sm_undeliverable(router_t *r, const router_node_t *to,
                             const kn_env_t *env)
{
    (void)to;
    if (!(env->flags & KN_F_SM_RESUME)) {
        kn_log_warn("XEP-0198 %s for %.*s undeliverable: dropped",
                    (env->flags & KN_F_SM_STATE) ? "handover" : "answer",
                    (int)env->from_len, env->from);
        return;
    }
    /* The owner cannot be reached: the request fails. */
    router_sess_t *s = sm_find_moving(r, env->from, env->from_len, env->ack_id);
    sm_fail(r, env->ack_id, env->from, env->from_len,
            KN_SM_FAIL_ITEM_NOT_FOUND);
    if (s != NULL) {
        s->moving_to = 0;
        sm_release(r, s);
    }
}
