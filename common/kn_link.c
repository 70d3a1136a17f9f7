/*
 * kn_link.c - the node side of the router link (see kn_link.h).
 *
 * A note on the states. UNREADY: HELLO sent (FRESH the first time),
 * waiting for the router's ACK; data sent meanwhile waits in our queue.
 * READY: ACK seen; our index and the router's boot id are known. Every
 * heartbeat period we send HEARTBEAT; the router's heartbeat carries its
 * boot id, and a boot id that changed means the router restarted: we
 * HELLO again (not FRESH, asking for the same index) and, on the ACK, the
 * application re-announces its sessions. A HELLO with KN_F_REHELLO from
 * the router (it does not know us) does the same. HELLO is repeated every
 * period until answered, so a router that starts after us still hears it.
 *
 * A note on two routers (hot standby). router.endpoint may name several
 * routers (comma-separated); we keep one DEALER per endpoint. Every
 * router's HELLO/HEARTBEAT carries its fencing epoch (KN_LINK_T_EPOCH)
 * and, when it does not hold the lease, KN_F_STANDBY. The current router
 * (cur) is the active one with the newest epoch we saw; we send only to
 * it and take data only from it. An active router with an older epoch is
 * ignored (it lost its lease and does not know yet: split brain is
 * fenced here). When an active router with a newer epoch speaks, we
 * switch to it: HELLO, re-announce, then resend what the old one had not
 * acknowledged. When the current router goes silent for node_timeout, or
 * says STANDBY, we hold everything until an active one appears.
 *
 * A note on nothing lost. Data frames (STANZA, MULTICAST, ACK) get a link
 * sequence (kn_env_t.link) and stay in our queue until the router
 * acknowledges their sequence in a HEARTBEAT (every 250 ms, what it had
 * routed at least 250 ms before, so the frames are out of its socket). After a
 * switch or a router restart the unacknowledged ones are sent again, in order,
 * after the re-announcement. The queue is bounded (LINK_Q_MAX frames,
 * LINK_Q_BYTES): past it the oldest already-sent frames are given up
 * (logged) and then kn_link_send() says -KN_EAGAIN. A frame the old
 * router routed just before it died and that we resend arrives twice:
 * every frame the router sends carries the link id of the frame that
 * caused it, and we drop a second copy with the same link id, kind,
 * connection, flags and addresses (a two-generation set of recent keys).
 */
#include "kn_link.h"

#include <string.h>
#include <zmq.h>

#include "kn_daemon.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_zmq_ev.h"

#define LINK_MAX_EPS 4
#define LINK_Q_MAX   200000
#define LINK_Q_BYTES (64u * 1024 * 1024)
/* Recently received link keys: two generations of this many each. */
#define LINK_SEEN_GEN   65536
#define LINK_SEEN_SLOTS (2 * LINK_SEEN_GEN)
/* Link ids of received data frames kept for the report at a re-sync
 * (KN_F_DELIVERED): a ring of this many; those received within
 * LINK_RX_WINDOW seconds of the newest are reported, LINK_RX_CHUNK ids
 * a heartbeat. */
#define LINK_RX_MAX    65536
#define LINK_RX_WINDOW 3.0
#define LINK_RX_CHUNK  8192

typedef struct link_reg {
    uint16_t flags;
    uint32_t seq; /* in the REGISTER envelope */
    char *name;
    struct link_reg *next;
} link_reg_t;

/* A frame in our queue: encoded envelope, then payload. */
typedef struct link_frame {
    struct link_frame *next;
    uint64_t seq; /* link sequence; 0 for a control frame */
    bool sent;
    size_t elen, plen;
    unsigned char bytes[];
} link_frame_t;

typedef struct link_ep {
    struct kn_link *l;
    int idx;
    char *endpoint;
    void *sock;
    kn_zmq_ev_t *w;
    uint64_t epoch; /* last epoch it told us */
    bool active;    /* it said it holds the lease (or has none) */
    bool told;      /* logged that it is a standby */
    double last_rx; /* ev_now of its last HELLO/HEARTBEAT */
} link_ep_t;

