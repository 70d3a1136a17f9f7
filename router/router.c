/*
 * router.c - the router's entry points: construction, dispatch of one
 * incoming message by envelope kind, and the warm-up hold.
 *
 * A note on restarts. When the router restarts, c2s nodes flush what
 * their DEALER sockets queued while it was away, usually before they have
 * noticed the restart and re-announced their sessions. So for a short
 * warm-up after start (r->warm_until) stanzas are held, in arrival order,
 * and routed once the nodes have had a heartbeat period to re-sync;
 * control messages are handled at once. Nothing accepted is lost to the
 * race. The hold is bounded (ROUTER_HOLD_MAX); past it, stanzas are
 * routed at once with whatever table exists. Held stanzas always go
 * before a later one of a known node (which the link sequence check
 * would otherwise take for a resend of what it overtook): a data frame
 * that is not held replays the hold first, whether the warm-up ended
 * before its tick or the hold is full.
 */
#include <stdio.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

#define ROUTER_HOLD_MAX 100000
/* Link ids reported as delivered by the previous router: at most. */
#define ROUTER_DLV_MAX (1u << 20)

typedef struct router_held {
    char node[ROUTER_NODE_NAME_MAX];
    size_t node_len;
    kn_buf_t env;
    kn_buf_t payload;
    struct router_held *next;
} held_t;

router_t *router_new(const char *domain, uint32_t boot, double node_timeout,
                     router_send_fn send, void *ud)
{
    router_t *r = kn_calloc(1, sizeof(*r));
    r->domain = kn_strdup(domain);
    r->boot = boot;
    r->node_timeout = node_timeout;
    r->send = send;
    r->send_ud = ud;
    r->hold_tail = &r->hold_head;
    r->arch_tail = &r->arch_head;
    return r;
}

/* ---- frames the previous router delivered (KN_F_DELIVERED) ----
 *
 * A note on the failover duplicate. The active router routes a frame to
 * its recipient's node and dies before acknowledging it to the sender's
 * node (it acknowledges every 250 ms); the sender resends it to us after
 * the takeover. The receiving node drops a second copy, but only if it
 * reaches the same node: a recipient that logged out meanwhile got it
 * again from offline storage. So at its re-sync each node reports the
 * link ids it received in its last seconds (before SYNCED), and a resent
 * frame with one of them is dropped here. The warm-up holds data frames
 * until every node heard of has said SYNCED (so has reported), at most
 * its bound: a node that never reports (an older one) stalls nothing. */

static void dlv_free(router_t *r)
{
    free(r->dlv_slots);
    r->dlv_slots = NULL;
    r->dlv_cap = r->dlv_count = 0;
    r->dlv_until = 0;
}

static uint64_t dlv_hash(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xFF51AFD7ED558CCDull;
    v ^= v >> 33;
    return v;
}

static bool dlv_has(const router_t *r, uint64_t id)
{
    if (r->dlv_cap == 0 || id == 0)
        return false;
    for (size_t i = dlv_hash(id) & (r->dlv_cap - 1);;
         i = (i + 1) & (r->dlv_cap - 1)) {
        if (r->dlv_slots[i] == 0)
            return false;
        if (r->dlv_slots[i] == id)
            return true;
    }
}

static void dlv_put(uint64_t *slots, size_t cap, uint64_t id)
{
    size_t i = dlv_hash(id) & (cap - 1);
    while (slots[i] != 0 && slots[i] != id)
        i = (i + 1) & (cap - 1);
    slots[i] = id;
}

static void dlv_add(router_t *r, uint64_t id)
{
    if (id == 0 || r->dlv_count >= ROUTER_DLV_MAX || dlv_has(r, id))
        return;
    if (2 * (r->dlv_count + 1) > r->dlv_cap) {
        size_t cap = r->dlv_cap ? 2 * r->dlv_cap : 4096;
        uint64_t *slots = kn_calloc(cap, sizeof(uint64_t));
        for (size_t i = 0; i < r->dlv_cap; i++)
            if (r->dlv_slots[i] != 0)
                dlv_put(slots, cap, r->dlv_slots[i]);
        free(r->dlv_slots);
        r->dlv_slots = slots;
        r->dlv_cap = cap;
    }
    dlv_put(r->dlv_slots, r->dlv_cap, id);
    r->dlv_count++;
}

