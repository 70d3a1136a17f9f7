/*
 * kn_env.c - envelope codec for the router wire (layout in kn_env.h).
 *
 * A note on decoding. The frame comes from another process and is
 * treated as hostile: a cursor (p, left) walks it, every read first
 * checks that `left` covers it, and every length read from the frame is
 * compared with `left` before use, never added to a pointer first. So no
 * read can pass the end, and a short frame at any byte is -KN_EPROTO.
 * Integers are assembled byte by byte (no alignment or endianness
 * assumption). Strings and the target list are not copied: the decoded
 * struct points into the frame.
 *
 * The encoding is canonical (fixed field order, no optional fields), so
 * decode followed by encode gives back the same bytes; the fuzzer checks
 * that.
 */
#include "kn_env.h"

#include <string.h>

#include "kn_err.h"

static const char *const env_kind_names[] = {
    [0] = "?",
    [KN_ENV_STANZA] = "stanza",
    [KN_ENV_MULTICAST] = "multicast",
    [KN_ENV_HELLO] = "hello",
    [KN_ENV_HEARTBEAT] = "heartbeat",
    [KN_ENV_SESSION_UP] = "session_up",
    [KN_ENV_SESSION_DOWN] = "session_down",
    [KN_ENV_PRIORITY] = "priority",
    [KN_ENV_REGISTER] = "register",
    [KN_ENV_BOUNCE] = "bounce",
    [KN_ENV_KICK] = "kick",
    [KN_ENV_ACK] = "ack",
    [KN_ENV_SM] = "sm",
};

static const char *const env_reason_names[] = {
    [KN_ENV_REASON_NONE] = "none",
    [KN_ENV_REASON_CLEAN] = "clean",
    [KN_ENV_REASON_DROPPED] = "dropped",
    [KN_ENV_REASON_CONFLICT] = "conflict",
    [KN_ENV_REASON_IDLE] = "idle",
    [KN_ENV_REASON_SHUTDOWN] = "shutdown",
    [KN_ENV_REASON_NODE_LOST] = "node_lost",
    [KN_ENV_REASON_REMOVED] = "removed",
};

static const char *const env_stanza_names[] = {
    [KN_ENV_ST_NONE] = "none",
    [KN_ENV_ST_MESSAGE] = "message",
    [KN_ENV_ST_PRESENCE] = "presence",
    [KN_ENV_ST_IQ] = "iq",
};

static const char *const env_type_names[] = {
    [KN_ENV_TYPE_NONE] = "",
    [KN_ENV_TYPE_NORMAL] = "normal",
    [KN_ENV_TYPE_CHAT] = "chat",
    [KN_ENV_TYPE_GROUPCHAT] = "groupchat",
    [KN_ENV_TYPE_HEADLINE] = "headline",
    [KN_ENV_TYPE_AVAILABLE] = "",
    [KN_ENV_TYPE_UNAVAILABLE] = "unavailable",
    [KN_ENV_TYPE_SUBSCRIBE] = "subscribe",
    [KN_ENV_TYPE_SUBSCRIBED] = "subscribed",
    [KN_ENV_TYPE_UNSUBSCRIBE] = "unsubscribe",
    [KN_ENV_TYPE_UNSUBSCRIBED] = "unsubscribed",
    [KN_ENV_TYPE_PROBE] = "probe",
    [KN_ENV_TYPE_GET] = "get",
    [KN_ENV_TYPE_SET] = "set",
    [KN_ENV_TYPE_RESULT] = "result",
    [KN_ENV_TYPE_ERROR] = "error",
};

const char *kn_env_kind_name(kn_env_kind_t kind)
{
    unsigned k = (unsigned)kind;
    return k < KN_ARRAY_LEN(env_kind_names) ? env_kind_names[k] : "?";
}

const char *kn_env_reason_name(kn_env_reason_t reason)
{
    unsigned r = (unsigned)reason;
    return r < KN_ARRAY_LEN(env_reason_names) ? env_reason_names[r] : "?";
}

const char *kn_env_stanza_name(kn_env_stanza_t st)
{
    unsigned s = (unsigned)st;
    return s < KN_ARRAY_LEN(env_stanza_names) ? env_stanza_names[s] : "?";
}

