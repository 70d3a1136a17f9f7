/*
 * pres_last.c - last activity and last unavailable presence (XEP-0012,
 * R-DROP-3, R-PRES-6, R-PRES-3's offline contacts).
 *
 * A note on the row. last_presence holds one row per user who is
 * offline: written when the user's last available resource goes
 * unavailable (presence_xml only when that presence had children, e.g. a
 * status), deleted when the first resource becomes available again. The
 * Redis key last:<bare> mirrors offline_at (epoch seconds) for cheap
 * reads by other processes. Logins read the rows of all offline to/both
 * contacts in one query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "pres.h"

#define NS_LAST  "jabber:iq:last"
#define NS_DELAY "urn:xmpp:delay"

/* ---- batched writes -------------------------------------------------------
 *
 * A burst of logins and logouts used to queue one statement per user on
 * the ordered connection; past db.checkout_timeout_ms of queue the rest
 * failed (-KN_EAGAIN) and those users' last activity was lost. Now each
 * write goes into last_ops (one entry per user: the newest write wins,
 * an upsert after a delete or the other way round) and the set goes out
 * as one statement in the next loop pass (an ev_prepare watcher), one
 * batch in flight at a time, so batches run in order. A batch that could
 * not get the connection in time is taken back (each entry unless a
 * newer write for the user is waiting) and sent again, LAST_RETRIES
 * times at most; an SQL error is logged. A read of last_presence on the
 * ordered pool flushes first, so it sees the writes queued before it
 * (FIFO) unless a batch is in flight: then the newest writes follow the
 * read. */

#define LAST_RETRIES 30

typedef struct pres_last_op {
    char *local; /* key */
    bool store;  /* upsert; else delete */
    char *xml;   /* presence_xml, NULL: SQL NULL */
    char *status;
    double at; /* offline_at, epoch seconds */
    unsigned tries;
    UT_hash_handle hh;
} last_op_t;

typedef struct last_batch {
    pres_t *p;
    last_op_t *ops; /* by local, as sent */
} last_batch_t;

static void op_free(last_op_t *o)
{
    free(o->local);
    free(o->xml);
    free(o->status);
    free(o);
}

/* One element of a PostgreSQL array literal: NULL, or double-quoted with
 * '"' and '\\' escaped. */
static void array_elem(kn_buf_t *b, const char *v)
{
    if (b->len > 1)
        kn_buf_append_byte(b, ',');
    if (v == NULL) {
        kn_buf_append(b, "NULL", 4);
        return;
    }
    kn_buf_append_byte(b, '"');
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            kn_buf_append_byte(b, '\\');
        kn_buf_append_byte(b, (uint8_t)*c);
    }
    kn_buf_append_byte(b, '"');
}

static void on_flush_w(struct ev_loop *loop, ev_prepare *w, int revents);

static void last_put(pres_t *p, last_op_t *o)
{
    last_op_t *old = NULL;
    HASH_FIND_STR(p->last_ops, o->local, old);
    if (old != NULL) {
        HASH_DEL(p->last_ops, old);
        op_free(old);
    }
    HASH_ADD_KEYPTR(hh, p->last_ops, o->local, strlen(o->local), o);
    if (p->loop != NULL && !ev_is_active(&p->last_flush_w)) {
        ev_prepare_init(&p->last_flush_w, on_flush_w);
        p->last_flush_w.data = p;
        ev_prepare_start(p->loop, &p->last_flush_w);
    }
}

static void batch_done(const PGresult *res, int err, void *arg)
{
    last_batch_t *bt = arg;
    pres_t *p = bt->p;
    p->last_inflight = false;
    size_t n = HASH_COUNT(bt->ops), requeued = 0, dropped = 0;
    last_op_t *o, *tmp;
    HASH_ITER(hh, bt->ops, o, tmp)
    {
        HASH_DEL(bt->ops, o);
        last_op_t *newer = NULL;
        if (err == -KN_EAGAIN && p->pg != NULL)
            HASH_FIND_STR(p->last_ops, o->local, newer);
        if (err == -KN_EAGAIN && p->pg != NULL && newer == NULL &&
            ++o->tries < LAST_RETRIES) {
            last_put(p, o);
            requeued++;
        } else {
            dropped += newer == NULL;
            op_free(o);
        }
    }
    if (err == -KN_EAGAIN && requeued > 0)
        kn_log_info("last_presence: database busy, %zu of %zu writes queued"
                    " again",
                    requeued, n);
    if (err != 0 && dropped > 0)
        kn_log_warn("last_presence: %zu of %zu writes lost: %s%s", dropped, n,
                    kn_strerror(err), res ? PQresultErrorMessage(res) : "");
    free(bt);
    if (p->last_ops != NULL && p->loop != NULL &&
        !ev_is_active(&p->last_flush_w))
        ev_prepare_start(p->loop, &p->last_flush_w);
}

