/*
 * c2s_creds.c - credentials for a login: Redis, then PostgreSQL
 * (c2s_creds.h, kn_credcache.h).
 *
 * The cached value is the row's eight text values as PostgreSQL returns
 * them, space separated, after a format version:
 *   "1 ITER SALT1 STORED1 SERVER1 SALT256 STORED256 SERVER256 t|f"
 */
#include "c2s_creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_plaincache.h"
#include "c2s_server.h"
#include "kn_credcache.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_metrics.h"
#include "kn_mem.h"

#define CREDS_FIELDS 8

/* Where logins' credentials came from (kiln_c2s_creds_lookups_total). */
static uint64_t creds_from_redis, creds_from_postgres;

typedef struct creds_job {
    c2s_server_t *srv;
    char *user;
    c2s_creds_cb cb;
    void *arg;
    bool fill; /* Redis said "no such key": fill it after PostgreSQL */
} creds_job_t;

static const char creds_sql[] =
    "select iterations, encode(sha1_salt, 'hex'),"
    " encode(sha1_stored_key, 'hex'), encode(sha1_server_key, 'hex'),"
    " encode(sha256_salt, 'hex'), encode(sha256_stored_key, 'hex'),"
    " encode(sha256_server_key, 'hex'), disabled"
    " from users where username = $1";

static int creds_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0 || n / 2 > cap)
        return -KN_EDB;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -KN_EDB;
        out[i] = (uint8_t)v;
    }
    *len = n / 2;
    return 0;
}

int c2s_creds_parse(const char *const v[8], c2s_creds_t *cr)
{
    memset(cr, 0, sizeof(*cr));
    char *end = NULL;
    long it = strtol(v[0], &end, 10);
    if (end == v[0] || *end != '\0' || it < KN_SCRAM_MIN_ITERATIONS ||
        it > KN_SCRAM_MAX_ITERATIONS)
        return -KN_EDB;
    kn_scram_creds_t *k[2] = {&cr->sha1, &cr->sha256};
    for (int h = 0; h < 2; h++) {
        size_t hl = h == 0 ? 20 : 32, l1 = 0, l2 = 0;
        k[h]->hash = h == 0 ? KN_SCRAM_SHA1 : KN_SCRAM_SHA256;
        k[h]->iterations = (unsigned)it;
        if (creds_hex(v[1 + 3 * h], k[h]->salt, sizeof(k[h]->salt),
                      &k[h]->salt_len) < 0 ||
            k[h]->salt_len == 0 ||
            creds_hex(v[2 + 3 * h], k[h]->stored_key, hl, &l1) < 0 ||
            creds_hex(v[3 + 3 * h], k[h]->server_key, hl, &l2) < 0 ||
            l1 != hl || l2 != hl)
            return -KN_EDB;
    }
    if (strcmp(v[7], "t") == 0)
        return -KN_EAUTH; /* kilnctl user disable */
    if (strcmp(v[7], "f") != 0)
        return -KN_EDB;
    return 0;
}

static void creds_key(const char *user, kn_buf_t *key)
{
    kn_buf_printf(key, KN_CREDCACHE_PREFIX "%s", user);
}

/* Answer the job and free it. A missing or disabled account loses its
 * PLAIN cache entry here too. */
static void creds_finish(creds_job_t *j, int rc, const c2s_creds_t *cr)
{
    if (rc == -KN_ENOENT || rc == -KN_EAUTH)
        c2s_plaincache_drop(j->srv->scf.plaincache, j->user);
    j->cb(rc, rc == 0 ? cr : NULL, j->arg);
    free(j->user);
    free(j);
}

