/*
 * kn_zmq_ev.h - a libev watcher for one ZeroMQ socket, and a non-blocking
 * multipart send helper.
 *
 * The watcher delivers each complete multipart message to a callback, at
 * most batch_max messages per loop iteration, so one busy socket cannot
 * starve client I/O. It copes with ZMQ_FD being edge-triggered (see the
 * design note in kn_zmq_ev.c). Sends on the watched socket must go through
 * kn_zmq_ev_send(), or be followed by kn_zmq_ev_kick(), because a send can
 * consume the readable edge of the socket.
 */
#ifndef KN_ZMQ_EV_H
#define KN_ZMQ_EV_H

#include <ev.h>
#include <stddef.h>
#include <zmq.h>

/* Most frames in a message handed to the callback. A message with more
 * frames is drained and dropped (counted, logged at warning level). */
#define KN_ZMQ_MAX_FRAMES 8

/* Default for batch_max when 0 is passed to kn_zmq_ev_new(). */
#define KN_ZMQ_BATCH_DEFAULT 256

/* One received multipart message: frames[0..nframes) are initialised.
 * On a ROUTER socket frames[0] is the peer's routing id. */
typedef struct kn_zmq_msg {
    size_t nframes;
    zmq_msg_t frames[KN_ZMQ_MAX_FRAMES];
} kn_zmq_msg_t;

/* One frame to send: len bytes at data (copied by ZeroMQ). */
typedef struct kn_zmq_part {
    const void *data;
    size_t len;
} kn_zmq_part_t;

typedef struct kn_zmq_ev kn_zmq_ev_t;

/* Message callback. msg and its frames are borrowed for the call; to keep
 * a frame, zmq_msg_move() it into your own zmq_msg_t (the watcher closes
 * whatever is left). The callback may call kn_zmq_ev_send(),
 * kn_zmq_ev_stop() and kn_zmq_ev_free() on its own watcher. */
typedef void (*kn_zmq_ev_cb)(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg);

/* Size of frame i of msg, and a pointer to its bytes (borrowed). */
static inline size_t kn_zmq_frame_size(kn_zmq_msg_t *msg, size_t i)
{
    return zmq_msg_size(&msg->frames[i]);
}
static inline const void *kn_zmq_frame_data(kn_zmq_msg_t *msg, size_t i)
{
    return zmq_msg_data(&msg->frames[i]);
}

/* Create a watcher for sock (any socket type that receives) on loop. It is
 * stopped; call kn_zmq_ev_start(). batch_max bounds the messages delivered
 * per loop iteration (0 = KN_ZMQ_BATCH_DEFAULT). The watcher borrows loop
 * and sock; both must outlive it; it never closes sock. Returns NULL with
 * -KN_EIO in *err (if err) when ZMQ_FD cannot be read. Not to be called
 * from this watcher's own callback. */
kn_zmq_ev_t *kn_zmq_ev_new(struct ev_loop *loop, void *sock, unsigned batch_max,
                           kn_zmq_ev_cb cb, void *arg, int *err);

/* Start watching; messages already queued on the socket are delivered
 * on the next loop iteration (no wait for the fd). Idempotent. Callable
 * from any callback. */
void kn_zmq_ev_start(kn_zmq_ev_t *w);

/* Stop watching; queued messages stay in the socket. Idempotent. Callable
 * from any callback, including this watcher's own (no further message is
 * delivered after it returns). */
void kn_zmq_ev_stop(kn_zmq_ev_t *w);

/* Stop and free the watcher (the socket is left open) and set *wp = NULL.
 * Idempotent on NULL. Callable from this watcher's own callback (the free
 * is then deferred until the callback returns). */
void kn_zmq_ev_free(kn_zmq_ev_t **wp);

/* Tell the watcher that the application used the socket directly (for
 * example zmq_send() or zmq_getsockopt(ZMQ_EVENTS)), which may have
 * consumed the readable edge: ZMQ_EVENTS is checked again on the next loop
 * iteration without waiting for the fd. Cheap; callable from anywhere on
 * the loop's thread. */
void kn_zmq_ev_kick(kn_zmq_ev_t *w);

/* Messages dropped because they had more than KN_ZMQ_MAX_FRAMES frames. */
size_t kn_zmq_ev_dropped(const kn_zmq_ev_t *w);

/* Send parts[0..n) (n >= 1) as one multipart message on sock without
 * blocking. The bytes are copied; the caller keeps parts. Returns 0, or
 * -KN_EAGAIN when the high-water mark is reached (nothing was sent; retry
 * later), -KN_ENOENT when a ROUTER with ZMQ_ROUTER_MANDATORY has no peer
 * with that routing id (nothing was sent), -KN_EIO otherwise. Does not
 * kick any watcher: for a watched socket use kn_zmq_ev_send(). */
int kn_zmq_send(void *sock, const kn_zmq_part_t *parts, size_t n);

/* kn_zmq_send() on the watcher's socket, then kn_zmq_ev_kick(w). Same
 * returns. Callable from any callback, including the watcher's own. */
int kn_zmq_ev_send(kn_zmq_ev_t *w, const kn_zmq_part_t *parts, size_t n);

#endif
