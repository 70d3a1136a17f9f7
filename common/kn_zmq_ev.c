/*
 * kn_zmq_ev.c - libev watcher for a ZeroMQ socket.
 *
 * A note on ZMQ_FD. The fd ZeroMQ exposes is not the socket's data fd but
 * the signaler of its command mailbox. It becomes readable when commands
 * arrive (for example "a pipe has messages"), and ZeroMQ drains it itself
 * whenever the socket processes commands: inside zmq_getsockopt(ZMQ_EVENTS),
 * zmq_recv() and zmq_send(). So it is edge-triggered in practice: messages
 * already queued never make it readable again, and a zmq_send() by the
 * application can swallow the edge that announced new input. Hence:
 *
 *   - after every wake-up we receive (ZMQ_DONTWAIT) until EAGAIN, never
 *     trusting the fd alone. A receive that finds nothing processes the
 *     socket's commands (as ZMQ_EVENTS would), so after EAGAIN the fd
 *     is armed again; asking ZMQ_EVENTS before each message would cost a
 *     getpid (libzmq's fork check) and a poll of the mailbox each time;
 *   - a send through kn_zmq_ev_send() (or a kn_zmq_ev_kick()) sets
 *     `pending`, and `pending` is served by an ev_prepare watcher, which
 *     libev runs before the loop blocks: the socket is read once more
 *     (usually a single EAGAIN) before we wait for the fd, without an
 *     extra loop iteration per send;
 *   - when that read delivered messages (their callbacks may have queued
 *     output that other prepare hooks, run before ours, would not see) or
 *     the budget stopped it, an ev_idle watcher is started. Its callback
 *     does nothing: an active idle watcher only makes the loop poll with a
 *     zero timeout, so the next iteration runs without waiting for the
 *     fd, with every prepare hook again. (libev invokes idle callbacks
 *     only in iterations with no other pending event: under steady client
 *     I/O they would never run, so no work is done in them.)
 *
 * Fairness: `used` counts messages delivered in the loop iteration numbered
 * `iter` (ev_iteration()). Both the io and the prepare callbacks draw on the
 * same budget, so at most batch_max messages are delivered per iteration
 * whichever watcher fires. When the budget stops us, `pending` stays set
 * and the idle watcher keeps the next iteration from blocking.
 *
 * Lifetime: the callback may stop or free its own watcher. `in_cb` counts
 * nested deliveries; kn_zmq_ev_free() during a callback only sets `dead`,
 * and the drain loop frees the watcher once the callback has returned.
 */
#include "kn_zmq_ev.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

/*
 * libzmq's fork check. libzmq 4.3.4 (Debian 12) is built with HAVE_FORK:
 * its signaler calls getpid() on every send and wait of a mailbox signal,
 * that is several times per message in every ZeroMQ call that touches a
 * mailbox (a third of the router's system calls per envelope), and no
 * context or socket option turns the check off. glibc no longer caches
 * the pid, so each call is a system call. This definition, in every Kiln
 * program that uses ZeroMQ (this file is linked into each), takes
 * precedence over libc's for libzmq (the executable's symbols come first
 * in the dynamic linker's search) and returns the pid cached at the first
 * call. pthread_atfork resets the cache in a forked child, so the check
 * still sees a fork. Children made with vfork/posix_spawn run no code of
 * ours before exec. The pid of a process never changes otherwise.
 */
static pid_t zev_pid;

static void zev_pid_forked(void)
{
    __atomic_store_n(&zev_pid, 0, __ATOMIC_RELAXED);
}

static void zev_pid_init(void)
{
    pthread_atfork(NULL, NULL, zev_pid_forked);
}

pid_t getpid(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pid_t p = __atomic_load_n(&zev_pid, __ATOMIC_RELAXED);
    if (p != 0)
        return p;
    pthread_once(&once, zev_pid_init);
    p = (pid_t)syscall(SYS_getpid);
    __atomic_store_n(&zev_pid, p, __ATOMIC_RELAXED);
    return p;
}

struct kn_zmq_ev {
    struct ev_loop *loop;
    void *sock;
    ev_io io;
    ev_prepare prepare;
    ev_idle idle;
    kn_zmq_ev_cb cb;
    void *arg;
    unsigned batch_max;
    unsigned iter; /* ev_iteration() when `used` was last reset */
    unsigned used; /* messages delivered during iteration `iter` */
    size_t dropped;
    int active;
    int pending; /* ZMQ_EVENTS must be read again without waiting */
    int in_cb;
    int dead;
};

