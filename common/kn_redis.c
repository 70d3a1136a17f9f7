/*
 * kn_redis.c - hiredis async on libev with reconnect and exactly-once
 * reply callbacks.
 *
 * A note on who calls a command's callback. Each command carries a small
 * `redis_cmd_t` that is freed right after its callback runs, and exactly
 * one of two parties holds it:
 *
 *   - hiredis, once redisAsyncCommand() accepted it: hiredis calls every
 *     accepted callback once, with the reply, or with NULL when the
 *     connection fails or the context is freed (its own contract);
 *   - our `failed` list, when we refused it (not connected, or hiredis
 *     refused): an ev_idle watcher at top priority runs those callbacks on
 *     the next loop iteration with -KN_ECLOSED, so nothing is called back
 *     from inside kn_redis_command().
 *
 * The redisAsyncContext is hiredis's to free after a failed connect or a
 * disconnect; `ac` is cleared in those callbacks and every hiredis callback
 * first checks that the context is still ours (`r->ac == ac`), so a late
 * notification about an abandoned context is ignored. States: DOWN (no
 * context; the timer waits out the backoff), CONNECTING (the timer is the
 * connect timeout), UP. Commands are accepted only when UP.
 *
 * Note: redisAsyncSetConnectCallback() arms the write watcher that detects
 * the connection, so it must come after redisLibevAttach().
 */
#include "kn_redis.h"
#include "kn_metrics.h"

#include <hiredis/async.h>
#include <stdarg.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

typedef struct redis_cmd {
    struct redis_cmd *next;
    kn_redis_t *r;
    kn_redis_reply_cb cb;
    void *arg;
    int err;   /* for the failed list */
    double t0; /* ev_time() at submission, for the latency histogram */
} redis_cmd_t;

enum redis_state { R_DOWN, R_CONNECTING, R_UP };

struct kn_redis {
    struct ev_loop *loop;
    char *path; /* unix socket, or NULL */
    char *host;
    int port;
    redisAsyncContext *ac;
    enum redis_state state;
    ev_timer timer;
    unsigned backoff_ms, backoff_min_ms, backoff_max_ms;
    double connect_timeout;
    kn_redis_state_cb state_cb;
    void *arg;
    redis_cmd_t *failed_head, *failed_tail;
    ev_idle failed_idle;
    int in_cb;
    int closing;
    size_t pending;    /* commands not yet called back */
    char *sub_channel; /* kn_redis_subscribe(), or NULL */
    kn_redis_msg_cb sub_cb;
    void *sub_arg;
};

static void redis_connect(kn_redis_t *r);

static void redis_run_failed(kn_redis_t *r)
{
    redis_cmd_t *c;
    while ((c = r->failed_head) != NULL) {
        r->failed_head = c->next;
        if (!r->failed_head)
            r->failed_tail = NULL;
        if (c->cb) {
            r->in_cb++;
            c->cb(r, NULL, c->err, c->arg);
            r->in_cb--;
        }
        r->pending--;
        free(c);
    }
    ev_idle_stop(r->loop, &r->failed_idle);
}

static void redis_on_failed_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    redis_run_failed(w->data);
}

static void redis_fail_later(kn_redis_t *r, redis_cmd_t *c, int err)
{
    c->err = err;
    c->next = NULL;
    if (r->failed_tail)
        r->failed_tail->next = c;
    else
        r->failed_head = c;
    r->failed_tail = c;
    ev_idle_start(r->loop, &r->failed_idle);
}

static void redis_schedule_retry(kn_redis_t *r)
{
    r->state = R_DOWN;
    ev_timer_stop(r->loop, &r->timer);
    if (r->closing)
        return;
    ev_timer_set(&r->timer, r->backoff_ms / 1000., 0.);
    ev_timer_start(r->loop, &r->timer);
    r->backoff_ms *= 2;
    if (r->backoff_ms > r->backoff_max_ms)
        r->backoff_ms = r->backoff_max_ms;
}

static void redis_notify(kn_redis_t *r, int connected)
{
    if (!r->state_cb)
        return;
    r->in_cb++;
    r->state_cb(r, connected, r->arg);
    r->in_cb--;
}