void pres_last_flush(pres_t *p)
{
    if (p->loop != NULL && ev_is_active(&p->last_flush_w))
        ev_prepare_stop(p->loop, &p->last_flush_w);
    if (p->last_ops == NULL || p->last_inflight)
        return; /* batch_done starts the watcher again */
    if (p->pg == NULL) {
        pres_last_free(p);
        return;
    }
    kn_buf_t user = KN_BUF_INIT, xml = KN_BUF_INIT, status = KN_BUF_INIT,
             at = KN_BUF_INIT, store = KN_BUF_INIT;
    kn_buf_t *all[] = {&user, &xml, &status, &at, &store};
    for (size_t i = 0; i < 5; i++)
        kn_buf_append_byte(all[i], '{');
    last_op_t *o, *tmp;
    HASH_ITER(hh, p->last_ops, o, tmp)
    {
        char num[40];
        snprintf(num, sizeof(num), "%.6f", o->at);
        array_elem(&user, o->local);
        array_elem(&xml, o->xml);
        array_elem(&status, o->status);
        array_elem(&at, num);
        array_elem(&store, o->store ? "t" : "f");
    }
    for (size_t i = 0; i < 5; i++)
        kn_buf_append(all[i], "}", 2); /* with the NUL */
    last_batch_t *bt = kn_malloc(sizeof(*bt));
    bt->p = p;
    bt->ops = p->last_ops;
    p->last_ops = NULL;
    p->last_inflight = true;
    const char *params[] = {user.data, xml.data, status.data, at.data,
                            store.data};
    kn_pg_query(
        pres_pg_ordered(p),
        /* One statement: the deletes (logins) and the upserts (logouts)
         * of the pass; never both for one user (one entry each). "join
         * users": an account removed while online (XEP-0077) leaves no
         * row behind, and no foreign-key error. */
        "with o as (select * from unnest($1::text[], $2::text[],"
        " $3::text[], $4::float8[], $5::bool[]) as o(username,"
        " presence_xml, status, at, store)), d as (delete from"
        " last_presence l using o where not o.store and l.username ="
        " o.username) insert into last_presence (username, presence_xml,"
        " status, offline_at) select o.username, o.presence_xml, o.status,"
        " to_timestamp(o.at) from o join users u on u.username ="
        " o.username where o.store on conflict (username) do update set"
        " presence_xml = excluded.presence_xml, status = excluded.status,"
        " offline_at = excluded.offline_at",
        5, params, batch_done, bt);
    for (size_t i = 0; i < 5; i++)
        kn_buf_free(all[i]);
}

static void on_flush_w(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    pres_last_flush(w->data);
}

size_t pres_last_pending(const pres_t *p)
{
    return p != NULL ? HASH_COUNT(p->last_ops) : 0;
}

void pres_last_free(pres_t *p)
{
    if (p->loop != NULL && ev_is_active(&p->last_flush_w))
        ev_prepare_stop(p->loop, &p->last_flush_w);
    size_t n = HASH_COUNT(p->last_ops);
    if (n > 0 && p->pg != NULL)
        kn_log_warn("last_presence: %zu writes not sent at stop", n);
    last_op_t *o, *tmp;
    HASH_ITER(hh, p->last_ops, o, tmp)
    {
        HASH_DEL(p->last_ops, o);
        op_free(o);
    }
}

void pres_last_store(pres_t *p, const char *bare, const kn_stanza_t *unavail)
{
    if (p->pg == NULL)
        return;
    kn_buf_t xml = KN_BUF_INIT;
    kn_buf_t status = KN_BUF_INIT;
    bool children = kn_stanza_first_child(unavail, 0) >= 0;
    if (children) {
        kn_stanza_serialize(unavail, &xml, NULL);
        kn_buf_append_byte(&xml, '\0');
    }
    int s = kn_stanza_child(unavail, 0, "status", NULL);
    if (s >= 0) {
        kn_stanza_text(unavail, s, &status);
        kn_buf_append_byte(&status, '\0');
    }
    last_op_t *o = kn_calloc(1, sizeof(*o));
    o->local = pres_localpart(bare);
    o->store = true;
    o->xml = children ? kn_strdup(xml.data) : NULL;
    o->status = s >= 0 ? kn_strdup(status.data) : NULL;
    o->at = ev_now(p->loop);
    last_put(p, o);
    if (p->redis)
        kn_redis_command(p->redis, NULL, NULL, "SET last:%s %lld", bare,
                         (long long)ev_now(p->loop));
    kn_buf_free(&xml);
    kn_buf_free(&status);
}