enum zev_recv {
    ZEV_NONE,    /* nothing to read */
    ZEV_GOT,     /* msg is filled */
    ZEV_DROPPED, /* a message was read and dropped */
    ZEV_ERROR,
};

static void zev_msg_close(kn_zmq_msg_t *msg)
{
    for (size_t i = 0; i < msg->nframes; i++)
        zmq_msg_close(&msg->frames[i]);
    msg->nframes = 0;
}

/* Read one whole multipart message. ZeroMQ delivers multipart messages
 * atomically, so once the first frame is in, the rest are too. */
static enum zev_recv zev_recv_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg)
{
    int more = 1;
    int overflow = 0;

    msg->nframes = 0;
    while (more) {
        zmq_msg_t spill;
        zmq_msg_t *f = msg->nframes < KN_ZMQ_MAX_FRAMES
                           ? &msg->frames[msg->nframes]
                           : &spill;
        zmq_msg_init(f);
        if (zmq_msg_recv(f, w->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(f);
            if (e == EINTR)
                continue;
            if (e == EAGAIN && msg->nframes == 0 && !overflow)
                return ZEV_NONE;
            kn_log_err("zmq_ev: recv failed: %s", zmq_strerror(e));
            zev_msg_close(msg);
            return ZEV_ERROR;
        }
        more = zmq_msg_more(f);
        if (f == &spill) {
            overflow = 1;
            zmq_msg_close(f);
        } else {
            msg->nframes++;
        }
    }
    if (overflow) {
        zev_msg_close(msg);
        w->dropped++;
        kn_log_warn("zmq_ev: dropped a message of more than %d frames",
                    KN_ZMQ_MAX_FRAMES);
        return ZEV_DROPPED;
    }
    return ZEV_GOT;
}

/* pending: read the socket again before the loop blocks (the prepare
 * watcher serves it). */
static void zev_set_pending(kn_zmq_ev_t *w, int on)
{
    w->pending = on;
    if (on && w->active)
        ev_prepare_start(w->loop, &w->prepare);
}

static void zev_stop_watchers(kn_zmq_ev_t *w)
{
    ev_io_stop(w->loop, &w->io);
    ev_prepare_stop(w->loop, &w->prepare);
    ev_idle_stop(w->loop, &w->idle);
}

/* Deliver what the socket holds, within the iteration's budget. Returns
 * the messages delivered, or -1 when the watcher was freed by a callback
 * (do not touch it). */
static int zev_drain(kn_zmq_ev_t *w)
{
    unsigned it = ev_iteration(w->loop);
    if (it != w->iter) {
        w->iter = it;
        w->used = 0;
    }
    if (!w->active)
        return 0;
    if (w->used >= w->batch_max) {
        zev_set_pending(w, 1);
        return 0;
    }
    int delivered = 0;
    while (w->used < w->batch_max) {
        /* No ZMQ_EVENTS per message: a non-blocking receive processes the
         * socket's pending commands itself when nothing is queued
         * (socket_base_t::recv), so EAGAIN is as reliable as a clear
         * ZMQ_POLLIN, and each ZMQ_EVENTS costs libzmq's fork check
         * (getpid) and a poll of the mailbox. */
        kn_zmq_msg_t msg;
        enum zev_recv r = zev_recv_msg(w, &msg);
        if (r == ZEV_NONE || r == ZEV_ERROR) {
            w->pending = 0;
            return delivered;
        }
        w->used++;
        if (r == ZEV_DROPPED)
            continue;
        delivered++;
        w->in_cb++;
        w->cb(w, &msg, w->arg);
        w->in_cb--;
        zev_msg_close(&msg);
        if (w->dead) {
            if (w->in_cb == 0) {
                free(w);
                return -1;
            }
            return delivered;
        }
        if (!w->active)
            return delivered;
    }
    /* Budget spent: continue next iteration without waiting for the fd. */
    zev_set_pending(w, 1);
    return delivered;
}

static void zev_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    zev_drain(io->data);
}

