/*
 * kn_digest.h - the two digests the XMPP edges need outside SCRAM: the
 * XEP-0114 component handshake (hex SHA-1 of stream id + secret) and
 * TURN REST credentials (base64 HMAC-SHA1, coturn's use-auth-secret).
 */
#ifndef KN_DIGEST_H
#define KN_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_buf.h"

#define KN_SHA1_HEX_LEN 40

/* hex[0..41): lowercase hex SHA-1 of a[0..alen) followed by b[0..blen),
 * NUL-terminated. */
void kn_sha1_hex2(const void *a, size_t alen, const void *b, size_t blen,
                  char hex[KN_SHA1_HEX_LEN + 1]);

/* Append base64(HMAC-SHA1(key, msg)) to out. */
void kn_hmac_sha1_b64(const void *key, size_t klen, const void *msg,
                      size_t mlen, kn_buf_t *out);

/* Constant-time compare of two NUL-terminated strings of equal length;
 * false when the lengths differ. */
bool kn_digest_equal(const char *a, const char *b);

#endif