static void dlv_report(router_t *r, const char *name, size_t len,
                       const router_payload_t *pl, double now)
{
    if (pl == NULL || pl->data == NULL)
        return;
    const unsigned char *p = pl->data;
    size_t n = pl->len / 8;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = 0;
        for (int b = 7; b >= 0; b--)
            id = id << 8 | p[8 * i + (size_t)b];
        dlv_add(r, id);
    }
    double keep = 2 * r->node_timeout;
    r->dlv_until = now + (keep > 10.0 ? keep : 10.0);
    kn_log_info("node %.*s reports %zu frames it received from the previous "
                "router (%zu known)",
                (int)len, name, n, r->dlv_count);
}

static void hold_free_all(router_t *r)
{
    while (r->hold_head != NULL) {
        held_t *h = r->hold_head;
        r->hold_head = h->next;
        kn_buf_free(&h->env);
        kn_buf_free(&h->payload);
        free(h);
    }
    r->hold_tail = &r->hold_head;
    r->hold_count = 0;
}

/* Forget the whole table (no messages, no Redis): router_free and a lost
 * lease. */
static void router_clear(router_t *r)
{
    router_sess_t *s, *stmp;
    HASH_ITER(hh, r->sessions, s, stmp)
    {
        HASH_DEL(r->sessions, s);
        router_sm_sess_free(s);
        free(s->full);
        free(s);
    }
    router_bare_t *b, *btmp;
    HASH_ITER(hh, r->bares, b, btmp)
    {
        HASH_DEL(r->bares, b);
        free(b->bare);
        free(b);
    }
    router_reg_t *g, *gtmp;
    HASH_ITER(hh, r->regs, g, gtmp)
    {
        HASH_DEL(r->regs, g);
        free(g->others);
        free(g->key);
        free(g);
    }
    router_node_t *n, *ntmp;
    HASH_ITER(hh, r->nodes_by_name, n, ntmp)
    {
        HASH_DEL(r->nodes_by_name, n);
        r->nodes[n->index] = NULL;
        free(n);
    }
    router_comp_free_all(r);
    hold_free_all(r);
    router_sess_log_free(r);
    router_mam_free(r);
    r->mam_on = false;
    router_off_free(r);
    r->off_on = false;
    dlv_free(r);
    r->warm_until = 0;
    r->warm_waiting = false;
}

static void peers_free(router_t *r)
{
    router_peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp)
    {
        HASH_DEL(r->peers, p);
        free(p);
    }
}

void router_free(router_t **rp)
{
    router_t *r = *rp;
    if (r == NULL)
        return;
    router_clear(r);
    peers_free(r);
    free(r->acks_held);
    free(r->acks_recent);
    kn_buf_free(&r->fanout.env);
    kn_buf_free(&r->fanout.payload);
    free(r->mc_split);
    free(r->mc_done);
    free(r->domain);
    free(r);
    *rp = NULL;
}

static void router_hold(router_t *r, const char *name, size_t len,
                        const kn_env_t *env, const router_payload_t *pl)
{
    held_t *h = kn_calloc(1, sizeof(*h));
    memcpy(h->node, name, len < sizeof(h->node) ? len : sizeof(h->node) - 1);
    h->node_len = len < sizeof(h->node) ? len : sizeof(h->node) - 1;
    if (kn_env_encode(env, &h->env) < 0) {
        free(h);
        return;
    }
    kn_buf_append(&h->payload, pl->data, pl->len);
    *r->hold_tail = h;
    r->hold_tail = &h->next;
    r->hold_count++;
}

/* A node that says HELLO in the same run (not FRESH) sends every data
 * frame we have not acknowledged again after our answer, in its link
 * order (kn_link.c), and nothing held is acknowledged. Its data frames
 * held now (sent to us before it knew we restarted, or before an earlier
 * HELLO's resend) would be routed before the older frames of that resend,
 * which the link order check would then drop as already routed: a message
 * it sent just as the old router stopped was lost. They are dropped here;
 * the resend brings them back, in order. */
static void hold_drop_resent(router_t *r, const char *name, size_t len)
{
    size_t dropped = 0;
    held_t **pp = &r->hold_head;
    while (*pp != NULL) {
        held_t *h = *pp;
        kn_env_t env;
        if (h->node_len == len && memcmp(h->node, name, len) == 0 &&
            kn_env_decode(h->env.data, h->env.len, &env) == 0 &&
            env.link != 0 &&
            (env.kind == KN_ENV_STANZA || env.kind == KN_ENV_MULTICAST ||
             env.kind == KN_ENV_ACK)) {
            *pp = h->next;
            kn_buf_free(&h->env);
            kn_buf_free(&h->payload);
            free(h);
            r->hold_count--;
            dropped++;
            continue;
        }
        pp = &h->next;
    }
    r->hold_tail = pp;
    if (dropped > 0)
        kn_log_info("node %.*s re-syncs: %zu held frames dropped, it sends "
                    "them again in order",
                    (int)len, name, dropped);
}

