/*
 * router_comp.c - external components (XEP-0114) in the routing table.
 *
 * A c2s node that accepted a component's handshake sends REGISTER with
 * KN_REG_COMPONENT: the domain, the connection id, the disco name. One
 * domain may have several connections on several nodes; a stanza to the
 * domain goes to one of them, chosen by a hash of the bare JIDs of both
 * ends, so one conversation stays on one connection while the set does
 * not change. KN_REG_COMPONENT_DOWN, or the loss of the node, removes a
 * connection. The domain stays known with no connection: stanzas to it
 * then bounce at once (nothing waits), remote-server-not-found, or
 * service-unavailable for an iq get/set, as XEP-0114 servers do for a
 * component that is down.
 */
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

router_comp_t *router_comp_find(router_t *r, const char *domain, size_t len)
{
    router_comp_t *c = NULL;
    HASH_FIND(hh, r->comps, domain, len, c);
    return c;
}

static void comp_remove_conn(router_comp_t *c, uint64_t conn)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->conns[i] == conn) {
            memmove(&c->conns[i], &c->conns[i + 1],
                    (c->n - i - 1) * sizeof(*c->conns));
            c->n--;
            return;
        }
    }
}

void router_comp_register(router_t *r, router_node_t *src, const kn_env_t *env,
                          const router_payload_t *payload)
{
    if (env->node_len == 0 || kn_conn_node(env->conn_id) != src->index) {
        kn_log_warn("node %s: bad component registration", src->name);
        return;
    }
    router_comp_t *c = router_comp_find(r, env->node, env->node_len);
    if (env->flags == KN_REG_COMPONENT_DOWN) {
        if (c != NULL) {
            comp_remove_conn(c, env->conn_id);
            kn_log_info("component %s: a connection on %s left (%zu left)",
                        c->domain, src->name, c->n);
        }
        return;
    }
    if (c == NULL) {
        c = kn_calloc(1, sizeof(*c));
        c->domain = kn_strndup(env->node, env->node_len);
        c->name = kn_strdup("");
        HASH_ADD_KEYPTR(hh, r->comps, c->domain, env->node_len, c);
    }
    if (payload != NULL && payload->len > 0 && payload->len < 1024) {
        free(c->name);
        c->name = kn_strndup(payload->data, payload->len);
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->conns[i] == env->conn_id)
            return; /* re-announced after a router restart */
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->conns = kn_realloc(c->conns, c->cap * sizeof(*c->conns));
    }
    c->conns[c->n++] = env->conn_id;
    kn_log_info("component %s: connection on %s (%zu in all)", c->domain,
                src->name, c->n);
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t comp_hash(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static size_t comp_bare_len(const char *jid, size_t len)
{
    const char *slash = memchr(jid, '/', len);
    return slash ? (size_t)(slash - jid) : len;
}

void router_comp_route(router_t *r, router_node_t *src, router_comp_t *c,
                       const kn_env_t *env, const router_payload_t *pl)
{
    if (c->n == 0) {
        bool iq =
            env->stanza == KN_ENV_ST_IQ &&
            (env->type == KN_ENV_TYPE_GET || env->type == KN_ENV_TYPE_SET);
        router_bounce(r, src, env, pl,
                      iq ? KN_STE_SERVICE_UNAVAILABLE
                         : KN_STE_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    uint64_t h = UINT64_C(14695981039346656037);
    h = comp_hash(h, env->from, comp_bare_len(env->from, env->from_len));
    h = comp_hash(h, "\n", 1);
    h = comp_hash(h, env->to, comp_bare_len(env->to, env->to_len));
    uint64_t conn = c->conns[h % c->n];
    router_node_t *n = r->nodes[kn_conn_node(conn)];
    if (n == NULL || !n->alive) {
        router_bounce(r, src, env, pl, KN_STE_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    kn_env_t e = *env;
    e.kind = KN_ENV_STANZA;
    e.conn_id = conn;
    router_emit(r, n, &e, pl);
    r->stats.routed++;
}

void router_comp_drop_node(router_t *r, uint16_t node)
{
    router_comp_t *c, *tmp;
    HASH_ITER(hh, r->comps, c, tmp)
    {
        size_t k = 0;
        for (size_t i = 0; i < c->n; i++)
            if (kn_conn_node(c->conns[i]) != node)
                c->conns[k++] = c->conns[i];
        c->n = k;
    }
}

void router_comp_free_all(router_t *r)
{
    router_comp_t *c, *tmp;
    HASH_ITER(hh, r->comps, c, tmp)
    {
        HASH_DEL(r->comps, c);
        free(c->domain);
        free(c->name);
        free(c->conns);
        free(c);
    }
}
