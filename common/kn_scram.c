/*
 * kn_scram.c - SCRAM key derivation and the server side of an exchange.
 *
 * A note on the exchange. The state machine only moves forward:
 *
 *   START --client_first--> GOT_FIRST --server_first--> SENT_FIRST
 *         --client_final--> DONE
 *
 * and any failure jumps to FAILED, from which nothing moves. The messages
 * are parsed in place with a cursor (struct cur) that never reads past the
 * length it was given, so a truncated message fails as "expected ','" or
 * "empty value" instead of reading beyond the buffer; a NUL byte anywhere
 * is refused up front so later C-string handling cannot be fooled.
 *
 * What the exchange keeps between steps is exactly what AuthMessage and
 * the final checks need: the gs2 header (for c=), client-first-message-
 * bare, the combined nonce, server-first-message, and a copy of the
 * caller's credentials. The credentials are wiped on free. StoredKey is
 * compared with CRYPTO_memcmp so the time taken does not say how many
 * leading bytes of a forged proof were right.
 *
 * Unknown users get a random salt and the default iteration count and
 * then fail at the proof exactly as a wrong password does (RFC 5802 §9
 * on not revealing which user names exist); the "mock" flag makes sure
 * they fail even if the random keys were somehow matched.
 *
 * base64 is done here, strictly (RFC 4648 alphabet, padding required, no
 * whitespace), because OpenSSL's EVP_DecodeBlock accepts and mis-sizes
 * padded input.
 */
#include "kn_scram.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include "kn_b64.h"
#include "kn_err.h"
#include "kn_mem.h"

enum scram_state {
    SCRAM_START = 0,
    SCRAM_GOT_FIRST,
    SCRAM_SENT_FIRST,
    SCRAM_DONE,
    SCRAM_FAILED,
};

struct kn_scram_server {
    kn_scram_hash_t hash;
    unsigned flags;
    enum scram_state state;
    kn_scram_cb_t cb;
    int mock;         /* unknown user: must fail at the proof */
    char *gs2_header; /* "n,," / "p=tls-exporter,a=x," ... */
    size_t gs2_len;
    char *first_bare; /* client-first-message-bare */
    char *client_nonce;
    char *nonce;        /* client nonce + server nonce */
    char *server_first; /* server-first-message */
    char *username;
    char *authzid;     /* NULL if absent */
    const char *error; /* server-error-value of the last failure */
    kn_scram_creds_t creds;
};

/* ---- hashes ---------------------------------------------------------- */

static const EVP_MD *scram_md(kn_scram_hash_t hash)
{
    return hash == KN_SCRAM_SHA256 ? EVP_sha256() : EVP_sha1();
}

size_t kn_scram_hash_len(kn_scram_hash_t hash)
{
    KN_ASSERT(hash == KN_SCRAM_SHA1 || hash == KN_SCRAM_SHA256);
    return hash == KN_SCRAM_SHA256 ? 32 : 20;
}

static const char *const scram_mech_names[2][2] = {
    {"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"},
    {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"},
};

const char *kn_scram_mech_name(kn_scram_hash_t hash, int plus)
{
    KN_ASSERT(hash == KN_SCRAM_SHA1 || hash == KN_SCRAM_SHA256);
    return scram_mech_names[hash][plus ? 1 : 0];
}

int kn_scram_mech_parse(const char *name, kn_scram_hash_t *hash, int *plus)
{
    KN_ASSERT(name && hash && plus);
    for (int h = 0; h < 2; h++) {
        for (int p = 0; p < 2; p++) {
            if (strcmp(name, scram_mech_names[h][p]) == 0) {
                *hash = (kn_scram_hash_t)h;
                *plus = p;
                return 0;
            }
        }
    }
    return -KN_ENOENT;
}

static int scram_hmac(kn_scram_hash_t hash, const uint8_t *key, size_t keylen,
                      const void *data, size_t len, uint8_t *out)
{
    unsigned int outlen = 0;
    if (keylen > INT_MAX)
        return -KN_EINVAL;
    if (!HMAC(scram_md(hash), key, (int)keylen, data, len, out, &outlen) ||
        outlen != kn_scram_hash_len(hash))
        return -KN_EINVAL;
    return 0;
}

static int scram_digest(kn_scram_hash_t hash, const uint8_t *data, size_t len,
                        uint8_t *out)
{
    unsigned int outlen = 0;
    if (!EVP_Digest(data, len, out, &outlen, scram_md(hash), NULL) ||
        outlen != kn_scram_hash_len(hash))
        return -KN_EINVAL;
    return 0;
}

int kn_scram_hi(kn_scram_hash_t hash, const char *password, size_t pwlen,
                const uint8_t *salt, size_t salt_len, unsigned iterations,
                uint8_t *out)
{
    KN_ASSERT(password && salt && out);
    if (iterations < KN_SCRAM_MIN_ITERATIONS ||
        iterations > KN_SCRAM_MAX_ITERATIONS || pwlen > INT_MAX ||
        salt_len > INT_MAX)
        return -KN_EINVAL;
    size_t n = kn_scram_hash_len(hash);
    if (!PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len,
                           (int)iterations, scram_md(hash), (int)n, out))
        return -KN_EINVAL;
    return 0;
}

