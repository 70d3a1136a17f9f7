/*
 * kn_link.c - the node side of the router link (see kn_link.h).
 *
 * A note on the states. UNREADY: HELLO sent (FRESH the first time),
 * waiting for the router's ACK; data sent meanwhile is queued by ZeroMQ.
 * READY: ACK seen; our index and the router's boot id are known. Every
 * heartbeat period we send HEARTBEAT; the router's heartbeat carries its
 * boot id, and a boot id that changed means the router restarted: we
 * HELLO again (not FRESH, asking for the same index) and, on the ACK, the
 * application re-announces its sessions. A HELLO with KN_F_REHELLO from
 * the router (it does not know us) does the same. HELLO is repeated every
 * period until answered, so a router that starts after us still hears it.
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

typedef struct link_reg {
    uint16_t flags;
    char *name;
    struct link_reg *next;
} link_reg_t;

struct kn_link {
    struct ev_loop *loop;
    void *ctx;
    void *sock;
    kn_zmq_ev_t *w;
    ev_timer beat;
    char *name;
    uint16_t role;
    uint16_t index;       /* 0 until the first ACK */
    uint32_t boot;        /* ours */
    uint32_t router_boot; /* theirs, 0 until the first ACK */
    bool ready;
    bool fresh;          /* no ACK ever: our HELLO says FRESH */
    bool resync_pending; /* next ACK is a resync */
    bool rehello;        /* that resync was asked for by REHELLO */
    bool was_lost;       /* the last resync: the router had declared us lost */
    uint32_t beats;
    link_reg_t *regs;
    const kn_link_ops_t *ops;
    void *ud;
    kn_buf_t buf;
};

static int link_send_raw(kn_link_t *l, const kn_env_t *env, const void *payload,
                         size_t len)
{
    l->buf.len = 0;
    int rc = kn_env_encode(env, &l->buf);
    if (rc < 0)
        return rc;
    kn_zmq_part_t parts[2] = {{l->buf.data, l->buf.len}, {payload, len}};
    return kn_zmq_ev_send(l->w, parts, 2);
}

static void link_hello(kn_link_t *l)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = l->role | (l->fresh ? KN_F_FRESH : 0);
    e.seq = l->boot;
    e.conn_id = kn_conn_make(l->index, 0);
    e.node = l->name;
    e.node_len = strlen(l->name);
    int rc = link_send_raw(l, &e, NULL, 0);
    if (rc < 0)
        kn_log_warn("HELLO not sent: %s", kn_strerror(rc));
}

static void link_send_regs(kn_link_t *l)
{
    for (link_reg_t *g = l->regs; g != NULL; g = g->next) {
        kn_env_t e = {0};
        e.kind = KN_ENV_REGISTER;
        e.flags = g->flags;
        e.node = g->name;
        e.node_len = strlen(g->name);
        link_send_raw(l, &e, NULL, 0);
    }
}

static void link_on_ack(kn_link_t *l, const kn_env_t *env)
{
    bool resync = !l->fresh;
    /* Asked to HELLO again by a router with the boot id we knew: it did
     * not restart, so it declared us lost (node_timeout_ms of silence, a
     * partition) and ended our sessions; see kn_link_declared_lost. */
    l->was_lost = resync && l->rehello && env->seq == l->router_boot;
    l->rehello = false;
    l->index = kn_conn_node(env->conn_id);
    l->router_boot = env->seq;
    l->fresh = false;
    l->ready = true;
    l->resync_pending = false;
    kn_log_info("router accepted %s as node %u%s", l->name, l->index,
                resync ? " (resync)" : "");
    link_send_regs(l);
    l->ops->on_ready(l->ud, resync);
    if (!resync)
        kn_link_synced(l);
}

static void link_on_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    kn_link_t *l = arg;
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
        if (env.flags & KN_F_ACK) {
            link_on_ack(l, &env);
        } else if (env.flags & KN_F_REHELLO && !l->resync_pending) {
            kn_log_info("router asks %s to HELLO again", l->name);
            l->ready = false;
            l->resync_pending = true;
            l->rehello = true;
            link_hello(l);
        }
        return;
    case KN_ENV_HEARTBEAT:
        if (l->ready && env.seq != l->router_boot && !l->resync_pending) {
            kn_log_warn("router restarted (boot %08x -> %08x): re-syncing",
                        l->router_boot, env.seq);
            l->ready = false;
            l->resync_pending = true;
            link_hello(l);
        }
        return;
    default:
        break;
    }
    const void *pl = msg->nframes == 2 ? kn_zmq_frame_data(msg, 1) : NULL;
    size_t plen = msg->nframes == 2 ? kn_zmq_frame_size(msg, 1) : 0;
    l->ops->on_message(l->ud, &env, pl, plen);
}

static void link_on_beat(struct ev_loop *loop, ev_timer *t, int revents)
{
    kn_link_t *l = t->data;
    (void)loop;
    (void)revents;
    if (!l->ready) {
        link_hello(l); /* until answered */
        return;
    }
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.seq = l->boot;
    e.node = l->name;
    e.node_len = strlen(l->name);
    link_send_raw(l, &e, NULL, 0);
    l->beats++;
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
    l->boot = kn_daemon_boot_id();
    l->ctx = zmq_ctx_new();
    l->sock = zmq_socket(l->ctx, ZMQ_DEALER);
    int hwm = 1000000, linger = 200, ivl = 100, ivl_max = 1000;
    zmq_setsockopt(l->sock, ZMQ_ROUTING_ID, node_name, strlen(node_name));
    zmq_setsockopt(l->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(l->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
    if (zmq_connect(l->sock, cc->router_endpoint) != 0) {
        kn_log_err("cannot connect to the router at %s: %s",
                   cc->router_endpoint, zmq_strerror(zmq_errno()));
        goto err;
    }
    l->w = kn_zmq_ev_new(loop, l->sock, 0, link_on_msg, l, NULL);
    if (l->w == NULL)
        goto err;
    kn_zmq_ev_start(l->w);
    double period = (double)cc->heartbeat_ms / 1000.0;
    ev_timer_init(&l->beat, link_on_beat, period, period);
    l->beat.data = l;
    ev_timer_start(loop, &l->beat);
    link_hello(l);
    return l;

err:
    zmq_close(l->sock);
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
    kn_zmq_ev_free(&l->w);
    zmq_close(l->sock);
    zmq_ctx_term(l->ctx);
    while (l->regs != NULL) {
        link_reg_t *g = l->regs;
        l->regs = g->next;
        free(g->name);
        free(g);
    }
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
    return link_send_raw(l, env, payload, len);
}

void kn_link_register(kn_link_t *l, uint16_t flags, const char *name)
{
    link_reg_t *g = kn_calloc(1, sizeof(*g));
    g->flags = flags;
    g->name = kn_strdup(name ? name : "");
    link_reg_t **pp = &l->regs;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = g;
    if (l->ready) {
        kn_env_t e = {0};
        e.kind = KN_ENV_REGISTER;
        e.flags = flags;
        e.node = g->name;
        e.node_len = strlen(g->name);
        link_send_raw(l, &e, NULL, 0);
    }
}

void kn_link_synced(kn_link_t *l)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HEARTBEAT;
    e.flags = KN_F_SYNCED;
    e.seq = l->boot;
    e.node = l->name;
    e.node_len = strlen(l->name);
    link_send_raw(l, &e, NULL, 0);
}

bool kn_link_declared_lost(const kn_link_t *l)
{
    return l->was_lost;
}

uint32_t kn_link_router_boot(const kn_link_t *l)
{
    return l->router_boot;
}