const char *kn_env_type_name(kn_env_type_t type)
{
    unsigned t = (unsigned)type;
    return t < KN_ARRAY_LEN(env_type_names) ? env_type_names[t] : "?";
}

bool kn_env_type_fits(kn_env_stanza_t st, kn_env_type_t type)
{
    switch (st) {
    case KN_ENV_ST_NONE:
        return type == KN_ENV_TYPE_NONE;
    case KN_ENV_ST_MESSAGE:
        return (type >= KN_ENV_TYPE_NORMAL && type <= KN_ENV_TYPE_HEADLINE) ||
               type == KN_ENV_TYPE_ERROR;
    case KN_ENV_ST_PRESENCE:
        return (type >= KN_ENV_TYPE_AVAILABLE && type <= KN_ENV_TYPE_PROBE) ||
               type == KN_ENV_TYPE_ERROR;
    case KN_ENV_ST_IQ:
        return (type >= KN_ENV_TYPE_GET && type <= KN_ENV_TYPE_RESULT) ||
               type == KN_ENV_TYPE_ERROR;
    default:
        return false;
    }
}

bool kn_env_wants_reply(const kn_env_t *env)
{
    if (env->stanza == KN_ENV_ST_MESSAGE)
        return env->type == KN_ENV_TYPE_NORMAL || env->type == KN_ENV_TYPE_CHAT;
    return env->stanza == KN_ENV_ST_IQ &&
           (env->type == KN_ENV_TYPE_GET || env->type == KN_ENV_TYPE_SET);
}

kn_env_stanza_t kn_env_stanza_from_name(const char *name)
{
    if (name == NULL)
        return KN_ENV_ST_NONE;
    if (strcmp(name, "message") == 0)
        return KN_ENV_ST_MESSAGE;
    if (strcmp(name, "presence") == 0)
        return KN_ENV_ST_PRESENCE;
    if (strcmp(name, "iq") == 0)
        return KN_ENV_ST_IQ;
    return KN_ENV_ST_NONE;
}

int kn_env_type_from_str(kn_env_stanza_t st, const char *type,
                         kn_env_type_t *out)
{
    KN_ASSERT(out != NULL);
    *out = KN_ENV_TYPE_NONE;
    if (st == KN_ENV_ST_MESSAGE && type == NULL) {
        *out = KN_ENV_TYPE_NORMAL;
        return 0;
    }
    if (st == KN_ENV_ST_PRESENCE && type == NULL) {
        *out = KN_ENV_TYPE_AVAILABLE;
        return 0;
    }
    if (type != NULL && type[0] != '\0') {
        for (unsigned t = 1; t <= KN_ENV_TYPE_MAX; t++) {
            if (kn_env_type_fits(st, (kn_env_type_t)t) &&
                strcmp(type, env_type_names[t]) == 0) {
                *out = (kn_env_type_t)t;
                return 0;
            }
        }
    }
    /* RFC 6121 section 5.2.2: an unknown message type is "normal". */
    if (st == KN_ENV_ST_MESSAGE) {
        *out = KN_ENV_TYPE_NORMAL;
        return 0;
    }
    return -KN_EPROTO;
}

/* --- encoding ------------------------------------------------------- */

static void env_put16(kn_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    kn_buf_append(b, x, 2);
}

static void env_put32(kn_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    kn_buf_append(b, x, 4);
}

static void env_put64(kn_buf_t *b, uint64_t v)
{
    env_put32(b, (uint32_t)(v >> 32));
    env_put32(b, (uint32_t)v);
}

static void env_put_str(kn_buf_t *b, const char *s, size_t n)
{
    env_put16(b, (uint16_t)n);
    if (n)
        kn_buf_append(b, s, n);
}