int kn_scram_client_key(kn_scram_hash_t hash, const uint8_t *salted,
                        uint8_t *out)
{
    KN_ASSERT(salted && out);
    return scram_hmac(hash, salted, kn_scram_hash_len(hash), "Client Key", 10,
                      out);
}

int kn_scram_stored_key(kn_scram_hash_t hash, const uint8_t *client_key,
                        uint8_t *out)
{
    KN_ASSERT(client_key && out);
    return scram_digest(hash, client_key, kn_scram_hash_len(hash), out);
}

int kn_scram_server_key(kn_scram_hash_t hash, const uint8_t *salted,
                        uint8_t *out)
{
    KN_ASSERT(salted && out);
    return scram_hmac(hash, salted, kn_scram_hash_len(hash), "Server Key", 10,
                      out);
}

int kn_scram_creds_derive(kn_scram_creds_t *out, kn_scram_hash_t hash,
                          const char *password, const uint8_t *salt,
                          size_t salt_len, unsigned iterations)
{
    KN_ASSERT(out && password && salt);
    uint8_t salted[KN_SCRAM_MAX_HASH_LEN], ckey[KN_SCRAM_MAX_HASH_LEN];
    int rc;

    if (salt_len == 0 || salt_len > KN_SCRAM_MAX_SALT_LEN)
        return -KN_EINVAL;
    memset(out, 0, sizeof(*out));
    out->hash = hash;
    out->iterations = iterations;
    out->salt_len = salt_len;
    memcpy(out->salt, salt, salt_len);
    rc = kn_scram_hi(hash, password, strlen(password), salt, salt_len,
                     iterations, salted);
    if (rc == 0)
        rc = kn_scram_client_key(hash, salted, ckey);
    if (rc == 0)
        rc = kn_scram_stored_key(hash, ckey, out->stored_key);
    if (rc == 0)
        rc = kn_scram_server_key(hash, salted, out->server_key);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    if (rc < 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

int kn_scram_saslprep(const char *in, char **out)
{
    KN_ASSERT(in && out);
    char *prepped = NULL;
    *out = NULL;
    if (stringprep_profile(in, &prepped, "SASLprep",
                           STRINGPREP_NO_UNASSIGNED) != STRINGPREP_OK) {
        free(prepped);
        return -KN_EINVAL;
    }
    if (prepped == NULL || prepped[0] == '\0') {
        free(prepped);
        return -KN_EINVAL;
    }
    *out = prepped;
    return 0;
}

/* ---- base64: kn_b64, with the SCRAM calling conventions -------------- */

static void scram_b64_append(kn_buf_t *out, const uint8_t *p, size_t n)
{
    kn_b64_encode(p, n, out);
}

/* Decode s[0..n) into a new buffer (*outp, caller frees, *outlen bytes).
 * Returns 0 or -KN_EPROTO. Unlike a SASL payload, "=" alone is not the
 * empty string here. */
static int scram_b64_decode(const char *s, size_t n, uint8_t **outp,
                            size_t *outlen)
{
    *outp = NULL;
    *outlen = 0;
    kn_buf_t b = KN_BUF_INIT;
    if (n == 1 || kn_b64_decode(s, n, &b) < 0) {
        kn_buf_free(&b);
        return -KN_EPROTO;
    }
    *outp = (uint8_t *)kn_buf_release(&b, outlen);
    return 0;
}

/* ---- message parsing ---------------------------------------------- */

struct cur {
    const char *p;
    const char *end;
};

static int cur_lit(struct cur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* Take the value up to the next ',' or the end: *v, *vlen. */
static void cur_value(struct cur *c, const char **v, size_t *vlen)
{
    const char *q = memchr(c->p, ',', (size_t)(c->end - c->p));
    if (!q)
        q = c->end;
    *v = c->p;
    *vlen = (size_t)(q - c->p);
    c->p = q;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t scram_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Decode a saslname (UTF-8, "=2C" -> ',', "=3D" -> '='; any other '=' is
 * an error). Returns a new string or NULL if invalid or empty. */
static char *scram_saslname_decode(const char *v, size_t n)
{
    if (n == 0)
        return NULL;
    char *out = kn_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (v[i] == '=') {
            if (n - i >= 3 && v[i + 1] == '2' && v[i + 2] == 'C')
                out[o++] = ',';
            else if (n - i >= 3 && v[i + 1] == '3' && v[i + 2] == 'D')
                out[o++] = '=';
            else
                goto err_free;
            i += 3;
            continue;
        }
        size_t l = scram_utf8_seq((const unsigned char *)v + i, n - i);
        if (l == 0)
            goto err_free;
        memcpy(out + o, v + i, l);
        o += l;
        i += l;
    }
    out[o] = '\0';
    return out;
err_free:
    free(out);
    return NULL;
}

/* A nonce: one or more printable ASCII characters except ','. */
static int scram_nonce_ok(const char *v, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7E || v[i] == ',')
            return 0;
    return 1;
}

/* An optional extension "X=value" (X a letter, value non-empty up to the
 * next ','). The mandatory-extension attribute "m" is not allowed here. */
static int cur_extension(struct cur *c)
{
    const char *v;
    size_t n;
    if (c->end - c->p < 2)
        return 0;
    char a = c->p[0];
    if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || a == 'm' ||
        c->p[1] != '=')
        return 0;
    c->p += 2;
    cur_value(c, &v, &n);
    return n > 0;
}

static int scram_fail(kn_scram_server_t *s, int rc, const char *error)
{
    s->state = SCRAM_FAILED;
    s->error = error;
    return rc;
}

/* ---- the server exchange ------------------------------------------ */

kn_scram_server_t *kn_scram_server_new(kn_scram_hash_t hash, unsigned flags)
{
    KN_ASSERT(hash == KN_SCRAM_SHA1 || hash == KN_SCRAM_SHA256);
    kn_scram_server_t *s = kn_calloc(1, sizeof(*s));
    s->hash = hash;
    s->flags = flags;
    s->state = SCRAM_START;
    return s;
}

void kn_scram_server_free(kn_scram_server_t **sp)
{
    KN_ASSERT(sp);
    kn_scram_server_t *s = *sp;
    if (!s)
        return;
    free(s->gs2_header);
    free(s->first_bare);
    free(s->client_nonce);
    free(s->nonce);
    free(s->server_first);
    free(s->username);
    free(s->authzid);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    *sp = NULL;
}

int kn_scram_server_client_first(kn_scram_server_t *s, const char *msg,
                                 size_t len)
{
    KN_ASSERT(s && (msg || len == 0));
    if (msg == NULL)
        msg = ""; /* NULL + 0 is undefined behaviour */
    struct cur c = {msg, msg + len};
    const char *v, *bare;
    size_t n;
    char flag;
    kn_scram_cb_t cb = KN_SCRAM_CB_NONE;
    char *authzid = NULL, *username = NULL;

    if (s->state != SCRAM_START)
        return scram_fail(s, -KN_EPROTO, "other-error");
    if (len == 0 || memchr(msg, '\0', len))
        return scram_fail(s, -KN_EPROTO, "invalid-encoding");

    /* gs2-cbind-flag */
    if (cur_lit(&c, "n")) {
        flag = 'n';
    } else if (cur_lit(&c, "y")) {
        flag = 'y';
    } else if (cur_lit(&c, "p=")) {
        flag = 'p';
        cur_value(&c, &v, &n);
        if (n == 12 && memcmp(v, "tls-exporter", 12) == 0)
            cb = KN_SCRAM_CB_TLS_EXPORTER;
        else if (n == 20 && memcmp(v, "tls-server-end-point", 20) == 0)
            cb = KN_SCRAM_CB_TLS_SERVER_END_POINT;
        if (n == 0)
            return scram_fail(s, -KN_EPROTO, "invalid-encoding");
        for (size_t i = 0; i < n; i++) {
            char ch = v[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
                return scram_fail(s, -KN_EPROTO, "invalid-encoding");
        }
    } else {
        return scram_fail(s, -KN_EPROTO, "invalid-encoding");
    }
    if (!cur_lit(&c, ","))
        return scram_fail(s, -KN_EPROTO, "invalid-encoding");

    /* [authzid] */
    if (cur_lit(&c, "a=")) {
        cur_value(&c, &v, &n);
        authzid = scram_saslname_decode(v, n);
        if (!authzid)
            return scram_fail(s, -KN_EPROTO, "invalid-encoding");
    }
    if (!cur_lit(&c, ","))
        goto err_free_names;
    size_t gs2_len = (size_t)(c.p - msg);
    bare = c.p;

    /* client-first-message-bare */
    if (cur_lit(&c, "m=")) {
        free(authzid);
        return scram_fail(s, -KN_EPROTO, "extensions-not-supported");
    }
    if (!cur_lit(&c, "n="))
        goto err_free_names;
    cur_value(&c, &v, &n);
    username = scram_saslname_decode(v, n);
    if (!username) {
        free(authzid);
        return scram_fail(s, -KN_EPROTO, "invalid-username-encoding");
    }
    if (!cur_lit(&c, ",r="))
        goto err_free_names;
    const char *nonce;
    size_t nonce_len;
    cur_value(&c, &nonce, &nonce_len);
    if (!scram_nonce_ok(nonce, nonce_len))
        goto err_free_names;
    while (c.p < c.end) {
        if (!cur_lit(&c, ",") || !cur_extension(&c))
            goto err_free_names;
    }

    /* Well formed; now does it fit the mechanism and what we offered? */
    const char *policy = NULL;
    if (s->flags & KN_SCRAM_F_PLUS) {
        if (flag != 'p')
            policy = "channel-binding-not-supported";
        else if (cb == KN_SCRAM_CB_NONE)
            policy = "unsupported-channel-binding-type";
    } else if (flag == 'p') {
        policy = "channel-binding-not-supported";
    } else if (flag == 'y' && (s->flags & KN_SCRAM_F_CB_OFFERED)) {
        policy = "server-does-support-channel-binding";
    }
    if (policy) {
        free(username);
        free(authzid);
        return scram_fail(s, -KN_EAUTH, policy);
    }

    s->gs2_header = kn_strndup(msg, gs2_len);
    s->gs2_len = gs2_len;
    s->first_bare = kn_strndup(bare, (size_t)(c.end - bare));
    s->client_nonce = kn_strndup(nonce, nonce_len);
    s->username = username;
    s->authzid = authzid;
    s->cb = cb;
    s->state = SCRAM_GOT_FIRST;
    return 0;

err_free_names:
    free(username);
    free(authzid);
    return scram_fail(s, -KN_EPROTO, "invalid-encoding");
}

const char *kn_scram_server_username(const kn_scram_server_t *s)
{
    KN_ASSERT(s);
    return s->username;
}

const char *kn_scram_server_authzid(const kn_scram_server_t *s)
{
    KN_ASSERT(s);
    return s->authzid;
}

kn_scram_cb_t kn_scram_server_cb_type(const kn_scram_server_t *s)
{
    KN_ASSERT(s);
    return s->cb;
}

int kn_scram_server_first(kn_scram_server_t *s, const kn_scram_creds_t *creds,
                          const char *server_nonce, kn_buf_t *out)
{
    KN_ASSERT(s && out);
    kn_buf_t b = KN_BUF_INIT;

    if (s->state != SCRAM_GOT_FIRST)
        return scram_fail(s, -KN_EPROTO, "other-error");
    if (creds) {
        if (creds->hash != s->hash || creds->salt_len == 0 ||
            creds->salt_len > KN_SCRAM_MAX_SALT_LEN ||
            creds->iterations < KN_SCRAM_MIN_ITERATIONS ||
            creds->iterations > KN_SCRAM_MAX_ITERATIONS)
            return scram_fail(s, -KN_EINVAL, "other-error");
        s->creds = *creds;
    } else {
        s->mock = 1;
        s->creds.hash = s->hash;
        s->creds.iterations = KN_SCRAM_DEFAULT_ITERATIONS;
        s->creds.salt_len = KN_SCRAM_SALT_LEN;
        if (RAND_bytes(s->creds.salt, KN_SCRAM_SALT_LEN) != 1 ||
            RAND_bytes(s->creds.stored_key, KN_SCRAM_MAX_HASH_LEN) != 1)
            return scram_fail(s, -KN_EIO, "no-resources");
    }

    if (server_nonce && !scram_nonce_ok(server_nonce, strlen(server_nonce)))
        return scram_fail(s, -KN_EINVAL, "other-error");
    kn_buf_append_str(&b, s->client_nonce);
    if (server_nonce) {
        kn_buf_append_str(&b, server_nonce);
    } else {
        uint8_t rnd[18];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            kn_buf_free(&b);
            return scram_fail(s, -KN_EIO, "no-resources");
        }
        scram_b64_append(&b, rnd, sizeof(rnd));
    }
    s->nonce = kn_buf_release(&b, NULL);

    kn_buf_append_str(&b, "r=");
    kn_buf_append_str(&b, s->nonce);
    kn_buf_append_str(&b, ",s=");
    scram_b64_append(&b, s->creds.salt, s->creds.salt_len);
    kn_buf_printf(&b, ",i=%u", s->creds.iterations);
    kn_buf_append(out, b.data, b.len);
    s->server_first = kn_buf_release(&b, NULL);
    s->state = SCRAM_SENT_FIRST;
    return 0;
}

/* Fail the final step: append "e=<error>" to out. */
static int scram_final_fail(kn_scram_server_t *s, int rc, const char *error,
                            kn_buf_t *out)
{
    scram_fail(s, rc, error);
    kn_buf_append_str(out, "e=");
    kn_buf_append_str(out, error);
    return rc;
}

int kn_scram_server_client_final(kn_scram_server_t *s, const char *msg,
                                 size_t len, const uint8_t *cb_data,
                                 size_t cb_len, kn_buf_t *out)
{
    KN_ASSERT(s && (msg || len == 0) && out);
    KN_ASSERT(cb_data || cb_len == 0);
    if (msg == NULL)
        msg = ""; /* NULL + 0 is undefined behaviour */
    struct cur c = {msg, msg + len};
    const char *cval, *rval, *pval;
    size_t clen, rlen, plen, without_proof_len;
    size_t hlen = kn_scram_hash_len(s->hash);
    uint8_t *cbind = NULL, *proof = NULL;
    size_t cbind_len, proof_len;
    int rc;

    if (s->state != SCRAM_SENT_FIRST)
        return scram_final_fail(s, -KN_EPROTO, "other-error", out);
    if (len == 0 || memchr(msg, '\0', len))
        return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);

    /* channel-binding "," nonce ["," extensions] "," proof */
    if (!cur_lit(&c, "c="))
        return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
    cur_value(&c, &cval, &clen);
    if (!cur_lit(&c, ",r="))
        return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
    cur_value(&c, &rval, &rlen);
    for (;;) {
        const char *comma = c.p;
        if (!cur_lit(&c, ","))
            return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
        if (cur_lit(&c, "p=")) {
            without_proof_len = (size_t)(comma - msg);
            cur_value(&c, &pval, &plen);
            if (c.p != c.end)
                return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
            break;
        }
        if (!cur_extension(&c))
            return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
    }
    if (scram_b64_decode(cval, clen, &cbind, &cbind_len) < 0)
        return scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
    if (scram_b64_decode(pval, plen, &proof, &proof_len) < 0 ||
        proof_len != hlen) {
        rc = scram_final_fail(s, -KN_EPROTO, "invalid-encoding", out);
        goto err_free_proof;
    }

    /* c= must be the gs2 header, then the TLS channel-binding data. */
    size_t want_cb = s->cb != KN_SCRAM_CB_NONE ? cb_len : 0;
    if (s->cb != KN_SCRAM_CB_NONE && cb_len == 0) {
        rc = scram_final_fail(s, -KN_EAUTH, "channel-binding-not-supported",
                              out);
        goto err_free_proof;
    }
    if (cbind_len != s->gs2_len + want_cb ||
        memcmp(cbind, s->gs2_header, s->gs2_len) != 0 ||
        (want_cb && CRYPTO_memcmp(cbind + s->gs2_len, cb_data, want_cb))) {
        rc = scram_final_fail(s, -KN_EAUTH, "channel-bindings-dont-match", out);
        goto err_free_proof;
    }
    if (rlen != strlen(s->nonce) || memcmp(rval, s->nonce, rlen) != 0) {
        rc = scram_final_fail(s, -KN_EAUTH, "other-error", out);
        goto err_free_proof;
    }

    /* AuthMessage = client-first-message-bare "," server-first-message ","
     * client-final-message-without-proof */
    kn_buf_t am = KN_BUF_INIT;
    kn_buf_append_str(&am, s->first_bare);
    kn_buf_append_byte(&am, ',');
    kn_buf_append_str(&am, s->server_first);
    kn_buf_append_byte(&am, ',');
    kn_buf_append(&am, msg, without_proof_len);

    uint8_t sig[KN_SCRAM_MAX_HASH_LEN], ckey[KN_SCRAM_MAX_HASH_LEN];
    uint8_t stored[KN_SCRAM_MAX_HASH_LEN];
    rc = scram_hmac(s->hash, s->creds.stored_key, hlen, am.data, am.len, sig);
    if (rc == 0) {
        for (size_t i = 0; i < hlen; i++)
            ckey[i] = proof[i] ^ sig[i];
        rc = scram_digest(s->hash, ckey, hlen, stored);
    }
    if (rc == 0 &&
        (CRYPTO_memcmp(stored, s->creds.stored_key, hlen) != 0 || s->mock))
        rc = -KN_EAUTH;
    if (rc == 0)
        rc = scram_hmac(s->hash, s->creds.server_key, hlen, am.data, am.len,
                        sig);
    kn_buf_free(&am);
    OPENSSL_cleanse(ckey, sizeof(ckey));
    if (rc < 0) {
        OPENSSL_cleanse(sig, sizeof(sig));
        rc = scram_final_fail(s, -KN_EAUTH,
                              rc == -KN_EAUTH ? "invalid-proof" : "other-error",
                              out);
        goto err_free_proof;
    }
    kn_buf_append_str(out, "v=");
    scram_b64_append(out, sig, hlen);
    s->state = SCRAM_DONE;
    s->error = NULL;
    rc = 0;

err_free_proof:
    free(proof);
    free(cbind);
    return rc;
}

