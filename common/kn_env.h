/*
 * kn_env.h - the envelope frame of the router wire.
 *
 * Every ZeroMQ message between Kiln processes is
 *   [identity (added by the ROUTER)] [envelope] [payload]
 * where the payload is the stanza's XML bytes (empty for control
 * messages). The router routes on the envelope alone, never on XML.
 *
 * Envelope layout, version 2, all integers big-endian, every field always
 * present (unused ones are zero / empty):
 *
 *   off  size  field
 *   0    1     magic 'K' (0x4B)
 *   1    1     version (2)
 *   2    1     kind          kn_env_kind_t, 1..11
 *   3    1     stanza name   kn_env_stanza_t, 0..3
 *   4    1     stanza type   kn_env_type_t, must fit the stanza name
 *   5    1     reason        kn_env_reason_t, 0..7
 *   6    2     flags         u16, carried verbatim
 *   8    2     priority      i16 (two's complement)
 *   10   8     conn id       u64
 *   18   4     seq           u32
 *   22   8     ack id        u64: with KN_F_ACK_WANTED, the id the
 *                            receiving c2s node returns in an ACK once
 *                            the stanza is written (an offline row id)
 *   30   2+n   from          u16 length, then bytes (prepared JID)
 *   ..   2+n   to            u16 length, then bytes (prepared JID)
 *   ..   2+n   node          u16 length, then bytes (node name, or the
 *                            namespace / domain for REGISTER)
 *   ..   4+8c  targets       u32 count c, then c u64 connection ids
 *                            (MULTICAST) or acknowledged ids (ACK)
 *
 * Version 2 added the ack id (version 1 frames are refused: every
 * process of a cluster runs the same build). The smallest frame is 40
 * bytes; strings are at most KN_ENV_STR_MAX
 * bytes and the whole frame at most KN_ENV_MAX_BYTES. Nothing may follow
 * the target list. A change of layout bumps the version.
 */
#ifndef KN_ENV_H
#define KN_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"

#define KN_ENV_MAGIC        0x4B /* 'K' */
#define KN_ENV_VERSION      3
#define KN_ENV_HEADER_BYTES 38
#define KN_ENV_MIN_BYTES    (KN_ENV_HEADER_BYTES + 3 * 2 + 4)
#define KN_ENV_MAX_BYTES    (1024 * 1024)
#define KN_ENV_STR_MAX      3071 /* the longest prepared JID */
#define KN_ENV_TARGETS_MAX                                                     \
    ((KN_ENV_MAX_BYTES - KN_ENV_MIN_BYTES - 3 * KN_ENV_STR_MAX) / 8)

typedef enum kn_env_kind {
    KN_ENV_STANZA = 1,       /* route payload to "to" */
    KN_ENV_MULTICAST = 2,    /* deliver payload to each target conn id */
    KN_ENV_HELLO = 3,        /* a process announces itself (node) */
    KN_ENV_HEARTBEAT = 4,    /* liveness; seq counts up */
    KN_ENV_SESSION_UP = 5,   /* from = full JID bound on conn id */
    KN_ENV_SESSION_DOWN = 6, /* from = full JID; reason says why */
    KN_ENV_PRIORITY = 7,     /* presence priority of from changed */
    KN_ENV_REGISTER = 8,     /* daemon claims an IQ namespace / a domain */
    KN_ENV_BOUNCE = 9,       /* undeliverable; returned to sender */
    KN_ENV_KICK = 10,        /* end a session (router -> c2s; a daemon may
                              * ask the router: from + conn id) */
    KN_ENV_ACK = 11,         /* c2s: these ack ids were written (targets) */
    KN_ENV_SM = 12,          /* XEP-0198 stream management (kn_proto.h) */
} kn_env_kind_t;
#define KN_ENV_KIND_MAX KN_ENV_SM

typedef enum kn_env_stanza {
    KN_ENV_ST_NONE = 0,
    KN_ENV_ST_MESSAGE = 1,
    KN_ENV_ST_PRESENCE = 2,
    KN_ENV_ST_IQ = 3,
} kn_env_stanza_t;
#define KN_ENV_ST_MAX KN_ENV_ST_IQ

