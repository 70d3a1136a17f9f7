/*
 * pres_sess.c - presenced's copy of the session table.
 *
 * A note on the table. p->sessions maps a full JID to its pres_sess_t;
 * each session is in the list of its pres_user_t (p->users, keyed by
 * bare JID). Sessions come and go with the router's SESSION_UP/DOWN
 * copies; `avail` is set when we processed the resource's available
 * presence and cleared when we processed (or synthesized) its
 * unavailable one, so the "already broadcast unavailable" test on
 * SESSION_DOWN is simply !avail. A session's available presence is
 * written to Redis (pres:<bare>, field = resource, value
 * "prio|show|node|xml", R-PRES-1) and its directed-presence recipients
 * to dirpres:<full> (R-PRES-7); both are deleted with it.
 *
 * Restart: pres_sess_restore() walks sessions:* (written by the router)
 * and pres:* (ours) so a restarted presenced knows who is online and
 * their presence without any round trip to a c2s node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_credcache.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"

pres_user_t *pres_user_find(pres_t *p, const char *bare)
{
    pres_user_t *u = NULL;
    HASH_FIND_STR(p->users, bare, u);
    return u;
}

pres_user_t *pres_user_get(pres_t *p, const char *bare)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL) {
        u = kn_calloc(1, sizeof(*u));
        u->bare = kn_strdup(bare);
        HASH_ADD_KEYPTR(hh, p->users, u->bare, strlen(u->bare), u);
    }
    return u;
}

void pres_user_maybe_free(pres_t *p, pres_user_t *u)
{
    if (u == NULL || u->sessions != NULL || u->loading || u->waiters != NULL ||
        u->block_state == PRES_BLOCK_LOADING || u->block_busy ||
        u->bc_parked != NULL)
        return;
    HASH_DEL(p->users, u);
    pres_roster_free(&u->roster);
    pres_block_user_free(u);
    free(u->photo);
    free(u->bare);
    free(u);
}

pres_sess_t *pres_sess_find(pres_t *p, const char *full)
{
    pres_sess_t *s = NULL;
    HASH_FIND_STR(p->sessions, full, s);
    return s;
}

size_t pres_user_navail(const pres_user_t *u)
{
    size_t n = 0;
    for (const pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->avail)
            n++;
    return n;
}

static pres_sess_t *sess_create(pres_t *p, const char *full, size_t len,
                                uint64_t conn)
{
    const char *slash = memchr(full, '/', len);
    if (slash == NULL || slash == full)
        return NULL;
    pres_sess_t *s = kn_calloc(1, sizeof(*s));
    s->full = kn_strndup(full, len);
    s->bare_len = (size_t)(slash - full);
    s->conn = conn;
    char *bare = kn_strndup(full, s->bare_len);
    pres_user_t *u = pres_user_get(p, bare);
    free(bare);
    s->user = u;
    s->next = u->sessions;
    u->sessions = s;
    HASH_ADD_KEYPTR(hh, p->sessions, s->full, len, s);
    return s;
}

static void sess_destroy(pres_t *p, pres_sess_t *s)
{
    pres_user_t *u = s->user;
    pres_offline_session_gone(p, s);
    for (pres_sess_t **pp = &u->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    HASH_DEL(p->sessions, s);
    pres_caps_sess_gone(p, s);
    kn_stanza_unref(&s->last);
    kn_stanza_unref(&s->shown);
    for (size_t i = 0; i < s->ndir; i++)
        free(s->dir[i]);
    free(s->dir);
    free(s->off_ids);
    free(s->full);
    free(s);
    pres_user_maybe_free(p, u);
}

/* ---- a session of an account removed or disabled meanwhile --------------
 * A removal (XEP-0077, XEP-0133 delete/disable, kilnctl) commits, drops
 * the cached credentials, then kicks the sessions in our table. A stream
 * that authenticated before the commit may bind after our kicks went out:
 * its SESSION_UP (c2s -> router -> us) comes later. So each new session
 * is checked against the users row; if the row is gone or disabled, the
 * session is ended like the others (reason "removed"). The check reads
 * the row after our SESSION_UP, hence after any kick that missed it. */

