/*
 * c2s_plaincache.h - verified SASL PLAIN credentials, in memory, per c2s
 * process (issue 15).
 *
 * A PLAIN login costs a PBKDF2 (the users row's iteration count, 4,096
 * by default) to check the password against the stored SCRAM-SHA-256
 * StoredKey. After a success we remember, per user, a keyed hash of the
 * password (HMAC-SHA-256 with a secret drawn at random when the cache is
 * made, never stored anywhere) and a digest of the stored credentials it
 * was verified against (the generation: iterations, salt, StoredKey,
 * ServerKey). The next PLAIN login of that user with the same password
 * against the same generation is accepted without PBKDF2: one HMAC and
 * two constant-time compares. The password itself is never kept.
 *
 * Entries go away when the credentials change: a lookup against another
 * generation drops the entry (password changed, even when nobody told
 * us), and c2s_plaincache_drop() is called when the account is reported
 * changed, deleted or disabled (the Redis channel of kn_credcache.h) or
 * when its row is found missing or disabled. Restart empties it (memory
 * only). The cache is bounded: when full, the least recently used entry
 * is evicted.
 */
#ifndef C2S_PLAINCACHE_H
#define C2S_PLAINCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_scram.h"

typedef struct c2s_plaincache c2s_plaincache_t;

/* A cache of at most max entries (0: a cache that never holds anything).
 * Draws its secret from the OpenSSL RNG; NULL when that fails. */
c2s_plaincache_t *c2s_plaincache_new(size_t max);

/* Free *pp (secrets and hashes wiped), set it to NULL; idempotent. */
void c2s_plaincache_free(c2s_plaincache_t **pp);

/* True when user's password (SASLprepped, NUL-terminated) was verified
 * against exactly the credentials cr: the login may succeed without
 * PBKDF2. An entry for another generation of credentials is dropped. pc
 * may be NULL (always false). */
bool c2s_plaincache_check(c2s_plaincache_t *pc, const char *user,
                          const char *password, const kn_scram_creds_t *cr);

/* Remember that password was verified for user against cr (after a
 * PBKDF2 check succeeded). Replaces user's entry; evicts the least
 * recently used one when full. pc may be NULL. */
void c2s_plaincache_put(c2s_plaincache_t *pc, const char *user,
                        const char *password, const kn_scram_creds_t *cr);

/* Forget user (password changed, account deleted or disabled). */
void c2s_plaincache_drop(c2s_plaincache_t *pc, const char *user);

/* Forget everyone. */
void c2s_plaincache_clear(c2s_plaincache_t *pc);

/* Entries held; hits, misses (no entry, other password) and evictions
 * since creation. */
size_t c2s_plaincache_count(const c2s_plaincache_t *pc);
uint64_t c2s_plaincache_hits(const c2s_plaincache_t *pc);
uint64_t c2s_plaincache_misses(const c2s_plaincache_t *pc);
uint64_t c2s_plaincache_evictions(const c2s_plaincache_t *pc);

/* Constant-time equality of a[0..n) and b[0..n): the time taken does not
 * depend on where they differ (CRYPTO_memcmp). */
bool c2s_plaincache_ct_equal(const void *a, const void *b, size_t n);

#endif
