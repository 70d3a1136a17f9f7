/*
 * router_io.c - the router's ZeroMQ ROUTER socket on the libev loop.
 *
 * Every message in is [routing id][envelope][payload]; every message out
 * the same. ZMQ_ROUTER_MANDATORY is on, so a frame for a node whose
 * DEALER is not connected fails with EHOSTUNREACH instead of vanishing:
 * the stanza then goes to the offline handler or bounces
 * (router_undeliverable). The send high-water mark is large; a frame that
 * still cannot be queued is counted and logged, never silently lost.
 */
#include "router_io.h"

#include <string.h>
#include <zmq.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_zmq_ev.h"

struct router_io {
    struct ev_loop *loop;
    void *ctx;
    void *sock;
    kn_zmq_ev_t *w;
    router_t *r;
    kn_buf_t envbuf;
    uint64_t send_failed;
    ev_timer arch_timer; /* sends the batched archive copies */
};

/* How long an archive copy may wait for others to go with it: the
 * archiver then wakes once per batch envelope rather than once per
 * message. The archiver writes at most every 50 ms anyway
 * (pres_mam.c's MAM_BATCH_GAP_S), so a shorter period would only wake it
 * more often. Delivery does not wait for it; a MAM query does not either
 * (anything sent to the archiver flushes the batch). */
#define ROUTER_ARCH_FLUSH_S 0.05

static void io_arch_flush(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    router_io_t *io = t->data;
    router_mam_flush(io->r);
}

static void io_arch_arm(void *ud)
{
    router_io_t *io = ud;
    if (!ev_is_active(&io->arch_timer)) {
        ev_timer_set(&io->arch_timer, ROUTER_ARCH_FLUSH_S, 0.);
        ev_timer_start(io->loop, &io->arch_timer);
    }
}

static void io_send(void *ud, const router_node_t *to, const kn_env_t *env,
                    const router_payload_t *payload)
{
    router_io_t *io = ud;
    io->envbuf.len = 0;
    /* Every frame caused by a node's data frame carries its link id, so
     * a receiver can drop a second copy after a takeover (kn_link.c). */
    kn_env_t e = *env;
    e.link = env->kind == KN_ENV_HELLO || env->kind == KN_ENV_HEARTBEAT
                 ? 0
                 : io->r->cur_link;
    if (kn_env_encode(&e, &io->envbuf) < 0) {
        kn_log_err("envelope for %s too big: dropped", to->name);
        return;
    }
    kn_zmq_part_t parts[3] = {
        {to->name, strlen(to->name)},
        {io->envbuf.data, io->envbuf.len},
        {payload->data, payload->len},
    };
    int rc = kn_zmq_ev_send(io->w, parts, 3);
    if (rc == 0)
        return;
    io->send_failed++;
    if (rc == -KN_ENOENT) {
        kn_log_at(env->kind == KN_ENV_STANZA ? KN_LOG_INFO : KN_LOG_DEBUG,
                  "node %s unreachable: %s %s handled as undeliverable",
                  to->name, kn_env_kind_name(env->kind),
                  kn_env_stanza_name(env->stanza));
        router_undeliverable(io->r, to, env, payload);
    } else {
        kn_log_err("send to %s failed (%s): %s dropped", to->name,
                   kn_strerror(rc), kn_env_kind_name(env->kind));
    }
}

static void io_on_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    router_io_t *io = arg;
    (void)w;
    if (msg->nframes < 2 || msg->nframes > 3) {
        kn_log_warn("message with %zu frames dropped", msg->nframes);
        return;
    }
    kn_env_t env;
    int rc = kn_env_decode(kn_zmq_frame_data(msg, 1), kn_zmq_frame_size(msg, 1),
                           &env);
    if (rc < 0) {
        kn_log_warn("bad envelope from %.*s (%s): dropped",
                    (int)kn_zmq_frame_size(msg, 0),
                    (const char *)kn_zmq_frame_data(msg, 0), kn_strerror(rc));
        return;
    }
    router_payload_t pl = {NULL, 0, NULL};
    if (msg->nframes == 3) {
        pl.data = kn_zmq_frame_data(msg, 2);
        pl.len = kn_zmq_frame_size(msg, 2);
        pl.msg = &msg->frames[2];
    }
    router_handle(io->r, kn_zmq_frame_data(msg, 0), kn_zmq_frame_size(msg, 0),
                  &env, &pl, ev_now(io->loop));
}

router_io_t *router_io_new(struct ev_loop *loop, const char *bind,
                           router_t **rp, const char *domain, uint32_t boot,
                           double node_timeout)
{
    router_io_t *io = kn_calloc(1, sizeof(*io));
    io->loop = loop;
    io->ctx = zmq_ctx_new();
    io->sock = zmq_socket(io->ctx, ZMQ_ROUTER);
    int one = 1, hwm = 1000000, linger = 0;
    zmq_setsockopt(io->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    zmq_setsockopt(io->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(io->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(io->sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(io->sock, bind) != 0) {
        kn_log_err("cannot bind %s: %s", bind, zmq_strerror(zmq_errno()));
        goto err_close;
    }
    io->w = kn_zmq_ev_new(loop, io->sock, 0, io_on_msg, io, NULL);
    if (io->w == NULL)
        goto err_close;
    io->r = router_new(domain, boot, node_timeout, io_send, io);
    ev_timer_init(&io->arch_timer, io_arch_flush, ROUTER_ARCH_FLUSH_S, 0.);
    io->arch_timer.data = io;
    router_mam_defer(io->r, io_arch_arm, io);
    *rp = io->r;
    kn_zmq_ev_start(io->w);
    return io;

err_close:
    zmq_close(io->sock);
    zmq_ctx_term(io->ctx);
    free(io);
    return NULL;
}

void router_io_free(router_io_t **iop)
{
    router_io_t *io = *iop;
    if (io == NULL)
        return;
    ev_timer_stop(io->loop, &io->arch_timer);
    router_mam_flush(io->r);
    kn_zmq_ev_free(&io->w);
    router_free(&io->r);
    /* What we routed is acknowledged (router_stop_routing): let the
     * socket send it out before it closes (bounded: a dead peer's share
     * is given up after this). */
    int linger = 2000;
    zmq_setsockopt(io->sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(io->sock);
    zmq_ctx_term(io->ctx);
    kn_buf_free(&io->envbuf);
    free(io);
    *iop = NULL;
}