static void creds_on_row(const PGresult *res, int err, void *arg)
{
    creds_job_t *j = arg;
    c2s_creds_t cr;
    int rc = err;
    if (err != 0) {
        kn_log_warn("c2s: credentials query failed: %s%s", kn_strerror(err),
                    res ? PQresultErrorMessage(res) : "");
    } else if (PQntuples(res) != 1 || PQnfields(res) != CREDS_FIELDS) {
        rc = -KN_ENOENT;
    } else {
        const char *v[CREDS_FIELDS];
        for (int i = 0; i < CREDS_FIELDS; i++)
            v[i] = PQgetvalue(res, 0, i);
        rc = c2s_creds_parse(v, &cr);
        kn_redis_t *r = j->srv->creds_redis;
        if (j->fill && (rc == 0 || rc == -KN_EAUTH) && r != NULL &&
            kn_redis_is_connected(r)) {
            kn_buf_t key = KN_BUF_INIT, val = KN_BUF_INIT;
            creds_key(j->user, &key);
            kn_buf_append_str(&val, KN_CREDCACHE_VERSION);
            for (int i = 0; i < CREDS_FIELDS; i++)
                kn_buf_printf(&val, " %s", v[i]);
            char ttl[24];
            snprintf(ttl, sizeof(ttl), "%lld", j->srv->conf->creds_cache_ttl);
            const char *argv[6] = {"SET", key.data, val.data, "NX", "EX", ttl};
            kn_redis_command_argv(r, NULL, NULL, 6, argv, NULL);
            explicit_bzero(val.data, val.len);
            kn_buf_free(&val);
            kn_buf_free(&key);
        }
    }
    creds_finish(j, rc, &cr);
    explicit_bzero(&cr, sizeof(cr));
}

static void creds_from_pg(creds_job_t *j)
{
    creds_from_postgres++;
    const char *params[1] = {j->user};
    kn_pg_query(j->srv->pg, creds_sql, 1, params, creds_on_row, j);
}

/* A cached value to credentials: 0, -KN_EAUTH, or -KN_EDB (malformed:
 * read PostgreSQL instead). */
static int creds_from_value(const char *s, size_t len, c2s_creds_t *cr)
{
    char buf[1024];
    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
        return -KN_EDB;
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *v[CREDS_FIELDS + 1];
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        if (n == CREDS_FIELDS + 1) {
            n++;
            break;
        }
        v[n++] = t;
    }
    int rc = -KN_EDB;
    if (n == CREDS_FIELDS + 1 && strcmp(v[0], KN_CREDCACHE_VERSION) == 0)
        rc = c2s_creds_parse(v + 1, cr);
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

static void creds_on_get(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    creds_job_t *j = arg;
    if (j->srv->stopping) {
        creds_finish(j, -KN_ECLOSED, NULL);
        return;
    }
    if (err == 0 && reply->type == REDIS_REPLY_NIL) {
        j->fill = true; /* not cached, no tombstone */
    } else if (err == 0 && reply->type == REDIS_REPLY_STRING &&
               strcmp(reply->str, KN_CREDCACHE_TOMBSTONE) != 0) {
        c2s_creds_t cr;
        int rc = creds_from_value(reply->str, reply->len, &cr);
        if (rc == 0 || rc == -KN_EAUTH) {
            creds_from_redis++;
            creds_finish(j, rc, &cr);
            explicit_bzero(&cr, sizeof(cr));
            return;
        }
        kn_log_warn("c2s: cached credentials of %s malformed; reading "
                    "PostgreSQL",
                    j->user);
    }
    creds_from_pg(j);
}

void c2s_creds_lookup(c2s_server_t *srv, const char *user, c2s_creds_cb cb,
                      void *arg)
{
    creds_job_t *j = kn_calloc(1, sizeof(*j));
    j->srv = srv;
    j->user = kn_strdup(user);
    j->cb = cb;
    j->arg = arg;
    kn_redis_t *r = srv->creds_redis;
    if (r == NULL || !kn_redis_is_connected(r)) {
        creds_from_pg(j);
        return;
    }
    kn_buf_t key = KN_BUF_INIT;
    creds_key(user, &key);
    const char *argv[2] = {"GET", key.data};
    kn_redis_command_argv(r, creds_on_get, j, 2, argv, NULL);
    kn_buf_free(&key);
}

/* ---- invalidation ------------------------------------------------------ */

