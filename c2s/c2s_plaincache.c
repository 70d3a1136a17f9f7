/*
 * c2s_plaincache.c - verified SASL PLAIN credentials (c2s_plaincache.h).
 *
 * Entries live in a uthash by user name and on a doubly linked list in
 * order of use (head: least recently used, evicted first). Each holds
 *   mac = HMAC-SHA-256(secret, user NUL password)
 *   gen = HMAC-SHA-256(secret, "gen" iterations salt StoredKey ServerKey)
 * Both are compared in constant time. Keying gen with the secret as well
 * costs nothing and keeps even the generation digest meaningless outside
 * this process.
 */
#include "c2s_plaincache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <uthash.h>
#include <utlist.h>

#include "kn_mem.h"

#define PC_SECRET_LEN 32
#define PC_MAC_LEN    32

typedef struct pc_entry {
    char *user;
    uint8_t mac[PC_MAC_LEN];
    uint8_t gen[PC_MAC_LEN];
    struct pc_entry *prev, *next; /* use order */
    UT_hash_handle hh;
} pc_entry_t;

struct c2s_plaincache {
    size_t max;
    uint8_t secret[PC_SECRET_LEN];
    pc_entry_t *by_user; /* uthash */
    pc_entry_t *lru;     /* utlist, head = least recently used */
    uint64_t hits, misses, evictions;
};

bool c2s_plaincache_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

c2s_plaincache_t *c2s_plaincache_new(size_t max)
{
    c2s_plaincache_t *pc = kn_calloc(1, sizeof(*pc));
    pc->max = max;
    if (RAND_bytes(pc->secret, sizeof(pc->secret)) != 1) {
        free(pc);
        return NULL;
    }
    return pc;
}

static void pc_entry_free(c2s_plaincache_t *pc, pc_entry_t *e)
{
    HASH_DEL(pc->by_user, e);
    DL_DELETE(pc->lru, e);
    OPENSSL_cleanse(e->mac, sizeof(e->mac));
    OPENSSL_cleanse(e->gen, sizeof(e->gen));
    free(e->user);
    free(e);
}

void c2s_plaincache_clear(c2s_plaincache_t *pc)
{
    if (pc == NULL)
        return;
    pc_entry_t *e, *tmp;
    HASH_ITER(hh, pc->by_user, e, tmp)
    {
        pc_entry_free(pc, e);
    }
}

void c2s_plaincache_free(c2s_plaincache_t **pp)
{
    c2s_plaincache_t *pc = *pp;
    if (pc == NULL)
        return;
    c2s_plaincache_clear(pc);
    OPENSSL_cleanse(pc->secret, sizeof(pc->secret));
    free(pc);
    *pp = NULL;
}

static void pc_mac(const c2s_plaincache_t *pc, const char *user,
                   const char *password, uint8_t out[PC_MAC_LEN])
{
    uint8_t buf[2048];
    size_t ul = strlen(user), pl = strlen(password);
    unsigned len = PC_MAC_LEN;
    if (ul + 1 + pl <= sizeof(buf)) {
        memcpy(buf, user, ul);
        buf[ul] = 0;
        memcpy(buf + ul + 1, password, pl);
        HMAC(EVP_sha256(), pc->secret, sizeof(pc->secret), buf, ul + 1 + pl,
             out, &len);
        OPENSSL_cleanse(buf, ul + 1 + pl);
        return;
    }
    uint8_t *big = kn_malloc(ul + 1 + pl);
    memcpy(big, user, ul);
    big[ul] = 0;
    memcpy(big + ul + 1, password, pl);
    HMAC(EVP_sha256(), pc->secret, sizeof(pc->secret), big, ul + 1 + pl, out,
         &len);
    OPENSSL_cleanse(big, ul + 1 + pl);
    free(big);
}

