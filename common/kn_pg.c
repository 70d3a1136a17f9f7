/*
 * kn_pg.c - asynchronous libpq pool on libev.
 *
 * A note on where a query lives. Every query is in exactly one of three
 * FIFO lists, and leaving the last one means its callback has run:
 *
 *   pool->waitq      submitted, waiting for a free connection; the
 *                    checkout timer watches its head (the oldest);
 *   conn->inflight   sent on that connection, results pending; the order
 *                    is the order of results on the wire;
 *   pool->done       failed (connection lost, pool closing) and waiting to
 *                    have its error callback run from an ev_idle watcher.
 *
 * Successful results are delivered straight from the connection's io
 * callback. Errors found while the application is calling us (a send that
 * fails inside kn_pg_query) go through `done`, so a callback never runs
 * inside kn_pg_query() and the caller never sees re-entrancy.
 *
 * Connection states: CLOSED (no PGconn; the timer waits out the backoff),
 * CONNECTING (PQconnectPoll driven by the ev_io; the timer is the connect
 * timeout), IDLE (up, nothing in flight), BUSY (queries in flight). Only
 * IDLE connections take work. The io watcher stays on EV_READ while up, so
 * a backend killed while idle is noticed at once; EV_WRITE is added only
 * while PQflush() says output is queued.
 *
 * Every connection runs in pipeline mode and each query is followed by its
 * own sync point, so one failing query does not abort those pipelined
 * behind it. Per query, libpq hands out its result(s), a NULL, then the
 * PGRES_PIPELINE_SYNC result; `phase` follows that, and the query is
 * complete at its sync. With pipeline_max 1 this is the plain one query at
 * a time protocol with one extra message.
 */
#include "kn_pg.h"
#include "kn_metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uthash.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

enum { Q_RESULTS, Q_SYNC };

typedef struct pg_query {
    struct pg_query *next;
    kn_pg_cb cb;
    void *arg;
    char *sql;
    char **params;
    int *lens; /* kn_pg_query_bin: each parameter's length, else NULL */
    int *fmts; /* and format (0 text, 1 binary) */
    int nparams;
    int phase;
    int prep; /* a Parse for a new named statement was sent ahead of it */
    struct pg_stmt *stmt; /* the named statement used, or NULL */
    ev_tstamp enq;
    double t0;     /* ev_time() at submission, for the latency histogram */
    PGresult *res; /* kept until the sync: the first error, or the last */
    int err;       /* for the done list */
} pg_query_t;

typedef struct qlist {
    pg_query_t *head, *tail;
    size_t n;
} qlist_t;

enum conn_state { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };

/* A statement prepared on one connection, found by its SQL text. */
typedef struct pg_stmt {
    UT_hash_handle hh;
    char name[16];
    char sql[]; /* the key */
} pg_stmt_t;

/* Named statements kept per connection; past this, queries are sent
 * unnamed, so generated SQL cannot grow the cache without bound. */
#define PG_STMT_MAX 256
typedef struct pg_conn {
    kn_pg_pool_t *pool;
    PGconn *pg;
    enum conn_state state;
    ev_io io;
    ev_timer timer;
    unsigned backoff_ms;
    qlist_t inflight;
    pg_stmt_t *stmts; /* uthash by SQL text */
    unsigned nstmts, stmt_seq;
} pg_conn_t;

struct kn_pg_pool {
    struct ev_loop *loop;
    char *conninfo;
    size_t pool_min, pool_max, pipeline_max;
    double checkout_timeout, connect_timeout;
    unsigned backoff_min_ms, backoff_max_ms;
    pg_conn_t *conns; /* pool_max slots; [0, nopen) are in use */
    size_t nopen;
    qlist_t waitq;
    ev_timer checkout;
    qlist_t done;
    ev_idle done_idle;
    int in_cb;
    int closing;
};

/* ---- lists ---- */

static void q_push(qlist_t *l, pg_query_t *q)
{
    q->next = NULL;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

static void q_push_front(qlist_t *l, pg_query_t *q)
{
    q->next = l->head;
    l->head = q;
    if (!l->tail)
        l->tail = q;
    l->n++;
}

static pg_query_t *q_pop(qlist_t *l)
{
    pg_query_t *q = l->head;
    if (!q)
        return NULL;
    l->head = q->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    q->next = NULL;
    return q;
}

/* ---- completion ---- */

static void query_free(pg_query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->lens);
    free(q->fmts);
    free(q->sql);
    if (q->res)
        PQclear(q->res);
    free(q);
}

