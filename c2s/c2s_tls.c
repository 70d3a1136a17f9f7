/*
 * c2s_tls.c - OpenSSL behind c2s_tls.h. Non-blocking throughout: every
 * call maps SSL_ERROR_WANT_READ/WRITE to -KN_EAGAIN and a direction. The
 * session releases its read/write buffers when idle
 * (SSL_MODE_RELEASE_BUFFERS) and accepts a moving write buffer with
 * partial writes, since the connection's output buffer may grow and be
 * compacted between retries.
 */
#include "c2s_tls.h"

#include <ev.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "c2s_stream.h"
#include "c2s_transport.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

struct c2s_tls_ctx {
    unsigned refs; /* the owner's, plus one per c2s_tls_t (reload) */
    SSL_CTX *ssl;
    uint8_t end_point[EVP_MAX_MD_SIZE];
    unsigned end_point_len;
};

/* Whitespace accepted before the ClientHello after STARTTLS. */
#define TLS_LEADING_SPACE_MAX 1024

struct c2s_tls {
    SSL *ssl;
    c2s_tls_ctx_t *ctx; /* referenced: a reload does not free it under us */
    bool skip_space;    /* c2s_tls_after_starttls, until a non-space byte */
    size_t skipped;
};

static void tls_err_string(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, e ? buf : "unknown error");
    ERR_clear_error();
}

/* RFC 5929 4.1: the certificate's signature hash, SHA-256 when that is
 * MD5 or SHA-1 (or unknown). */
static int tls_end_point(c2s_tls_ctx_t *c)
{
    X509 *x = SSL_CTX_get0_certificate(c->ssl);
    if (x == NULL)
        return -KN_EINVAL;
    int md_nid = NID_undef;
    const EVP_MD *md = NULL;
    if (X509_get_signature_info(x, &md_nid, NULL, NULL, NULL) == 1 &&
        md_nid != NID_undef && md_nid != NID_md5 && md_nid != NID_sha1)
        md = EVP_get_digestbynid(md_nid);
    if (md == NULL)
        md = EVP_sha256();
    if (X509_digest(x, md, c->end_point, &c->end_point_len) != 1)
        return -KN_EINVAL;
    return 0;
}

static const char *tls_or(const char *v, const char *dflt)
{
    return v != NULL && *v != '\0' ? v : dflt;
}

/* "c2s: tls.<key> \"<value>\": <OpenSSL's reason>" */
static void tls_set_err(char *err, size_t errlen, const char *key,
                        const char *value)
{
    char what[256];
    snprintf(what, sizeof(what), "c2s: %s \"%.160s\"", key, value);
    tls_err_string(err, errlen, what);
}

/* Every TLS 1.2 cipher the list selected has forward secrecy (ECDHE or
 * DHE key exchange), authenticates the server and has >= 128-bit keys
 * (no NULL, export, RC4 or 3DES). TLS 1.3 suites all qualify. */
static int tls_check_ciphers(SSL_CTX *ssl, char *err, size_t errlen)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ssl);
    int n = sk ? sk_SSL_CIPHER_num(sk) : 0;
    for (int i = 0; i < n; i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
        int kx = SSL_CIPHER_get_kx_nid(c);
        if (kx == NID_kx_any) /* a TLS 1.3 suite */
            continue;
        const char *why = NULL;
        if (kx != NID_kx_ecdhe && kx != NID_kx_dhe)
            why = "no forward secrecy";
        else if (SSL_CIPHER_get_auth_nid(c) == NID_auth_null)
            why = "anonymous";
        else if (SSL_CIPHER_get_bits(c, NULL) < 128 ||
                 SSL_CIPHER_get_cipher_nid(c) == NID_rc4 ||
                 SSL_CIPHER_get_cipher_nid(c) == NID_des_ede3_cbc)
            why = "weak cipher";
        if (why != NULL) {
            snprintf(err, errlen, "c2s: tls.ciphers: %s: %s",
                     SSL_CIPHER_get_name(c), why);
            return -KN_EINVAL;
        }
    }
    return 0;
}