static void router_replay(router_t *r, double now)
{
    router_sess_log_free(r); /* the warm-up is over */
    held_t *list = r->hold_head;
    size_t n = r->hold_count;
    r->hold_head = NULL;
    r->hold_tail = &r->hold_head;
    r->hold_count = 0;
    if (n > 0)
        kn_log_info("warm-up over: routing %zu held stanzas", n);
    r->replaying = true;
    while (list != NULL) {
        held_t *h = list;
        list = h->next;
        kn_env_t env;
        if (kn_env_decode(h->env.data, h->env.len, &env) == 0) {
            router_payload_t pl = {h->payload.data, h->payload.len, NULL};
            router_handle(r, h->node, h->node_len, &env, &pl, now);
        }
        kn_buf_free(&h->env);
        kn_buf_free(&h->payload);
        free(h);
    }
    r->replaying = false;
}

#define ROUTER_PEERS_MAX 4096

static router_peer_t *peer_touch(router_t *r, const char *name, size_t len,
                                 double now)
{
    if (len == 0 || len >= ROUTER_NODE_NAME_MAX)
        return NULL;
    router_peer_t *p = NULL;
    HASH_FIND(hh, r->peers, name, len, p);
    if (p == NULL) {
        if (HASH_COUNT(r->peers) >= ROUTER_PEERS_MAX)
            return NULL;
        p = kn_calloc(1, sizeof(*p));
        memcpy(p->name, name, len);
        HASH_ADD(hh, r->peers, name, len, p);
    }
    if (now > p->last_seen)
        p->last_seen = now;
    return p;
}

/* Tell node `name` our state outside its table: HELLO or HEARTBEAT with
 * flags and our epoch. */
static void send_to_name(router_t *r, const char *name, kn_env_kind_t kind,
                         uint16_t flags)
{
    router_node_t tmp = {0};
    snprintf(tmp.name, sizeof(tmp.name), "%s", name);
    router_node_t *n = router_node_by_name(r, name, strlen(name));
    router_node_send_ctl(r, n != NULL ? n : &tmp, kind, flags);
}

/* A standby router answers heartbeats and HELLOs and nothing else. */
static void standby_handle(router_t *r, const char *from_name, size_t from_len,
                           const kn_env_t *env, double now)
{
    if (env->kind != KN_ENV_HELLO && env->kind != KN_ENV_HEARTBEAT) {
        r->standby_dropped++;
        return;
    }
    router_peer_t *p = peer_touch(r, from_name, from_len, now);
    if (p != NULL)
        send_to_name(r, p->name, env->kind, KN_F_STANDBY);
}

void router_become_active(router_t *r, uint64_t epoch, double now)
{
    r->standby = false;
    r->epoch = epoch;
    router_clear(r);
    r->warm_until = now + (r->warm_s > 0 ? r->warm_s : 1.0);
}

void router_wake_peers(router_t *r, double now)
{
    size_t told = 0;
    router_peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp)
    {
        if (now - p->last_seen > r->node_timeout) {
            HASH_DEL(r->peers, p);
            free(p);
            continue;
        }
        send_to_name(r, p->name, KN_ENV_HELLO, KN_F_REHELLO);
        told++;
    }
    kn_log_warn("taking over as the active router (epoch %llu): %zu nodes "
                "asked to HELLO",
                (unsigned long long)r->epoch, told);
}

void router_become_standby(router_t *r, double now)
{
    router_node_t *n, *ntmp;
    HASH_ITER(hh, r->nodes_by_name, n, ntmp)
    {
        if (!n->alive)
            continue;
        peer_touch(r, n->name, strlen(n->name), now);
    }
    r->standby = true;
    router_clear(r);
    router_peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp)
    {
        send_to_name(r, p->name, KN_ENV_HEARTBEAT, KN_F_STANDBY);
    }
    kn_log_warn("standby: routing stopped (epoch %llu is over)",
                (unsigned long long)r->epoch);
}

