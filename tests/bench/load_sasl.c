/*
 * load_sasl.c - SCRAM-SHA-1 and PLAIN, client side (load_sasl.h).
 *
 * Message flow (RFC 5802 section 3), with gs2 header "n,," (no channel
 * binding):
 *   client-first  n,,n=USER,r=CNONCE
 *   server-first  r=CNONCE+SNONCE,s=SALT,i=ITER
 *   client-final  c=biws,r=NONCE,p=PROOF
 *   server-final  v=SERVERSIGNATURE
 * AuthMessage = client-first-bare "," server-first "," client-final
 * without the proof; the client proves ClientKey XOR HMAC(StoredKey,
 * AuthMessage) and checks HMAC(ServerKey, AuthMessage).
 */
#include "load_sasl.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kn_err.h"
#include "kn_mem.h"

void load_b64_encode(const uint8_t *in, size_t n, kn_buf_t *out)
{
    kn_buf_reserve(out, 4 * ((n + 2) / 3) + 1);
    int w = EVP_EncodeBlock((unsigned char *)out->data + out->len, in, (int)n);
    out->len += (size_t)w;
    out->data[out->len] = '\0';
}

long load_b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz)
{
    /* EVP_DecodeBlock wants no whitespace and keeps padding bytes. */
    char tmp[1024];
    size_t m = 0;
    for (size_t i = 0; i < n && m < sizeof(tmp); i++)
        if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t')
            tmp[m++] = in[i];
    if (m % 4 != 0 || 3 * (m / 4) > outsz)
        return -1;
    if (m == 0)
        return 0;
    int r = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)m);
    if (r < 0)
        return -1;
    if (tmp[m - 1] == '=')
        r--;
    if (tmp[m - 2] == '=')
        r--;
    return r;
}

static void sasl_hmac(const uint8_t *key, size_t klen, const void *msg,
                      size_t mlen, uint8_t out[LOAD_SHA1_LEN])
{
    unsigned int olen = LOAD_SHA1_LEN;
    HMAC(EVP_sha1(), key, (int)klen, msg, mlen, out, &olen);
}

/* saslname: ',' -> "=2C", '=' -> "=3D" */
static void sasl_append_name(kn_buf_t *b, const char *name)
{
    for (const char *p = name; *p; p++) {
        if (*p == ',')
            kn_buf_append_str(b, "=2C");
        else if (*p == '=')
            kn_buf_append_str(b, "=3D");
        else
            kn_buf_append_byte(b, (uint8_t)*p);
    }
}

void load_scram_start(load_scram_t *s, const char *user, const char *password,
                      load_scram_keys_t *cache, const char *cnonce,
                      kn_buf_t *out)
{
    memset(s, 0, sizeof(*s));
    s->user = kn_strdup(user);
    s->password = kn_strdup(password);
    s->cache = cache;
    char nonce[33];
    if (cnonce == NULL) {
        uint8_t raw[16];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            for (size_t i = 0; i < sizeof(raw); i++)
                raw[i] = (uint8_t)random();
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
        cnonce = nonce;
    }
    kn_buf_t bare = KN_BUF_INIT;
    kn_buf_append_str(&bare, "n=");
    sasl_append_name(&bare, user);
    kn_buf_printf(&bare, ",r=%s", cnonce);
    kn_buf_t first = KN_BUF_INIT;
    kn_buf_append_str(&first, "n,,");
    kn_buf_append(&first, bare.data, bare.len);
    kn_buf_reset(out);
    load_b64_encode((const uint8_t *)first.data, first.len, out);
    kn_buf_free(&first);
    s->client_first_bare = kn_buf_release(&bare, NULL);
}

/* Find "k=" at the start of a comma-separated field of msg. */
static const char *scram_field(const char *msg, char k, size_t *flen)
{
    const char *p = msg;
    while (*p) {
        if (p[0] == k && p[1] == '=') {
            const char *e = strchr(p, ',');
            *flen = e ? (size_t)(e - p - 2) : strlen(p + 2);
            return p + 2;
        }
        p = strchr(p, ',');
        if (p == NULL)
            break;
        p++;
    }
    return NULL;
}

