/*
 * c2s_creds.h - a users row's credentials for a login (R-PERF-5): from
 * Redis when cached there, else from PostgreSQL (then cached), and the
 * node's side of invalidation (kn_credcache.h).
 *
 * A lookup reads the cluster-wide cache (GET kiln:creds:USER). A hit
 * answers without PostgreSQL; a miss reads the users row and fills the
 * key with SET NX for c2s.creds_cache_ttl seconds; a tombstone (the row
 * just changed) or any Redis trouble reads PostgreSQL without filling.
 * Unknown users are not cached. A second Redis connection subscribes to
 * the invalidation channel and drops the user from the PLAIN cache
 * (c2s_plaincache.h); whenever that subscription (re)connects, the PLAIN
 * cache is emptied, as messages may have been missed meanwhile.
 */
#ifndef C2S_CREDS_H
#define C2S_CREDS_H

#include "c2s_stream.h"

struct c2s_server;

/* The answer: rc 0 and cr, or -KN_ENOENT (no such user), -KN_EAUTH (the
 * account is disabled), another -KN_E* (not available). cr is borrowed. */
typedef void (*c2s_creds_cb)(int rc, const c2s_creds_t *cr, void *arg);

/* Start Redis (the cache and the subscription) when redis.address and
 * c2s.creds_cache_ttl say so, and the PLAIN cache (c2s.plain_cache_size).
 * Returns 0 or -KN_EINVAL after logging. */
int c2s_creds_start(struct c2s_server *srv);
void c2s_creds_stop(struct c2s_server *srv);

/* Look user (nodeprepped) up; cb is called exactly once, never from
 * inside this call. */
void c2s_creds_lookup(struct c2s_server *srv, const char *user, c2s_creds_cb cb,
                      void *arg);

/* The row's eight text values (iterations, then the SHA-1 and SHA-256
 * salt, StoredKey, ServerKey in hex, then the disabled flag "t"/"f") to
 * credentials: 0, -KN_EAUTH (disabled) or -KN_EDB (malformed). */
int c2s_creds_parse(const char *const v[8], c2s_creds_t *cr);

#endif