/* Minimum version, ciphers, suites and groups (c2s_tls_opts_t). */
static int tls_set_params(SSL_CTX *ssl, const c2s_tls_opts_t *o, char *err,
                          size_t errlen)
{
    const char *minv = tls_or(o->min_version, C2S_TLS_MIN_VERSION);
    int v = strcmp(minv, "TLSv1.2") == 0   ? TLS1_2_VERSION
            : strcmp(minv, "TLSv1.3") == 0 ? TLS1_3_VERSION
                                           : 0;
    if (v == 0) {
        snprintf(err, errlen,
                 "c2s: tls.min_version: \"%s\" (TLSv1.2 or TLSv1.3)", minv);
        return -KN_EINVAL;
    }
    SSL_CTX_set_min_proto_version(ssl, v);
    const char *ciphers = tls_or(o->ciphers, C2S_TLS_CIPHERS);
    if (SSL_CTX_set_cipher_list(ssl, ciphers) != 1) {
        tls_set_err(err, errlen, "tls.ciphers", ciphers);
        return -KN_EINVAL;
    }
    const char *suites = tls_or(o->ciphersuites, C2S_TLS_CIPHERSUITES);
    if (SSL_CTX_set_ciphersuites(ssl, suites) != 1) {
        tls_set_err(err, errlen, "tls.ciphersuites", suites);
        return -KN_EINVAL;
    }
    const char *groups = tls_or(o->groups, C2S_TLS_GROUPS);
    if (SSL_CTX_set1_groups_list(ssl, groups) != 1) {
        tls_set_err(err, errlen, "tls.groups", groups);
        return -KN_EINVAL;
    }
    SSL_CTX_set_dh_auto(ssl, 1); /* for DHE ciphers, if configured */
    return tls_check_ciphers(ssl, err, errlen);
}

c2s_tls_ctx_t *c2s_tls_ctx_new(const c2s_tls_opts_t *o, char *err,
                               size_t errlen)
{
    const char *cert = o->cert, *key = o->key;
    if (cert == NULL || *cert == '\0' || key == NULL || *key == '\0') {
        snprintf(err, errlen, "c2s: tls.cert and tls.key are required");
        return NULL;
    }
    c2s_tls_ctx_t *c = kn_calloc(1, sizeof(*c));
    c->refs = 1;
    c->ssl = SSL_CTX_new(TLS_server_method());
    if (c->ssl == NULL) {
        tls_err_string(err, errlen, "SSL_CTX_new");
        goto err_free;
    }
    if (tls_set_params(c->ssl, o, err, errlen) < 0)
        goto err_free;
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS |
                                 SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_NO_COMPRESSION);
    /* Session tickets cost memory per connection and buy little for
     * long-lived XMPP streams. */
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
        tls_err_string(err, errlen, cert);
        goto err_free;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
        tls_err_string(err, errlen, key);
        goto err_free;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        tls_err_string(err, errlen, "key does not match the certificate");
        goto err_free;
    }
    if (tls_end_point(c) < 0) {
        snprintf(err, errlen, "%s: cannot hash the certificate", cert);
        goto err_free;
    }
    return c;
err_free:
    c2s_tls_ctx_free(&c);
    return NULL;
}

void c2s_tls_ctx_free(c2s_tls_ctx_t **cp)
{
    c2s_tls_ctx_t *c = *cp;
    if (c == NULL)
        return;
    *cp = NULL;
    if (--c->refs > 0)
        return;
    SSL_CTX_free(c->ssl);
    free(c);
}

c2s_tls_t *c2s_tls_new(c2s_tls_ctx_t *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx->ssl);
    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    c2s_tls_t *t = kn_calloc(1, sizeof(*t));
    t->ssl = ssl;
    t->ctx = ctx;
    ctx->refs++;
    return t;
}

void c2s_tls_free(c2s_tls_t **tp)
{
    c2s_tls_t *t = *tp;
    if (t == NULL)
        return;
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl); /* close_notify; we do not wait for theirs */
    SSL_free(t->ssl);
    ERR_clear_error();
    c2s_tls_ctx_free(&t->ctx);
    free(t);
    *tp = NULL;
}

/* Map an SSL result to -KN_EAGAIN/-KN_EIO (or 0 for a clean close). */
static int tls_result(c2s_tls_t *t, int rc, int *want, const char *what)
{
    int e = SSL_get_error(t->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = EV_READ;
        return -KN_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = EV_WRITE;
        return -KN_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        if (kn_log_enabled(KN_LOG_DEBUG)) {
            char buf[256];
            ERR_error_string_n(ERR_peek_error(), buf, sizeof(buf));
            kn_log_debug("c2s: tls %s failed (%d): %s", what, e, buf);
        }
        ERR_clear_error();
        return -KN_EIO;
    }
}

void c2s_tls_after_starttls(c2s_tls_t *t)
{
    t->skip_space = true;
}