typedef struct link_rx {
    uint64_t link;
    double t; /* ev_now when received */
} link_rx_t;

typedef struct link_seen {
    uint64_t *slots[2]; /* [0] current generation, [1] previous */
    size_t count;       /* in the current generation */
} link_seen_t;

struct kn_link {
    struct ev_loop *loop;
    void *ctx;
    link_ep_t eps[LINK_MAX_EPS];
    int neps;
    int cur; /* index into eps of the router we use, -1: none */
    uint64_t max_epoch;
    ev_timer beat;
    double timeout; /* the current router silent this long: none */
    char *name;
    uint16_t role;
    uint16_t index;       /* 0 until the first ACK */
    uint32_t boot;        /* ours */
    uint32_t router_boot; /* theirs, 0 until the first ACK */
    bool ready;
    bool flushed;        /* re-announced after the last ACK: queue may go */
    bool fresh;          /* no ACK ever: our HELLO says FRESH */
    bool resync_pending; /* next ACK is a resync */
    bool rehello;        /* that resync was asked for by REHELLO */
    bool was_lost;       /* the last resync: the router had declared us lost */
    uint32_t beats;
    uint64_t next_seq;
    link_frame_t *q_head, **q_tail;
    link_frame_t **q_unsent; /* link to the first unsent frame */
    size_t q_count, q_bytes;
    uint64_t q_given_up, dups;
    link_seen_t seen;
    link_rx_t *rx; /* ring of LINK_RX_MAX, allocated at the first */
    size_t rx_next, rx_n;
    link_reg_t *regs;
    const kn_link_ops_t *ops;
    void *ud;
    kn_buf_t buf;
};

static bool kind_is_data(kn_env_kind_t k)
{
    return k == KN_ENV_STANZA || k == KN_ENV_MULTICAST || k == KN_ENV_ACK;
}

static int ep_send(link_ep_t *ep, const void *env, size_t elen,
                   const void *payload, size_t plen)
{
    kn_zmq_part_t parts[2] = {{env, elen}, {payload, plen}};
    return kn_zmq_ev_send(ep->w, parts, 2);
}

static int link_send_ep(kn_link_t *l, link_ep_t *ep, const kn_env_t *env,
                        const void *payload, size_t len)
{
    l->buf.len = 0;
    int rc = kn_env_encode(env, &l->buf);
    if (rc < 0)
        return rc;
    return ep_send(ep, l->buf.data, l->buf.len, payload, len);
}

static void link_hello(kn_link_t *l, link_ep_t *ep)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = l->role | (l->fresh ? KN_F_FRESH : 0);
    e.seq = l->boot;
    e.conn_id = kn_conn_make(l->index, 0);
    e.node = l->name;
    e.node_len = strlen(l->name);
    int rc = link_send_ep(l, ep, &e, NULL, 0);
    if (rc < 0)
        kn_log_warn("HELLO to %s not sent: %s", ep->endpoint, kn_strerror(rc));
}

static void link_send_regs(kn_link_t *l)
{
    for (link_reg_t *g = l->regs; g != NULL; g = g->next) {
        kn_env_t e = {0};
        e.kind = KN_ENV_REGISTER;
        e.flags = g->flags;
        e.seq = g->seq;
        e.node = g->name;
        e.node_len = strlen(g->name);
        link_send_ep(l, &l->eps[l->cur], &e, NULL, 0);
    }
}

/* ---- the queue ---- */

static void q_free_frame(kn_link_t *l, link_frame_t *f)
{
    l->q_count--;
    l->q_bytes -= f->elen + f->plen;
    free(f);
}

/* Drop acknowledged frames (sent, seq <= acked) from the head. */
static void q_acked(kn_link_t *l, uint64_t acked)
{
    while (l->q_head != NULL && l->q_head->sent && l->q_head->seq <= acked) {
        link_frame_t *f = l->q_head;
        l->q_head = f->next;
        if (l->q_unsent == &f->next)
            l->q_unsent = &l->q_head;
        if (l->q_tail == &f->next)
            l->q_tail = &l->q_head;
        q_free_frame(l, f);
    }
}