static void query_deliver(kn_pg_pool_t *p, pg_query_t *q, int err)
{
    static kn_metric_t *lat, *errs;
    if (lat == NULL) {
        lat = kn_metric_histogram(
            "kiln_pg_query_seconds",
            "PostgreSQL query latency, from submission to result", "",
            kn_metric_latency_bounds, kn_metric_latency_nbounds);
        errs = kn_metric_counter("kiln_pg_query_errors_total",
                                 "PostgreSQL queries that failed", "");
    }
    kn_metric_observe(lat, ev_time() - q->t0);
    if (err < 0)
        kn_metric_inc(errs);
    p->in_cb++;
    q->cb(q->res, err, q->arg);
    p->in_cb--;
    query_free(q);
}

/* Hand q to the done list: its callback runs from the idle watcher. */
static void query_fail_later(kn_pg_pool_t *p, pg_query_t *q, int err)
{
    q->err = err;
    q_push(&p->done, q);
    ev_idle_start(p->loop, &p->done_idle);
}

static void pool_run_done(kn_pg_pool_t *p)
{
    pg_query_t *q;
    while ((q = q_pop(&p->done)) != NULL)
        query_deliver(p, q, q->err);
    ev_idle_stop(p->loop, &p->done_idle);
}

static void pool_on_done_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    pool_run_done(w->data);
}

/* ---- connections ---- */

static void pool_dispatch(kn_pg_pool_t *p);
static void conn_connect(pg_conn_t *c);

static void conn_io_set(pg_conn_t *c, int events)
{
    struct ev_loop *loop = c->pool->loop;
    int fd = PQsocket(c->pg);
    if (ev_is_active(&c->io) && c->io.fd == fd &&
        (c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, &c->io);
    if (fd < 0)
        return;
    ev_io_set(&c->io, fd, events);
    ev_io_start(loop, &c->io);
}

static void conn_log_error(pg_conn_t *c, const char *what)
{
    /* libpq's messages span lines; the log wants one line per event. */
    char line[512];
    const char *msg = c->pg ? PQerrorMessage(c->pg) : "out of memory";
    size_t n = 0;
    for (; *msg && n + 1 < sizeof(line); msg++) {
        if (*msg == '\n' || *msg == '\t') {
            if (n && line[n - 1] != ' ')
                line[n++] = ' ';
        } else {
            line[n++] = *msg;
        }
    }
    while (n && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    kn_log_warn("pg: connection %zu %s: %s", (size_t)(c - c->pool->conns), what,
                line);
}

static void conn_stmts_clear(pg_conn_t *c)
{
    pg_stmt_t *st, *tmp;
    HASH_ITER(hh, c->stmts, st, tmp)
    {
        HASH_DEL(c->stmts, st);
        free(st);
    }
    c->nstmts = 0;
}

/* The connection is gone (or never came up): fail what was sent on it,
 * close it and retry after the backoff. */
static void conn_down(pg_conn_t *c, const char *what)
{
    kn_pg_pool_t *p = c->pool;
    conn_log_error(c, what);
    ev_io_stop(p->loop, &c->io);
    ev_timer_stop(p->loop, &c->timer);
    pg_query_t *q;
    while ((q = q_pop(&c->inflight)) != NULL)
        query_fail_later(p, q, -KN_ECLOSED);
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    conn_stmts_clear(c);
    c->state = C_CLOSED;
    ev_timer_set(&c->timer, c->backoff_ms / 1000., 0.);
    ev_timer_start(p->loop, &c->timer);
    c->backoff_ms *= 2;
    if (c->backoff_ms > p->backoff_max_ms)
        c->backoff_ms = p->backoff_max_ms;
}

static void conn_on_notice(void *arg, const char *msg)
{
    KN_UNUSED(arg);
    kn_log_debug("pg: notice: %s", msg);
}

static void conn_up(pg_conn_t *c)
{
    kn_pg_pool_t *p = c->pool;
    ev_timer_stop(p->loop, &c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_down(c, "setup failed");
        return;
    }
    PQsetNoticeProcessor(c->pg, conn_on_notice, NULL);
    c->backoff_ms = p->backoff_min_ms;
    c->state = C_IDLE;
    conn_io_set(c, EV_READ);
    kn_log_info("pg: connection %zu up", (size_t)(c - p->conns));
    pool_dispatch(p);
}

static void conn_poll_connect(pg_conn_t *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        conn_io_set(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        conn_io_set(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        conn_up(c);
        break;
    default:
        conn_down(c, "connect failed");
        break;
    }
}

static void conn_connect(pg_conn_t *c)
{
    kn_pg_pool_t *p = c->pool;
    c->pg = PQconnectStart(p->conninfo);
    KN_ASSERT(c->pg != NULL); /* NULL only when libpq is out of memory */
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, "connect failed");
        return;
    }
    c->state = C_CONNECTING;
    ev_timer_set(&c->timer, p->connect_timeout, 0.);
    ev_timer_start(p->loop, &c->timer);
    /* libpq: behave as if PQconnectPoll had returned WRITING. */
    conn_io_set(c, EV_WRITE);
}

static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    pg_conn_t *c = t->data;
    if (c->state == C_CONNECTING)
        conn_down(c, "connect timed out");
    else if (c->state == C_CLOSED)
        conn_connect(c);
}