/* One flat list; which values fit which stanza name is checked. */
typedef enum kn_env_type {
    KN_ENV_TYPE_NONE = 0, /* only with KN_ENV_ST_NONE */
    /* message */
    KN_ENV_TYPE_NORMAL = 1,
    KN_ENV_TYPE_CHAT = 2,
    KN_ENV_TYPE_GROUPCHAT = 3,
    KN_ENV_TYPE_HEADLINE = 4,
    /* presence */
    KN_ENV_TYPE_AVAILABLE = 5, /* no type attribute */
    KN_ENV_TYPE_UNAVAILABLE = 6,
    KN_ENV_TYPE_SUBSCRIBE = 7,
    KN_ENV_TYPE_SUBSCRIBED = 8,
    KN_ENV_TYPE_UNSUBSCRIBE = 9,
    KN_ENV_TYPE_UNSUBSCRIBED = 10,
    KN_ENV_TYPE_PROBE = 11,
    /* iq */
    KN_ENV_TYPE_GET = 12,
    KN_ENV_TYPE_SET = 13,
    KN_ENV_TYPE_RESULT = 14,
    /* all three */
    KN_ENV_TYPE_ERROR = 15,
} kn_env_type_t;
#define KN_ENV_TYPE_MAX KN_ENV_TYPE_ERROR

typedef enum kn_env_reason {
    KN_ENV_REASON_NONE = 0,
    KN_ENV_REASON_CLEAN = 1,     /* </stream:stream> from the client */
    KN_ENV_REASON_DROPPED = 2,   /* connection lost without a close */
    KN_ENV_REASON_CONFLICT = 3,  /* replaced by a newer session */
    KN_ENV_REASON_IDLE = 4,      /* idle timeout */
    KN_ENV_REASON_SHUTDOWN = 5,  /* the node is shutting down */
    KN_ENV_REASON_NODE_LOST = 6, /* the router lost the owning node */
    KN_ENV_REASON_REMOVED = 7,   /* the account was deleted (XEP-0077) */
} kn_env_reason_t;
#define KN_ENV_REASON_MAX KN_ENV_REASON_REMOVED

/*
 * The envelope in memory. Strings are (pointer, length), not
 * NUL-terminated; a NULL pointer with length 0 is an empty string.
 *
 * Encoding reads targets (host-order array of ntargets conn ids) or,
 * when targets is NULL, targets_wire (8 * ntargets bytes, big-endian),
 * so a decoded envelope can be re-encoded (forwarded) as is.
 *
 * Decoding is zero-copy: from, to, node and targets_wire point into the
 * frame passed to kn_env_decode() and are valid only while that frame is
 * (for ZeroMQ: until zmq_msg_close() of the envelope frame). Copy what
 * must outlive it. Decoding sets targets = NULL; read the ids with
 * kn_env_target().
 */
typedef struct kn_env {
    kn_env_kind_t kind;
    kn_env_stanza_t stanza;
    kn_env_type_t type;
    kn_env_reason_t reason;
    uint16_t flags;
    int16_t priority;
    uint64_t conn_id;
    uint32_t seq;
    uint64_t ack_id; /* KN_F_ACK_WANTED: returned in an ACK; else 0 */
    /* Link sequence (version 3): node -> router, the sender's number for
     * a data frame (STANZA, MULTICAST, ACK), which the router
     * acknowledges and a node resends to a new router after a takeover;
     * router -> node, (origin node index << 48) | that number on every
     * frame the router sent because of it, so a receiver drops the
     * second copy of a resent frame (kn_link.c). 0: none. */
    uint64_t link;
    const char *from;
    size_t from_len;
    const char *to;
    size_t to_len;
    const char *node;
    size_t node_len;
    size_t ntargets;
    const uint64_t *targets;           /* encode side */
    const unsigned char *targets_wire; /* decode side: 8 * ntargets */
} kn_env_t;