/* Every frame becomes unsent again (a new router: resend them all). */
static void q_rewind(kn_link_t *l)
{
    for (link_frame_t *f = l->q_head; f != NULL; f = f->next)
        f->sent = false;
    l->q_unsent = &l->q_head;
}

/* Send the unsent frames to the current router, in order; a control
 * frame leaves the queue once sent, a data frame waits for its ack. */
static void q_flush(kn_link_t *l)
{
    if (l->cur < 0 || !l->ready || !l->flushed)
        return;
    link_ep_t *ep = &l->eps[l->cur];
    link_frame_t **pp = l->q_unsent;
    while (*pp != NULL) {
        link_frame_t *f = *pp;
        if (ep_send(ep, f->bytes, f->elen, f->bytes + f->elen, f->plen) < 0)
            break; /* high-water mark: again at the next beat */
        if (f->seq == 0) {
            *pp = f->next;
            if (l->q_tail == &f->next)
                l->q_tail = pp;
            q_free_frame(l, f);
        } else {
            f->sent = true;
            pp = &f->next;
        }
    }
    l->q_unsent = pp;
}

/* The router declared us lost (a partition) and, doing so, rerouted its
 * own XEP-0198 copies of what our sessions had not acknowledged. Our
 * reroutes of those sessions' queues (REROUTE + SM_COPY), written while
 * the router could not hear us and still queued here, would deliver the
 * same messages a second time once we count as alive again: dropped.
 * The router drops those that reach it while we are still lost. */
static size_t q_drop_copied_reroutes(kn_link_t *l)
{
    const uint16_t both = KN_F_REROUTE | KN_F_SM_COPY;
    size_t n = 0;
    link_frame_t **pp = &l->q_head;
    while (*pp != NULL) {
        link_frame_t *f = *pp;
        kn_env_t e;
        if (f->seq != 0 && kn_env_decode(f->bytes, f->elen, &e) == 0 &&
            e.kind == KN_ENV_STANZA && (e.flags & both) == both) {
            *pp = f->next;
            q_free_frame(l, f);
            n++;
            continue;
        }
        pp = &f->next;
    }
    l->q_tail = pp;
    l->q_unsent = &l->q_head; /* q_rewind follows */
    return n;
}

static bool q_has_unsent(const kn_link_t *l)
{
    return *l->q_unsent != NULL;
}

/* Append an encoded frame; make room by giving up the oldest sent
 * frames. -KN_EAGAIN when only unsent frames fill the bound. */
static int q_append(kn_link_t *l, const void *env, size_t elen,
                    const void *payload, size_t plen, uint64_t seq, bool sent)
{
    size_t sz = elen + plen;
    size_t given = 0;
    while ((l->q_count >= LINK_Q_MAX || l->q_bytes + sz > LINK_Q_BYTES) &&
           l->q_head != NULL && l->q_head->sent) {
        link_frame_t *f = l->q_head;
        l->q_head = f->next;
        if (l->q_unsent == &f->next)
            l->q_unsent = &l->q_head;
        if (l->q_tail == &f->next)
            l->q_tail = &l->q_head;
        q_free_frame(l, f);
        given++;
    }
    if (given > 0) {
        l->q_given_up += given;
        kn_log_warn("link queue full: %zu sent frames no longer kept for a "
                    "resend",
                    given);
    }
    if (l->q_count >= LINK_Q_MAX || l->q_bytes + sz > LINK_Q_BYTES)
        return -KN_EAGAIN;
    link_frame_t *f = kn_malloc(sizeof(*f) + sz + 1);
    f->next = NULL;
    f->seq = seq;
    f->sent = sent;
    f->elen = elen;
    f->plen = plen;
    memcpy(f->bytes, env, elen);
    if (plen > 0)
        memcpy(f->bytes + elen, payload, plen);
    bool was_tail_unsent = l->q_unsent == l->q_tail;
    *l->q_tail = f;
    l->q_tail = &f->next;
    l->q_count++;
    l->q_bytes += sz;
    if (sent && was_tail_unsent)
        l->q_unsent = l->q_tail; /* sent frames stay ahead of unsent ones */
    return 0;
}