/* Push queued output; keep EV_WRITE only while libpq has some. Returns -1
 * when the connection went down. */
static int conn_flush(pg_conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_down(c, "write failed");
        return -1;
    }
    conn_io_set(c, r ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

static int result_err(const PGresult *res)
{
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        return 0;
    default:
        return -KN_EDB;
    }
}

static int result_is_error(const PGresult *res)
{
    return result_err(res) != 0;
}

/* Hand out every result libpq has complete, in order. */
static void conn_drain(pg_conn_t *c)
{
    kn_pg_pool_t *p = c->pool;
    pg_query_t *q;

    while ((q = c->inflight.head) != NULL && c->pg && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (q->phase == Q_RESULTS) {
            if (!res && q->prep) {
                q->prep = 0; /* end of the Parse's results */
            } else if (!res) {
                q->phase = Q_SYNC;
            } else if (q->prep) {
                /* The Parse: keep only a failure, and forget the name so
                 * the next use prepares it again. */
                if (result_is_error(res) && !q->res) {
                    q->res = res;
                    if (q->stmt) {
                        HASH_DEL(c->stmts, q->stmt);
                        free(q->stmt);
                        q->stmt = NULL;
                        c->nstmts--;
                    }
                } else {
                    PQclear(res);
                }
            } else if (!q->res ||
                       (result_is_error(res) && !result_is_error(q->res))) {
                if (q->res)
                    PQclear(q->res);
                q->res = res;
            } else {
                PQclear(res);
            }
            continue;
        }
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (res)
            PQclear(res);
        if (st != PGRES_PIPELINE_SYNC) {
            conn_down(c, "protocol out of step");
            return;
        }
        q_pop(&c->inflight);
        if (!c->inflight.head)
            c->state = C_IDLE;
        query_deliver(p, q, q->res ? result_err(q->res) : -KN_EDB);
    }
}

static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    KN_UNUSED(loop);
    pg_conn_t *c = w->data;
    kn_pg_pool_t *p = c->pool;

    if (c->state == C_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if ((revents & EV_WRITE) && conn_flush(c) < 0)
        return;
    if (!(revents & EV_READ))
        return;
    if (!PQconsumeInput(c->pg)) {
        conn_down(c, "lost");
        return;
    }
    conn_drain(c);
    if (c->state == C_CLOSED)
        return;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, "lost");
        return;
    }
    if (c->io.events & EV_WRITE && conn_flush(c) < 0)
        return;
    if (c->state == C_IDLE)
        pool_dispatch(p);
}

static void conn_init(kn_pg_pool_t *p, pg_conn_t *c)
{
    c->pool = p;
    c->state = C_CLOSED;
    c->backoff_ms = p->backoff_min_ms;
    ev_init(&c->io, conn_on_io);
    c->io.data = c;
    ev_init(&c->timer, conn_on_timer);
    c->timer.data = c;
}

/* Send q on c. 0, or -1 when libpq refused (q is untouched; the caller
 * takes the connection down, which also empties its statement cache).
 *
 * Every SQL text is prepared once per connection as a named statement
 * (Parse + Execute in the same pipeline segment the first time, Execute
 * only afterwards), so PostgreSQL parses and plans it once instead of at
 * every call: the login path runs the same handful of queries each
 * time. */