void pres_last_clear(pres_t *p, const char *bare)
{
    if (p->pg == NULL)
        return;
    last_op_t *o = kn_calloc(1, sizeof(*o));
    o->local = pres_localpart(bare);
    last_put(p, o);
}

/* ---- stored presences of offline contacts -------------------------------- */

typedef struct stored_job {
    char *full;
    void (*done)(pres_t *, void *);
    void *arg;
} stored_job_t;

/* The stored unavailable presence of bare, from bare, to to, with a
 * XEP-0203 delay stamp. */
static kn_stanza_t *last_stanza(pres_t *p, const char *xml, const char *bare,
                                const char *to, double at)
{
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &st) < 0)
        return NULL;
    kn_stanza_builder_t *b = kn_stanza_dup(st);
    kn_stanza_unref(&st);
    kn_stanza_builder_set_attr(b, 0, "from", bare);
    kn_stanza_builder_set_attr(b, 0, "to", to);
    char stamp[32];
    pres_stamp(at, stamp, sizeof(stamp));
    kn_stanza_builder_start(b, "delay", NS_DELAY);
    kn_stanza_builder_attr(b, "from", p->domain);
    kn_stanza_builder_attr(b, "stamp", stamp);
    kn_stanza_builder_end(b);
    st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    return st;
}

/* Whether one of u's resources has broadcast its availability. */
static bool user_shown(const pres_user_t *u)
{
    for (const pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->shown != NULL)
            return true;
    return false;
}

typedef struct stored_ctx {
    pres_t *p;
    stored_job_t *j;
} stored_ctx_t;

static void stored_rows(const PGresult *res, int err, void *arg)
{
    stored_ctx_t *c = arg;
    pres_t *p = c->p;
    stored_job_t *j = c->j;
    free(c);
    const pres_sess_t *s =
        pres_is_local(p, j->full) ? pres_sess_find(p, j->full) : NULL;
    if (err == 0 && (!pres_is_local(p, j->full) || s != NULL)) {
        /* one envelope for all of them (pres_out.c, bundles) */
        pres_bundle_begin(p, s != NULL ? s->conn : 0);
        for (int i = 0; i < PQntuples(res); i++) {
            if (PQgetisnull(res, i, 1))
                continue;
            char bare[KN_ENV_STR_MAX + 1];
            snprintf(bare, sizeof(bare), "%s@%s", PQgetvalue(res, i, 0),
                     p->domain);
            /* Came online while we read: its available presence has gone
             * (or goes) to full; an old unavailable after it would be
             * wrong. */
            if (user_shown(pres_user_find(p, bare)))
                continue;
            kn_stanza_t *st = last_stanza(p, PQgetvalue(res, i, 1), bare,
                                          j->full, atof(PQgetvalue(res, i, 2)));
            if (st != NULL)
                pres_bundle_add_to(p, st, NULL);
            kn_stanza_unref(&st);
        }
        pres_bundle_end(p);
    }
    j->done(p, j->arg);
    free(j->full);
    free(j);
}

