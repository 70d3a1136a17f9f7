/*
 * c2s_smq.c - XEP-0198 counters and queue (c2s_smq.h).
 *
 * The queue is a ring of item pointers that doubles when full; an item is
 * one allocation (header, from, to, bytes). The serialized form is the
 * items back to back, each a fixed header in host order (both ends run
 * the same build, as the envelope says) followed by its three strings;
 * the decoder checks every length against what is left.
 */
#include "c2s_smq.h"

#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"

void c2s_smq_init(c2s_smq_t *q, uint32_t start)
{
    memset(q, 0, sizeof(*q));
    q->sent = q->acked = start;
}

static c2s_smq_item_t *smq_pop(c2s_smq_t *q)
{
    if (q->n == 0)
        return NULL;
    c2s_smq_item_t *it = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    q->bytes -= sizeof(*it) + it->from_len + it->to_len + it->len;
    if (q->n == 0) {
        free(q->v);
        q->v = NULL;
        q->head = q->cap = 0;
    }
    return it;
}

void c2s_smq_clear(c2s_smq_t *q)
{
    c2s_smq_item_t *it;
    while ((it = smq_pop(q)) != NULL)
        free(it);
}

c2s_smq_item_t *c2s_smq_item_new(const kn_env_t *env, const void *bytes,
                                 size_t len)
{
    size_t fl = env ? env->from_len : 0, tl = env ? env->to_len : 0;
    KN_ASSERT(fl <= UINT16_MAX && tl <= UINT16_MAX && len <= UINT32_MAX);
    c2s_smq_item_t *it = kn_malloc(sizeof(*it) + fl + tl + len);
    memset(it, 0, sizeof(*it));
    it->len = (uint32_t)len;
    it->from_len = (uint16_t)fl;
    it->to_len = (uint16_t)tl;
    if (env != NULL) {
        it->stanza = (uint8_t)env->stanza;
        it->type = (uint8_t)env->type;
        it->flags = env->flags;
        it->ack_id = env->ack_id;
        it->conn_id = env->conn_id;
        if (fl)
            memcpy(it->data, env->from, fl);
        if (tl)
            memcpy(it->data + fl, env->to, tl);
    }
    if (len)
        memcpy(it->data + fl + tl, bytes, len);
    return it;
}

const char *c2s_smq_item_bytes(const c2s_smq_item_t *it)
{
    return it->data + it->from_len + it->to_len;
}

void c2s_smq_item_env(const c2s_smq_item_t *it, kn_env_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = KN_ENV_STANZA;
    out->stanza = (kn_env_stanza_t)it->stanza;
    out->type = (kn_env_type_t)it->type;
    out->flags = it->flags;
    out->ack_id = it->ack_id;
    out->conn_id = it->conn_id;
    out->from = it->data;
    out->from_len = it->from_len;
    out->to = it->data + it->from_len;
    out->to_len = it->to_len;
}

void c2s_smq_push(c2s_smq_t *q, c2s_smq_item_t *it)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        c2s_smq_item_t **v = kn_malloc(cap * sizeof(*v));
        for (size_t i = 0; i < q->n; i++)
            v[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = v;
        q->head = 0;
        q->cap = cap;
    }
    q->v[(q->head + q->n) % q->cap] = it;
    q->n++;
    q->bytes += sizeof(*it) + it->from_len + it->to_len + it->len;
    q->sent++;
}

size_t c2s_smq_pending(const c2s_smq_t *q)
{
    return q->n;
}

const c2s_smq_item_t *c2s_smq_at(const c2s_smq_t *q, size_t i)
{
    return i < q->n ? q->v[(q->head + i) % q->cap] : NULL;
}

int c2s_smq_ack(c2s_smq_t *q, uint32_t h,
                void (*done)(void *ud, const c2s_smq_item_t *it), void *ud)
{
    uint32_t delta = h - q->acked; /* modulo 2^32 */
    if (delta > q->n)
        return -KN_EPROTO;
    for (uint32_t i = 0; i < delta; i++) {
        c2s_smq_item_t *it = smq_pop(q);
        if (done != NULL)
            done(ud, it);
        free(it);
    }
    q->acked = h;
    return (int)delta;
}

c2s_smq_item_t *c2s_smq_take(c2s_smq_t *q)
{
    return smq_pop(q);
}

void c2s_smq_encode(const c2s_smq_t *q, kn_buf_t *out)
{
    for (size_t i = 0; i < q->n; i++) {
        const c2s_smq_item_t *it = q->v[(q->head + i) % q->cap];
        kn_buf_append(out, it,
                      sizeof(*it) + it->from_len + it->to_len + it->len);
    }
}

int c2s_smq_decode(c2s_smq_t *q, const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t off = 0;
    int n = 0;
    while (off < len) {
        c2s_smq_item_t h;
        if (len - off < sizeof(h))
            return -KN_EPROTO;
        memcpy(&h, b + off, sizeof(h));
        size_t body = (size_t)h.from_len + h.to_len + h.len;
        if (len - off - sizeof(h) < body || h.stanza > KN_ENV_ST_MAX ||
            h.type > KN_ENV_TYPE_MAX)
            return -KN_EPROTO;
        c2s_smq_item_t *it = kn_malloc(sizeof(h) + body);
        memcpy(it, b + off, sizeof(h) + body);
        c2s_smq_push(q, it);
        off += sizeof(h) + body;
        n++;
    }
    return n;
}