int kn_env_encode(const kn_env_t *env, kn_buf_t *out)
{
    KN_ASSERT(env != NULL && out != NULL);
    KN_ASSERT(env->kind >= KN_ENV_STANZA && env->kind <= KN_ENV_KIND_MAX);
    KN_ASSERT(env->reason <= KN_ENV_REASON_MAX);
    KN_ASSERT(kn_env_type_fits(env->stanza, env->type));
    KN_ASSERT(env->from != NULL || env->from_len == 0);
    KN_ASSERT(env->to != NULL || env->to_len == 0);
    KN_ASSERT(env->node != NULL || env->node_len == 0);
    KN_ASSERT(env->targets != NULL || env->targets_wire != NULL ||
              env->ntargets == 0);

    if (env->from_len > KN_ENV_STR_MAX || env->to_len > KN_ENV_STR_MAX ||
        env->node_len > KN_ENV_STR_MAX || env->ntargets > KN_ENV_TARGETS_MAX)
        return -KN_ETOOBIG;
    /* Cannot overflow: each term is bounded just above. */
    size_t total = KN_ENV_MIN_BYTES + env->from_len + env->to_len +
                   env->node_len + 8 * env->ntargets;
    if (total > KN_ENV_MAX_BYTES)
        return -KN_ETOOBIG;

    kn_buf_reserve(out, total);
    kn_buf_append_byte(out, KN_ENV_MAGIC);
    kn_buf_append_byte(out, KN_ENV_VERSION);
    kn_buf_append_byte(out, (uint8_t)env->kind);
    kn_buf_append_byte(out, (uint8_t)env->stanza);
    kn_buf_append_byte(out, (uint8_t)env->type);
    kn_buf_append_byte(out, (uint8_t)env->reason);
    env_put16(out, env->flags);
    env_put16(out, (uint16_t)env->priority);
    env_put64(out, env->conn_id);
    env_put32(out, env->seq);
    env_put64(out, env->ack_id);
    env_put64(out, env->link);
    env_put_str(out, env->from, env->from_len);
    env_put_str(out, env->to, env->to_len);
    env_put_str(out, env->node, env->node_len);
    env_put32(out, (uint32_t)env->ntargets);
    if (env->targets != NULL) {
        for (size_t i = 0; i < env->ntargets; i++)
            env_put64(out, env->targets[i]);
    } else if (env->ntargets) {
        /* A decoded list is already in wire order. */
        kn_buf_append(out, env->targets_wire, 8 * env->ntargets);
    }
    return 0;
}

/* --- decoding ------------------------------------------------------- */

typedef struct env_cur {
    const unsigned char *p;
    size_t left;
} env_cur_t;