typedef struct sess_check {
    pres_t *p;
    char *full;
    uint64_t conn;
} sess_check_t;

static void sess_check_free(sess_check_t *c)
{
    free(c->full);
    free(c);
}

static void sess_checked(const PGresult *res, int err, void *arg)
{
    sess_check_t *c = arg;
    if (err == 0 &&
        (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") == 0)) {
        pres_sess_t *s = pres_sess_find(c->p, c->full);
        if (s != NULL && s->conn == c->conn) {
            kn_log_info("session %s: its account is gone or disabled", c->full);
            pres_admin_kick(c->p, c->full, KN_ENV_REASON_REMOVED);
        }
    } else if (err != 0) {
        kn_log_warn("session %s: account not checked (%s)", c->full,
                    kn_strerror(err));
    }
    sess_check_free(c);
}

static void sess_check_pg(sess_check_t *c)
{
    pres_t *p = c->p;
    char *local = pres_localpart(c->full); /* up to the '@' */
    const char *params[] = {local};
    kn_pg_query(p->pg, "select disabled from users where username = $1", 1,
                params, sess_checked, c);
    free(local);
}

/* Whether v is a cached users row (kn_credcache.h, c2s_creds.c: "1 ITER
 * ... t|f") of an account that is not disabled. */
bool pres_creds_cached_enabled(const char *v, size_t len)
{
    static const char ver[] = KN_CREDCACHE_VERSION " ";
    return len > sizeof(ver) + 1 && memcmp(v, ver, sizeof(ver) - 1) == 0 &&
           v[len - 2] == ' ' && v[len - 1] == 'f';
}

/* The users row as c2s cached it in Redis: a row cached as enabled was
 * read from PostgreSQL after the last change of it committed (a change
 * overwrites the key with a tombstone first, and a reader never fills
 * over one, kn_credcache.h), so it answers without PostgreSQL; anything
 * else (no key, a tombstone, disabled, Redis down) asks PostgreSQL. */
static void sess_on_creds(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    sess_check_t *c = arg;
    if (err == 0 && reply != NULL && reply->type == REDIS_REPLY_STRING &&
        pres_creds_cached_enabled(reply->str, reply->len)) {
        sess_check_free(c);
        return;
    }
    sess_check_pg(c);
}

static void sess_check_account(pres_t *p, const pres_sess_t *s)
{
    if (p->pg == NULL || !pres_is_local(p, s->user->bare))
        return;
    sess_check_t *c = kn_malloc(sizeof(*c));
    c->p = p;
    c->full = kn_strdup(s->full);
    c->conn = s->conn;
    if (p->redis == NULL || !kn_redis_is_connected(p->redis)) {
        sess_check_pg(c);
        return;
    }
    char *local = pres_localpart(s->user->bare);
    kn_redis_command(p->redis, sess_on_creds, c,
                     "GET " KN_CREDCACHE_PREFIX "%s", local);
    free(local);
}

/* ---- a session available at the router whose presence we never saw -----
 * The router tells a newly registered presenced (and every subscriber
 * after a router restart) of each session in its table (KN_F_REANNOUNCE),
 * with KN_F_AVAILABLE when the client sent available presence. If that
 * presence went to a presenced that was down or stopping, no presenced
 * ran the session's login flow: its offline messages stayed stored until
 * the next login, and its contacts never saw it. So a re-announced
 * available session we do not count available gets its presence from
 * Redis (pres:<bare>, stored by the presenced that handled it: restored
 * as is, nothing broadcast again), or, if none was stored, a login flow
 * with a bare available presence (its priority from the router), as if
 * the client had sent it: broadcast, probes, offline delivery. A later
 * presence from the client is then an update. */

typedef struct missed {
    pres_t *p;
    char *full;
    uint64_t conn;
    int16_t prio;
} missed_t;

static void missed_login(pres_t *p, pres_sess_t *s, int16_t prio)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", s->full);
    if (prio != 0) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%d", (int)prio);
        kn_stanza_builder_start(b, "priority", NULL);
        kn_stanza_builder_text(b, v, (size_t)n);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    if (st == NULL)
        return;
    kn_log_info("session %s: available at the router, its presence never "
                "reached us: login flow",
                s->full);
    char *full = kn_strdup(s->full);
    pres_broadcast_handle(p, st, full);
    free(full);
    kn_stanza_unref(&st);
}

