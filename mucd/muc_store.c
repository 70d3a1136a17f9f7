/*
 * muc_store.c - the ordered query queue (see muc_store.h).
 *
 * A note on ordering: kn_pg spreads queries over several connections, so
 * two queries sent back to back may run in either order. mucd needs
 * order (room row before its affiliations, an archive row before the MAM
 * query after it), so exactly one query of the queue is in flight at a
 * time. That bounds the write rate to one round trip per statement,
 * plenty for affiliation changes; archive inserts are the hot path and
 * are small.
 */
#include "muc_store.h"

#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

typedef struct store_op {
    char *sql;
    char **params;
    size_t n;
    bool retry;
    muc_store_cb cb;
    void *arg;
    struct store_op *next;
} store_op_t;

struct muc_store {
    struct ev_loop *loop;
    kn_pg_pool_t *pool;
    store_op_t *head, *tail;
    size_t pending;
    bool busy;
    unsigned backoff_ms;
    ev_timer retry;
};

static void store_run(muc_store_t *s);

static void store_op_free(store_op_t *op)
{
    for (size_t i = 0; i < op->n; i++)
        free(op->params[i]);
    free(op->params);
    free(op->sql);
    free(op);
}

static void store_done(const PGresult *res, int err, void *arg)
{
    muc_store_t *s = arg;
    store_op_t *op = s->head;
    s->busy = false;
    if (op == NULL)
        return; /* the store is being freed */
    if (op->retry && (err == -KN_EAGAIN || err == -KN_ECLOSED)) {
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
        if (s->backoff_ms > 5000)
            s->backoff_ms = 5000;
        kn_log_warn("mucd store: %s, retrying in %u ms", kn_strerror(err),
                    s->backoff_ms);
        ev_timer_set(&s->retry, s->backoff_ms / 1000.0, 0.);
        ev_timer_start(s->loop, &s->retry);
        return;
    }
    s->backoff_ms = 0;
    if (err == -KN_EDB)
        kn_log_err("mucd store: %s: %s", op->sql,
                   res ? PQresultErrorMessage(res) : "?");
    s->head = op->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->pending--;
    if (op->cb)
        op->cb(res, err, op->arg);
    store_op_free(op);
    store_run(s);
}

static void store_run(muc_store_t *s)
{
    if (s->busy || s->head == NULL || ev_is_active(&s->retry))
        return;
    store_op_t *op = s->head;
    s->busy = true;
    kn_pg_query(s->pool, op->sql, op->n, (const char *const *)op->params,
                store_done, s);
}

static void store_on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    store_run(t->data);
}

muc_store_t *muc_store_new(struct ev_loop *loop, kn_pg_pool_t *pool)
{
    muc_store_t *s = kn_calloc(1, sizeof(*s));
    s->loop = loop;
    s->pool = pool;
    ev_timer_init(&s->retry, store_on_retry, 0., 0.);
    s->retry.data = s;
    return s;
}

void muc_store_free(muc_store_t **sp)
{
    muc_store_t *s = *sp;
    if (s == NULL)
        return;
    ev_timer_stop(s->loop, &s->retry);
    store_op_t *op = s->head;
    s->head = s->tail = NULL;
    while (op) {
        store_op_t *next = op->next;
        if (op->cb)
            op->cb(NULL, -KN_ECLOSED, op->arg);
        store_op_free(op);
        op = next;
    }
    free(s);
    *sp = NULL;
}

void muc_store_query(muc_store_t *s, const char *sql, size_t n,
                     const char *const *params, bool retry, muc_store_cb cb,
                     void *arg)
{
    store_op_t *op = kn_calloc(1, sizeof(*op));
    op->sql = kn_strdup(sql);
    op->n = n;
    op->params = n ? kn_calloc(n, sizeof(char *)) : NULL;
    for (size_t i = 0; i < n; i++)
        op->params[i] = params[i] ? kn_strdup(params[i]) : NULL;
    op->retry = retry;
    op->cb = cb;
    op->arg = arg;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    s->pending++;
    store_run(s);
}

size_t muc_store_pending(const muc_store_t *s)
{
    return s->pending;
}
