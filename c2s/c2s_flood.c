/*
 * c2s_flood.c - connection admission under floods (c2s_flood.h).
 *
 * A note on the table. One entry per address seen recently (uthash by
 * the 16-byte key): its connection bucket and its count of
 * unauthenticated connections. An entry with no such connection and a
 * full bucket holds nothing a fresh one would not, so c2s_flood_gc drops
 * it (the idle sweep calls it). The table is bounded: at C2S_FLOOD_MAX
 * addresses a new one first triggers a collection, and if that frees
 * nothing the entries without unauthenticated connections go, buckets
 * and all (an attacker with that many addresses then gets a fresh
 * per-address bucket each; the node-wide bucket and cap still hold).
 */
#include "c2s_flood.h"

#include <netinet/in.h>
#include <string.h>
#include <uthash.h>

#include "c2s_bucket.h"
#include "kn_mem.h"

#define C2S_FLOOD_MAX 100000

typedef struct flood_addr {
    uint8_t key[16];
    c2s_bucket_t bucket;
    size_t unauth;
    UT_hash_handle hh;
} flood_addr_t;

struct c2s_flood {
    const c2s_flood_conf_t *cf;
    flood_addr_t *addrs;
    c2s_bucket_t bucket; /* the node's */
    size_t unauth;
};

c2s_flood_t *c2s_flood_new(const c2s_flood_conf_t *cf, double now)
{
    c2s_flood_t *f = kn_calloc(1, sizeof(*f));
    f->cf = cf;
    c2s_bucket_init(&f->bucket, cf->global_burst, now);
    return f;
}

void c2s_flood_free(c2s_flood_t **fp)
{
    c2s_flood_t *f = *fp;
    if (f == NULL)
        return;
    flood_addr_t *a, *tmp;
    HASH_ITER(hh, f->addrs, a, tmp)
    {
        HASH_DEL(f->addrs, a);
        free(a);
    }
    free(f);
    *fp = NULL;
}

void c2s_flood_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        memcpy(key, &in6->sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            memset(key + 8, 0, 8); /* one /64 is one client */
    }
}

static flood_addr_t *flood_find(const c2s_flood_t *f, const uint8_t key[16])
{
    flood_addr_t *a = NULL;
    HASH_FIND(hh, f->addrs, key, 16, a);
    return a;
}

static void flood_make_room(c2s_flood_t *f, double now)
{
    if (HASH_COUNT(f->addrs) < C2S_FLOOD_MAX)
        return;
    if (c2s_flood_gc(f, now) < C2S_FLOOD_MAX)
        return;
    flood_addr_t *a, *tmp;
    HASH_ITER(hh, f->addrs, a, tmp)
    {
        if (a->unauth == 0) {
            HASH_DEL(f->addrs, a);
            free(a);
        }
    }
}

static flood_addr_t *flood_get(c2s_flood_t *f, const uint8_t key[16],
                               double now)
{
    flood_addr_t *a = flood_find(f, key);
    if (a != NULL)
        return a;
    flood_make_room(f, now);
    a = kn_calloc(1, sizeof(*a));
    memcpy(a->key, key, 16);
    c2s_bucket_init(&a->bucket, f->cf->addr_burst, now);
    HASH_ADD(hh, f->addrs, key, 16, a);
    return a;
}

c2s_flood_verdict_t c2s_flood_admit(c2s_flood_t *f, const uint8_t key[16],
                                    double now)
{
    const c2s_flood_conf_t *cf = f->cf;
    flood_addr_t *a = flood_find(f, key);
    if (cf->addr_unauth > 0 && a != NULL && a->unauth >= cf->addr_unauth)
        return C2S_FLOOD_ADDR_UNAUTH;
    if (cf->global_unauth > 0 && f->unauth >= cf->global_unauth)
        return C2S_FLOOD_GLOBAL_UNAUTH;
    if (cf->addr_rate > 0) {
        if (a == NULL)
            a = flood_get(f, key, now);
        if (!c2s_bucket_admit(&a->bucket, cf->addr_rate, cf->addr_burst, now))
            return C2S_FLOOD_ADDR_RATE;
    }
    if (cf->global_rate > 0 &&
        !c2s_bucket_admit(&f->bucket, cf->global_rate, cf->global_burst, now))
        return C2S_FLOOD_GLOBAL_RATE;
    return C2S_FLOOD_OK;
}

void c2s_flood_unauth_add(c2s_flood_t *f, const uint8_t key[16])
{
    /* A new entry's bucket starts full whatever its time: it has given
     * no token (an upgraded WebSocket, a BOSH session). */
    flood_addr_t *a = flood_get(f, key, 0);
    a->unauth++;
    f->unauth++;
}

void c2s_flood_unauth_done(c2s_flood_t *f, const uint8_t key[16])
{
    flood_addr_t *a = flood_find(f, key);
    if (a != NULL && a->unauth > 0)
        a->unauth--;
    if (f->unauth > 0)
        f->unauth--;
}

size_t c2s_flood_unauth(const c2s_flood_t *f, const uint8_t key[16])
{
    const flood_addr_t *a = flood_find(f, key);
    return a != NULL ? a->unauth : 0;
}

size_t c2s_flood_unauth_total(const c2s_flood_t *f)
{
    return f->unauth;
}

size_t c2s_flood_gc(c2s_flood_t *f, double now)
{
    const c2s_flood_conf_t *cf = f->cf;
    flood_addr_t *a, *tmp;
    HASH_ITER(hh, f->addrs, a, tmp)
    {
        if (a->unauth == 0 && c2s_bucket_is_full(&a->bucket, cf->addr_rate,
                                                 cf->addr_burst, now)) {
            HASH_DEL(f->addrs, a);
            free(a);
        }
    }
    return HASH_COUNT(f->addrs);
}

const char *c2s_flood_verdict_name(c2s_flood_verdict_t v)
{
    static const char *const names[C2S_FLOOD_COUNT_] = {
        "admitted",
        "too many unauthenticated connections from the address",
        "too many unauthenticated connections on the node",
        "per-address connection rate exceeded",
        "node connection rate exceeded",
    };
    return (unsigned)v < C2S_FLOOD_COUNT_ ? names[v] : "?";
}
