/*
 * c2s_lockout.c - SASL lock-out and the cluster-wide session count.
 *
 * Password guessing meets three defences, cheapest first: the per-address
 * failure delay (c2s_authdelay.c, one node), this lock-out (the cluster),
 * and the operator's fail2ban reading our log lines (docs/SECURITY.md).
 *
 * Lock-out: auth_lockout_user_failures counted SASL failures of one
 * account, or auth_lockout_addr_failures from one address (IPv4, IPv6
 * /64), within auth_lockout_window seconds lock that account or address
 * for a whole window from the failure that reached the threshold. A
 * locked attempt gets <temporary-auth-failure/> with a text before any
 * password is looked at, and does not count (else a lock-out never ends).
 * A successful login forgets the account's count, not the address's.
 *
 * The counts live in Redis so that guessing spread over c2s nodes adds
 * up:
 *   authfail:user:<bare JID>   string  count, EX = the window
 *   authfail:addr:<address>    string  count, EX = the window
 * A failure runs SET k 0 EX w NX, then INCR k (INCR keeps the TTL); the
 * INCR that reaches the threshold (or passes it) runs EXPIRE k w. A check
 * reads GET and PTTL of both keys. Each node also keeps the same windows
 * in memory (c2s_lock_table_*): while Redis is unreachable the lock-out
 * still works, per node; when it is reachable the larger answer wins.
 *
 * Trade-off (documented for operators): the per-account lock-out lets
 * anyone lock a known account out for a window at a time with a few
 * wrong passwords. It is bounded by the window and can be switched off
 * (auth_lockout_user_failures = 0), leaving the per-address lock-out and
 * fail2ban.
 *
 * Session count: HKEYS sessions:<bare> of the router's table
 * (router_redis.c), minus the full JID being bound (a rebind of the same
 * resource replaces the old session: R-DROP-7).
 */
#include "c2s_lockout.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <uthash.h>

#include "c2s_server.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_redis.h"

/* ---- the table ------------------------------------------------------------
 */

struct c2s_lock_entry {
    char *key;
    unsigned count;
    double until; /* the window closes */
    UT_hash_handle hh;
};

static c2s_lock_entry_t *lock_find(const c2s_lock_table_t *t, const char *key)
{
    c2s_lock_entry_t *e = NULL;
    HASH_FIND_STR(t->h, key, e);
    return e;
}

static void lock_entry_del(c2s_lock_table_t *t, c2s_lock_entry_t *e)
{
    HASH_DEL(t->h, e);
    free(e->key);
    free(e);
}

/* Make room: drop closed windows; if none closed, everything (at worst an
 * attacker with that many subjects gets its counts reset). */
static void lock_table_trim(c2s_lock_table_t *t, double now)
{
    c2s_lock_entry_t *e, *tmp;
    HASH_ITER(hh, t->h, e, tmp)
    {
        if (now >= e->until)
            lock_entry_del(t, e);
    }
    if (HASH_COUNT(t->h) >= C2S_LOCK_TABLE_MAX)
        c2s_lock_table_free(t);
}

unsigned c2s_lock_table_fail(c2s_lock_table_t *t, const char *key, double now,
                             unsigned max, double window)
{
    c2s_lock_entry_t *e = lock_find(t, key);
    if (e == NULL) {
        if (HASH_COUNT(t->h) >= C2S_LOCK_TABLE_MAX)
            lock_table_trim(t, now);
        e = kn_calloc(1, sizeof(*e));
        e->key = kn_strdup(key);
        HASH_ADD_KEYPTR(hh, t->h, e->key, strlen(e->key), e);
    }
    if (now >= e->until) {
        e->count = 0;
        e->until = now + window;
    }
    if (e->count < UINT32_MAX)
        e->count++;
    if (max > 0 && e->count >= max)
        e->until = now + window;
    return e->count;
}

unsigned c2s_lock_table_remaining(const c2s_lock_table_t *t, const char *key,
                                  double now, unsigned max)
{
    const c2s_lock_entry_t *e = lock_find(t, key);
    if (max == 0 || e == NULL || e->count < max || now >= e->until)
        return 0;
    return (unsigned)ceil(e->until - now);
}