static void pc_gen(const c2s_plaincache_t *pc, const kn_scram_creds_t *cr,
                   uint8_t out[PC_MAC_LEN])
{
    uint8_t buf[3 + 1 + 4 + KN_SCRAM_MAX_SALT_LEN + 2 * KN_SCRAM_MAX_HASH_LEN];
    size_t n = 0, hl = kn_scram_hash_len(cr->hash);
    memcpy(buf, "gen", 3);
    n = 3;
    buf[n++] = (uint8_t)cr->hash;
    buf[n++] = (uint8_t)(cr->iterations >> 24);
    buf[n++] = (uint8_t)(cr->iterations >> 16);
    buf[n++] = (uint8_t)(cr->iterations >> 8);
    buf[n++] = (uint8_t)cr->iterations;
    size_t sl = cr->salt_len < KN_SCRAM_MAX_SALT_LEN ? cr->salt_len
                                                     : KN_SCRAM_MAX_SALT_LEN;
    memcpy(buf + n, cr->salt, sl);
    n += sl;
    memcpy(buf + n, cr->stored_key, hl);
    n += hl;
    memcpy(buf + n, cr->server_key, hl);
    n += hl;
    unsigned len = PC_MAC_LEN;
    HMAC(EVP_sha256(), pc->secret, sizeof(pc->secret), buf, n, out, &len);
}

bool c2s_plaincache_check(c2s_plaincache_t *pc, const char *user,
                          const char *password, const kn_scram_creds_t *cr)
{
    if (pc == NULL || user == NULL || password == NULL)
        return false;
    pc_entry_t *e = NULL;
    HASH_FIND_STR(pc->by_user, user, e);
    if (e == NULL) {
        pc->misses++;
        return false;
    }
    uint8_t gen[PC_MAC_LEN], mac[PC_MAC_LEN];
    pc_gen(pc, cr, gen);
    if (!c2s_plaincache_ct_equal(gen, e->gen, sizeof(gen))) {
        /* the credentials changed since: the entry is worthless */
        pc_entry_free(pc, e);
        pc->misses++;
        return false;
    }
    pc_mac(pc, user, password, mac);
    bool ok = c2s_plaincache_ct_equal(mac, e->mac, sizeof(mac));
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!ok) {
        pc->misses++;
        return false;
    }
    DL_DELETE(pc->lru, e); /* most recently used: to the tail */
    DL_APPEND(pc->lru, e);
    pc->hits++;
    return true;
}

void c2s_plaincache_put(c2s_plaincache_t *pc, const char *user,
                        const char *password, const kn_scram_creds_t *cr)
{
    if (pc == NULL || pc->max == 0 || user == NULL || password == NULL)
        return;
    pc_entry_t *e = NULL;
    HASH_FIND_STR(pc->by_user, user, e);
    if (e != NULL) {
        DL_DELETE(pc->lru, e);
    } else {
        while (HASH_COUNT(pc->by_user) >= pc->max && pc->lru != NULL) {
            pc_entry_free(pc, pc->lru);
            pc->evictions++;
        }
        e = kn_calloc(1, sizeof(*e));
        e->user = kn_strdup(user);
        HASH_ADD_KEYPTR(hh, pc->by_user, e->user, strlen(e->user), e);
    }
    pc_mac(pc, user, password, e->mac);
    pc_gen(pc, cr, e->gen);
    DL_APPEND(pc->lru, e);
}

void c2s_plaincache_drop(c2s_plaincache_t *pc, const char *user)
{
    if (pc == NULL || user == NULL)
        return;
    pc_entry_t *e = NULL;
    HASH_FIND_STR(pc->by_user, user, e);
    if (e != NULL)
        pc_entry_free(pc, e);
}

size_t c2s_plaincache_count(const c2s_plaincache_t *pc)
{
    return pc != NULL ? HASH_COUNT(pc->by_user) : 0;
}

uint64_t c2s_plaincache_hits(const c2s_plaincache_t *pc)
{
    return pc != NULL ? pc->hits : 0;
}

uint64_t c2s_plaincache_misses(const c2s_plaincache_t *pc)
{
    return pc != NULL ? pc->misses : 0;
}

uint64_t c2s_plaincache_evictions(const c2s_plaincache_t *pc)
{
    return pc != NULL ? pc->evictions : 0;
}