/* Every reply on a subscribed connection: the SUBSCRIBE confirmation,
 * then ["message", channel, payload] per message; NULL when the
 * connection goes (hiredis then forgets the callback). */
static void redis_on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
    KN_UNUSED(ac);
    kn_redis_t *r = priv;
    redisReply *rp = reply;
    if (rp == NULL || r == NULL || r->sub_cb == NULL ||
        rp->type != REDIS_REPLY_ARRAY || rp->elements != 3 ||
        rp->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rp->element[0]->str, "message") != 0 ||
        rp->element[2]->type != REDIS_REPLY_STRING)
        return;
    r->in_cb++;
    r->sub_cb(r, rp->element[2]->str, rp->element[2]->len, r->sub_arg);
    r->in_cb--;
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    kn_redis_t *r = ac->data;
    if (!r || r->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return. */
        kn_log_warn("redis: connect failed: %s",
                    ac->errstr[0] ? ac->errstr : "unknown error");
        r->ac = NULL;
        redis_schedule_retry(r);
        return;
    }
    ev_timer_stop(r->loop, &r->timer);
    r->state = R_UP;
    r->backoff_ms = r->backoff_min_ms;
    kn_log_info("redis: connected");
    if (r->sub_channel != NULL)
        redisAsyncCommand(r->ac, redis_on_sub, r, "SUBSCRIBE %s",
                          r->sub_channel);
    redis_notify(r, 1);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    kn_redis_t *r = ac->data;
    if (!r || r->ac != ac)
        return;
    /* hiredis has called every pending callback and frees the context
     * when we return. */
    r->ac = NULL;
    int was_up = r->state == R_UP;
    if (status != REDIS_OK)
        kn_log_warn("redis: connection lost: %s",
                    ac->errstr[0] ? ac->errstr : "unknown error");
    else
        kn_log_info("redis: disconnected");
    redis_schedule_retry(r);
    if (was_up)
        redis_notify(r, 0);
}

static void redis_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    kn_redis_t *r = t->data;
    if (r->state == R_CONNECTING) {
        redisAsyncContext *ac = r->ac;
        kn_log_warn("redis: connect timed out");
        r->ac = NULL;
        redis_schedule_retry(r);
        if (ac)
            redisAsyncFree(ac); /* nothing pending: commands need R_UP */
    } else if (r->state == R_DOWN) {
        redis_connect(r);
    }
}