static void zev_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    KN_UNUSED(revents);
    kn_zmq_ev_t *w = p->data;
    int delivered = 0;
    if (w->pending) {
        delivered = zev_drain(w);
        if (delivered < 0)
            return; /* freed */
    }
    if (!w->active) {
        zev_stop_watchers(w);
        return;
    }
    if (w->pending || delivered > 0) {
        /* Run another iteration (and every prepare hook) before waiting. */
        ev_idle_start(loop, &w->idle);
    } else {
        ev_idle_stop(loop, &w->idle);
        ev_prepare_stop(loop, p);
    }
}

static void zev_on_idle(struct ev_loop *loop, ev_idle *i, int revents)
{
    /* Only here to keep the loop from blocking; see the design note. */
    KN_UNUSED(loop);
    KN_UNUSED(i);
    KN_UNUSED(revents);
}

kn_zmq_ev_t *kn_zmq_ev_new(struct ev_loop *loop, void *sock, unsigned batch_max,
                           kn_zmq_ev_cb cb, void *arg, int *err)
{
    KN_ASSERT(loop != NULL);
    KN_ASSERT(sock != NULL);
    KN_ASSERT(cb != NULL);

    int fd;
    size_t sz = sizeof(fd);
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) != 0) {
        kn_log_err("zmq_ev: ZMQ_FD failed: %s", zmq_strerror(errno));
        if (err)
            *err = -KN_EIO;
        return NULL;
    }
    kn_zmq_ev_t *w = kn_calloc(1, sizeof(*w));
    w->loop = loop;
    w->sock = sock;
    w->cb = cb;
    w->arg = arg;
    w->batch_max = batch_max ? batch_max : KN_ZMQ_BATCH_DEFAULT;
    ev_io_init(&w->io, zev_on_io, fd, EV_READ);
    w->io.data = w;
    ev_prepare_init(&w->prepare, zev_on_prepare);
    w->prepare.data = w;
    ev_idle_init(&w->idle, zev_on_idle);
    w->idle.data = w;
    if (err)
        *err = 0;
    return w;
}

void kn_zmq_ev_start(kn_zmq_ev_t *w)
{
    KN_ASSERT(w != NULL && !w->dead);
    if (w->active)
        return;
    w->active = 1;
    ev_io_start(w->loop, &w->io);
    /* Messages may already be queued: the fd will not tell us. */
    zev_set_pending(w, 1);
}

void kn_zmq_ev_stop(kn_zmq_ev_t *w)
{
    KN_ASSERT(w != NULL);
    w->active = 0;
    w->pending = 0;
    zev_stop_watchers(w);
}

void kn_zmq_ev_free(kn_zmq_ev_t **wp)
{
    kn_zmq_ev_t *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    kn_zmq_ev_stop(w);
    if (w->in_cb) {
        w->dead = 1;
        return;
    }
    free(w);
}

void kn_zmq_ev_kick(kn_zmq_ev_t *w)
{
    KN_ASSERT(w != NULL);
    if (w->active && !w->pending)
        zev_set_pending(w, 1);
}

size_t kn_zmq_ev_dropped(const kn_zmq_ev_t *w)
{
    return w->dropped;
}

int kn_zmq_send(void *sock, const kn_zmq_part_t *parts, size_t n)
{
    KN_ASSERT(sock != NULL);
    KN_ASSERT(parts != NULL && n >= 1);

    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        int rc;
        do {
            rc = zmq_send(sock, parts[i].data, parts[i].len, flags);
        } while (rc < 0 && errno == EINTR);
        if (rc >= 0)
            continue;
        int e = errno;
        /* The high-water mark is only checked on a message's first frame,
         * so EAGAIN later would be a ZeroMQ bug: report it as EIO. */
        if (i == 0 && e == EAGAIN)
            return -KN_EAGAIN;
        if (i == 0 && e == EHOSTUNREACH)
            return -KN_ENOENT;
        kn_log_err("zmq_ev: send of frame %zu/%zu failed: %s", i + 1, n,
                   zmq_strerror(e));
        return -KN_EIO;
    }
    return 0;
}

int kn_zmq_ev_send(kn_zmq_ev_t *w, const kn_zmq_part_t *parts, size_t n)
{
    KN_ASSERT(w != NULL);
    int rc = kn_zmq_send(w->sock, parts, n);
    kn_zmq_ev_kick(w);
    return rc;
}
