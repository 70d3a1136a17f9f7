/*
 * muc_store.h - mucd's PostgreSQL access: one ordered queue of queries
 * over the async pool (kn_pg), so a room's row is written before its
 * affiliations, an archive insert before a MAM query that must see it,
 * and an affiliation before the invalidation that announces it. Writes
 * that fail because the database is unreachable are retried in order
 * (nothing accepted is lost); SQL errors are logged and dropped.
 *
 * Callbacks run on the loop, exactly once, as kn_pg's do.
 */
#ifndef MUC_STORE_H
#define MUC_STORE_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "kn_pg.h"

typedef struct muc_store muc_store_t;

/* res is borrowed; err as kn_pg_cb. */
typedef void (*muc_store_cb)(const PGresult *res, int err, void *arg);

/* A queue over pool (borrowed, must outlive the store). */
muc_store_t *muc_store_new(struct ev_loop *loop, kn_pg_pool_t *pool);
/* Fail every queued query with -KN_ECLOSED and free. Idempotent. */
void muc_store_free(muc_store_t **sp);
/* Queue sql (copied, params too) behind everything queued before.
 * retry: on -KN_EAGAIN / -KN_ECLOSED, run it again (backoff) instead of
 * reporting (for writes). cb may be NULL. */
void muc_store_query(muc_store_t *s, const char *sql, size_t n,
                     const char *const *params, bool retry, muc_store_cb cb,
                     void *arg);
/* Queries queued or in flight. */
size_t muc_store_pending(const muc_store_t *s);

#endif