static void redis_connect(kn_redis_t *r)
{
    redisAsyncContext *ac = r->path ? redisAsyncConnectUnix(r->path)
                                    : redisAsyncConnect(r->host, r->port);
    KN_ASSERT(ac != NULL); /* NULL only when hiredis is out of memory */
    if (ac->err) {
        kn_log_warn("redis: connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = R_CONNECTING;
    if (redisLibevAttach(r->loop, ac) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, redis_on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, redis_on_disconnect) != REDIS_OK) {
        kn_log_err("redis: cannot attach the connection to the loop");
        r->ac = NULL;
        redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_set(&r->timer, r->connect_timeout, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* "unix:/path" or "tcp:host:port"; the host may hold colons (IPv6). */
static int redis_parse_addr(kn_redis_t *r, const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0 && addr[5]) {
        r->path = kn_strdup(addr + 5);
        return 0;
    }
    if (strncmp(addr, "tcp:", 4) != 0)
        return -KN_EINVAL;
    const char *hp = addr + 4;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1])
        return -KN_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -KN_EINVAL;
    r->host = kn_strndup(hp, (size_t)(colon - hp));
    r->port = (int)port;
    return 0;
}

int kn_redis_new(struct ev_loop *loop, const kn_redis_config_t *cfg,
                 kn_redis_state_cb state_cb, void *arg, kn_redis_t **out)
{
    KN_ASSERT(loop != NULL && cfg != NULL && out != NULL);
    *out = NULL;
    if (!cfg->addr)
        return -KN_EINVAL;
    kn_redis_t *r = kn_calloc(1, sizeof(*r));
    if (redis_parse_addr(r, cfg->addr) < 0) {
        free(r);
        return -KN_EINVAL;
    }
    r->loop = loop;
    r->state_cb = state_cb;
    r->arg = arg;
    r->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 100;
    r->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 5000;
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->backoff_ms = r->backoff_min_ms;
    r->connect_timeout =
        (cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000) / 1000.;
    ev_init(&r->timer, redis_on_timer);
    r->timer.data = r;
    ev_idle_init(&r->failed_idle, redis_on_failed_idle);
    ev_set_priority(&r->failed_idle, EV_MAXPRI);
    r->failed_idle.data = r;
    redis_connect(r);
    *out = r;
    return 0;
}

void kn_redis_free(kn_redis_t **rp)
{
    kn_redis_t *r = *rp;
    if (!r)
        return;
    KN_ASSERT(r->in_cb == 0);
    *rp = NULL;
    r->closing = 1;
    ev_timer_stop(r->loop, &r->timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->state = R_DOWN;
        /* Runs every pending callback with a NULL reply. */
        redisAsyncFree(ac);
    }
    redis_run_failed(r);
    free(r->sub_channel);
    free(r->path);
    free(r->host);
    free(r);
}

void kn_redis_subscribe(kn_redis_t *r, const char *channel, kn_redis_msg_cb cb,
                        void *arg)
{
    KN_ASSERT(r != NULL && channel != NULL && r->sub_channel == NULL);
    r->sub_channel = kn_strdup(channel);
    r->sub_cb = cb;
    r->sub_arg = arg;
    if (r->state == R_UP && r->ac != NULL)
        redisAsyncCommand(r->ac, redis_on_sub, r, "SUBSCRIBE %s",
                          r->sub_channel);
}

int kn_redis_is_connected(const kn_redis_t *r)
{
    return r->state == R_UP;
}

size_t kn_redis_pending(const kn_redis_t *r)
{
    return r != NULL ? r->pending : 0;
}

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    KN_UNUSED(ac);
    redis_cmd_t *c = priv;
    kn_redis_t *r = c->r;
    redisReply *rep = reply;
    int err = 0;
    if (!rep)
        err = -KN_ECLOSED;
    else if (rep->type == REDIS_REPLY_ERROR)
        err = -KN_EDB;
    static kn_metric_t *lat;
    if (lat == NULL)
        lat = kn_metric_histogram(
            "kiln_redis_command_seconds",
            "Redis command latency, from submission to reply", "",
            kn_metric_latency_bounds, kn_metric_latency_nbounds);
    if (rep != NULL)
        kn_metric_observe(lat, ev_time() - c->t0);
    if (c->cb) {
        r->in_cb++;
        c->cb(r, rep, err, c->arg);
        r->in_cb--;
    }
    r->pending--;
    free(c);
}

static redis_cmd_t *redis_cmd_new(kn_redis_t *r, kn_redis_reply_cb cb,
                                  void *arg)
{
    redis_cmd_t *c = kn_calloc(1, sizeof(*c));
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->t0 = ev_time();
    r->pending++;
    return c;
}

/* hiredis refused a command: because the context is going away, or
 * because the command could not be formatted. */
static void redis_refused(kn_redis_t *r, redis_cmd_t *c)
{
    int going =
        !r->ac || (r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
    redis_fail_later(r, c, going ? -KN_ECLOSED : -KN_EINVAL);
}

void kn_redis_command(kn_redis_t *r, kn_redis_reply_cb cb, void *arg,
                      const char *fmt, ...)
{
    KN_ASSERT(r != NULL && fmt != NULL);
    redis_cmd_t *c = redis_cmd_new(r, cb, arg);
    if (r->state != R_UP || !r->ac) {
        redis_fail_later(r, c, -KN_ECLOSED);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(r->ac, redis_on_reply, c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        redis_refused(r, c);
}

void kn_redis_command_argv(kn_redis_t *r, kn_redis_reply_cb cb, void *arg,
                           size_t argc, const char **argv,
                           const size_t *argvlen)
{
    KN_ASSERT(r != NULL && argc >= 1 && argv != NULL);
    KN_ASSERT(argc <= 1024 * 1024);
    redis_cmd_t *c = redis_cmd_new(r, cb, arg);
    if (r->state != R_UP || !r->ac) {
        redis_fail_later(r, c, -KN_ECLOSED);
        return;
    }
    if (redisAsyncCommandArgv(r->ac, redis_on_reply, c, (int)argc, argv,
                              argvlen) != REDIS_OK)
        redis_refused(r, c);
}
