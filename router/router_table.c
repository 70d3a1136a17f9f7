/*
 * router_table.c - the routing table.
 *
 * A note on the table. r->sessions maps a prepared full JID to its
 * session: the owning connection id (whose top 16 bits name the node), the
 * presence priority and whether the resource is available. r->bares maps
 * a bare JID to the singly linked list of its sessions, which is what
 * RFC 6121 delivery to a bare JID walks. Invariants: every session is in
 * exactly one bare list; a bare entry with no sessions is freed at once;
 * a node's nsessions counts the sessions whose connection it owns.
 *
 * Ownership check (R-DROP-7, Openfire's OF-1923): SESSION_DOWN removes a
 * route only when the connection id still owns it, so the late "down" of
 * a session replaced by a newer login never removes the newer route.
 *
 * Every change is copied to the nodes registered for session events
 * (presenced) and written through to Redis.
 */
#include <stdio.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

router_sess_t *router_sess_find(router_t *r, const char *full, size_t len)
{
    router_sess_t *s = NULL;
    HASH_FIND(hh, r->sessions, full, len, s);
    return s;
}

router_bare_t *router_bare_find(router_t *r, const char *bare, size_t len)
{
    router_bare_t *b = NULL;
    HASH_FIND(hh, r->bares, bare, len, b);
    return b;
}

/* Copy a session event to every node registered for session events. */
#define SESS_LOG_MAX 200000

struct router_sess_ev {
    struct router_sess_ev *next;
    kn_buf_t env;
};

static void sess_log_add(router_t *r, const kn_env_t *e)
{
    if (r->warm_until <= 0)
        return;
    if (r->sess_log_count >= SESS_LOG_MAX) {
        if (r->sess_log_count++ == SESS_LOG_MAX)
            kn_log_warn("warm-up: more than %d session events, later ones "
                        "not kept for late subscribers",
                        SESS_LOG_MAX);
        return;
    }
    struct router_sess_ev *ev = kn_calloc(1, sizeof(*ev));
    if (kn_env_encode(e, &ev->env) < 0) {
        free(ev);
        return;
    }
    if (r->sess_log == NULL)
        r->sess_log_tail = &r->sess_log;
    *r->sess_log_tail = ev;
    r->sess_log_tail = &ev->next;
    r->sess_log_count++;
}

/* Only the SESSION_DOWNs of the log: router_sess_tell follows at every
 * registration and tells every session still in the table with its
 * current state, so the UPs and priority copies would come twice. */
void router_sess_log_replay(router_t *r, const router_node_t *to)
{
    router_payload_t none = {NULL, 0, NULL};
    size_t n = 0;
    for (struct router_sess_ev *ev = r->sess_log; ev != NULL; ev = ev->next) {
        kn_env_t e;
        if (kn_env_decode(ev->env.data, ev->env.len, &e) == 0 &&
            e.kind == KN_ENV_SESSION_DOWN) {
            router_emit(r, to, &e, &none);
            n++;
        }
    }
    if (n > 0)
        kn_log_info("node %s: %zu session events of the warm-up sent late",
                    to->name, n);
}

void router_sess_log_free(router_t *r)
{
    while (r->sess_log != NULL) {
        struct router_sess_ev *ev = r->sess_log;
        r->sess_log = ev->next;
        kn_buf_free(&ev->env);
        free(ev);
    }
    r->sess_log_tail = &r->sess_log;
    r->sess_log_count = 0;
}

static void table_notify(router_t *r, kn_env_kind_t kind,
                         const router_sess_t *s, kn_env_reason_t why,
                         uint16_t flags)
{
    router_reg_t *g, *tmp;
    kn_env_t e = {0};
    e.kind = kind;
    e.reason = why;
    e.flags = flags;
    e.priority = s->prio;
    e.conn_id = s->conn;
    e.from = s->full;
    e.from_len = strlen(s->full);
    router_payload_t none = {NULL, 0, NULL};
    sess_log_add(r, &e);
    HASH_ITER(hh, r->regs, g, tmp)
    {
        if (!(g->flags & KN_REG_SESSIONS))
            continue;
        router_node_t *n = r->nodes[g->node];
        if (n != NULL && n->alive)
            router_emit(r, n, &e, &none);
    }
}

