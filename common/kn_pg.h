/*
 * kn_pg.h - asynchronous PostgreSQL on libev: a small connection pool over
 * libpq's non-blocking API.
 *
 * Queries carry text parameters ($1, $2 ...) and a callback that is called
 * exactly once: with the result, with an SQL error, with a timeout when no
 * connection could be checked out in time (R-PERF-3), or with "closed"
 * when the connection died first. Connections reconnect by themselves with
 * exponential backoff on an ev_timer; nothing here ever blocks the loop.
 */
#ifndef KN_PG_H
#define KN_PG_H

#include <ev.h>
#include <libpq-fe.h>
#include <stddef.h>

typedef struct kn_pg_pool kn_pg_pool_t;

typedef struct kn_pg_config {
    /* libpq connection string, e.g. "host=/run/kiln dbname=kiln". Copied. */
    const char *conninfo;
    /* Connections opened at creation and kept open (db.pool_min). */
    size_t pool_min;
    /* Most connections ever open (db.pool_max, >= 1, >= pool_min). More
     * than pool_min are opened only while queries wait for one. */
    size_t pool_max;
    /* Longest a query may wait for a free connection before its callback
     * gets -KN_EAGAIN (db.checkout_timeout_ms, > 0). */
    unsigned checkout_timeout_ms;
    /* Waiting queries a free connection takes at once and pipelines
     * (libpq pipeline mode, one sync per query so an error in one does not
     * abort the others). 0 or 1: one query per connection at a time.
     * Queries pipelined together wait for each other, so a slow query
     * delays those sent with it: keep it small where latency matters. */
    size_t pipeline_max;
    /* Reconnect backoff: first delay and cap (0: 100 ms and 5000 ms). The
     * delay doubles after each failed attempt and resets on success. */
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    /* A connection attempt taking longer is abandoned (0: 10000 ms). */
    unsigned connect_timeout_ms;
} kn_pg_config_t;

/*
 * Query callback, called exactly once per kn_pg_query(), always from the
 * event loop and never from inside kn_pg_query() itself (except during
 * kn_pg_pool_free(), see there). res is borrowed: it is PQclear()ed when
 * the callback returns. err is:
 *   0            res is PGRES_TUPLES_OK or PGRES_COMMAND_OK;
 *   -KN_EDB      the server refused the query (res holds the error: use
 *                PQresultErrorMessage(), PQresultErrorField()); the
 *                connection stays usable;
 *   -KN_EAGAIN   no connection became free within checkout_timeout_ms
 *                (res NULL); the query was never sent;
 *   -KN_ECLOSED  the connection was lost, or the pool freed, before the
 *                query completed (res NULL, or the server's last error);
 *                the query may or may not have run.
 * The callback may call kn_pg_query(); it must not free the pool.
 */
typedef void (*kn_pg_cb)(const PGresult *res, int err, void *arg);

/* Create a pool on loop and start connecting pool_min connections (the
 * call does not wait for them). cfg is copied. Returns 0 and *out, or
 * -KN_EINVAL for an impossible config (pool_max 0, pool_min > pool_max,
 * checkout_timeout_ms 0, conninfo NULL). A server that cannot be reached
 * is not an error here: the pool keeps retrying. Not callable from a
 * query callback of another pool being freed; otherwise anywhere. */
int kn_pg_pool_new(struct ev_loop *loop, const kn_pg_config_t *cfg,
                   kn_pg_pool_t **out);

/* Close every connection and free the pool; *pp = NULL. Idempotent on
 * NULL. Every query still queued or in flight gets its callback with
 * -KN_ECLOSED before this returns (queries submitted from those callbacks
 * too). Must not be called from one of the pool's own query callbacks. */
void kn_pg_pool_free(kn_pg_pool_t **pp);

/* Queue sql with nparams text parameters (params[i] NULL means SQL NULL)
 * for the next free connection, FIFO. sql and params are copied. cb is
 * called exactly once (see kn_pg_cb). sql must hold one statement.
 * Callable from any callback, including query callbacks. */
void kn_pg_query(kn_pg_pool_t *p, const char *sql, size_t nparams,
                 const char *const *params, kn_pg_cb cb, void *arg);

/* The same with some parameters in PostgreSQL's binary format: where
 * binary[i] is non-zero, params[i] is lens[i] bytes (the type's "send"
 * format, e.g. an array: header, then each element's length and bytes),
 * else a NUL-terminated text parameter. lens and binary both NULL: all
 * text (kn_pg_query). Results are text. */
void kn_pg_query_bin(kn_pg_pool_t *p, const char *sql, size_t nparams,
                     const char *const *params, const size_t *lens,
                     const int *binary, kn_pg_cb cb, void *arg);

/* Connections currently up (idle or busy). */
size_t kn_pg_pool_ready(const kn_pg_pool_t *p);

/* Queries waiting for a connection (not yet sent). */
size_t kn_pg_pool_waiting(const kn_pg_pool_t *p);

/* Queries whose callback has not run yet: waiting, in flight, or failed
 * and about to be reported. 0 means every accepted query is finished (a
 * graceful stop waits for it, kn_daemon_signals_drain). */
size_t kn_pg_pool_pending(const kn_pg_pool_t *p);

#endif