static int conn_send(pg_conn_t *c, pg_query_t *q)
{
    const char *const *params = (const char *const *)q->params;
    pg_stmt_t *st = NULL;
    int prep = 0;
    HASH_FIND_STR(c->stmts, q->sql, st);
    if (st == NULL && c->nstmts < PG_STMT_MAX) {
        size_t len = strlen(q->sql);
        st = kn_malloc(sizeof(*st) + len + 1);
        memcpy(st->sql, q->sql, len + 1);
        snprintf(st->name, sizeof(st->name), "k%u", c->stmt_seq++);
        if (!PQsendPrepare(c->pg, st->name, st->sql, q->nparams, NULL)) {
            free(st);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, c->stmts, st->sql, len, st);
        c->nstmts++;
        prep = 1;
    }
    int ok = st != NULL ? PQsendQueryPrepared(c->pg, st->name, q->nparams,
                                              params, q->lens, q->fmts, 0)
                        : PQsendQueryParams(c->pg, q->sql, q->nparams, NULL,
                                            params, q->lens, q->fmts, 0);
    if (!ok || !PQpipelineSync(c->pg))
        return -1;
    q->phase = Q_RESULTS;
    q->prep = prep;
    q->stmt = prep ? st : NULL;
    q_push(&c->inflight, q);
    return 0;
}

/* ---- pool ---- */

static void pool_arm_checkout(kn_pg_pool_t *p)
{
    ev_timer_stop(p->loop, &p->checkout);
    if (!p->waitq.head)
        return;
    double at = p->waitq.head->enq + p->checkout_timeout - ev_now(p->loop);
    ev_timer_set(&p->checkout, at > 0 ? at : 0, 0.);
    ev_timer_start(p->loop, &p->checkout);
}

static void pool_on_checkout(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(revents);
    kn_pg_pool_t *p = t->data;
    /* The deadline of the head has come; allow for timer rounding. */
    double limit = ev_now(loop) - p->checkout_timeout + 0.001;
    while (p->waitq.head && p->waitq.head->enq <= limit) {
        pg_query_t *q = q_pop(&p->waitq);
        query_deliver(p, q, -KN_EAGAIN);
    }
    pool_arm_checkout(p);
}

static void pool_dispatch(kn_pg_pool_t *p)
{
    size_t connecting = 0;
    if (p->closing)
        return;
    for (size_t i = 0; i < p->nopen && p->waitq.head; i++) {
        pg_conn_t *c = &p->conns[i];
        if (c->state == C_CONNECTING)
            connecting++;
        if (c->state != C_IDLE)
            continue;
        size_t sent = 0;
        bool failed = false;
        while (sent < p->pipeline_max && p->waitq.head) {
            pg_query_t *q = q_pop(&p->waitq);
            if (conn_send(c, q) < 0) {
                q_push_front(&p->waitq, q);
                failed = true;
                break;
            }
            sent++;
        }
        if (failed) {
            /* libpq refused: the pipeline may hold half a query. */
            conn_down(c, "send failed");
            continue;
        }
        c->state = C_BUSY;
        conn_flush(c);
    }
    /* Grow one connection at a time while work is waiting. */
    if (p->waitq.head && connecting == 0 && p->nopen < p->pool_max) {
        pg_conn_t *c = &p->conns[p->nopen++];
        conn_connect(c);
    }
    pool_arm_checkout(p);
}

int kn_pg_pool_new(struct ev_loop *loop, const kn_pg_config_t *cfg,
                   kn_pg_pool_t **out)
{
    KN_ASSERT(loop != NULL && cfg != NULL && out != NULL);
    *out = NULL;
    if (!cfg->conninfo || cfg->pool_max == 0 || cfg->pool_min > cfg->pool_max ||
        cfg->checkout_timeout_ms == 0)
        return -KN_EINVAL;

    kn_pg_pool_t *p = kn_calloc(1, sizeof(*p));
    p->loop = loop;
    p->conninfo = kn_strdup(cfg->conninfo);
    p->pool_min = cfg->pool_min;
    p->pool_max = cfg->pool_max;
    p->pipeline_max = cfg->pipeline_max ? cfg->pipeline_max : 1;
    p->checkout_timeout = cfg->checkout_timeout_ms / 1000.;
    p->connect_timeout =
        (cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000) / 1000.;
    p->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 100;
    p->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 5000;
    if (p->backoff_max_ms < p->backoff_min_ms)
        p->backoff_max_ms = p->backoff_min_ms;
    p->conns = kn_calloc(p->pool_max, sizeof(*p->conns));
    for (size_t i = 0; i < p->pool_max; i++)
        conn_init(p, &p->conns[i]);
    ev_init(&p->checkout, pool_on_checkout);
    p->checkout.data = p;
    ev_idle_init(&p->done_idle, pool_on_done_idle);
    ev_set_priority(&p->done_idle, EV_MAXPRI);
    p->done_idle.data = p;
    for (; p->nopen < p->pool_min; p->nopen++)
        conn_connect(&p->conns[p->nopen]);
    *out = p;
    return 0;
}