void router_sess_tell(router_t *r, const router_node_t *n)
{
    router_sess_t *s, *tmp;
    router_payload_t none = {NULL, 0, NULL};
    size_t k = 0;
    HASH_ITER(hh, r->sessions, s, tmp)
    {
        kn_env_t e = {0};
        e.kind = KN_ENV_SESSION_UP;
        e.flags = (uint16_t)(KN_F_REANNOUNCE | (s->avail ? KN_F_AVAILABLE : 0) |
                             (s->carbons ? KN_F_CARBONS : 0));
        e.priority = s->prio;
        e.conn_id = s->conn;
        e.from = s->full;
        e.from_len = strlen(s->full);
        router_emit(r, n, &e, &none);
        k++;
    }
    if (k > 0)
        kn_log_info("node %s subscribed to session events: told of %zu "
                    "sessions",
                    n->name, k);
}

void router_sess_remove(router_t *r, router_sess_t *s, kn_env_reason_t why)
{
    struct router_sm_held *held = router_sm_sess_gone(r, s, why);
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    if (n != NULL && n->nsessions > 0)
        n->nsessions--;
    table_notify(r, KN_ENV_SESSION_DOWN, s, why, 0);
    router_redis_sess_down(r, s);
    router_bare_t *b = s->bare;
    for (router_sess_t **pp = &b->sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (b->sessions == NULL) {
        HASH_DEL(r->bares, b);
        free(b->bare);
        free(b);
    }
    HASH_DEL(r->sessions, s);
    kn_log_debug("route %s removed (%s)", s->full, kn_env_reason_name(why));
    router_sm_sess_free(s);
    free(s->full);
    free(s);
    router_sm_release_gone(r, held);
}

void router_sess_move(router_t *r, router_sess_t *s, uint64_t conn, bool avail,
                      int16_t prio)
{
    router_node_t *from = r->nodes[kn_conn_node(s->conn)];
    router_node_t *to = r->nodes[kn_conn_node(conn)];
    router_redis_sess_down(r, s); /* out of the old node's set */
    if (from != NULL && from->nsessions > 0)
        from->nsessions--;
    if (to != NULL)
        to->nsessions++;
    s->conn = conn;
    s->avail = avail;
    s->prio = prio;
    kn_log_info("route %s moved to %s/%llu (XEP-0198 resumption)", s->full,
                to ? to->name : "?",
                (unsigned long long)(conn & KN_CONN_LOCAL_MASK));
    table_notify(r, KN_ENV_SESSION_UP, s, KN_ENV_REASON_NONE,
                 (uint16_t)(KN_F_MOVED | (avail ? KN_F_AVAILABLE : 0)));
    router_redis_sess_up(r, s);
}

static size_t table_bare_len(const char *full, size_t len)
{
    const char *slash = memchr(full, '/', len);
    return slash ? (size_t)(slash - full) : len;
}

void router_sess_up(router_t *r, const kn_env_t *env)
{
    size_t bare_len = table_bare_len(env->from, env->from_len);
    router_node_t *n = r->nodes[kn_conn_node(env->conn_id)];
    if (bare_len == env->from_len || bare_len == 0 || n == NULL) {
        kn_log_warn("SESSION_UP for '%.*s' (conn %016llx) ignored",
                    (int)env->from_len, env->from,
                    (unsigned long long)env->conn_id);
        return;
    }
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s != NULL && s->conn != env->conn_id) {
        /* Same full JID on another connection: the newer login wins. */
        router_node_t *old = r->nodes[kn_conn_node(s->conn)];
        /* A dead node (not alive, or its KICK is undeliverable, which
         * sets node_gone) cannot reroute the old session's queue: its
         * XEP-0198 copies are rerouted instead (router_sm_sess_gone). */
        if (old == NULL || !old->alive)
            s->node_gone = true;
        if (old != NULL && old->alive) {
            kn_env_t k = {0};
            k.kind = KN_ENV_KICK;
            k.reason = KN_ENV_REASON_CONFLICT;
            k.conn_id = s->conn;
            k.from = s->full;
            k.from_len = strlen(s->full);
            router_payload_t none = {NULL, 0, NULL};
            router_emit(r, old, &k, &none);
        }
        router_sess_remove(r, s, KN_ENV_REASON_CONFLICT);
        s = NULL;
    }
    if (s == NULL) {
        s = kn_calloc(1, sizeof(*s));
        s->serial = ++r->sess_serial;
        s->full = kn_strndup(env->from, env->from_len);
        s->bare_len = bare_len;
        s->conn = env->conn_id;
        router_bare_t *b = router_bare_find(r, env->from, bare_len);
        if (b == NULL) {
            b = kn_calloc(1, sizeof(*b));
            b->bare = kn_strndup(env->from, bare_len);
            HASH_ADD_KEYPTR(hh, r->bares, b->bare, bare_len, b);
        }
        s->bare = b;
        s->next = b->sessions;
        b->sessions = s;
        HASH_ADD_KEYPTR(hh, r->sessions, s->full, env->from_len, s);
        n->nsessions++;
    }
    s->prio = env->priority;
    s->avail = (env->flags & KN_F_AVAILABLE) != 0;
    s->carbons = (env->flags & KN_F_CARBONS) != 0;
    s->restored = false;
    kn_log_debug("route %s -> %s/%llu", s->full, n->name,
                 (unsigned long long)(s->conn & KN_CONN_LOCAL_MASK));
    table_notify(r, KN_ENV_SESSION_UP, s, KN_ENV_REASON_NONE, env->flags);
    router_redis_sess_up(r, s);
}