/* A presence stored in Redis by pres_sess_store ("prio|show|node|<xml>"):
 * the stanza, or NULL when val is NULL or not such a value. */
static kn_stanza_t *stored_presence_parse(const char *val)
{
    const char *xml = val;
    for (int k = 0; k < 3 && xml; k++) {
        xml = strchr(xml, '|');
        if (xml)
            xml++;
    }
    kn_stanza_t *st = NULL;
    if (xml == NULL || kn_xml_parse_stanza(xml, strlen(xml), NULL, &st) < 0)
        return NULL;
    return st;
}

/* The session's presence is st (a reference taken over), stored by the
 * presenced that broadcast it: restored as is, nothing broadcast again. */
static void sess_adopt_stored(pres_sess_t *s, kn_stanza_t *st)
{
    kn_stanza_unref(&s->last);
    s->last = st;
    kn_stanza_unref(&s->shown);
    s->shown = kn_stanza_ref(st);
    s->avail = true;
    s->initial_done = true;
}

static void missed_cb(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    missed_t *m = arg;
    pres_t *p = m->p;
    pres_sess_t *s = pres_sess_find(p, m->full);
    if (s != NULL && s->conn == m->conn && !s->avail) {
        kn_stanza_t *st = stored_presence_parse(
            err == 0 && reply->type == REDIS_REPLY_STRING ? reply->str : NULL);
        if (st != NULL)
            sess_adopt_stored(s, st);
        else
            missed_login(p, s, m->prio);
    }
    free(m->full);
    free(m);
}

static void sess_missed_presence(pres_t *p, pres_sess_t *s, int16_t prio)
{
    if (p->redis == NULL) {
        missed_login(p, s, prio);
        return;
    }
    missed_t *m = kn_malloc(sizeof(*m));
    m->p = p;
    m->full = kn_strdup(s->full);
    m->conn = s->conn;
    m->prio = prio;
    char key[KN_ENV_STR_MAX + 16];
    snprintf(key, sizeof(key), "pres:%.*s", (int)s->bare_len, s->full);
    const char *argv[] = {"HGET", key, s->full + s->bare_len + 1};
    size_t lens[] = {4, strlen(key), strlen(argv[2])};
    kn_redis_command_argv(p->redis, missed_cb, m, 3, argv, lens);
}

void pres_sess_up(pres_t *p, const kn_env_t *env)
{
    char full[KN_ENV_STR_MAX + 1];
    snprintf(full, sizeof(full), "%.*s", (int)env->from_len, env->from);
    pres_sess_t *s = pres_sess_find(p, full);
    if (s != NULL && (env->flags & KN_F_MOVED)) {
        /* XEP-0198 resumption: the same session on a new connection.
         * Nothing is broadcast; its c2s needs the block list again. */
        kn_log_debug("session %s moved to connection %016llx", full,
                     (unsigned long long)env->conn_id);
        s->conn = env->conn_id;
        s->prio = env->priority;
        s->router_avail = (env->flags & KN_F_AVAILABLE) != 0;
        pres_sess_store(p, s);
        pres_block_session_up(p, s);
        return;
    }
    if (s != NULL && s->conn != env->conn_id) {
        /* Normally the router's conflict SESSION_DOWN came first; if we
         * missed it, end the old session the same way (R-DROP-7). */
        pres_broadcast_session_end(p, s);
        sess_destroy(p, s);
        s = NULL;
    }
    if (s == NULL)
        s = sess_create(p, full, strlen(full), env->conn_id);
    if (s == NULL)
        return;
    s->prio = env->priority;
    s->router_avail = (env->flags & KN_F_AVAILABLE) != 0;
    if (s->user->roster == NULL)
        pres_roster_get(p, s->user->bare, NULL, NULL); /* warm the cache */
    pres_block_session_up(p, s);  /* XEP-0191: the list for its c2s */
    pres_avatar_load(p, s->user); /* XEP-0153 */
    sess_check_account(p, s);
    if ((env->flags & (KN_F_REANNOUNCE | KN_F_AVAILABLE)) ==
            (KN_F_REANNOUNCE | KN_F_AVAILABLE) &&
        !s->avail)
        sess_missed_presence(p, s, env->priority);
}