static uint64_t env_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Read an n-byte big-endian integer; -KN_EPROTO if the frame ends. */
static int env_get(env_cur_t *c, size_t n, uint64_t *v)
{
    if (c->left < n)
        return -KN_EPROTO;
    *v = env_be(c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

static int env_get_str(env_cur_t *c, const char **s, size_t *n)
{
    uint64_t len;
    if (env_get(c, 2, &len) < 0)
        return -KN_EPROTO;
    if (len > KN_ENV_STR_MAX)
        return -KN_ETOOBIG;
    if (c->left < len)
        return -KN_EPROTO;
    *s = len ? (const char *)c->p : NULL;
    *n = (size_t)len;
    c->p += len;
    c->left -= (size_t)len;
    return 0;
}

static int env_decode(env_cur_t *c, kn_env_t *out)
{
    uint64_t magic, version, kind, stanza, type, reason, flags, prio, conn, seq,
        ack, link, count;
    int rc;

    if (env_get(c, 1, &magic) < 0 || magic != KN_ENV_MAGIC)
        return -KN_EPROTO;
    if (env_get(c, 1, &version) < 0 || version != KN_ENV_VERSION)
        return -KN_EPROTO;
    if (env_get(c, 1, &kind) < 0 || kind < KN_ENV_STANZA ||
        kind > KN_ENV_KIND_MAX)
        return -KN_EPROTO;
    if (env_get(c, 1, &stanza) < 0 || stanza > KN_ENV_ST_MAX)
        return -KN_EPROTO;
    if (env_get(c, 1, &type) < 0 || type > KN_ENV_TYPE_MAX ||
        !kn_env_type_fits((kn_env_stanza_t)stanza, (kn_env_type_t)type))
        return -KN_EPROTO;
    if (env_get(c, 1, &reason) < 0 || reason > KN_ENV_REASON_MAX)
        return -KN_EPROTO;
    if (env_get(c, 2, &flags) < 0 || env_get(c, 2, &prio) < 0 ||
        env_get(c, 8, &conn) < 0 || env_get(c, 4, &seq) < 0 ||
        env_get(c, 8, &ack) < 0 || env_get(c, 8, &link) < 0)
        return -KN_EPROTO;
    out->kind = (kn_env_kind_t)kind;
    out->stanza = (kn_env_stanza_t)stanza;
    out->type = (kn_env_type_t)type;
    out->reason = (kn_env_reason_t)reason;
    out->flags = (uint16_t)flags;
    /* Two's complement without implementation-defined conversion. */
    out->priority =
        prio >= 0x8000 ? (int16_t)((int32_t)prio - 0x10000) : (int16_t)prio;
    out->conn_id = conn;
    out->seq = (uint32_t)seq;
    out->ack_id = ack;
    out->link = link;

    if ((rc = env_get_str(c, &out->from, &out->from_len)) < 0 ||
        (rc = env_get_str(c, &out->to, &out->to_len)) < 0 ||
        (rc = env_get_str(c, &out->node, &out->node_len)) < 0)
        return rc;

    if (env_get(c, 4, &count) < 0)
        return -KN_EPROTO;
    /* Compare by division: count * 8 may not fit in size_t on 32 bits. */
    if (count > c->left / 8)
        return -KN_EPROTO;
    out->ntargets = (size_t)count;
    out->targets_wire = count ? c->p : NULL;
    c->p += 8 * (size_t)count;
    c->left -= 8 * (size_t)count;

    if (c->left != 0)
        return -KN_EPROTO;
    return 0;
}

int kn_env_decode(const void *frame, size_t len, kn_env_t *out)
{
    KN_ASSERT(out != NULL);
    KN_ASSERT(frame != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    if (len > KN_ENV_MAX_BYTES)
        return -KN_ETOOBIG;
    env_cur_t c = {frame, len};
    int rc = env_decode(&c, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

uint64_t kn_env_target(const kn_env_t *env, size_t i)
{
    KN_ASSERT(env != NULL && i < env->ntargets);
    if (env->targets != NULL)
        return env->targets[i];
    KN_ASSERT(env->targets_wire != NULL);
    return env_be(env->targets_wire + 8 * i, 8);
}

/* ---- bundles ------------------------------------------------------------ */

static void bundle_put_u32(kn_buf_t *out, size_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    kn_buf_append(out, b, sizeof(b));
}

int kn_env_bundle_add(kn_buf_t *out, const kn_env_t *env, const void *payload,
                      size_t len)
{
    if (len > KN_ENV_BUNDLE_ITEM_MAX)
        return -KN_ETOOBIG;
    size_t start = out->len;
    bundle_put_u32(out, 0); /* the envelope's length, known after */
    int rc = kn_env_encode(env, out);
    if (rc < 0) {
        out->len = start;
        if (out->cap > 0)
            out->data[start] = '\0';
        return rc;
    }
    size_t elen = out->len - start - 4;
    out->data[start] = (char)(elen >> 24);
    out->data[start + 1] = (char)(elen >> 16);
    out->data[start + 2] = (char)(elen >> 8);
    out->data[start + 3] = (char)elen;
    bundle_put_u32(out, len);
    kn_buf_append(out, payload, len);
    return 0;
}

int kn_env_bundle_next(const void *bundle, size_t len, size_t *off,
                       kn_env_t *env, const void **payload, size_t *plen)
{
    const unsigned char *b = bundle;
    memset(env, 0, sizeof(*env));
    *payload = NULL;
    *plen = 0;
    if (*off == len)
        return 0;
    if (*off > len || len - *off < 4)
        return -KN_EPROTO;
    size_t elen = (size_t)env_be(b + *off, 4);
    size_t at = *off + 4;
    if (elen > len - at)
        return -KN_EPROTO;
    int rc = kn_env_decode(b + at, elen, env);
    if (rc < 0)
        return rc;
    at += elen;
    if (len - at < 4) {
        memset(env, 0, sizeof(*env));
        return -KN_EPROTO;
    }
    size_t pl = (size_t)env_be(b + at, 4);
    at += 4;
    if (pl > len - at) {
        memset(env, 0, sizeof(*env));
        return -KN_EPROTO;
    }
    *payload = b + at;
    *plen = pl;
    *off = at + pl;
    return 1;
}