/* ---- duplicates ---- */

static uint64_t seen_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static uint64_t seen_str(uint64_t h, const char *s, size_t n)
{
    uint64_t f = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        f = (f ^ (unsigned char)s[i]) * 1099511628211ull;
    return seen_mix(h, f);
}

static bool seen_has(const uint64_t *slots, uint64_t key)
{
    if (slots == NULL)
        return false;
    for (size_t i = key % LINK_SEEN_SLOTS;; i = (i + 1) % LINK_SEEN_SLOTS) {
        if (slots[i] == 0)
            return false;
        if (slots[i] == key)
            return true;
    }
}

/* True when this key was seen recently (a resent frame's second copy);
 * else remember it. */
static bool seen_check(link_seen_t *s, uint64_t key)
{
    key |= 1; /* 0 marks an empty slot */
    if (seen_has(s->slots[0], key) || seen_has(s->slots[1], key))
        return true;
    if (s->slots[0] == NULL || s->count >= LINK_SEEN_GEN) {
        free(s->slots[1]);
        s->slots[1] = s->slots[0];
        s->slots[0] = kn_calloc(LINK_SEEN_SLOTS, sizeof(uint64_t));
        s->count = 0;
    }
    size_t i = key % LINK_SEEN_SLOTS;
    while (s->slots[0][i] != 0)
        i = (i + 1) % LINK_SEEN_SLOTS;
    s->slots[0][i] = key;
    s->count++;
    return false;
}

static bool link_is_dup(kn_link_t *l, const kn_env_t *env)
{
    if (env->link == 0)
        return false;
    uint64_t h = seen_mix(env->link, env->kind);
    h = seen_mix(h, env->conn_id);
    h = seen_mix(h, env->flags);
    h = seen_str(h, env->from, env->from_len);
    h = seen_str(h, env->to, env->to_len);
    if (!seen_check(&l->seen, h))
        return false;
    l->dups++;
    kn_log_debug("dropped the second copy of a resent %s (link %016llx)",
                 kn_env_kind_name(env->kind), (unsigned long long)env->link);
    return true;
}

/* ---- delivered frames, reported at a re-sync ---- */

/* A data frame from the router: remember its link id (the frame of a
 * node that caused it), for the report at the next re-sync. Side copies
 * are left out: a carbon (from the bare JID of the session it is for)
 * or a presence daemon's record (KN_F_COPY) that reached us does not
 * show that the frame's own delivery left the old router. */
static void rx_note(kn_link_t *l, const kn_env_t *env)
{
    uint64_t link = env->link;
    if (link == 0 || (env->kind == KN_ENV_STANZA && env->flags & KN_F_COPY))
        return;
    if (env->kind == KN_ENV_STANZA && env->flags & KN_F_EXTRA_COPY &&
        env->from_len < env->to_len && env->to[env->from_len] == '/' &&
        memcmp(env->from, env->to, env->from_len) == 0)
        return; /* a carbon */
    if (l->rx == NULL)
        l->rx = kn_calloc(LINK_RX_MAX, sizeof(*l->rx));
    l->rx[l->rx_next] = (link_rx_t){link, ev_now(l->loop)};
    l->rx_next = (l->rx_next + 1) % LINK_RX_MAX;
    if (l->rx_n < LINK_RX_MAX)
        l->rx_n++;
}

/* Tell the router that just accepted our re-sync which link ids we
 * received in the last LINK_RX_WINDOW seconds we heard data (from the
 * previous router, or from it before it restarted): a frame routed then
 * but not acknowledged to its sender comes again, and the router drops
 * those we had (KN_F_DELIVERED). Sent before SYNCED, so before the
 * router ends its warm-up and routes what nodes resend. */