const char *kn_scram_server_error(const kn_scram_server_t *s)
{
    KN_ASSERT(s);
    return s->error;
}

int kn_scram_server_is_done(const kn_scram_server_t *s)
{
    KN_ASSERT(s);
    return s->state == SCRAM_DONE;
}

int kn_scram_creds_from_password(const char *password, kn_scram_creds_t *sha1,
                                 kn_scram_creds_t *sha256)
{
    char *prepped = NULL;
    uint8_t salt[2][KN_SCRAM_SALT_LEN];
    int rc;

    if (kn_scram_saslprep(password, &prepped) < 0)
        return -KN_EINVAL;
    if (RAND_bytes(salt[0], sizeof(salt[0])) != 1 ||
        RAND_bytes(salt[1], sizeof(salt[1])) != 1) {
        rc = -KN_EIO;
        goto out;
    }
    rc = kn_scram_creds_derive(sha1, KN_SCRAM_SHA1, prepped, salt[0],
                               KN_SCRAM_SALT_LEN, KN_SCRAM_DEFAULT_ITERATIONS);
    if (rc == 0)
        rc = kn_scram_creds_derive(sha256, KN_SCRAM_SHA256, prepped, salt[1],
                                   KN_SCRAM_SALT_LEN,
                                   KN_SCRAM_DEFAULT_ITERATIONS);
out:
    OPENSSL_cleanse(prepped, strlen(prepped));
    free(prepped);
    OPENSSL_cleanse(salt, sizeof(salt));
    return rc;
}

static void scram_bytea_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = hx[b[i] >> 4];
        out[3 + 2 * i] = hx[b[i] & 15];
    }
    out[2 + 2 * n] = '\0';
}

void kn_scram_creds_sql(const kn_scram_creds_t *sha1,
                        const kn_scram_creds_t *sha256, kn_scram_sql_t *out)
{
    const kn_scram_creds_t *k[2] = {sha1, sha256};
    snprintf(out->iter, sizeof(out->iter), "%u", sha1->iterations);
    out->p[0] = out->iter;
    for (int h = 0; h < 2; h++) {
        size_t hl = kn_scram_hash_len(k[h]->hash);
        scram_bytea_hex(k[h]->salt, k[h]->salt_len, out->hex[3 * h]);
        scram_bytea_hex(k[h]->stored_key, hl, out->hex[3 * h + 1]);
        scram_bytea_hex(k[h]->server_key, hl, out->hex[3 * h + 2]);
    }
    for (int i = 0; i < 6; i++)
        out->p[1 + i] = out->hex[i];
}
