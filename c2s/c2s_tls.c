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
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "c2s_metrics.h"
#include "c2s_stream.h"
#include "c2s_transport.h"
#include "kn_buf.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

/* The TLS 1.3 cipher suites our own record layer speaks. */
enum { REC_AES128, REC_AES256, REC_CHACHA, REC_NSUITES };

struct c2s_tls_ctx {
    unsigned refs; /* the owner's, plus one per c2s_tls_t (reload) */
    SSL_CTX *ssl;
    uint8_t end_point[EVP_MAX_MD_SIZE];
    unsigned end_point_len;
    bool own_records; /* c2s_tls_ctx_set_own_records */
    EVP_CIPHER *cipher[REC_NSUITES];
};

/* Whitespace accepted before the ClientHello after STARTTLS. */
#define TLS_LEADING_SPACE_MAX 1024

/* One direction of our own TLS 1.3 record layer (RFC 8446 5.2, 7.2). */
typedef struct rec_dir {
    uint8_t secret[48]; /* the current application traffic secret */
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq;
    EVP_CIPHER_CTX *cx; /* keyed; freed while parked, made on next use */
} rec_dir_t;

typedef struct tls_rec {
    int suite;
    const EVP_MD *md;
    size_t keylen, hashlen;
    rec_dir_t rd, wr;
    kn_buf_t in;          /* ciphertext read but not yet decrypted */
    kn_buf_t plain;       /* decrypted bytes not yet returned */
    size_t plain_off;     /* of plain */
    kn_buf_t out;         /* records encrypted but not yet fully written */
    size_t out_off;       /* of out */
    size_t out_plain;     /* application bytes those records carry */
    bool eof;             /* close_notify read */
    bool key_update;      /* the peer asked for our KeyUpdate */
    char version[8];      /* "TLSv1.3" */
    uint8_t exporter[32]; /* tls-exporter channel binding, RFC 9266 */
} tls_rec_t;