void c2s_lock_table_clear(c2s_lock_table_t *t, const char *key)
{
    c2s_lock_entry_t *e = lock_find(t, key);
    if (e != NULL)
        lock_entry_del(t, e);
}

size_t c2s_lock_table_count(const c2s_lock_table_t *t)
{
    return HASH_COUNT(t->h);
}

void c2s_lock_table_free(c2s_lock_table_t *t)
{
    c2s_lock_entry_t *e, *tmp;
    HASH_ITER(hh, t->h, e, tmp)
    {
        lock_entry_del(t, e);
    }
}

void c2s_lockout_addr_text(const uint8_t key[16], char *out, size_t cap)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    char buf[INET6_ADDRSTRLEN];
    const char *r;
    if (memcmp(key, mapped, 12) == 0)
        r = inet_ntop(AF_INET, key + 12, buf, sizeof(buf));
    else
        r = inet_ntop(AF_INET6, key, buf, sizeof(buf));
    snprintf(out, cap, "%s", r != NULL ? r : "?");
}

/* ---- log lines (docs/SECURITY.md: one fixed format for fail2ban) -------
 */

/* user@domain with anything that could break a log line or the filter's
 * fields (space, control bytes, '=') as '?'; "-" for no user. */
static void lockout_user_text(const c2s_server_t *srv, const char *user,
                              char *out, size_t cap)
{
    if (user == NULL || *user == '\0') {
        snprintf(out, cap, "-");
        return;
    }
    snprintf(out, cap, "%s@%s", user, srv->scf.domain);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '=')
            *p = '?';
}

/* ---- server state -------------------------------------------------------
 */

int c2s_lockout_init(c2s_server_t *srv)
{
    kn_redis_config_t rc = {0};
    rc.addr = srv->cc->redis_address;
    if (kn_redis_new(srv->loop, &rc, NULL, NULL, &srv->redis) < 0) {
        kn_log_err("c2s: bad redis.address '%s'", rc.addr ? rc.addr : "");
        return -KN_EINVAL;
    }
    return 0;
}

void c2s_lockout_free(c2s_server_t *srv)
{
    kn_redis_free(&srv->redis);
    c2s_lock_table_free(&srv->lock_users);
    c2s_lock_table_free(&srv->lock_addrs);
}

static unsigned lockout_window(const c2s_server_t *srv)
{
    return (unsigned)srv->conf->auth_lockout_window;
}

/* ---- a failure ------------------------------------------------------------
 */

typedef struct lock_fail_req {
    c2s_server_t *srv;
    bool account; /* else the address */
    char user[KN_JID_MAX];
    char addr[INET6_ADDRSTRLEN];
    char key[KN_JID_MAX + 32];
} lock_fail_req_t;

static void lockout_log_lock(const char *user, const char *addr, bool account,
                             unsigned failures, unsigned window)
{
    kn_log_warn("auth lockout user=%s addr=%s scope=%s failures=%u "
                "window=%us",
                user, addr, account ? "account" : "address", failures, window);
}

static void lockout_on_incr(kn_redis_t *r, redisReply *reply, int err,
                            void *arg)
{
    lock_fail_req_t *q = arg;
    c2s_server_t *srv = q->srv;
    if (err == 0 && reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        unsigned max =
            (unsigned)(q->account ? srv->conf->auth_lockout_user_failures
                                  : srv->conf->auth_lockout_addr_failures);
        if (max > 0 && reply->integer >= (long long)max) {
            kn_redis_command(r, NULL, NULL, "EXPIRE %s %u", q->key,
                             lockout_window(srv));
            if (reply->integer == (long long)max)
                lockout_log_lock(q->user, q->addr, q->account, max,
                                 lockout_window(srv));
        }
    } else if (err != -KN_ECLOSED) {
        kn_log_warn("c2s: lock-out counter %s not updated (%d)", q->key, err);
    }
    free(q);
}