void router_stop_routing(router_t *r)
{
    if (r->stopping || r->standby)
        return;
    r->stopping = true;
    size_t nodes = 0;
    router_node_t *n, *ntmp;
    HASH_ITER(hh, r->nodes_by_name, n, ntmp)
    {
        if (!n->alive)
            continue;
        n->link_ack = n->link_mark = n->link_rx;
        router_node_send_ctl(r, n, KN_ENV_HEARTBEAT, 0);
        nodes++;
    }
    kn_log_info("stopping: every frame routed acknowledged to %zu nodes; "
                "they send the rest to the next router",
                nodes);
}

/* After a takeover, the warm-up ends as soon as every node the standby
 * heard from has HELLOed and re-announced. */
static bool warm_all_synced(router_t *r)
{
    if (r->peers == NULL)
        return false;
    router_peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp)
    {
        router_node_t *n = router_node_by_name(r, p->name, strlen(p->name));
        if (n == NULL || !n->alive || !n->synced)
            return false;
    }
    return true;
}

/* Every live node has finished re-announcing its sessions. */
static bool nodes_synced(router_t *r)
{
    router_node_t *n, *tmp;
    HASH_ITER(hh, r->nodes_by_name, n, tmp)
    {
        if (n->alive && !n->synced)
            return false;
    }
    return true;
}

/* The fixed warm-up is over but a node is still re-announcing (hundreds
 * of sessions on a busy machine): a stanza routed now would find no
 * session and go to offline storage, and presenced, which still counts
 * the session, would send it back to a router that bounces it (lost).
 * Hold on until every node said SYNCED, at most node_timeout (a node that
 * slow is lost). */
static void warm_wait_for_sync(router_t *r, double now)
{
    if (r->warm_until > 0 && now >= r->warm_until && !r->warm_waiting &&
        !nodes_synced(r)) {
        r->warm_waiting = true;
        r->warm_until = now + r->node_timeout;
        kn_log_info("warm-up: waiting for nodes to re-announce");
    }
}

static void warm_end(router_t *r)
{
    r->warm_until = 0;
    r->warm_waiting = false;
}