void kn_pg_pool_free(kn_pg_pool_t **pp)
{
    kn_pg_pool_t *p = *pp;
    if (!p)
        return;
    KN_ASSERT(p->in_cb == 0);
    *pp = NULL;
    p->closing = 1;
    ev_timer_stop(p->loop, &p->checkout);
    for (size_t i = 0; i < p->pool_max; i++) {
        pg_conn_t *c = &p->conns[i];
        pg_query_t *q;
        ev_io_stop(p->loop, &c->io);
        ev_timer_stop(p->loop, &c->timer);
        while ((q = q_pop(&c->inflight)) != NULL)
            query_fail_later(p, q, -KN_ECLOSED);
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        conn_stmts_clear(c);
    }
    pg_query_t *q;
    while ((q = q_pop(&p->waitq)) != NULL)
        query_fail_later(p, q, -KN_ECLOSED);
    pool_run_done(p);
    ev_idle_stop(p->loop, &p->done_idle);
    free(p->conns);
    free(p->conninfo);
    free(p);
}

void kn_pg_query(kn_pg_pool_t *p, const char *sql, size_t nparams,
                 const char *const *params, kn_pg_cb cb, void *arg)
{
    kn_pg_query_bin(p, sql, nparams, params, NULL, NULL, cb, arg);
}

void kn_pg_query_bin(kn_pg_pool_t *p, const char *sql, size_t nparams,
                     const char *const *params, const size_t *lens,
                     const int *binary, kn_pg_cb cb, void *arg)
{
    KN_ASSERT(p != NULL && sql != NULL && cb != NULL);
    KN_ASSERT(nparams <= 65535);
    KN_ASSERT(nparams == 0 || params != NULL);
    KN_ASSERT((lens == NULL) == (binary == NULL));

    pg_query_t *q = kn_calloc(1, sizeof(*q));
    q->cb = cb;
    q->arg = arg;
    q->sql = kn_strdup(sql);
    q->nparams = (int)nparams;
    if (nparams) {
        q->params = kn_calloc(nparams, sizeof(*q->params));
        if (lens != NULL) {
            q->lens = kn_calloc(nparams, sizeof(*q->lens));
            q->fmts = kn_calloc(nparams, sizeof(*q->fmts));
        }
        for (size_t i = 0; i < nparams; i++) {
            if (params[i] == NULL)
                continue;
            if (lens == NULL || !binary[i]) {
                q->params[i] = kn_strdup(params[i]);
                if (lens != NULL)
                    q->lens[i] = (int)strlen(params[i]);
                continue;
            }
            KN_ASSERT(lens[i] <= 0x7fffffff);
            q->params[i] = kn_malloc(lens[i] ? lens[i] : 1);
            memcpy(q->params[i], params[i], lens[i]);
            q->lens[i] = (int)lens[i];
            q->fmts[i] = 1;
        }
    }
    q->enq = ev_now(p->loop);
    q->t0 = ev_time();
    if (p->closing) {
        query_fail_later(p, q, -KN_ECLOSED);
        return;
    }
    q_push(&p->waitq, q);
    pool_dispatch(p);
}

size_t kn_pg_pool_ready(const kn_pg_pool_t *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nopen; i++)
        if (p->conns[i].state == C_IDLE || p->conns[i].state == C_BUSY)
            n++;
    return n;
}

size_t kn_pg_pool_waiting(const kn_pg_pool_t *p)
{
    return p->waitq.n;
}

size_t kn_pg_pool_pending(const kn_pg_pool_t *p)
{
    if (p == NULL)
        return 0;
    size_t n = p->waitq.n + p->done.n;
    for (size_t i = 0; i < p->pool_max; i++)
        n += p->conns[i].inflight.n;
    return n;
}