/* Count one failure of a subject in the local table and in Redis. */
static void lockout_count(c2s_server_t *srv, bool account, const char *subject,
                          const char *user, const char *addr)
{
    unsigned max = (unsigned)(account ? srv->conf->auth_lockout_user_failures
                                      : srv->conf->auth_lockout_addr_failures);
    unsigned w = lockout_window(srv);
    if (max == 0)
        return;
    c2s_lock_table_t *t = account ? &srv->lock_users : &srv->lock_addrs;
    unsigned n = c2s_lock_table_fail(t, subject, ev_now(srv->loop), max, w);
    if (!kn_redis_is_connected(srv->redis)) {
        if (n == max)
            lockout_log_lock(user, addr, account, max, w);
        return;
    }
    lock_fail_req_t *q = kn_calloc(1, sizeof(*q));
    q->srv = srv;
    q->account = account;
    snprintf(q->user, sizeof(q->user), "%s", user);
    snprintf(q->addr, sizeof(q->addr), "%s", addr);
    snprintf(q->key, sizeof(q->key), "authfail:%s:%s",
             account ? "user" : "addr", subject);
    kn_redis_command(srv->redis, NULL, NULL, "SET %s 0 EX %u NX", q->key, w);
    kn_redis_command(srv->redis, lockout_on_incr, q, "INCR %s", q->key);
}

void c2s_lockout_failed(c2s_server_t *srv, const uint8_t addr[16],
                        const char *user, const char *mech)
{
    char u[KN_JID_MAX], a[INET6_ADDRSTRLEN];
    lockout_user_text(srv, user, u, sizeof(u));
    c2s_lockout_addr_text(addr, a, sizeof(a));
    kn_log_warn("auth failure user=%s addr=%s mech=%s", u, a,
                mech != NULL ? mech : "-");
    if (srv->conf->auth_lockout_window <= 0)
        return;
    if (user != NULL && *user != '\0')
        lockout_count(srv, true, u, u, a);
    lockout_count(srv, false, a, u, a);
}

void c2s_lockout_ok(c2s_server_t *srv, const char *user)
{
    if (srv->conf->auth_lockout_window <= 0 || user == NULL)
        return;
    char u[KN_JID_MAX];
    lockout_user_text(srv, user, u, sizeof(u));
    c2s_lock_table_clear(&srv->lock_users, u);
    if (kn_redis_is_connected(srv->redis))
        kn_redis_command(srv->redis, NULL, NULL, "DEL authfail:user:%s", u);
}

/* ---- a check --------------------------------------------------------------
 */

typedef struct lock_check_req {
    c2s_server_t *srv;
    c2s_lockout_cb cb;
    void *arg;
    unsigned pending;
    unsigned remaining; /* the largest answer so far, seconds */
    long long count[2]; /* [0] account, [1] address; -1: unknown */
    char user[KN_JID_MAX];
    char addr[INET6_ADDRSTRLEN];
    char mech[32];
} lock_check_req_t;

/* Which reply a callback gets: subject 0/1, GET or PTTL. */
typedef struct lock_check_part {
    lock_check_req_t *q;
    unsigned subject;
    bool ttl;
} lock_check_part_t;

static void lockout_check_end(lock_check_req_t *q)
{
    if (q->remaining > 0)
        kn_log_warn("auth locked user=%s addr=%s mech=%s remaining=%us",
                    q->user, q->addr, q->mech, q->remaining);
    q->cb(q->remaining, q->arg);
    free(q);
}

static void lockout_on_part(kn_redis_t *r, redisReply *reply, int err,
                            void *arg)
{
    (void)r;
    lock_check_part_t *part = arg;
    lock_check_req_t *q = part->q;
    c2s_server_t *srv = q->srv;
    unsigned s = part->subject;
    if (err == 0 && reply != NULL) {
        if (!part->ttl) {
            q->count[s] = reply->type == REDIS_REPLY_STRING
                              ? strtoll(reply->str, NULL, 10)
                              : 0;
        } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
            long long max = s == 0 ? srv->conf->auth_lockout_user_failures
                                   : srv->conf->auth_lockout_addr_failures;
            /* GET was answered first on the same connection. */
            if (max > 0 && q->count[s] >= max) {
                unsigned rem = (unsigned)((reply->integer + 999) / 1000);
                if (rem > q->remaining)
                    q->remaining = rem;
            }
        }
    }
    free(part);
    if (--q->pending == 0)
        lockout_check_end(q);
}