void router_sess_down(router_t *r, const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s == NULL && env->from_len > 0 && env->conn_id != 0) {
        /* Unknown here (we restarted, or ended it already): the session
         * subscribers may still count it (they check the connection). */
        router_sess_t tmp = {0};
        char full[KN_ENV_STR_MAX + 1];
        snprintf(full, sizeof(full), "%.*s", (int)env->from_len, env->from);
        tmp.full = full;
        tmp.conn = env->conn_id;
        table_notify(r, KN_ENV_SESSION_DOWN, &tmp, env->reason, 0);
        return;
    }
    if (s == NULL || s->conn != env->conn_id)
        return; /* already replaced or removed: not the owner any more */
    router_sess_remove(r, s, env->reason);
}

void router_sess_kick(router_t *r, const router_node_t *src,
                      const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s == NULL || s->conn != env->conn_id)
        return; /* gone or replaced meanwhile: nothing to end */
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    if (n == NULL || !n->alive)
        return;
    kn_log_info("%s asks to end %s (%s)", src->name, s->full,
                kn_env_reason_name(env->reason));
    kn_env_t k = {0};
    k.kind = KN_ENV_KICK;
    k.reason = env->reason;
    k.conn_id = s->conn;
    k.from = s->full;
    k.from_len = strlen(s->full);
    router_payload_t none = {NULL, 0, NULL};
    router_emit(r, n, &k, &none);
}

void router_sess_priority(router_t *r, const kn_env_t *env)
{
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    if (s == NULL || s->conn != env->conn_id)
        return;
    s->prio = env->priority;
    s->avail = (env->flags & KN_F_AVAILABLE) != 0;
    table_notify(r, KN_ENV_PRIORITY, s, KN_ENV_REASON_NONE, env->flags);
    router_redis_sess_up(r, s);
}

void router_sess_restore(router_t *r, const char *full, uint64_t conn,
                         int16_t prio, bool avail)
{
    size_t len = strlen(full);
    size_t bare_len = table_bare_len(full, len);
    router_node_t *n = r->nodes[kn_conn_node(conn)];
    if (bare_len == len || bare_len == 0 || n == NULL || !n->restored ||
        router_sess_find(r, full, len) != NULL)
        return;
    router_sess_t *s = kn_calloc(1, sizeof(*s));
    s->full = kn_strndup(full, len);
    s->bare_len = bare_len;
    s->conn = conn;
    s->prio = prio;
    s->avail = avail;
    s->restored = true;
    router_bare_t *b = router_bare_find(r, full, bare_len);
    if (b == NULL) {
        b = kn_calloc(1, sizeof(*b));
        b->bare = kn_strndup(full, bare_len);
        HASH_ADD_KEYPTR(hh, r->bares, b->bare, bare_len, b);
    }
    s->bare = b;
    s->next = b->sessions;
    b->sessions = s;
    HASH_ADD_KEYPTR(hh, r->sessions, s->full, len, s);
    n->nsessions++;
}