int load_scram_step(load_scram_t *s, const char *b64, size_t len, kn_buf_t *out)
{
    uint8_t raw[768];
    long n = load_b64_decode(b64, len, raw, sizeof(raw) - 1);
    if (n <= 0 || s->stage != 0)
        return -KN_EPROTO;
    raw[n] = '\0';
    const char *server_first = (const char *)raw;
    size_t rlen, slen, ilen;
    const char *r = scram_field(server_first, 'r', &rlen);
    const char *sb = scram_field(server_first, 's', &slen);
    const char *it = scram_field(server_first, 'i', &ilen);
    const char *cn = strstr(s->client_first_bare, ",r=") + 3;
    if (r == NULL || sb == NULL || it == NULL || rlen <= strlen(cn) ||
        strncmp(r, cn, strlen(cn)) != 0)
        return -KN_EPROTO;
    uint8_t salt[64];
    long saltn = load_b64_decode(sb, slen, salt, sizeof(salt));
    unsigned iter = (unsigned)strtoul(it, NULL, 10);
    if (saltn <= 0 || iter == 0 || iter > 1000000)
        return -KN_EPROTO;

    load_scram_keys_t local, *k = s->cache ? s->cache : &local;
    if (k != &local && k->salt_len == (size_t)saltn && k->iterations == iter &&
        memcmp(k->salt, salt, (size_t)saltn) == 0) {
        /* cache hit: no PBKDF2 */
    } else {
        /* The last derivation of this process, for runs where many users
         * share one password and salt (provision --copy): one PBKDF2. */
        static char memo_pw[128];
        static uint8_t memo_salt[64], memo_salted[LOAD_SHA1_LEN];
        static size_t memo_salt_len;
        static unsigned memo_iter;
        uint8_t salted[LOAD_SHA1_LEN];
        if (memo_iter == iter && memo_salt_len == (size_t)saltn &&
            memcmp(memo_salt, salt, (size_t)saltn) == 0 &&
            strcmp(memo_pw, s->password) == 0) {
            memcpy(salted, memo_salted, sizeof(salted));
        } else {
            PKCS5_PBKDF2_HMAC_SHA1(s->password, (int)strlen(s->password), salt,
                                   (int)saltn, (int)iter, LOAD_SHA1_LEN,
                                   salted);
            if (strlen(s->password) < sizeof(memo_pw)) {
                strcpy(memo_pw, s->password);
                memcpy(memo_salt, salt, (size_t)saltn);
                memo_salt_len = (size_t)saltn;
                memo_iter = iter;
                memcpy(memo_salted, salted, sizeof(salted));
            }
        }
        sasl_hmac(salted, LOAD_SHA1_LEN, "Client Key", 10, k->client_key);
        sasl_hmac(salted, LOAD_SHA1_LEN, "Server Key", 10, k->server_key);
        SHA1(k->client_key, LOAD_SHA1_LEN, k->stored_key);
        memcpy(k->salt, salt, (size_t)saltn);
        k->salt_len = (size_t)saltn;
        k->iterations = iter;
    }

    kn_buf_t without_proof = KN_BUF_INIT;
    kn_buf_append_str(&without_proof, "c=biws,r=");
    kn_buf_append(&without_proof, r, rlen);
    kn_buf_t am = KN_BUF_INIT;
    kn_buf_printf(&am, "%s,%s,", s->client_first_bare, server_first);
    kn_buf_append(&am, without_proof.data, without_proof.len);

    uint8_t sig[LOAD_SHA1_LEN], proof[LOAD_SHA1_LEN];
    sasl_hmac(k->stored_key, LOAD_SHA1_LEN, am.data, am.len, sig);
    for (size_t i = 0; i < LOAD_SHA1_LEN; i++)
        proof[i] = k->client_key[i] ^ sig[i];
    sasl_hmac(k->server_key, LOAD_SHA1_LEN, am.data, am.len,
              s->server_signature);

    kn_buf_append_str(&without_proof, ",p=");
    load_b64_encode(proof, LOAD_SHA1_LEN, &without_proof);
    kn_buf_reset(out);
    load_b64_encode((const uint8_t *)without_proof.data, without_proof.len,
                    out);
    kn_buf_free(&without_proof);
    s->auth_message = kn_buf_release(&am, NULL);
    s->stage = 1;
    return 0;
}

int load_scram_verify(load_scram_t *s, const char *b64, size_t len)
{
    uint8_t raw[256];
    long n = load_b64_decode(b64, len, raw, sizeof(raw) - 1);
    if (n <= 2 || s->stage != 1)
        return -KN_EAUTH;
    raw[n] = '\0';
    size_t vlen;
    const char *v = scram_field((const char *)raw, 'v', &vlen);
    uint8_t sig[64];
    long sn = v ? load_b64_decode(v, vlen, sig, sizeof(sig)) : -1;
    if (sn != LOAD_SHA1_LEN ||
        memcmp(sig, s->server_signature, LOAD_SHA1_LEN) != 0)
        return -KN_EAUTH;
    s->stage = 2;
    return 0;
}

void load_scram_clear(load_scram_t *s)
{
    kn_free(&s->user);
    if (s->password)
        memset(s->password, 0, strlen(s->password));
    kn_free(&s->password);
    kn_free(&s->client_first_bare);
    kn_free(&s->auth_message);
    s->stage = 0;
    s->cache = NULL;
}

void load_sasl_plain(const char *user, const char *password, kn_buf_t *out)
{
    kn_buf_t raw = KN_BUF_INIT;
    kn_buf_append_byte(&raw, 0);
    kn_buf_append_str(&raw, user);
    kn_buf_append_byte(&raw, 0);
    kn_buf_append_str(&raw, password);
    kn_buf_reset(out);
    load_b64_encode((const uint8_t *)raw.data, raw.len, out);
    kn_buf_free(&raw);
}
