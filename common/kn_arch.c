/*
 * kn_arch.c - a batch of archive copies in one envelope (kn_arch.h).
 */
#include <stdbool.h>
#include <string.h>

#include "kn_arch.h"
#include "kn_err.h"

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

size_t kn_arch_size(const kn_arch_copy_t *c)
{
    return KN_ARCH_HDR + c->from_len + c->to_len + c->len;
}

bool kn_arch_write(uint8_t *dst, const kn_arch_copy_t *c)
{
    if (c->from_len > UINT16_MAX || c->to_len > UINT16_MAX ||
        (uint64_t)c->len > UINT32_MAX)
        return false;
    put_be(dst, c->id, 8);
    dst[8] = c->type;
    put_be(dst + 9, c->from_len, 2);
    put_be(dst + 11, c->to_len, 2);
    put_be(dst + 13, c->len, 4);
    dst += KN_ARCH_HDR;
    if (c->from_len > 0)
        memcpy(dst, c->from, c->from_len);
    dst += c->from_len;
    if (c->to_len > 0)
        memcpy(dst, c->to, c->to_len);
    dst += c->to_len;
    if (c->len > 0)
        memcpy(dst, c->stanza, c->len);
    return true;
}

bool kn_arch_append(kn_buf_t *b, const kn_arch_copy_t *c)
{
    size_t n = kn_arch_size(c);
    kn_buf_reserve(b, n);
    if (!kn_arch_write((uint8_t *)b->data + b->len, c))
        return false;
    b->len += n;
    return true;
}

int kn_arch_next(const void *data, size_t len, size_t *off, kn_arch_copy_t *c)
{
    const uint8_t *p = (const uint8_t *)data + *off;
    size_t left = len - *off;
    if (*off >= len)
        return 0;
    if (left < KN_ARCH_HDR)
        return -KN_EPROTO;
    size_t fl = (size_t)get_be(p + 9, 2), tl = (size_t)get_be(p + 11, 2);
    size_t sl = (size_t)get_be(p + 13, 4);
    if (left - KN_ARCH_HDR < fl || left - KN_ARCH_HDR - fl < tl ||
        left - KN_ARCH_HDR - fl - tl < sl)
        return -KN_EPROTO;
    c->id = get_be(p, 8);
    c->type = p[8];
    c->from = (const char *)p + KN_ARCH_HDR;
    c->from_len = fl;
    c->to = c->from + fl;
    c->to_len = tl;
    c->stanza = c->to + tl;
    c->len = sl;
    *off += KN_ARCH_HDR + fl + tl + sl;
    return 1;
}