void pres_sess_down(pres_t *p, const kn_env_t *env)
{
    char full[KN_ENV_STR_MAX + 1];
    snprintf(full, sizeof(full), "%.*s", (int)env->from_len, env->from);
    pres_sess_t *s = pres_sess_find(p, full);
    if (s == NULL || (env->conn_id != 0 && s->conn != env->conn_id))
        return;
    kn_log_debug("session %s down (%s)", full, kn_env_reason_name(env->reason));
    /* R-DROP-1/2/6, R-PRES-7: whatever the reason, a resource that was
     * available and did not say goodbye gets a synthesized unavailable. */
    pres_broadcast_session_end(p, s);
    sess_destroy(p, s);
}

void pres_sess_priority(pres_t *p, const kn_env_t *env)
{
    char full[KN_ENV_STR_MAX + 1];
    snprintf(full, sizeof(full), "%.*s", (int)env->from_len, env->from);
    pres_sess_t *s = pres_sess_find(p, full);
    if (s == NULL)
        return;
    s->prio = env->priority;
    s->router_avail = (env->flags & KN_F_AVAILABLE) != 0;
}

void pres_sess_store(pres_t *p, const pres_sess_t *s)
{
    if (p->redis == NULL || s->last == NULL)
        return;
    kn_buf_t v = KN_BUF_INIT;
    int sh = kn_stanza_child(s->last, 0, "show", NULL);
    kn_buf_printf(&v, "%d|%s|%u|", (int)s->prio,
                  sh >= 0 ? kn_stanza_cdata(s->last, sh, NULL) : "",
                  (unsigned)kn_conn_node(s->conn));
    kn_stanza_serialize(s->last, &v, NULL);
    char key[KN_ENV_STR_MAX + 16];
    snprintf(key, sizeof(key), "pres:%.*s", (int)s->bare_len, s->full);
    const char *argv[] = {"HSET", key, s->full + s->bare_len + 1, v.data};
    size_t lens[] = {4, strlen(key), strlen(argv[2]), v.len};
    kn_redis_command_argv(p->redis, NULL, NULL, 4, argv, lens);
    kn_buf_free(&v);
}

void pres_sess_unstore(pres_t *p, const pres_sess_t *s)
{
    if (p->redis == NULL)
        return;
    char key[KN_ENV_STR_MAX + 16];
    snprintf(key, sizeof(key), "pres:%.*s", (int)s->bare_len, s->full);
    kn_redis_command(p->redis, NULL, NULL, "HDEL %s %s", key,
                     s->full + s->bare_len + 1);
}

void pres_sess_dir_add(pres_t *p, pres_sess_t *s, const char *to)
{
    for (size_t i = 0; i < s->ndir; i++)
        if (strcmp(s->dir[i], to) == 0)
            return;
    s->dir = kn_realloc(s->dir, (s->ndir + 1) * sizeof(*s->dir));
    s->dir[s->ndir++] = kn_strdup(to);
    if (p->redis)
        kn_redis_command(p->redis, NULL, NULL, "SADD dirpres:%s %s", s->full,
                         to);
}