static void creds_on_changed(kn_redis_t *r, const char *msg, size_t len,
                             void *arg)
{
    (void)r;
    (void)len;
    c2s_server_t *srv = arg;
    c2s_plaincache_drop(srv->scf.plaincache, msg);
    kn_log_debug("c2s: credentials of %s changed: dropped from the cache", msg);
}

static void creds_on_sub_state(kn_redis_t *r, int connected, void *arg)
{
    (void)r;
    c2s_server_t *srv = arg;
    /* Messages may have been missed while we were not subscribed. */
    if (connected)
        c2s_plaincache_clear(srv->scf.plaincache);
}

static double creds_pc_entries(void *arg)
{
    c2s_server_t *srv = arg;
    return (double)c2s_plaincache_count(srv->scf.plaincache);
}

static double creds_pc_hits(void *arg)
{
    c2s_server_t *srv = arg;
    return (double)c2s_plaincache_hits(srv->scf.plaincache);
}

static double creds_pc_misses(void *arg)
{
    c2s_server_t *srv = arg;
    return (double)c2s_plaincache_misses(srv->scf.plaincache);
}

static double creds_pc_evictions(void *arg)
{
    c2s_server_t *srv = arg;
    return (double)c2s_plaincache_evictions(srv->scf.plaincache);
}

static void creds_metrics(c2s_server_t *srv)
{
    static const char lk[] = "kiln_c2s_creds_lookups_total";
    static const char lkh[] = "where logins' credentials came from";
    kn_metric_ptr(KN_METRIC_COUNTER, lk, lkh, "source=\"redis\"",
                  &creds_from_redis);
    kn_metric_ptr(KN_METRIC_COUNTER, lk, lkh, "source=\"postgres\"",
                  &creds_from_postgres);
    static const char pl[] = "kiln_c2s_plain_cache_lookups_total";
    static const char plh[] =
        "SASL PLAIN logins checked against the cache of verified passwords";
    kn_metric_fn(KN_METRIC_COUNTER, pl, plh, "result=\"hit\"", creds_pc_hits,
                 srv);
    kn_metric_fn(KN_METRIC_COUNTER, pl, plh, "result=\"miss\"", creds_pc_misses,
                 srv);
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_c2s_plain_cache_entries",
                 "users whose verified PLAIN password is cached", "",
                 creds_pc_entries, srv);
    kn_metric_fn(KN_METRIC_COUNTER, "kiln_c2s_plain_cache_evictions_total",
                 "cached PLAIN passwords evicted for room", "",
                 creds_pc_evictions, srv);
}

int c2s_creds_start(c2s_server_t *srv)
{
    creds_metrics(srv);
    const c2s_conf_t *conf = srv->conf;
    if (conf->plain_cache_size > 0) {
        srv->scf.plaincache =
            c2s_plaincache_new((size_t)conf->plain_cache_size);
        if (srv->scf.plaincache == NULL) {
            kn_log_err("c2s: no random bytes for the PLAIN cache");
            return -KN_EINVAL;
        }
    }
    const char *addr = srv->cc->redis_address;
    if (addr == NULL || *addr == '\0')
        return 0;
    kn_redis_config_t rc = {0};
    rc.addr = addr;
    if (conf->creds_cache_ttl > 0 &&
        kn_redis_new(srv->loop, &rc, NULL, NULL, &srv->creds_redis) < 0) {
        kn_log_err("c2s: bad redis.address %s", addr);
        return -KN_EINVAL;
    }
    if (srv->scf.plaincache != NULL) {
        if (kn_redis_new(srv->loop, &rc, creds_on_sub_state, srv,
                         &srv->creds_sub) < 0) {
            kn_log_err("c2s: bad redis.address %s", addr);
            return -KN_EINVAL;
        }
        kn_redis_subscribe(srv->creds_sub, KN_CREDCACHE_CHANNEL,
                           creds_on_changed, srv);
    }
    return 0;
}

void c2s_creds_stop(c2s_server_t *srv)
{
    kn_redis_free(&srv->creds_sub);
    kn_redis_free(&srv->creds_redis);
    c2s_plaincache_free(&srv->scf.plaincache);
}