static void lockout_ask(lock_check_req_t *q, unsigned subject, const char *key)
{
    for (int ttl = 0; ttl < 2; ttl++) {
        lock_check_part_t *part = kn_malloc(sizeof(*part));
        part->q = q;
        part->subject = subject;
        part->ttl = ttl != 0;
        q->pending++;
        kn_redis_command(q->srv->redis, lockout_on_part, part,
                         ttl ? "PTTL %s" : "GET %s", key);
    }
}

static void lockout_on_ping(kn_redis_t *r, redisReply *reply, int err,
                            void *arg)
{
    (void)r;
    (void)reply;
    (void)err;
    lock_check_req_t *q = arg;
    if (--q->pending == 0)
        lockout_check_end(q);
}

void c2s_lockout_check(c2s_server_t *srv, const uint8_t addr[16],
                       const char *user, const char *mech, c2s_lockout_cb cb,
                       void *arg)
{
    lock_check_req_t *q = kn_calloc(1, sizeof(*q));
    q->srv = srv;
    q->cb = cb;
    q->arg = arg;
    q->count[0] = q->count[1] = -1;
    lockout_user_text(srv, user, q->user, sizeof(q->user));
    c2s_lockout_addr_text(addr, q->addr, sizeof(q->addr));
    snprintf(q->mech, sizeof(q->mech), "%s", mech != NULL ? mech : "-");
    double now = ev_now(srv->loop);
    bool by_user = user != NULL && *user != '\0' &&
                   srv->conf->auth_lockout_user_failures > 0;
    bool by_addr = srv->conf->auth_lockout_addr_failures > 0;
    unsigned lu = by_user ? c2s_lock_table_remaining(
                                &srv->lock_users, q->user, now,
                                (unsigned)srv->conf->auth_lockout_user_failures)
                          : 0;
    unsigned la = by_addr ? c2s_lock_table_remaining(
                                &srv->lock_addrs, q->addr, now,
                                (unsigned)srv->conf->auth_lockout_addr_failures)
                          : 0;
    q->remaining = lu > la ? lu : la;
    char key[KN_JID_MAX + 32];
    if (by_user) {
        snprintf(key, sizeof(key), "authfail:user:%s", q->user);
        lockout_ask(q, 0, key);
    }
    if (by_addr) {
        snprintf(key, sizeof(key), "authfail:addr:%s", q->addr);
        lockout_ask(q, 1, key);
    }
    if (q->pending == 0) {
        /* Nothing to ask: still answer from the loop (kn_redis calls back
         * on the next iteration even when disconnected). */
        q->pending = 1;
        kn_redis_command(srv->redis, lockout_on_ping, q, "PING");
    }
}

/* ---- the session count ----------------------------------------------------
 */

typedef struct sess_count_req {
    c2s_sessions_cb cb;
    void *arg;
    char full[KN_JID_MAX];
} sess_count_req_t;

static void sessions_on_keys(kn_redis_t *r, redisReply *reply, int err,
                             void *arg)
{
    (void)r;
    sess_count_req_t *q = arg;
    long n = -1;
    if (err == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        n = 0;
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            if (e->type == REDIS_REPLY_STRING && strcmp(e->str, q->full) != 0)
                n++;
        }
    } else if (err != -KN_ECLOSED) {
        kn_log_warn("c2s: session count not available (%d): bind allowed", err);
    }
    q->cb(n, q->arg);
    free(q);
}

void c2s_sessions_count(c2s_server_t *srv, const char *bare, const char *full,
                        c2s_sessions_cb cb, void *arg)
{
    sess_count_req_t *q = kn_calloc(1, sizeof(*q));
    q->cb = cb;
    q->arg = arg;
    snprintf(q->full, sizeof(q->full), "%s", full);
    kn_redis_command(srv->redis, sessions_on_keys, q, "HKEYS sessions:%s",
                     bare);
}