void router_handle(router_t *r, const char *from_name, size_t from_len,
                   const kn_env_t *env, const router_payload_t *payload,
                   double now)
{
    r->stats.in++;
    if (r->standby) {
        standby_handle(r, from_name, from_len, env, now);
        return;
    }
    if (env->kind == KN_ENV_HELLO) {
        if (!(env->flags & KN_F_FRESH))
            hold_drop_resent(r, from_name, from_len);
        router_node_hello(r, from_name, from_len, env, now);
        return;
    }
    if (env->kind == KN_ENV_HEARTBEAT) {
        if (env->flags & KN_F_DELIVERED)
            dlv_report(r, from_name, from_len, payload, now);
        router_node_heartbeat(r, from_name, from_len, env, now);
        if (env->flags & KN_F_SYNCED && r->warm_until > 0 &&
            warm_all_synced(r)) {
            warm_end(r);
            router_replay(r, now);
        }
        return;
    }
    bool data = env->kind == KN_ENV_STANZA || env->kind == KN_ENV_MULTICAST ||
                env->kind == KN_ENV_ACK;
    if (data && r->stopping && env->link != 0)
        return; /* not acknowledged: sent to the next router */
    if (env->kind == KN_ENV_STANZA &&
        (env->flags & (KN_F_REROUTE | KN_F_SM_COPY)) ==
            (KN_F_REROUTE | KN_F_SM_COPY)) {
        /* A node declared lost reroutes a session's queue (the session
         * ended before the node heard of it, after a partition): the
         * router rerouted its own copy of this message then (router_sm.c,
         * or left it with another resource that got it). */
        const router_node_t *n = router_node_by_name(r, from_name, from_len);
        if (n != NULL && !n->alive) {
            kn_log_debug("node %s (lost) rerouted copy %llu: dropped, the "
                         "router's copy went on",
                         n->name, (unsigned long long)env->ack_id);
            r->stats.dropped++;
            return;
        }
    }
    if (data)
        warm_wait_for_sync(r, now);
    if (data && r->warm_until > 0 && now < r->warm_until &&
        r->hold_count < ROUTER_HOLD_MAX) {
        router_hold(r, from_name, from_len, env, payload);
        return;
    }
    router_node_t *src = router_node_by_name(r, from_name, from_len);
    /* A node we declared lost that speaks again without having restarted
     * (a partition healed; a restarted node HELLOs before any data): its
     * link numbering goes on, and what we route of it now it will resend
     * after its re-sync, so its link order is kept below all the same. */
    router_node_t *lost = NULL;
    if (src == NULL || !src->alive) {
        /* Unknown sender (we restarted, or lost it): make it HELLO and
         * re-announce. Its control messages will be repeated then; its
         * stanzas are held for a short warm-up, and routed after it even
         * if the node never came back (bounces to it are then lost).
         * A SESSION_DOWN is not repeated (the session is gone from the
         * node, so not re-announced): held too, so that the session
         * subscribers (presenced, which did not restart and still
         * counts the session) hear of it once they registered again. */
        bool down = env->kind == KN_ENV_SESSION_DOWN;
        if (!r->replaying)
            router_node_heartbeat(r, from_name, from_len, env, now);
        if ((data || down) && !r->replaying &&
            r->hold_count < ROUTER_HOLD_MAX) {
            if (r->warm_until == 0)
                r->warm_until = now + 1.0;
            router_hold(r, from_name, from_len, env, payload);
            return;
        }
        if (!data && !down) {
            r->stats.dropped++;
            return;
        }
        lost = src;
        src = NULL;
    } else {
        src->last_seen = now;
        if (data && r->hold_count > 0 && !r->replaying) {
            /* The warm-up ended (its tick has not come yet) or the hold
             * is full: what is held goes first. Frames of one node must
             * be routed in their link order, or the check below would
             * take the held ones for resends and drop them. */
            if (r->warm_until > 0 && now >= r->warm_until)
                warm_end(r);
            router_replay(r, now);
        }
    }
    r->cur_link = 0;
    router_node_t *ln = src != NULL ? src : lost;
    if (data && ln != NULL && env->link != 0) {
        if (env->link <= ln->link_rx) {
            /* Sent again after a re-sync, and routed already (maybe
             * while the node was lost, from its socket's queue). */
            r->link_dups++;
            return;
        }
        ln->link_rx = env->link;
        if (src != NULL)
            r->cur_link = (uint64_t)src->index << KN_CONN_NODE_SHIFT |
                          (env->link & KN_CONN_LOCAL_MASK);
        if (r->cur_link != 0 && dlv_has(r, r->cur_link)) {
            /* Routed and delivered by the previous router, which died
             * before acknowledging it: the node sent it again. */
            kn_log_debug("node %s resent link %016llx, delivered by the "
                         "previous router: dropped",
                         src->name, (unsigned long long)r->cur_link);
            r->dlv_dups++;
            r->link_dups++;
            r->cur_link = 0;
            return;
        }
    }
    switch (env->kind) {
    case KN_ENV_STANZA:
        router_route_stanza(r, src, env, payload);
        break;
    case KN_ENV_MULTICAST:
        router_route_multicast(r, env, payload);
        break;
    case KN_ENV_ACK:
        router_route_ack(r, env);
        break;
    case KN_ENV_SESSION_UP:
        if (src == NULL)
            break;
        router_sess_up(r, env);
        break;
    case KN_ENV_SESSION_DOWN:
        router_sess_down(r, env);
        break;
    case KN_ENV_PRIORITY:
        router_sess_priority(r, env);
        break;
    case KN_ENV_REGISTER:
        if (src != NULL && (env->flags == KN_REG_COMPONENT ||
                            env->flags == KN_REG_COMPONENT_DOWN))
            router_comp_register(r, src, env, payload);
        else if (src != NULL)
            router_register(r, src, env);
        break;
    case KN_ENV_SM:
        if (src != NULL)
            router_sm_handle(r, src, env, payload);
        break;
    case KN_ENV_KICK:
        if (src != NULL)
            router_sess_kick(r, src, env);
        break;
    default:
        if (src == NULL)
            break;
        kn_log_warn("node %s sent a %s envelope, which only the router "
                    "sends: dropped",
                    src->name, kn_env_kind_name(env->kind));
        r->stats.dropped++;
        break;
    }
    r->cur_link = 0;
}

void router_tick(router_t *r, double now)
{
    if (r->standby) {
        router_peer_t *p, *ptmp;
        HASH_ITER(hh, r->peers, p, ptmp)
        {
            if (now - p->last_seen > 4 * r->node_timeout) {
                HASH_DEL(r->peers, p);
                free(p);
            }
        }
        return;
    }
    router_tick_nodes(r, now);
    router_redis_check(r);
    if (r->dlv_slots != NULL && r->warm_until == 0 && now > r->dlv_until)
        dlv_free(r);
    if (r->warm_until == 0)
        return;
    warm_wait_for_sync(r, now);
    if (now >= r->warm_until || (r->warm_waiting && nodes_synced(r))) {
        warm_end(r);
        router_replay(r, now);
    }
}
