/*
 * c2s_tls.h - TLS for client connections (OpenSSL 3, TLS 1.2 and 1.3).
 * The only module that includes OpenSSL: everything else sees opaque
 * handles and the transport vtable (c2s_transport.h).
 *
 * One c2s_tls_ctx_t per process, replaced on SIGHUP (certificate, key, and the
 * tls-server-end-point hash of our certificate, RFC 5929 4.1, computed
 * once); one c2s_tls_t per connection, created in accept state on the
 * connection's socket. SSL_MODE_RELEASE_BUFFERS keeps idle sessions small.
 */
#ifndef C2S_TLS_H
#define C2S_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kn_scram.h"

typedef struct c2s_tls_ctx c2s_tls_ctx_t;
typedef struct c2s_tls c2s_tls_t;

/* What a context is made of: the c2s `tls` config group. NULL or "" for
 * ciphers, ciphersuites, groups and min_version: the safe defaults below. */
typedef struct c2s_tls_opts {
    const char *cert;         /* PEM chain */
    const char *key;          /* PEM key of cert */
    const char *ciphers;      /* TLS 1.2 list, OpenSSL syntax */
    const char *ciphersuites; /* TLS 1.3 suites */
    const char *groups;       /* key exchange groups (curves) */
    const char *min_version;  /* "TLSv1.2" or "TLSv1.3" */
} c2s_tls_opts_t;

/* The defaults: ECDHE with AEAD ciphers only (forward secrecy), OpenSSL's
 * three TLS 1.3 suites, X25519 then the NIST curves. */
#define C2S_TLS_CIPHERS                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define C2S_TLS_CIPHERSUITES                                                   \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                           \
    "TLS_CHACHA20_POLY1305_SHA256"
#define C2S_TLS_GROUPS      "X25519:P-256:P-384"
#define C2S_TLS_MIN_VERSION "TLSv1.2"

/* Load cert (PEM chain) and key, set the ciphers, suites, groups and
 * minimum version. Always: no compression, no renegotiation, the
 * server's cipher order. A TLS 1.2 cipher without forward secrecy
 * (ECDHE/DHE key exchange), without authentication or under 128 bits is
 * refused, as is an unknown name. Returns NULL and writes a reason to
 * err when something cannot be used. Caller frees with
 * c2s_tls_ctx_free(). */
c2s_tls_ctx_t *c2s_tls_ctx_new(const c2s_tls_opts_t *o, char *err,
                               size_t errlen);
/* tls.own_record_layer: after a TLS 1.3 handshake (AES-GCM or
 * ChaCha20-Poly1305) the session's SSL object is freed and c2s protects
 * the records itself with the traffic secrets (RFC 8446 5.2, 7.1-7.2:
 * KeyUpdate both ways, close_notify); about 300 bytes per idle session
 * instead of OpenSSL's 13.5 KB. TLS 1.2 keeps OpenSSL. Off by default. */
void c2s_tls_ctx_set_own_records(c2s_tls_ctx_t *c, bool on);

/* Drop the caller's reference; sessions made from it keep theirs, so a
 * reload may replace the server's context while they run. */
void c2s_tls_ctx_free(c2s_tls_ctx_t **cp);

/* A server-side TLS session on fd (borrowed: the caller closes it). */
c2s_tls_t *c2s_tls_new(c2s_tls_ctx_t *ctx, int fd);
/* Before the handshake: OpenSSL reads what the socket holds in one
 * read() instead of each record's header and body in two (about 23
 * reads a login -> 17). Bytes read ahead wait in the SSL object, where
 * no socket watcher sees them: the caller must read until
 * c2s_tls_read() says EAGAIN, or come back by itself (c2s_conn.c feeds
 * its watcher). No effect with the own record layer. */
void c2s_tls_read_ahead(c2s_tls_t *t);
/* Free *tp (sends close_notify, best effort, never blocks). Idempotent. */
void c2s_tls_free(c2s_tls_t **tp);

/* The session follows <proceed/> on a plaintext stream: whitespace before
 * the ClientHello is the old stream's and is dropped (bounded). */
void c2s_tls_after_starttls(c2s_tls_t *t);
/* Drive the handshake. Returns 0 when done, -KN_EAGAIN with *want set to
 * EV_READ or EV_WRITE, or -KN_EIO (logged at debug). */
int c2s_tls_handshake(c2s_tls_t *t, int *want);
/* Read/write application data: bytes (> 0), 0 at a clean close from the
 * peer (read only), -KN_EAGAIN with *want, or -KN_EIO. */
ssize_t c2s_tls_read(c2s_tls_t *t, void *buf, size_t len, int *want);
ssize_t c2s_tls_write(c2s_tls_t *t, const void *buf, size_t len, int *want);

/* C2S_CB_* channel-binding types this (handshaken) session can provide:
 * tls-exporter only on TLS 1.3 (RFC 9266), tls-server-end-point always. */
unsigned c2s_tls_cb_types(const c2s_tls_t *t);
/* Channel-binding data for type into out[0..cap): its length, or
 * -KN_ENOENT. */
int c2s_tls_cb_data(const c2s_tls_t *t, kn_scram_cb_t type, uint8_t *out,
                    size_t cap);

/* Is the record layer ours (tls.own_record_layer took it over)? */
bool c2s_tls_own_records(const c2s_tls_t *t);

/* "TLSv1.3" etc., for logs. */
const char *c2s_tls_version(const c2s_tls_t *t);

/* SHA-1 of data[0..len) into md (the WebSocket accept key, c2s_ws.c:
 * this file is where c2s meets OpenSSL). */
void c2s_tls_sha1(const void *data, size_t len, uint8_t md[20]);

#endif
