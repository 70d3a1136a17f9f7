/*
 * c2s_authdelay.c - slowing down password guessing: each SASL failure
 * from one address (IPv4 address, IPv6 /64) holds its <failure/> back
 * for auth_fail_delay_ms, doubling per failure up to
 * auth_fail_delay_max_ms. The delay is an ev_timer on the connection
 * (c2s_conn.c); the loop never blocks. A success from the address, or
 * ten minutes without a failure, forgets the count.
 *
 * The same per-address table shape counts in-band registrations
 * (XEP-0077) per hour (c2s_authdelay_register).
 *
 * The table is bounded: past C2S_FAIL_MAX addresses it is emptied, which
 * at worst gives an attacker with that many addresses one fast guess per
 * address.
 */
#include <string.h>
#include <uthash.h>

#include "c2s_server.h"
#include "kn_mem.h"

#define C2S_FAIL_MAX    100000
#define C2S_FAIL_FORGET 600.0 /* seconds */

static void authdelay_table_free(c2s_addr_fail_t **t);

struct c2s_addr_fail {
    uint8_t key[16];
    unsigned failures;
    double last;
    UT_hash_handle hh;
};

unsigned c2s_authdelay_fail(c2s_server_t *srv, const uint8_t key[16])
{
    const c2s_conf_t *cf = srv->conf;
    if (cf->auth_fail_delay_ms <= 0)
        return 0;
    double now = ev_now(srv->loop);
    c2s_addr_fail_t *f = NULL;
    HASH_FIND(hh, srv->fails, key, 16, f);
    if (f == NULL) {
        if (HASH_COUNT(srv->fails) >= C2S_FAIL_MAX)
            authdelay_table_free(&srv->fails);
        f = kn_calloc(1, sizeof(*f));
        memcpy(f->key, key, 16);
        HASH_ADD(hh, srv->fails, key, 16, f);
    } else if (now - f->last > C2S_FAIL_FORGET) {
        f->failures = 0;
    }
    f->last = now;
    if (f->failures < 32)
        f->failures++;
    long long ms = cf->auth_fail_delay_ms;
    for (unsigned i = 1; i < f->failures && ms < cf->auth_fail_delay_max_ms;
         i++)
        ms *= 2;
    if (ms > cf->auth_fail_delay_max_ms)
        ms = cf->auth_fail_delay_max_ms;
    return (unsigned)ms;
}

void c2s_authdelay_ok(c2s_server_t *srv, const uint8_t key[16])
{
    c2s_addr_fail_t *f = NULL;
    HASH_FIND(hh, srv->fails, key, 16, f);
    if (f != NULL) {
        HASH_DEL(srv->fails, f);
        free(f);
    }
}

static void authdelay_table_free(c2s_addr_fail_t **t)
{
    c2s_addr_fail_t *f, *tmp;
    HASH_ITER(hh, *t, f, tmp)
    {
        HASH_DEL(*t, f);
        free(f);
    }
}

void c2s_authdelay_free(c2s_server_t *srv)
{
    authdelay_table_free(&srv->fails);
    authdelay_table_free(&srv->regs);
}

/* Registrations reuse the record: failures counts accounts created since
 * last, the start of the address's current hour. Bounded like fails. */
bool c2s_authdelay_register(c2s_server_t *srv, const uint8_t key[16])
{
    double now = ev_now(srv->loop);
    c2s_addr_fail_t *f = NULL;
    HASH_FIND(hh, srv->regs, key, 16, f);
    if (f == NULL) {
        if (HASH_COUNT(srv->regs) >= C2S_FAIL_MAX)
            authdelay_table_free(&srv->regs);
        f = kn_calloc(1, sizeof(*f));
        memcpy(f->key, key, 16);
        f->last = now;
        HASH_ADD(hh, srv->regs, key, 16, f);
    } else if (now - f->last >= 3600.0) {
        f->failures = 0;
        f->last = now;
    }
    if ((long long)f->failures >= srv->conf->registration_per_hour)
        return false;
    f->failures++;
    return true;
}
