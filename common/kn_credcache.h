/*
 * kn_credcache.h - the cluster-wide cache of users rows in Redis
 * (R-PERF-5): the names every process agrees on.
 *
 * kiln-c2s keeps a users row's credential columns (iterations, SCRAM
 * salts and keys, the disabled flag) under KN_CREDCACHE_PREFIX + the
 * nodeprepped user name for KN_CREDCACHE_TTL seconds, filled after a
 * PostgreSQL read with SET NX. Whoever changes a row (kilnctl user
 * passwd/del/disable/enable, presenced's XEP-0077 password change and
 * removal) overwrites the key with the tombstone KN_CREDCACHE_TOMBSTONE
 * for KN_CREDCACHE_TOMBSTONE_TTL seconds after the change is committed,
 * and before it reports success; then it publishes the user name on
 * KN_CREDCACHE_CHANNEL so every c2s node drops what it holds in memory
 * for that user (its PLAIN cache, c2s_plaincache.c).
 *
 * Why a tombstone and not DEL: a login that read the old row from
 * PostgreSQL just before the change could otherwise put it back after
 * the DEL. A reader never fills over a tombstone (SET NX), and the
 * tombstone outlives any such read; while it stands, logins read
 * PostgreSQL.
 */
#ifndef KN_CREDCACHE_H
#define KN_CREDCACHE_H

#define KN_CREDCACHE_PREFIX        "kiln:creds:"
#define KN_CREDCACHE_CHANNEL       "kiln:creds-changed"
#define KN_CREDCACHE_TOMBSTONE     "-"
#define KN_CREDCACHE_TOMBSTONE_TTL 60
/* Value format version, the first field of a cached row. */
#define KN_CREDCACHE_VERSION "1"

#endif
