/*
 * kn_redis.h - one Redis connection on libev: hiredis async with its libev
 * adapter, plus automatic reconnect with backoff and an exactly-once reply
 * callback, also when disconnected.
 */
#ifndef KN_REDIS_H
#define KN_REDIS_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct kn_redis kn_redis_t;

typedef struct kn_redis_config {
    /* "unix:/path/to/redis.sock" or "tcp:host:port". Copied. */
    const char *addr;
    /* Reconnect backoff: first delay and cap (0: 100 ms and 5000 ms). The
     * delay doubles after each failed attempt and resets on success. */
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    /* A connection attempt taking longer is abandoned (0: 5000 ms). */
    unsigned connect_timeout_ms;
} kn_redis_config_t;

/*
 * Reply callback, called exactly once per command, always from the event
 * loop, never from inside kn_redis_command() (except during
 * kn_redis_free(), see there). reply is borrowed (hiredis frees it when
 * the callback returns). err is:
 *   0            reply is the server's answer (not an error reply);
 *   -KN_EDB      reply is an error reply (REDIS_REPLY_ERROR, text in
 *                reply->str);
 *   -KN_ECLOSED  no reply: not connected when the command was issued, or
 *                the connection was lost or the wrapper freed before the
 *                answer (reply NULL); the command may or may not have run;
 *   -KN_EINVAL   hiredis could not format the command (reply NULL).
 * The callback may issue commands; it must not free the wrapper.
 */
typedef void (*kn_redis_reply_cb)(kn_redis_t *r, redisReply *reply, int err,
                                  void *arg);

/* Connection state callback: connected is 1 when a connection came up, 0
 * when an established connection went down (pending commands have had
 * their -KN_ECLOSED callbacks by then). Failed attempts are only logged.
 * Called from the loop; may issue commands; must not free the wrapper. */
typedef void (*kn_redis_state_cb)(kn_redis_t *r, int connected, void *arg);

/* Create the wrapper and start connecting (the call does not wait).
 * cfg is copied; state_cb may be NULL. Returns 0 and *out, or -KN_EINVAL
 * when cfg->addr does not parse. An unreachable server is not an error:
 * the wrapper keeps retrying. Callable anywhere. */
int kn_redis_new(struct ev_loop *loop, const kn_redis_config_t *cfg,
                 kn_redis_state_cb state_cb, void *arg, kn_redis_t **out);

/* Disconnect and free; *rp = NULL; idempotent on NULL. Every command
 * still pending gets its callback with -KN_ECLOSED before this returns.
 * Must not be called from one of this wrapper's callbacks. */
void kn_redis_free(kn_redis_t **rp);

/* 1 when connected (commands will be sent), else 0. */
int kn_redis_is_connected(const kn_redis_t *r);

/* Commands whose callback has not run yet (sent and waiting for the
 * reply, or failed and about to be reported); 0 for NULL. */
size_t kn_redis_pending(const kn_redis_t *r);

/* Issue a command, printf-style as redisAsyncCommand() (%s, %b for
 * binary with a size_t length). When not connected it fails fast: cb gets
 * -KN_ECLOSED on the next loop iteration. cb may be NULL (fire and
 * forget). Not for SUBSCRIBE, PSUBSCRIBE or MONITOR: hiredis calls their
 * callbacks once per message, which breaks the exactly-once contract.
 * Callable from any callback. */
void kn_redis_command(kn_redis_t *r, kn_redis_reply_cb cb, void *arg,
                      const char *fmt, ...);

/* Make r a subscriber of channel (Redis pub/sub): cb gets each message's
 * payload (borrowed, len bytes, NUL-terminated). The subscription is made
 * again after every reconnect; messages published while disconnected are
 * lost (the state callback says when that may have happened). A
 * subscribed wrapper takes no other command: use a wrapper of its own.
 * Once per wrapper. */
typedef void (*kn_redis_msg_cb)(kn_redis_t *r, const char *msg, size_t len,
                                void *arg);
void kn_redis_subscribe(kn_redis_t *r, const char *channel, kn_redis_msg_cb cb,
                        void *arg);

/* The same with an argument vector (binary safe; argvlen NULL means each
 * argv[i] is a C string). argv is copied before the call returns. */
void kn_redis_command_argv(kn_redis_t *r, kn_redis_reply_cb cb, void *arg,
                           size_t argc, const char **argv,
                           const size_t *argvlen);

#endif