/* Append the encoding of *env to *out (out is not reset first). Enum
 * fields out of range, or a stanza type that does not fit the stanza
 * name, are programmer errors (KN_ASSERT). Returns 0, or -KN_ETOOBIG if
 * a string exceeds KN_ENV_STR_MAX or the frame would exceed
 * KN_ENV_MAX_BYTES; then *out is unchanged. */
int kn_env_encode(const kn_env_t *env, kn_buf_t *out);

/* Decode frame[0..len) into *out (fully overwritten). Safe on any bytes
 * from a peer. Returns 0; -KN_EPROTO for bad magic, unknown version, an
 * out-of-range or inconsistent enum value, truncation anywhere, or
 * trailing bytes; -KN_ETOOBIG if len > KN_ENV_MAX_BYTES or a string length
 * exceeds KN_ENV_STR_MAX. On error *out is zeroed. The result borrows from
 * frame (see kn_env_t). */
int kn_env_decode(const void *frame, size_t len, kn_env_t *out);

/* The i-th target conn id (i < ntargets) of an envelope that is being
 * encoded (targets) or was decoded (targets_wire). */
uint64_t kn_env_target(const kn_env_t *env, size_t i);

/* Bundles: several deliveries for the same connections in the payload
 * of one MULTICAST envelope with KN_F_BUNDLE (kn_proto.h). The payload is
 * a sequence of items, each
 *   u32 n, an encoded envelope of n bytes, u32 m, its payload of m bytes
 * (big-endian lengths), nothing after the last. */
#define KN_ENV_BUNDLE_ITEM_MAX (16 * 1024 * 1024)

/* Append one item (env encoded as by kn_env_encode, then payload) to
 * *out. Returns 0, or a kn_env_encode error / -KN_ETOOBIG (then *out is
 * unchanged). */
int kn_env_bundle_add(kn_buf_t *out, const kn_env_t *env, const void *payload,
                      size_t len);

/* The item of bundle[0..len) at *off (start with 0): decodes its envelope
 * into *env (borrowing from bundle, as kn_env_decode) and points
 * *payload and *plen at its payload, advances *off and returns 1; returns 0
 * at the end, -KN_EPROTO (or a decode error) for a malformed item, which
 * ends the walk. Safe on any bytes from a peer. */
int kn_env_bundle_next(const void *bundle, size_t len, size_t *off,
                       kn_env_t *env, const void **payload, size_t *plen);

/* Static names for logs, e.g. "session_down", "node_lost", "presence",
 * "groupchat". Never NULL; "?" for values out of range. */
const char *kn_env_kind_name(kn_env_kind_t kind);
const char *kn_env_reason_name(kn_env_reason_t reason);
const char *kn_env_stanza_name(kn_env_stanza_t st);
/* The type attribute value ("chat", "unavailable", "get"...); "" for
 * KN_ENV_TYPE_NONE and KN_ENV_TYPE_AVAILABLE (no attribute). */
const char *kn_env_type_name(kn_env_type_t type);

/* Map a top-level element name ("message", "presence", "iq") to its
 * stanza name; KN_ENV_ST_NONE for anything else or NULL. */
kn_env_stanza_t kn_env_stanza_from_name(const char *name);

/* Map the type attribute of a stanza (NULL when absent) to *out.
 * message: absent or unknown -> normal (RFC 6121 section 5.2.2);
 * presence: absent -> available; iq: absent is an error.
 * Returns 0, or -KN_EPROTO for an unknown presence/iq type, a missing iq
 * type, or st == KN_ENV_ST_NONE; *out is then KN_ENV_TYPE_NONE. */
int kn_env_type_from_str(kn_env_stanza_t st, const char *type,
                         kn_env_type_t *out);

/* True if type is a valid type for stanza name st (NONE fits only NONE).
 * Accepts out-of-range values (returns false). */
bool kn_env_type_fits(kn_env_stanza_t st, kn_env_type_t type);

/* True for what its sender expects an answer to when it cannot be
 * delivered: a message of type normal or chat, an iq get or set. */
bool kn_env_wants_reply(const kn_env_t *env);

#endif
