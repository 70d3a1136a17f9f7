/*
 * c2s_smq.h - the counters and the unacknowledged queue of one XEP-0198
 * session: pure bookkeeping (no socket, no loop, no XML parsing), unit
 * tested with canned values (tests/unit/test_c2s_smq.c).
 *
 * Counters are 32-bit and wrap (XEP-0198 section 4: h is taken modulo
 * 2^32). `sent` counts the stanzas written to the client, `acked` is the
 * client's last h, `in` is our h (stanzas the client sent that we
 * handled). The queue holds exactly the stanzas numbered acked+1 ..
 * sent, oldest first, so its length is always (uint32_t)(sent - acked).
 *
 * An item keeps what is needed to write it again on resumption (the
 * bytes as written) and to route it elsewhere when the session ends
 * without resumption (the envelope fields: stanza name and type, flags,
 * from, to, the ack id of a stored offline message or the router's copy
 * sequence). A stanza c2s generated itself carries stanza NONE: nothing
 * to reroute.
 */
#ifndef C2S_SMQ_H
#define C2S_SMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"
#include "kn_env.h"

typedef struct c2s_smq_item {
    uint32_t len;
    uint16_t from_len, to_len;
    uint8_t stanza, type;
    uint16_t flags;
    uint64_t ack_id;
    uint64_t conn_id; /* the connection it was delivered to */
    char data[];      /* from, to, then the bytes written to the client */
} c2s_smq_item_t;

typedef struct c2s_smq {
    c2s_smq_item_t **v; /* ring: item i is v[(head + i) % cap] */
    size_t head, n, cap;
    size_t bytes;  /* sum of the items' sizes */
    uint32_t sent; /* stanzas written to the client (mod 2^32) */
    uint32_t acked;
    uint32_t in; /* our h */
} c2s_smq_t;

/* Empty queue whose counters start at `start` (0 for a new session;
 * tests use values near 2^32). */
void c2s_smq_init(c2s_smq_t *q, uint32_t start);

/* Free every item; counters unchanged. */
void c2s_smq_clear(c2s_smq_t *q);

/* A new item for bytes[0..len): env (may be NULL: a stanza of c2s itself)
 * gives the routing fields. Never NULL. */
c2s_smq_item_t *c2s_smq_item_new(const kn_env_t *env, const void *bytes,
                                 size_t len);

/* The item's bytes (what the client got). */
const char *c2s_smq_item_bytes(const c2s_smq_item_t *it);

/* An envelope (kind STANZA) for routing the item elsewhere; borrows from
 * it. */
void c2s_smq_item_env(const c2s_smq_item_t *it, kn_env_t *out);

/* Append (takes it): one more stanza sent. */
void c2s_smq_push(c2s_smq_t *q, c2s_smq_item_t *it);

/* Number of unacknowledged stanzas. */
size_t c2s_smq_pending(const c2s_smq_t *q);

/* The i-th pending item (0: oldest), or NULL. */
const c2s_smq_item_t *c2s_smq_at(const c2s_smq_t *q, size_t i);

/* The client says it handled h stanzas. Every item up to h is removed,
 * done(ud, item) called for each (oldest first) before it is freed.
 * Returns how many were removed (0 for a repeated h), or -KN_EPROTO when
 * h acknowledges more than was sent (nothing changes). */
int c2s_smq_ack(c2s_smq_t *q, uint32_t h,
                void (*done)(void *ud, const c2s_smq_item_t *it), void *ud);

/* Remove the oldest item and hand it to the caller (NULL: empty). The
 * counters do not move: for draining a queue that ends. */
c2s_smq_item_t *c2s_smq_take(c2s_smq_t *q);

/* Serialize the pending items (for the handover to another node). */
void c2s_smq_encode(const c2s_smq_t *q, kn_buf_t *out);

/* Append the items serialized in p[0..len) to q, counting them as sent.
 * Returns the number appended, or -KN_EPROTO for a malformed buffer (the
 * items decoded before the damage stay). */
int c2s_smq_decode(c2s_smq_t *q, const void *p, size_t len);

#endif
