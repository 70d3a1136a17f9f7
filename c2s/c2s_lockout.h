/*
 * c2s_lockout.h - SASL lock-out (per account and per client address,
 * cluster-wide through Redis) and the cluster-wide session count of an
 * account (max_sessions). See c2s_lockout.c for the design note and
 * docs/SECURITY.md for the operator's view.
 */
#ifndef C2S_LOCKOUT_H
#define C2S_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

struct c2s_server;

/* ---- the pure part: a bounded table of failure windows ------------------
 *
 * One entry per subject (an account or an address, as a string key):
 * failures counted since the window opened, and when it closes. A failure
 * when no window is open opens one of `window` seconds; the failure that
 * brings the count to `max` (and any later counted one) restarts it, so a
 * lock-out always lasts a whole window from the failure that caused it.
 * A subject is locked while its count is >= max and its window is open.
 * This is the fallback while Redis is unreachable, and the same rule the
 * Redis keys follow. No clock, no I/O: unit-tested (test_c2s_lockout.c).
 */

#define C2S_LOCK_TABLE_MAX 100000 /* entries; then expired ones go, or all */

typedef struct c2s_lock_entry c2s_lock_entry_t;
typedef struct c2s_lock_table {
    c2s_lock_entry_t *h; /* uthash by key */
} c2s_lock_table_t;

/* Count one failure of key at now. Returns the count in the window
 * (>= 1). max 0: counted, never locks. */
unsigned c2s_lock_table_fail(c2s_lock_table_t *t, const char *key, double now,
                             unsigned max, double window);
/* Seconds key stays locked at now (rounded up; 0: not locked). */
unsigned c2s_lock_table_remaining(const c2s_lock_table_t *t, const char *key,
                                  double now, unsigned max);
/* Forget key (a successful login of the account). */
void c2s_lock_table_clear(c2s_lock_table_t *t, const char *key);
size_t c2s_lock_table_count(const c2s_lock_table_t *t);
void c2s_lock_table_free(c2s_lock_table_t *t);

/* The text of an address key (c2s_conn.c: IPv4-mapped, or an IPv6 /64
 * with the host half zero): "192.0.2.1", or "2001:db8:1:2::". */
void c2s_lockout_addr_text(const uint8_t key[16], char *out, size_t cap);

/* ---- the server part ---------------------------------------------------- */

/* Connect the node's Redis client (the redis.address of every process).
 * Returns 0 or -KN_EINVAL (bad address, logged). */
int c2s_lockout_init(struct c2s_server *srv);
/* After every connection is freed: pending callbacks run with "unknown". */
void c2s_lockout_free(struct c2s_server *srv);

/* A SASL failure that counts (wrong credentials, unknown user) of user
 * (nodeprepped local part, NULL: none) from addr with mech: logs the
 * fail2ban line, counts it for the account and the address (Redis and
 * the local table), logs the lock-out line when a threshold is reached. */
void c2s_lockout_failed(struct c2s_server *srv, const uint8_t addr[16],
                        const char *user, const char *mech);
/* A successful login of user: the account's count is forgotten (the
 * address's is not: logging in to one's own account must not reset a
 * guessing address). */
void c2s_lockout_ok(struct c2s_server *srv, const char *user);

/* Answer of c2s_lockout_check: seconds locked (0: not locked). */
typedef void (*c2s_lockout_cb)(unsigned remaining_s, void *arg);
/* Is user (may be NULL) or addr locked out? cb is called exactly once,
 * from the loop, never from inside this call. A locked attempt is logged
 * ("auth locked ..."). Redis unreachable: the local table decides. */
void c2s_lockout_check(struct c2s_server *srv, const uint8_t addr[16],
                       const char *user, const char *mech, c2s_lockout_cb cb,
                       void *arg);

/* Answer of c2s_sessions_count: other resources (< 0: unknown). */
typedef void (*c2s_sessions_cb)(long others, void *arg);
/* How many full JIDs other than full does bare have in the router's
 * session table (Redis sessions:<bare>)? cb exactly once, from the loop,
 * never from inside this call; -1 when Redis does not answer. */
void c2s_sessions_count(struct c2s_server *srv, const char *bare,
                        const char *full, c2s_sessions_cb cb, void *arg);

#endif
