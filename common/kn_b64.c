/*
 * kn_b64.c - base64 for SASL and SCRAM. Decoding works on a copy of the length:
 * out is only touched once the whole input proved valid.
 */
#include "kn_b64.h"

#include <stdint.h>

#include "kn_err.h"

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void kn_b64_encode(const void *data, size_t len, kn_buf_t *out)
{
    const uint8_t *p = data;
    if (len == 0)
        return;
    kn_buf_reserve(out, (len + 2) / 3 * 4 + 1);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {b64_alpha[v >> 18], b64_alpha[(v >> 12) & 63],
                     b64_alpha[(v >> 6) & 63], b64_alpha[v & 63]};
        kn_buf_append(out, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {b64_alpha[v >> 18], b64_alpha[(v >> 12) & 63], '=', '='};
        kn_buf_append(out, q, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {b64_alpha[v >> 18], b64_alpha[(v >> 12) & 63],
                     b64_alpha[(v >> 6) & 63], '='};
        kn_buf_append(out, q, 4);
    }
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kn_b64_decode(const char *s, size_t len, kn_buf_t *out)
{
    if (len == 1 && s[0] == '=')
        return 0;
    if (len % 4 != 0)
        return -KN_EPROTO;
    size_t start = out->len;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[k] = b64_val(c)) < 0)
                goto err_truncate;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Bits below the last byte must be zero: one encoding per value. */
        if ((pad == 1 && (w & 0xFF)) || (pad == 2 && (w & 0xFFFF)))
            goto err_truncate;
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        kn_buf_append(out, b, (size_t)(3 - pad));
    }
    return 0;
err_truncate:
    out->len = start;
    if (out->cap > 0)
        out->data[start] = '\0';
    return -KN_EPROTO;
}