struct c2s_tls {
    SSL *ssl;           /* NULL once the record layer is ours (rec) */
    c2s_tls_ctx_t *ctx; /* referenced: a reload does not free it under us */
    int fd;
    bool skip_space; /* c2s_tls_after_starttls, until a non-space byte */
    size_t skipped;
    tls_rec_t *rec;
    /* Traffic secrets from the keylog callback, until the handshake ends
     * (only with own_records). */
    uint8_t *secrets;     /* client's then server's, hashlen each: 96 bytes */
    uint8_t have_secrets; /* bit 0 client, bit 1 server */
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

/* ---- our own TLS 1.3 record layer ----------------------------------------
 *
 * With tls.own_record_layer, once a TLS 1.3 handshake ends the SSL object
 * goes: its keys (the application traffic secrets, taken from the keylog
 * callback), the tls-exporter value and the sequence numbers (both 0: no
 * tickets are sent and nothing was read past the client's Finished) are
 * all a session needs. OpenSSL keeps about 13.5 KB per idle connection
 * (its SSL struct alone is 7.6 KB); this keeps about 300 bytes, plus
 * two cipher contexts while the session is active (freed when the idle
 * sweep parks it). Records are protected with EVP AEAD ciphers (AES-GCM
 * or ChaCha20-Poly1305, as negotiated); KeyUpdate (both ways) and
 * close_notify are handled; any other post-handshake message or alert
 * ends the connection. TLS 1.2 sessions keep OpenSSL's record layer.
 */

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void tls_on_keylog(const SSL *ssl, const char *line)
{
    c2s_tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL)
        return;
    int which;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
        which = 0;
    else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
        which = 1;
    else
        return;
    const char *sp = strchr(line + 24, ' '); /* after the client random */
    if (sp == NULL)
        return;
    sp++;
    size_t n = strlen(sp) / 2;
    if (n == 0 || n > 48)
        return;
    if (t->secrets == NULL)
        t->secrets = kn_calloc(2, 48);
    uint8_t *dst = t->secrets + which * 48;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(sp[2 * i]), lo = hex_val(sp[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    t->have_secrets |= (uint8_t)(1u << which);
}

void c2s_tls_ctx_set_own_records(c2s_tls_ctx_t *c, bool on)
{
    static const char *const names[REC_NSUITES] = {"AES-128-GCM", "AES-256-GCM",
                                                   "ChaCha20-Poly1305"};
    c->own_records = false;
    SSL_CTX_set_keylog_callback(c->ssl, NULL);
    if (!on)
        return;
    for (int i = 0; i < REC_NSUITES; i++) {
        if (c->cipher[i] == NULL)
            c->cipher[i] = EVP_CIPHER_fetch(NULL, names[i], NULL);
        if (c->cipher[i] == NULL) {
            ERR_clear_error();
            kn_log_warn("c2s: tls: no %s: own record layer off", names[i]);
            return;
        }
    }
    c->own_records = true;
    SSL_CTX_set_keylog_callback(c->ssl, tls_on_keylog);
}

bool c2s_tls_own_records(const c2s_tls_t *t)
{
    return t->rec != NULL;
}

/* HKDF-Expand-Label(secret, label, "", len) of RFC 8446 7.1, for len up
 * to the hash's length (one HMAC block). */
static int rec_expand_label(const tls_rec_t *r, const uint8_t *secret,
                            const char *label, uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
    size_t ll = strlen(label), n = 0;
    KN_ASSERT(ll <= 16 && len <= r->hashlen);
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    info[n++] = 1; /* T(1) */
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (HMAC(r->md, secret, (int)r->hashlen, info, n, md, &mdlen) == NULL ||
        mdlen < len) {
        ERR_clear_error();
        return -KN_EIO;
    }
    memcpy(out, md, len);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

/* Key and IV of d from its secret; the sequence starts again. */
static int rec_keys(tls_rec_t *r, rec_dir_t *d)
{
    d->seq = 0;
    EVP_CIPHER_CTX_free(d->cx);
    d->cx = NULL;
    if (rec_expand_label(r, d->secret, "key", d->key, r->keylen) < 0 ||
        rec_expand_label(r, d->secret, "iv", d->iv, 12) < 0)
        return -KN_EIO;
    return 0;
}

/* The next traffic secret (KeyUpdate, RFC 8446 7.2). */
static int rec_update(tls_rec_t *r, rec_dir_t *d)
{
    uint8_t next[48];
    if (rec_expand_label(r, d->secret, "traffic upd", next, r->hashlen) < 0)
        return -KN_EIO;
    memcpy(d->secret, next, r->hashlen);
    OPENSSL_cleanse(next, sizeof(next));
    return rec_keys(r, d);
}

static void rec_dir_clear(rec_dir_t *d)
{
    EVP_CIPHER_CTX_free(d->cx);
    OPENSSL_cleanse(d, sizeof(*d));
}

static void rec_free(tls_rec_t **rp)
{
    tls_rec_t *r = *rp;
    if (r == NULL)
        return;
    rec_dir_clear(&r->rd);
    rec_dir_clear(&r->wr);
    kn_buf_free(&r->in);
    kn_buf_free(&r->plain);
    kn_buf_free(&r->out);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
    *rp = NULL;
}

static void tls_drop_secrets(c2s_tls_t *t)
{
    if (t->secrets != NULL) {
        OPENSSL_cleanse(t->secrets, 2 * 48);
        free(t->secrets);
        t->secrets = NULL;
    }
    t->have_secrets = 0;
}

/* After a finished handshake: take the record layer over from OpenSSL
 * when we can (TLS 1.3, a suite we speak, both secrets seen, nothing
 * buffered); else keep OpenSSL's. */
static void tls_take_records(c2s_tls_t *t)
{
    c2s_tls_ctx_t *c = t->ctx;
    if (!c->own_records || t->have_secrets != 3 ||
        SSL_version(t->ssl) != TLS1_3_VERSION || SSL_has_pending(t->ssl)) {
        tls_drop_secrets(t);
        return;
    }
    const SSL_CIPHER *ci = SSL_get_current_cipher(t->ssl);
    uint16_t id = ci ? SSL_CIPHER_get_protocol_id(ci) : 0;
    tls_rec_t *r = kn_calloc(1, sizeof(*r));
    switch (id) {
    case 0x1301: /* TLS_AES_128_GCM_SHA256 */
        r->suite = REC_AES128, r->md = EVP_sha256(), r->keylen = 16;
        break;
    case 0x1302: /* TLS_AES_256_GCM_SHA384 */
        r->suite = REC_AES256, r->md = EVP_sha384(), r->keylen = 32;
        break;
    case 0x1303: /* TLS_CHACHA20_POLY1305_SHA256 */
        r->suite = REC_CHACHA, r->md = EVP_sha256(), r->keylen = 32;
        break;
    default:
        free(r);
        tls_drop_secrets(t);
        return;
    }
    r->hashlen = (size_t)EVP_MD_get_size(r->md);
    static const char label[] = "EXPORTER-Channel-Binding";
    memcpy(r->rd.secret, t->secrets, r->hashlen);
    memcpy(r->wr.secret, t->secrets + 48, r->hashlen);
    tls_drop_secrets(t);
    if (SSL_export_keying_material(t->ssl, r->exporter, 32, label,
                                   sizeof(label) - 1, NULL, 0, 0) != 1 ||
        rec_keys(r, &r->rd) < 0 || rec_keys(r, &r->wr) < 0) {
        ERR_clear_error();
        rec_free(&r);
        return;
    }
    snprintf(r->version, sizeof(r->version), "%s", SSL_get_version(t->ssl));
    SSL_free(t->ssl); /* the socket stays: BIO_NOCLOSE */
    t->ssl = NULL;
    t->rec = r;
    kn_metric_inc(c2s_metrics.tls_own_records);
}

/* The keyed AEAD context of d (made again after a park). */
static EVP_CIPHER_CTX *rec_cx(c2s_tls_t *t, rec_dir_t *d, int enc)
{
    if (d->cx != NULL)
        return d->cx;
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    if (cx == NULL || EVP_CipherInit_ex(cx, t->ctx->cipher[t->rec->suite], NULL,
                                        d->key, NULL, enc) != 1) {
        EVP_CIPHER_CTX_free(cx);
        ERR_clear_error();
        return NULL;
    }
    d->cx = cx;
    return cx;
}

static void rec_nonce(const rec_dir_t *d, uint8_t nonce[12])
{
    memcpy(nonce, d->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

#define REC_TAG     16
#define REC_MAX     16384           /* plaintext per record */
#define REC_CT_MAX  (REC_MAX + 256) /* ciphertext limit, 5.2 */
#define REC_OUT_MAX (4 * REC_MAX)   /* plaintext per write call */

/* Append one record of type with data[0..len) (len <= REC_MAX) to out. */
static int rec_seal(c2s_tls_t *t, uint8_t type, const void *data, size_t len)
{
    tls_rec_t *r = t->rec;
    EVP_CIPHER_CTX *cx = rec_cx(t, &r->wr, 1);
    if (cx == NULL)
        return -KN_EIO;
    size_t ctlen = len + 1 + REC_TAG;
    kn_buf_reserve(&r->out, 5 + ctlen);
    uint8_t *h = (uint8_t *)r->out.data + r->out.len;
    h[0] = 23, h[1] = 3, h[2] = 3; /* opaque_type, legacy_record_version */
    h[3] = (uint8_t)(ctlen >> 8), h[4] = (uint8_t)ctlen;
    uint8_t *body = h + 5;
    memcpy(body, data, len);
    body[len] = type;
    uint8_t nonce[12];
    rec_nonce(&r->wr, nonce);
    int n = 0, m = 0;
    if (EVP_CipherInit_ex(cx, NULL, NULL, NULL, nonce, 1) != 1 ||
        EVP_CipherUpdate(cx, NULL, &n, h, 5) != 1 ||
        EVP_CipherUpdate(cx, body, &n, body, (int)len + 1) != 1 ||
        EVP_CipherFinal_ex(cx, body + n, &m) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, REC_TAG,
                            body + len + 1) != 1) {
        ERR_clear_error();
        return -KN_EIO;
    }
    r->wr.seq++;
    r->out.len += 5 + ctlen;
    r->out.data[r->out.len] = '\0';
    return 0;
}

/* Write what is queued in out. 0 when all of it went, else -KN_EAGAIN
 * (*want EV_WRITE) or -KN_EIO. */
static int rec_flush(c2s_tls_t *t, int *want)
{
    tls_rec_t *r = t->rec;
    while (r->out_off < r->out.len) {
        ssize_t n = send(t->fd, r->out.data + r->out_off,
                         r->out.len - r->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *want = EV_WRITE;
            return -KN_EAGAIN;
        }
        if (n <= 0)
            return -KN_EIO;
        r->out_off += (size_t)n;
    }
    kn_buf_reset(&r->out);
    r->out_off = 0;
    if (r->out.cap > REC_CT_MAX)
        kn_buf_free(&r->out);
    return 0;
}

/* Our KeyUpdate (update_not_requested), then the new write keys. */
static int rec_send_key_update(c2s_tls_t *t)
{
    static const uint8_t ku[5] = {24, 0, 0, 1, 0};
    t->rec->key_update = false;
    if (rec_seal(t, 22, ku, sizeof(ku)) < 0)
        return -KN_EIO;
    return rec_update(t->rec, &t->rec->wr);
}

static ssize_t rec_write(c2s_tls_t *t, const void *buf, size_t len, int *want)
{
    tls_rec_t *r = t->rec;
    if (r->out_off < r->out.len || r->out_plain > 0) {
        /* Records of an earlier call not fully written: they carry the
         * first out_plain bytes of buf (the caller offers them again). */
        int rc = rec_flush(t, want);
        if (rc < 0)
            return rc;
        size_t done = r->out_plain;
        r->out_plain = 0;
        if (done > 0)
            return (ssize_t)(done <= len ? done : len);
    }
    if (r->key_update && rec_send_key_update(t) < 0)
        return -KN_EIO;
    size_t take = len < REC_OUT_MAX ? len : REC_OUT_MAX;
    for (size_t off = 0; off < take;) {
        size_t n = take - off < REC_MAX ? take - off : REC_MAX;
        if (rec_seal(t, 23, (const uint8_t *)buf + off, n) < 0)
            return -KN_EIO;
        off += n;
    }
    r->out_plain = take;
    int rc = rec_flush(t, want);
    if (rc < 0)
        return rc; /* the caller comes back with the same bytes */
    r->out_plain = 0;
    return (ssize_t)take;
}

/* A decrypted handshake message after the handshake: only KeyUpdate. */
static int rec_handshake_msg(c2s_tls_t *t, const uint8_t *p, size_t n)
{
    tls_rec_t *r = t->rec;
    while (n > 0) {
        if (n < 4)
            return -KN_EIO;
        size_t mlen = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (p[0] != 24 || mlen != 1 || n < 5 || p[4] > 1)
            return -KN_EIO; /* not a KeyUpdate */
        if (rec_update(r, &r->rd) < 0)
            return -KN_EIO;
        if (p[4] == 1)
            r->key_update = true;
        p += 5;
        n -= 5;
    }
    return 0;
}

/* Open the record at in[0..5+ctlen) in place; its content type and
 * inner plaintext length. */
static int rec_open(c2s_tls_t *t, uint8_t *h, size_t ctlen, uint8_t *type,
                    size_t *plen)
{
    tls_rec_t *r = t->rec;
    EVP_CIPHER_CTX *cx = rec_cx(t, &r->rd, 0);
    if (cx == NULL)
        return -KN_EIO;
    uint8_t nonce[12];
    rec_nonce(&r->rd, nonce);
    uint8_t *body = h + 5;
    size_t n = ctlen - REC_TAG;
    int o = 0, m = 0;
    if (EVP_CipherInit_ex(cx, NULL, NULL, NULL, nonce, 0) != 1 ||
        EVP_CipherUpdate(cx, NULL, &o, h, 5) != 1 ||
        EVP_CipherUpdate(cx, body, &o, body, (int)n) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_SET_TAG, REC_TAG, body + n) !=
            1 ||
        EVP_CipherFinal_ex(cx, body + o, &m) != 1) {
        ERR_clear_error();
        kn_log_debug("c2s: tls: a record did not authenticate");
        return -KN_EIO;
    }
    r->rd.seq++;
    while (n > 0 && body[n - 1] == 0)
        n--; /* padding */
    if (n == 0)
        return -KN_EIO;
    *type = body[n - 1];
    *plen = n - 1;
    if (*plen > REC_MAX)
        return -KN_EIO; /* record_overflow */
    return 0;
}

static ssize_t rec_read(c2s_tls_t *t, void *buf, size_t len, int *want)
{
    tls_rec_t *r = t->rec;
    if (r->plain_off < r->plain.len) {
        size_t n = r->plain.len - r->plain_off;
        if (n > len)
            n = len;
        memcpy(buf, r->plain.data + r->plain_off, n);
        r->plain_off += n;
        if (r->plain_off == r->plain.len) {
            kn_buf_free(&r->plain);
            r->plain_off = 0;
        }
        return (ssize_t)n;
    }
    if (r->eof)
        return 0;
    for (int round = 0; round < 64; round++) {
        /* Every complete record in `in` first. */
        while (r->in.len >= 5) {
            uint8_t *h = (uint8_t *)r->in.data;
            size_t ctlen = (size_t)h[3] << 8 | h[4];
            if (h[0] != 23 || ctlen > REC_CT_MAX || ctlen <= REC_TAG) {
                kn_log_debug("c2s: tls: bad record (type %u, length %zu)", h[0],
                             ctlen);
                return -KN_EIO;
            }
            if (r->in.len < 5 + ctlen)
                break;
            uint8_t type = 0;
            size_t plen = 0;
            if (rec_open(t, h, ctlen, &type, &plen) < 0)
                return -KN_EIO;
            size_t got = 0;
            if (type == 23 && plen > 0) {
                got = plen < len ? plen : len;
                memcpy(buf, h + 5, got);
                if (got < plen)
                    kn_buf_append(&r->plain, h + 5 + got, plen - got);
            } else if (type == 21) {
                /* An alert: close_notify (0) ends the stream cleanly,
                 * any other is fatal in TLS 1.3. */
                if (plen != 2 || h[6] != 0)
                    return -KN_EIO;
                r->eof = true;
            } else if (type == 22) {
                if (rec_handshake_msg(t, h + 5, plen) < 0)
                    return -KN_EIO;
            } else if (type != 23) {
                return -KN_EIO;
            }
            kn_buf_consume(&r->in, 5 + ctlen);
            if (r->in.len == 0)
                kn_buf_free(&r->in);
            if (r->key_update && r->out_off == r->out.len &&
                r->out_plain == 0) {
                /* Answer now; what cannot be written goes with the next
                 * write (rec_write flushes out first). */
                int w = 0;
                if (rec_send_key_update(t) < 0)
                    return -KN_EIO;
                if (rec_flush(t, &w) == -KN_EIO)
                    return -KN_EIO;
            }
            if (got > 0)
                return (ssize_t)got;
            if (r->eof)
                return 0;
        }
        /* Read the header, then exactly the rest of its record: nothing
         * past it stays buffered here, so a socket with more records
         * stays readable for the connection's watcher (as with OpenSSL
         * without read-ahead). */
        size_t need = 5;
        if (r->in.len >= 5) {
            const uint8_t *h = (const uint8_t *)r->in.data;
            need = 5 + ((size_t)h[3] << 8 | h[4]);
        }
        size_t room = need - r->in.len;
        kn_buf_reserve(&r->in, room);
        ssize_t n = recv(t->fd, r->in.data + r->in.len, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (r->in.len == 0)
                kn_buf_free(&r->in);
            *want = EV_READ;
            return -KN_EAGAIN;
        }
        if (n < 0)
            return -KN_EIO;
        if (n == 0)
            return r->in.len == 0 ? 0 : -KN_EIO; /* EOF, maybe mid-record */
        r->in.len += (size_t)n;
        r->in.data[r->in.len] = '\0';
    }
    *want = EV_READ;
    return -KN_EAGAIN;
}

/* Best effort close_notify (never blocks, nothing owed is pending). */
static void rec_close(c2s_tls_t *t)
{
    tls_rec_t *r = t->rec;
    static const uint8_t alert[2] = {1, 0};
    if (r->out_off < r->out.len)
        return; /* mid-record: an alert now would corrupt the stream */
    if (rec_seal(t, 21, alert, sizeof(alert)) == 0) {
        int w = 0;
        (void)rec_flush(t, &w);
    }
}

static void tls_park(c2s_tls_t *t)
{
    tls_rec_t *r = t->rec;
    if (r == NULL)
        return;
    EVP_CIPHER_CTX_free(r->rd.cx);
    r->rd.cx = NULL;
    EVP_CIPHER_CTX_free(r->wr.cx);
    r->wr.cx = NULL;
    if (r->in.len == 0)
        kn_buf_free(&r->in);
    if (r->out.len == 0)
        kn_buf_free(&r->out);
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
    for (int i = 0; i < REC_NSUITES; i++)
        EVP_CIPHER_free(c->cipher[i]);
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
    t->fd = fd;
    SSL_set_app_data(ssl, t);
    ctx->refs++;
    return t;
}

void c2s_tls_read_ahead(c2s_tls_t *t)
{
    /* Not with our own record layer: it takes over from the Finished on
     * and must find every later byte still in the socket. */
    if (t->ssl != NULL && !t->ctx->own_records)
        SSL_set_read_ahead(t->ssl, 1);
}

void c2s_tls_free(c2s_tls_t **tp)
{
    c2s_tls_t *t = *tp;
    if (t == NULL)
        return;
    if (t->rec != NULL) {
        rec_close(t);
        rec_free(&t->rec);
    } else {
        if (SSL_is_init_finished(t->ssl))
            SSL_shutdown(t->ssl); /* close_notify; we do not wait for theirs */
        SSL_free(t->ssl);
    }
    tls_drop_secrets(t);
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
    int fd = t->fd;
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
    if (t->rec != NULL)
        return 0;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        if (t->ctx->own_records)
            tls_take_records(t);
        return 0;
    }
    rc = tls_result(t, rc, want, "handshake");
    return rc == 0 ? -KN_EIO : rc;
}

ssize_t c2s_tls_read(c2s_tls_t *t, void *buf, size_t len, int *want)
{
    if (t->rec != NULL)
        return rec_read(t, buf, len, want);
    size_t n = 0;
    int rc = SSL_read_ex(t->ssl, buf, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    return tls_result(t, rc, want, "read");
}

ssize_t c2s_tls_write(c2s_tls_t *t, const void *buf, size_t len, int *want)
{
    if (t->rec != NULL)
        return rec_write(t, buf, len, want);
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
    if (t->rec != NULL || SSL_version(t->ssl) >= TLS1_3_VERSION)
        m |= C2S_CB_EXPORTER;
    return m;
}

int c2s_tls_cb_data(const c2s_tls_t *t, kn_scram_cb_t type, uint8_t *out,
                    size_t cap)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    switch (type) {
    case KN_SCRAM_CB_TLS_EXPORTER:
        if (t->rec != NULL && cap >= 32) {
            memcpy(out, t->rec->exporter, 32);
            return 32;
        }
        if (t->rec != NULL || SSL_version(t->ssl) < TLS1_3_VERSION || cap < 32)
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
    if (t->rec != NULL)
        return t->rec->version;
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

static void tr_tls_park(void *state)
{
    tls_park(state);
}

void c2s_tls_sha1(const void *data, size_t len, uint8_t md[20])
{
    unsigned n = 0;
    int ok = EVP_Digest(data, len, md, &n, EVP_sha1(), NULL);
    KN_ASSERT(ok == 1 && n == 20);
}

const c2s_transport_t c2s_transport_tls = {
    "tls",       tr_tls_read, tr_tls_write, tr_tls_handshake,
    tr_tls_free, NULL,        tr_tls_park};
