/*
 * kn_buf.c - growable byte buffer (see kn_buf.h). Growth doubles the
 * capacity so appends are amortised O(1).
 */
#include "kn_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"

void kn_buf_reserve(kn_buf_t *b, size_t n)
{
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = kn_realloc(b->data, cap);
    b->cap = cap;
}

void kn_buf_append(kn_buf_t *b, const void *p, size_t n)
{
    kn_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kn_buf_append_str(kn_buf_t *b, const char *s)
{
    kn_buf_append(b, s, strlen(s));
}

void kn_buf_append_byte(kn_buf_t *b, uint8_t c)
{
    kn_buf_append(b, &c, 1);
}

void kn_buf_printf(kn_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    KN_ASSERT(n >= 0);
    kn_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kn_buf_append_xml_escaped(kn_buf_t *b, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '"':
            rep = "&quot;";
            break;
        default:
            continue;
        }
        kn_buf_append(b, s + start, i - start);
        kn_buf_append_str(b, rep);
        start = i + 1;
    }
    kn_buf_append(b, s + start, n - start);
}

void kn_buf_consume(kn_buf_t *b, size_t n)
{
    KN_ASSERT(n <= b->len);
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->cap)
        b->data[b->len] = '\0';
}

void kn_buf_reset(kn_buf_t *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void kn_buf_free(kn_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *kn_buf_release(kn_buf_t *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    if (d == NULL)
        d = kn_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
