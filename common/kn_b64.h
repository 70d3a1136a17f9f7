/*
 * kn_b64.h - base64 (RFC 4648, with padding) for SASL and SCRAM. Strict
 * decoding: whitespace, missing padding or stray characters are errors,
 * as RFC 6120 6.4.2 asks ("MUST NOT" add line breaks).
 */
#ifndef KN_B64_H
#define KN_B64_H

#include <stddef.h>

#include "kn_buf.h"

/* Append the base64 of data[0..len) to out. */
void kn_b64_encode(const void *data, size_t len, kn_buf_t *out);

/* Append the decoding of s[0..len) to out. Returns 0, or -KN_EPROTO for
 * malformed input (out is then unchanged). "=" alone decodes to empty. */
int kn_b64_decode(const char *s, size_t len, kn_buf_t *out);

#endif