void pres_last_send_stored(pres_t *p, char **contacts, size_t n,
                           const char *full, void (*done)(pres_t *, void *),
                           void *arg)
{
    if (n == 0 || p->pg == NULL) {
        done(p, arg);
        return;
    }
    kn_buf_t list = KN_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            kn_buf_append_byte(&list, 0x01);
        const char *at = strchr(contacts[i], '@');
        kn_buf_append(&list, contacts[i],
                      at ? (size_t)(at - contacts[i]) : strlen(contacts[i]));
    }
    stored_job_t *j = kn_calloc(1, sizeof(*j));
    j->full = kn_strdup(full);
    j->done = done;
    j->arg = arg;
    stored_ctx_t *c = kn_malloc(sizeof(*c));
    c->p = p;
    c->j = j;
    pres_last_flush(p); /* the batched writes first (FIFO) */
    /* XEP-0191: not the presence of a contact who blocked the recipient. */
    const char *k[4];
    char *kb = pres_block_key_params(full, strlen(full), k);
    const char *params[] = {list.data, k[0], k[1], k[2], k[3]};
    kn_pg_query(pres_pg_ordered(p),
                /* unnest in FROM: the list is split once and joined on
                 * the key; "= any (string_to_array(...))" split it again
                 * for every row of a sequential scan (3 ms a login with
                 * 100 contacts and 1,500 rows, most of PostgreSQL's CPU
                 * in a login burst). Only rows with XML are sent: the
                 * partial index last_presence_with_xml (0032) holds
                 * just those, so a contact list is not joined with the
                 * many rows without (a 0.5 ms hash join a login with
                 * 1,500 rows). */
                "select l.username, l.presence_xml,"
                " extract(epoch from l.offline_at) from"
                " unnest(string_to_array($1, E'\\x01')) as c(username)"
                " join last_presence l on l.username = c.username"
                " where l.presence_xml is not null"
                " and not exists (select 1 from blocklist b where"
                " b.username = l.username and b.jid in ($2, $3, $4, $5))",
                5, params, stored_rows, c);
    free(kb);
    kn_buf_free(&list);
}

/* ---- jabber:iq:last ------------------------------------------------------ */

typedef struct last_job {
    pres_t *p;
    kn_stanza_t *iq;
    char *bare;
} last_job_t;

static void last_reply(pres_t *p, const kn_stanza_t *iq, long long secs,
                       const char *text)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    kn_stanza_builder_start(b, "query", NS_LAST);
    char num[32];
    snprintf(num, sizeof(num), "%lld", secs < 0 ? 0 : secs);
    kn_stanza_builder_attr(b, "seconds", num);
    if (text != NULL)
        kn_stanza_builder_text(b, text, strlen(text));
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
}

static void last_job_free(last_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->bare);
    free(j);
}

static void last_row(const PGresult *res, int err, void *arg)
{
    last_job_t *j = arg;
    pres_t *p = j->p;
    if (err != 0) {
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else if (PQntuples(res) == 0) {
        pres_send_error(p, j->iq, KN_STE_ITEM_NOT_FOUND);
    } else {
        double at = atof(PQgetvalue(res, 0, 0));
        const char *text =
            PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
        last_reply(p, j->iq, (long long)(ev_now(p->loop) - at + 0.5), text);
    }
    last_job_free(j);
}

static void last_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                           int err, void *arg)
{
    last_job_t *j = arg;
    if (err != 0) {
        /* The roster could not be read (the pool stayed busy through
         * every retry, or an SQL error): say so, not forbidden. */
        pres_send_error(p, j->iq,
                        err == -KN_EAGAIN ? KN_STE_RESOURCE_CONSTRAINT
                                          : KN_STE_INTERNAL_SERVER_ERROR);
        last_job_free(j);
        return;
    }
    char *asker = pres_bare_of(kn_stanza_from(j->iq));
    const pres_item_t *it = pres_roster_find(r, asker);
    bool ok = strcmp(asker, bare) == 0 ||
              (it != NULL && (pres_item_sub(it) & PRES_SUB_FROM));
    free(asker);
    if (!ok) {
        pres_send_error(p, j->iq, KN_STE_FORBIDDEN);
        last_job_free(j);
        return;
    }
    if (pres_user_navail(pres_user_find(p, bare)) > 0) {
        last_reply(p, j->iq, 0, NULL);
        last_job_free(j);
        return;
    }
    pres_last_flush(p); /* the batched writes first (FIFO) */
    char *local = pres_localpart(bare);
    const char *params[] = {local};
    kn_pg_query(pres_pg_ordered(p),
                "select extract(epoch from offline_at), status from"
                " last_presence where username = $1",
                1, params, last_row, j);
    free(local);
}

void pres_last_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    (void)env;
    const char *type = kn_stanza_type(st);
    const char *to = kn_stanza_to(st);
    const char *from = kn_stanza_from(st);
    if (type == NULL || strcmp(type, "get") != 0 || from == NULL) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
        return;
    }
    if (to == NULL || strchr(to, '@') == NULL) {
        /* The server: its uptime (XEP-0012 section 5). */
        last_reply(p, st, (long long)(ev_now(p->loop) - p->started), NULL);
        return;
    }
    if (!pres_is_local(p, to) || p->pg == NULL) {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
        return;
    }
    last_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = pres_bare_of(to);
    pres_roster_get(p, j->bare, last_roster_cb, j);
}