static void rx_report(kn_link_t *l)
{
    if (l->rx_n == 0)
        return;
    size_t newest = (l->rx_next + LINK_RX_MAX - 1) % LINK_RX_MAX;
    double from = l->rx[newest].t - LINK_RX_WINDOW;
    unsigned char *buf = kn_malloc(LINK_RX_CHUNK * 8);
    size_t n = 0, total = 0;
    for (size_t k = 0; k < l->rx_n; k++) {
        const link_rx_t *x = &l->rx[(newest + LINK_RX_MAX - k) % LINK_RX_MAX];
        if (x->t < from)
            break;
        for (int b = 0; b < 8; b++)
            buf[8 * n + (size_t)b] = (unsigned char)(x->link >> (8 * b));
        n++;
        if (n == LINK_RX_CHUNK || k + 1 == l->rx_n ||
            l->rx[(newest + LINK_RX_MAX - k - 1) % LINK_RX_MAX].t < from) {
            kn_env_t e = {0};
            e.kind = KN_ENV_HEARTBEAT;
            e.flags = KN_F_DELIVERED;
            e.seq = l->boot;
            e.node = l->name;
            e.node_len = strlen(l->name);
            link_send_ep(l, &l->eps[l->cur], &e, buf, 8 * n);
            total += n;
            n = 0;
        }
    }
    free(buf);
    kn_log_info("link: told %s the %zu frames received in our last %.0f s "
                "of data",
                l->eps[l->cur].endpoint, total, LINK_RX_WINDOW);
}

/* ---- routers ---- */

static void link_on_ack(kn_link_t *l, const kn_env_t *env)
{
    bool resync = !l->fresh;
    /* Asked to HELLO again by a router with the boot id we knew: it did
     * not restart, so it declared us lost (node_timeout_ms of silence, a
     * partition) and ended our sessions; see kn_link_declared_lost. */
    l->was_lost = resync && l->rehello && env->seq == l->router_boot;
    l->rehello = false;
    uint16_t idx = kn_conn_node(env->conn_id);
    if (l->index != 0 && idx != l->index)
        kn_log_warn("router gave %s index %u instead of %u", l->name, idx,
                    l->index);
    l->index = idx;
    l->router_boot = env->seq;
    l->fresh = false;
    l->ready = true;
    l->flushed = false;
    l->resync_pending = false;
    if (l->was_lost) {
        size_t n = q_drop_copied_reroutes(l);
        if (n > 0)
            kn_log_info("link: %zu rerouted copies dropped (the router "
                        "declared %s lost and rerouted its own)",
                        n, l->name);
    }
    q_rewind(l);
    kn_log_info("router accepted %s as node %u%s (%s, epoch %llu)", l->name,
                l->index, resync ? " (resync)" : "", l->eps[l->cur].endpoint,
                (unsigned long long)l->max_epoch);
    link_send_regs(l);
    if (resync)
        rx_report(l);
    l->ops->on_ready(l->ud, resync);
    if (!resync)
        kn_link_synced(l);
}

/* Use ep from now on: HELLO it and wait for its ACK. */
static void link_switch(kn_link_t *l, link_ep_t *ep)
{
    if (l->cur >= 0 && l->cur != ep->idx)
        kn_log_warn("switching from router %s to %s (epoch %llu)",
                    l->eps[l->cur].endpoint, ep->endpoint,
                    (unsigned long long)ep->epoch);
    else if (l->neps > 1)
        kn_log_info("using router %s (epoch %llu)", ep->endpoint,
                    (unsigned long long)ep->epoch);
    l->cur = ep->idx;
    l->max_epoch = ep->epoch;
    l->ready = false;
    l->resync_pending = true;
    link_hello(l, ep);
}

/* Forget the current router: hold everything until an active one. */
static void link_drop_cur(kn_link_t *l, const char *why)
{
    if (l->cur < 0)
        return;
    kn_log_warn("router %s %s: holding what we send until a router takes "
                "over",
                l->eps[l->cur].endpoint, why);
    l->cur = -1;
    l->ready = false;
    l->resync_pending = false;
}