void pres_sess_dir_del(pres_t *p, pres_sess_t *s, const char *to)
{
    for (size_t i = 0; i < s->ndir; i++) {
        if (strcmp(s->dir[i], to) == 0) {
            free(s->dir[i]);
            s->dir[i] = s->dir[--s->ndir];
            break;
        }
    }
    if (p->redis)
        kn_redis_command(p->redis, NULL, NULL, "SREM dirpres:%s %s", s->full,
                         to);
}

void pres_sess_dir_clear(pres_t *p, pres_sess_t *s)
{
    for (size_t i = 0; i < s->ndir; i++)
        free(s->dir[i]);
    kn_free(&s->dir);
    s->ndir = 0;
    if (p->redis)
        kn_redis_command(p->redis, NULL, NULL, "DEL dirpres:%s", s->full);
}

/* ---- restore after a restart ------------------------------------------ */

static void restore_pres_cb(kn_redis_t *r, redisReply *reply, int err,
                            void *arg)
{
    (void)r;
    pres_t *p = ((void **)arg)[0];
    char *bare = ((void **)arg)[1];
    free(arg);
    if (err == 0 && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *res = reply->element[i]->str;
            const char *val = reply->element[i + 1]->str;
            char full[KN_ENV_STR_MAX + 1];
            snprintf(full, sizeof(full), "%s/%s", bare, res);
            pres_sess_t *s = pres_sess_find(p, full);
            kn_stanza_t *st = s != NULL ? stored_presence_parse(val) : NULL;
            if (st == NULL) {
                if (p->redis)
                    kn_redis_command(p->redis, NULL, NULL, "HDEL pres:%s %s",
                                     bare, res);
                continue;
            }
            if (s->last == NULL)
                sess_adopt_stored(s, st);
            else
                kn_stanza_unref(&st);
        }
    }
    free(bare);
}

static void restore_sessions_cb(kn_redis_t *r, redisReply *reply, int err,
                                void *arg)
{
    pres_t *p = ((void **)arg)[0];
    char *bare = ((void **)arg)[1];
    free(arg);
    if (err == 0 && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *full = reply->element[i]->str;
            const char *val = reply->element[i + 1]->str;
            /* node|conn hex|priority|available */
            const char *f1 = strchr(val, '|');
            if (f1 == NULL || pres_sess_find(p, full) != NULL)
                continue;
            char *end = NULL;
            unsigned long long conn = strtoull(f1 + 1, &end, 16);
            if (end == NULL || *end != '|')
                continue;
            long prio = strtol(end + 1, &end, 10);
            pres_sess_t *s = sess_create(p, full, strlen(full), conn);
            if (s == NULL)
                continue;
            s->prio = (int16_t)prio;
            s->router_avail = end && *end == '|' && end[1] == '1';
            /* Its c2s has its block list (from us before the restart, or
             * from PostgreSQL): only our cache needs loading. */
            s->block_sent = true;
            pres_block_session_up(p, s);
        }
        void **a = kn_malloc(2 * sizeof(void *));
        a[0] = p;
        a[1] = bare;
        kn_redis_command(r, restore_pres_cb, a, "HGETALL pres:%s", bare);
        return;
    }
    free(bare);
}

static void restore_scan_cb(kn_redis_t *r, redisReply *reply, int err,
                            void *arg)
{
    pres_t *p = arg;
    if (err != 0 || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return;
    redisReply *keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        if (strncmp(k, "sessions:", 9) != 0)
            continue;
        void **a = kn_malloc(2 * sizeof(void *));
        a[0] = p;
        a[1] = kn_strdup(k + 9);
        kn_redis_command(r, restore_sessions_cb, a, "HGETALL %s", k);
    }
    const char *cursor = reply->element[0]->str;
    if (cursor != NULL && strcmp(cursor, "0") != 0)
        kn_redis_command(r, restore_scan_cb, p,
                         "SCAN %s MATCH sessions:* COUNT 500", cursor);
}

void pres_sess_restore(pres_t *p)
{
    if (p->redis == NULL)
        return;
    kn_redis_command(p->redis, restore_scan_cb, p,
                     "SCAN 0 MATCH sessions:* COUNT 500");
}
