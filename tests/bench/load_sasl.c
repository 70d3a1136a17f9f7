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

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kn_err.h"
#include "kn_mem.h"

static void sasl_hmac(const uint8_t *key, size_t klen, const void *msg,
                      size_t mlen, uint8_t out[LOAD_SHA1_LEN]);

/* ---- the key file ---- */

typedef struct store_ent {
    UT_hash_handle hh;
    uint8_t client_key[LOAD_SHA1_LEN];
    uint8_t server_key[LOAD_SHA1_LEN];
    char key[]; /* "USER SALT_B64 ITER" */
} store_ent_t;

static store_ent_t *store;
static int store_fd = -1;

static void store_add(const char *key, size_t klen, const uint8_t *ck,
                      const uint8_t *sk)
{
    store_ent_t *e;
    HASH_FIND(hh, store, key, klen, e);
    if (e != NULL)
        return;
    e = kn_malloc(sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    memcpy(e->client_key, ck, LOAD_SHA1_LEN);
    memcpy(e->server_key, sk, LOAD_SHA1_LEN);
    HASH_ADD_KEYPTR(hh, store, e->key, klen, e);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return s[2 * n] == '\0' || s[2 * n] == ' ' || s[2 * n] == '\n' ? 0 : -1;
}

int load_scram_store_open(const char *path)
{
    FILE *f = fopen(path, "r");
    bool torn = false;
    if (f != NULL) {
        char line[1024];
        while (fgets(line, sizeof(line), f) != NULL) {
            size_t ll = strlen(line);
            torn = ll > 0 && line[ll - 1] != '\n';
            /* USER SALT ITER CK SK: the key is the first three fields */
            char *sp1 = strchr(line, ' ');
            char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            char *sp3 = sp2 ? strchr(sp2 + 1, ' ') : NULL;
            char *sp4 = sp3 ? strchr(sp3 + 1, ' ') : NULL;
            uint8_t ck[LOAD_SHA1_LEN], sk[LOAD_SHA1_LEN];
            if (sp4 == NULL || unhex(sp3 + 1, ck, LOAD_SHA1_LEN) < 0 ||
                unhex(sp4 + 1, sk, LOAD_SHA1_LEN) < 0)
                continue; /* a torn or foreign line: derive again */
            store_add(line, (size_t)(sp3 - line), ck, sk);
        }
        fclose(f);
    }
    store_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (store_fd < 0)
        return -1;
    /* A run killed mid-line: start ours on a line of its own. */
    if (torn && write(store_fd, "\n", 1) != 1) {
        close(store_fd);
        store_fd = -1;
        return -1;
    }
    return 0;
}

/* Fill k from the file's table, or derive it and append it there. */
static void store_keys(const char *user, const char *password,
                       const char *salt_b64, size_t salt_b64_len,
                       const uint8_t *salt, size_t saltn, unsigned iter,
                       load_scram_keys_t *k)
{
    char key[512];
    int kl = snprintf(key, sizeof(key), "%s %.*s %u", user, (int)salt_b64_len,
                      salt_b64, iter);
    bool usable = store_fd >= 0 && kl > 0 && (size_t)kl < sizeof(key) &&
                  strchr(user, ' ') == NULL && strchr(user, '\n') == NULL;
    store_ent_t *e = NULL;
    if (usable)
        HASH_FIND(hh, store, key, (size_t)kl, e);
    if (e != NULL) {
        memcpy(k->client_key, e->client_key, LOAD_SHA1_LEN);
        memcpy(k->server_key, e->server_key, LOAD_SHA1_LEN);
    } else {
        uint8_t salted[LOAD_SHA1_LEN];
        PKCS5_PBKDF2_HMAC_SHA1(password, (int)strlen(password), salt,
                               (int)saltn, (int)iter, LOAD_SHA1_LEN, salted);
        sasl_hmac(salted, LOAD_SHA1_LEN, "Client Key", 10, k->client_key);
        sasl_hmac(salted, LOAD_SHA1_LEN, "Server Key", 10, k->server_key);
        if (usable) {
            store_add(key, (size_t)kl, k->client_key, k->server_key);
            char line[640];
            int n = snprintf(line, sizeof(line), "%s ", key);
            for (size_t i = 0; i < LOAD_SHA1_LEN; i++)
                n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
                              k->client_key[i]);
            line[n++] = ' ';
            for (size_t i = 0; i < LOAD_SHA1_LEN; i++)
                n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
                              k->server_key[i]);
            line[n++] = '\n';
            /* one write per line: O_APPEND keeps workers' lines whole */
            if (write(store_fd, line, (size_t)n) != n) {
                close(store_fd);
                store_fd = -1;
            }
        }
    }
    SHA1(k->client_key, LOAD_SHA1_LEN, k->stored_key);
    memcpy(k->salt, salt, saltn);
    k->salt_len = saltn;
    k->iterations = iter;
}

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
        store_keys(s->user, s->password, sb, slen, salt, (size_t)saltn, iter,
                   k);
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