/* A HELLO or HEARTBEAT from ep: learn its role and epoch. Returns true
 * when the message is for the usual handling (ep is current). */
static bool link_router_state(kn_link_t *l, link_ep_t *ep, const kn_env_t *env)
{
    ep->last_rx = ev_now(l->loop);
    uint64_t epoch = env->ntargets > KN_LINK_T_EPOCH
                         ? kn_env_target(env, KN_LINK_T_EPOCH)
                         : 0;
    ep->epoch = epoch;
    ep->active = (env->flags & KN_F_STANDBY) == 0;
    if (!ep->active) {
        if (!ep->told)
            kn_log_info("router %s is standby", ep->endpoint);
        ep->told = true;
        if (l->cur == ep->idx)
            link_drop_cur(l, "is standby (it holds no lease)");
        return false;
    }
    ep->told = false;
    if (epoch < l->max_epoch) {
        if (env->kind == KN_ENV_HELLO || l->beats % 16 == 0)
            kn_log_warn("router %s claims epoch %llu, older than %llu: "
                        "ignored (fenced)",
                        ep->endpoint, (unsigned long long)epoch,
                        (unsigned long long)l->max_epoch);
        if (l->cur == ep->idx)
            link_drop_cur(l, "went back to an older epoch");
        return false;
    }
    if (l->cur == ep->idx) {
        if (epoch > l->max_epoch) {
            /* Same router, newer epoch: it lost and regained the lease
             * (its table was reset): re-sync. */
            kn_log_warn("router %s has a new epoch %llu: re-syncing",
                        ep->endpoint, (unsigned long long)epoch);
            link_switch(l, ep);
            return false;
        }
        return true;
    }
    if (epoch > l->max_epoch || l->cur < 0) {
        if (env->kind == KN_ENV_HELLO && env->flags & KN_F_ACK) {
            /* The answer to a HELLO we sent while we had no router. */
            l->cur = ep->idx;
            l->max_epoch = epoch;
            return true;
        }
        link_switch(l, ep);
    }
    return false;
}

static void link_on_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    link_ep_t *ep = arg;
    kn_link_t *l = ep->l;
    (void)w;
    if (msg->nframes < 1 || msg->nframes > 2)
        return;
    kn_env_t env;
    int rc = kn_env_decode(kn_zmq_frame_data(msg, 0), kn_zmq_frame_size(msg, 0),
                           &env);
    if (rc < 0) {
        kn_log_warn("bad envelope from the router: %s", kn_strerror(rc));
        return;
    }
    switch (env.kind) {
    case KN_ENV_HELLO:
        if (!link_router_state(l, ep, &env))
            return;
        if (env.flags & KN_F_ACK) {
            link_on_ack(l, &env);
        } else if (env.flags & KN_F_REHELLO && !l->resync_pending) {
            kn_log_info("router asks %s to HELLO again", l->name);
            l->ready = false;
            l->resync_pending = true;
            l->rehello = true;
            link_hello(l, ep);
        }
        return;
    case KN_ENV_HEARTBEAT:
        if (!link_router_state(l, ep, &env))
            return;
        if (l->ready && env.seq != l->router_boot && !l->resync_pending) {
            kn_log_warn("router restarted (boot %08x -> %08x): re-syncing",
                        l->router_boot, env.seq);
            l->ready = false;
            l->resync_pending = true;
            link_hello(l, ep);
            return;
        }
        if (l->ready && env.ntargets > KN_LINK_T_ACKED)
            q_acked(l, kn_env_target(&env, KN_LINK_T_ACKED));
        return;
    default:
        break;
    }
    if (ep->idx != l->cur) {
        kn_log_debug("%s from router %s, which we do not use: dropped",
                     kn_env_kind_name(env.kind), ep->endpoint);
        return;
    }
    if (link_is_dup(l, &env))
        return;
    rx_note(l, &env);
    const void *pl = msg->nframes == 2 ? kn_zmq_frame_data(msg, 1) : NULL;
    size_t plen = msg->nframes == 2 ? kn_zmq_frame_size(msg, 1) : 0;
    l->ops->on_message(l->ud, &env, pl, plen);
}