/*
 * A client may end its plaintext stream with whitespace after <starttls/>
 * ("<starttls/>\n" in two writes); it belongs to the old stream (RFC 6120
 * 5.4.3.3 discards it) and would otherwise be read as the start of a TLS
 * record. A record never starts with a whitespace byte (the ClientHello's
 * is 0x16), so drop leading whitespace from the socket, at most
 * TLS_LEADING_SPACE_MAX bytes. 0 once a non-space byte is next.
 */
static int tls_skip_space(c2s_tls_t *t, int *want)
{
    int fd = SSL_get_fd(t->ssl);
    char buf[64];
    for (int round = 0; round < 8; round++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *want = EV_READ;
            return -KN_EAGAIN;
        }
        if (n <= 0)
            return -KN_EIO;
        size_t k = 0;
        while (k < (size_t)n && (buf[k] == ' ' || buf[k] == '\t' ||
                                 buf[k] == '\r' || buf[k] == '\n'))
            k++;
        if (k == 0) {
            t->skip_space = false;
            return 0;
        }
        t->skipped += k;
        if (t->skipped > TLS_LEADING_SPACE_MAX) {
            kn_log_debug("c2s: tls: too much whitespace before the handshake");
            return -KN_EIO;
        }
        if (recv(fd, buf, k, 0) != (ssize_t)k)
            return -KN_EIO; /* peeked bytes are there to read */
    }
    *want = EV_READ;
    return -KN_EAGAIN;
}

int c2s_tls_handshake(c2s_tls_t *t, int *want)
{
    if (t->skip_space) {
        int rc = tls_skip_space(t, want);
        if (rc < 0)
            return rc;
    }
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1)
        return 0;
    rc = tls_result(t, rc, want, "handshake");
    return rc == 0 ? -KN_EIO : rc;
}

ssize_t c2s_tls_read(c2s_tls_t *t, void *buf, size_t len, int *want)
{
    size_t n = 0;
    int rc = SSL_read_ex(t->ssl, buf, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    return tls_result(t, rc, want, "read");
}

ssize_t c2s_tls_write(c2s_tls_t *t, const void *buf, size_t len, int *want)
{
    size_t n = 0;
    int rc = SSL_write_ex(t->ssl, buf, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    rc = tls_result(t, rc, want, "write");
    return rc == 0 ? -KN_EIO : rc;
}

unsigned c2s_tls_cb_types(const c2s_tls_t *t)
{
    unsigned m = C2S_CB_END_POINT;
    if (SSL_version(t->ssl) >= TLS1_3_VERSION)
        m |= C2S_CB_EXPORTER;
    return m;
}

int c2s_tls_cb_data(const c2s_tls_t *t, kn_scram_cb_t type, uint8_t *out,
                    size_t cap)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    switch (type) {
    case KN_SCRAM_CB_TLS_EXPORTER:
        if (SSL_version(t->ssl) < TLS1_3_VERSION || cap < 32)
            return -KN_ENOENT;
        if (SSL_export_keying_material(t->ssl, out, 32, label,
                                       sizeof(label) - 1, NULL, 0, 0) != 1) {
            ERR_clear_error();
            return -KN_ENOENT;
        }
        return 32;
    case KN_SCRAM_CB_TLS_SERVER_END_POINT:
        if (cap < t->ctx->end_point_len)
            return -KN_ENOENT;
        memcpy(out, t->ctx->end_point, t->ctx->end_point_len);
        return (int)t->ctx->end_point_len;
    default:
        return -KN_ENOENT;
    }
}

const char *c2s_tls_version(const c2s_tls_t *t)
{
    return SSL_get_version(t->ssl);
}

/* ---- the TLS transport (c2s_transport.h) ---------------------------------
 */

static ssize_t tr_tls_read(void *state, int fd, void *buf, size_t len,
                           int *want)
{
    (void)fd;
    return c2s_tls_read(state, buf, len, want);
}

static ssize_t tr_tls_write(void *state, int fd, const void *buf, size_t len,
                            int *want)
{
    (void)fd;
    return c2s_tls_write(state, buf, len, want);
}

static int tr_tls_handshake(void *state, int fd, int *want)
{
    (void)fd;
    return c2s_tls_handshake(state, want);
}

static void tr_tls_free(void **state)
{
    c2s_tls_t *t = *state;
    c2s_tls_free(&t);
    *state = NULL;
}

void c2s_tls_sha1(const void *data, size_t len, uint8_t md[20])
{
    unsigned n = 0;
    int ok = EVP_Digest(data, len, md, &n, EVP_sha1(), NULL);
    KN_ASSERT(ok == 1 && n == 20);
}

const c2s_transport_t c2s_transport_tls = {"tls", tr_tls_read, tr_tls_write,
                                           tr_tls_handshake, tr_tls_free};