static void link_on_beat(struct ev_loop *loop, ev_timer *t, int revents)
{
    kn_link_t *l = t->data;
    (void)revents;
    l->beats++;
    double now = ev_now(loop);
    if (l->cur >= 0 && l->neps > 1 && now - l->eps[l->cur].last_rx > l->timeout)
        link_drop_cur(l, "is silent");
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.seq = l->boot;
    e.node = l->name;
    e.node_len = strlen(l->name);
    for (int i = 0; i < l->neps; i++) {
        link_ep_t *ep = &l->eps[i];
        if (l->cur < 0 || (i == l->cur && !l->ready))
            link_hello(l, ep); /* until answered */
        else
            link_send_ep(l, ep, &e, NULL, 0); /* others: a probe */
    }
    q_flush(l);
}

kn_link_t *kn_link_new(struct ev_loop *loop, const kn_common_conf_t *cc,
                       const char *node_name, uint16_t role,
                       const kn_link_ops_t *ops, void *ud)
{
    kn_link_t *l = kn_calloc(1, sizeof(*l));
    l->loop = loop;
    l->name = kn_strdup(node_name);
    l->role = role;
    l->ops = ops;
    l->ud = ud;
    l->fresh = true;
    l->cur = -1;
    l->boot = kn_daemon_boot_id();
    /* Link sequences of this run: a range of its own, so a receiver's
     * recent keys never match the frames of an earlier run. */
    l->next_seq = ((uint64_t)(l->boot & 0xFFFF) << 32) + 1;
    l->q_tail = &l->q_head;
    l->q_unsent = &l->q_head;
    l->timeout = (double)cc->node_timeout_ms / 1000.0;
    l->ctx = zmq_ctx_new();
    const char *p = cc->router_endpoint;
    while (p != NULL && *p != '\0' && l->neps < LINK_MAX_EPS) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n > 0) {
            link_ep_t *ep = &l->eps[l->neps];
            ep->l = l;
            ep->idx = l->neps;
            ep->endpoint = kn_strndup(p, n);
            l->neps++;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (l->neps == 0) {
        kn_log_err("router.endpoint names no router");
        goto err;
    }
    for (int i = 0; i < l->neps; i++) {
        link_ep_t *ep = &l->eps[i];
        ep->sock = zmq_socket(l->ctx, ZMQ_DEALER);
        int hwm = 1000000, linger = 200, ivl = 100, ivl_max = 1000;
        zmq_setsockopt(ep->sock, ZMQ_ROUTING_ID, node_name, strlen(node_name));
        zmq_setsockopt(ep->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(ep->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(ep->sock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(ep->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
        zmq_setsockopt(ep->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max,
                       sizeof(ivl_max));
        if (zmq_connect(ep->sock, ep->endpoint) != 0) {
            kn_log_err("cannot connect to the router at %s: %s", ep->endpoint,
                       zmq_strerror(zmq_errno()));
            goto err;
        }
        ep->w = kn_zmq_ev_new(loop, ep->sock, 0, link_on_msg, ep, NULL);
        if (ep->w == NULL)
            goto err;
    }
    for (int i = 0; i < l->neps; i++)
        kn_zmq_ev_start(l->eps[i].w);
    double period = (double)cc->heartbeat_ms / 1000.0;
    ev_timer_init(&l->beat, link_on_beat, period, period);
    l->beat.data = l;
    ev_timer_start(loop, &l->beat);
    for (int i = 0; i < l->neps; i++)
        link_hello(l, &l->eps[i]);
    return l;

err:
    for (int i = 0; i < l->neps; i++) {
        kn_zmq_ev_free(&l->eps[i].w);
        if (l->eps[i].sock != NULL)
            zmq_close(l->eps[i].sock);
        free(l->eps[i].endpoint);
    }
    zmq_ctx_term(l->ctx);
    free(l->name);
    free(l);
    return NULL;
}

void kn_link_free(kn_link_t **lp)
{
    kn_link_t *l = *lp;
    if (l == NULL)
        return;
    ev_timer_stop(l->loop, &l->beat);
    for (int i = 0; i < l->neps; i++) {
        kn_zmq_ev_free(&l->eps[i].w);
        zmq_close(l->eps[i].sock);
        free(l->eps[i].endpoint);
    }
    zmq_ctx_term(l->ctx);
    while (l->regs != NULL) {
        link_reg_t *g = l->regs;
        l->regs = g->next;
        free(g->name);
        free(g);
    }
    while (l->q_head != NULL) {
        link_frame_t *f = l->q_head;
        l->q_head = f->next;
        free(f);
    }
    free(l->seen.slots[0]);
    free(l->seen.slots[1]);
    free(l->rx);
    kn_buf_free(&l->buf);
    free(l->name);
    free(l);
    *lp = NULL;
}

bool kn_link_ready(const kn_link_t *l)
{
    return l->index != 0;
}

uint64_t kn_link_conn_id(const kn_link_t *l, uint64_t local)
{
    KN_ASSERT(l->index != 0);
    return kn_conn_make(l->index, local);
}

int kn_link_send(kn_link_t *l, const kn_env_t *env, const void *payload,
                 size_t len)
{
    bool data = kind_is_data(env->kind);
    bool direct =
        l->cur >= 0 && l->ready && (l->flushed ? !q_has_unsent(l) : !data);
    kn_env_t e = *env;
    e.link = data ? l->next_seq : 0;
    l->buf.len = 0;
    int rc = kn_env_encode(&e, &l->buf);
    if (rc < 0)
        return rc;
    if (direct) {
        rc = ep_send(&l->eps[l->cur], l->buf.data, l->buf.len, payload, len);
        if (rc < 0)
            return rc;
        if (!data)
            return 0;
        l->next_seq++;
        /* Kept until acknowledged; a full queue only costs the resend. */
        q_append(l, l->buf.data, l->buf.len, payload, len, e.link, true);
        return 0;
    }
    rc = q_append(l, l->buf.data, l->buf.len, payload, len, e.link, false);
    if (rc < 0)
        return rc;
    if (data)
        l->next_seq++;
    q_flush(l);
    return 0;
}

void kn_link_register(kn_link_t *l, uint16_t flags, const char *name)
{
    kn_link_register_seq(l, flags, name, 0);
}

void kn_link_register_seq(kn_link_t *l, uint16_t flags, const char *name,
                          uint32_t seq)
{
    link_reg_t *g = kn_calloc(1, sizeof(*g));
    g->flags = flags;
    g->seq = seq;
    g->name = kn_strdup(name ? name : "");
    link_reg_t **pp = &l->regs;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = g;
    if (l->ready && l->cur >= 0) {
        kn_env_t e = {0};
        e.kind = KN_ENV_REGISTER;
        e.flags = flags;
        e.seq = seq;
        e.node = g->name;
        e.node_len = strlen(g->name);
        link_send_ep(l, &l->eps[l->cur], &e, NULL, 0);
    }
}

void kn_link_synced(kn_link_t *l)
{
    if (l->cur < 0 || !l->ready)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.flags = KN_F_SYNCED;
    e.seq = l->boot;
    e.node = l->name;
    e.node_len = strlen(l->name);
    link_send_ep(l, &l->eps[l->cur], &e, NULL, 0);
    l->flushed = true;
    size_t n = 0;
    for (link_frame_t *f = *l->q_unsent; f != NULL; f = f->next)
        n++;
    if (n > 0)
        kn_log_info("link: sending %zu held or unacknowledged frames to %s", n,
                    l->eps[l->cur].endpoint);
    q_flush(l);
}

bool kn_link_declared_lost(const kn_link_t *l)
{
    return l->was_lost;
}

uint32_t kn_link_router_boot(const kn_link_t *l)
{
    return l->router_boot;
}

size_t kn_link_unacked(const kn_link_t *l)
{
    if (l == NULL || l->cur < 0 || !l->ready)
        return 0;
    return l->q_count;
}
