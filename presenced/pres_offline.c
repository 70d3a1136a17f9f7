/*
 * pres_offline.c - offline messages (XEP-0160, R-ARCH-3, R-PERF-6,
 * R-PRES-5).
 *
 * A note on storage. The router hands us every normal/chat message to a
 * local user with no available resource (KN_REG_OFFLINE). Messages with a
 * body or subject are stored in offline_messages as the XML we received,
 * with their size; the insert checks the user's total against
 * presenced.offline_quota_bytes in the same statement, so a full box
 * refuses the row. Over quota, store_and_bounce answers the sender with
 * service-unavailable; store_and_drop drops silently. Bodiless messages
 * (chat states) are not worth storing and are dropped, unless they carry
 * a store hint (XEP-0334) or a Jingle call proposal (XEP-0353). A message from
 * a JID the user blocked (XEP-0191) is refused by the same statement and always
 * answered with service-unavailable, as an online user's c2s answers it
 * (c2s_block.c). The same statement returns the user's push registrations
 * (XEP-0357) when the row was stored: each gets a publish (pres_push.c), for
 * 1:1 and group messages alike (R-GRP-8).
 *
 * A note on order (R-PRES-5, R-GRP-4). Inserts, the delivery read and the
 * delete all go through the ordered pool (pres_pg_ordered(): one
 * connection, FIFO). On a pool of several connections two consecutive
 * inserts could commit, and take their bigserial ids, in either order, so
 * "order by id" was not arrival order; the quota check of two inserts
 * could also race. On one connection the statements run in the order
 * the router handed us the messages, and the read at login sees every
 * insert queued before it.
 *
 * A note on a stale view (R-PRES-5). When presenced counts the user
 * available (a resource came up while the message was in flight, or
 * presenced has not yet heard of a session's end), it sends the message
 * on to the bare JID, marked KN_F_OFFLINE_RESENT, instead of storing it.
 * The router routes it like any message; when it finds no resource
 * either (or the one it found vanished: c2s reroutes it), it hands it to
 * the offline handler again, mark kept, and we store it, never sending a
 * marked message on (no loop; the message was not stored before, so one
 * row). A bounce of it is stored the same way.
 *
 * A note on delivery (R-PRES-5). Delivery runs at the end of the login
 * flow (pres_broadcast.c), in id order, each message with a XEP-0203
 * delay. A row is deleted only once it was written to the client's
 * socket: it goes out with KN_F_ACK_WANTED, its row id (ack_id) and the
 * session's connection id; the c2s node that owns the connection sends
 * an ACK with the ids whose last byte the socket accepted, and the ACK
 * deletes them (one statement per ACK, id = any($1)). Until then the row
 * is "in flight": p->off_rows maps its id to the connection it was sent
 * to, and every read skips the rows in flight, so a second session of
 * the user logging in meanwhile does not get them too, and no session
 * gets a row twice. A row leaves p->off_rows when its delete completed
 * (the ordered pool runs it before any read queued later, so no later
 * read sees it), or, unwritten, when its session ends (any reason: the
 * row is free for the next login) or when the stanza comes back: the
 * router hands a KN_F_ACK_WANTED stanza that cannot reach its connection
 * (session gone or replaced, node unreachable, c2s found the connection
 * closed) back to us, and we never store it twice. A freed row goes to
 * the user's best other available session, if one has done its login
 * (one read per user at a time); otherwise it waits for the next login.
 * A crash of c2s, of the router or of presenced loses no row: at worst
 * a row written but not yet acknowledged is delivered again (at least
 * once). Rows that no longer parse are deleted at once, with a log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"

#define NS_HINTS "urn:xmpp:hints"
#define NS_JMI   "urn:xmpp:jingle-message:0"

#define NS_DELAY "urn:xmpp:delay"

#define OFF_STORE_PARAMS 11
/* An insert that found no free database connection in time (-KN_EAGAIN:
 * never sent, so no row) is queued again this many times before the
 * sender is told (a PostgreSQL restart: a few seconds). */
#define OFF_STORE_RETRIES 30

typedef struct off_job {
    pres_t *p;
    kn_stanza_t *st;
    char *params[OFF_STORE_PARAMS]; /* the insert's, kept for a retry */
    unsigned tries;
    char *bare;
    char *full;
    uint64_t conn;   /* the session's connection (delivery) */
    bool redelivery; /* a read for freed rows (user->off_pass) */
    uint64_t *ids;   /* the ids of an ACK's delete */
    size_t nids;
    uint64_t handoff; /* the router's hand-off id (ACKed when done), or 0 */
} off_job_t;

static void off_job_free(off_job_t *j)
{
    for (size_t i = 0; i < OFF_STORE_PARAMS; i++)
        free(j->params[i]);
    kn_stanza_unref(&j->st);
    free(j->bare);
    free(j->full);
    free(j->ids);
    free(j);
}

static void off_insert(off_job_t *j);

static void off_handoff_ack(pres_t *p, uint64_t id)
{
    if (id == 0)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_ACK;
    e.flags = KN_F_OFFLINE_HANDOFF;
    e.targets = &id;
    e.ntargets = 1;
    p->sink.send(p->sink.ud, &e, NULL, 0);
}

void pres_offline_handoff_done(pres_t *p, const kn_env_t *env)
{
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_OFFLINE_HANDOFF))
        off_handoff_ack(p, env->ack_id);
}

static void off_stored(const PGresult *res, int err, void *arg)
{
    off_job_t *j = arg;
    pres_t *p = j->p;
    if ((err == -KN_EAGAIN || (err == -KN_ECLOSED && j->handoff != 0)) &&
        j->tries < OFF_STORE_RETRIES) {
        /* Accepted: not bounced for a busy or restarting database. A
         * connection lost under the insert may have committed it: sent
         * again only for a hand-off, whose id is stored once. */
        j->tries++;
        kn_log_info("offline store for %s: no database connection free in "
                    "time, queued again",
                    j->bare);
        off_insert(j);
        return;
    }
    bool blocked =
        err == 0 && PQntuples(res) >= 1 && PQgetvalue(res, 0, 0)[0] == 't';
    bool dup = !blocked && err == 0 && PQntuples(res) >= 1 &&
               PQnfields(res) > 6 && PQgetvalue(res, 0, 6)[0] == 't';
    if (dup) {
        /* Handed again (the router's copy outlived a presenced that
         * stored it but was killed before its ACK): one row. */
        kn_log_info("offline: message for %s (hand-off %llu) stored "
                    "already: not stored again",
                    j->bare, (unsigned long long)j->handoff);
        p->stats.offline_dups++;
    } else if (blocked) {
        /* XEP-0191: from a JID the user blocked; the user looks offline
         * to it, whatever offline_type says. */
        pres_send_error(p, j->st, KN_STE_SERVICE_UNAVAILABLE);
        p->stats.offline_bounced++;
    } else if (err == 0 && PQntuples(res) >= 1 && !PQgetisnull(res, 0, 1)) {
        p->stats.offline_stored++;
        /* A would-be-missed message: tell the user's app servers
         * (XEP-0357, R-GRP-8). */
        pres_push_stored(p, j->bare, j->st, res, 2);
    } else {
        if (err != 0)
            kn_log_info("offline store for %s failed: %s", j->bare,
                        res ? PQresultErrorMessage(res) : kn_strerror(err));
        if (err != 0 || p->conf.offline_type == PRES_OFFLINE_STORE_AND_BOUNCE) {
            /* R-ARCH-3: service-unavailable; over quota it says why (the
             * sender may retry once the recipient read its messages). */
            char text[96];
            snprintf(text, sizeof(text),
                     "Offline storage of the recipient is full (%lld bytes)",
                     p->conf.offline_quota_bytes);
            pres_send_error_text(p, j->st, KN_STE_SERVICE_UNAVAILABLE,
                                 err == 0 ? text : NULL);
            p->stats.offline_bounced++;
        }
    }
    off_handoff_ack(p, j->handoff); /* after what it caused: in order */
    off_job_free(j);
}

void pres_offline_store(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                        const void *payload, size_t len)
{
    const char *to = kn_stanza_to(st);
    const char *type = kn_stanza_type(st);
    if (to == NULL || !pres_is_local(p, to) || p->pg == NULL ||
        (type != NULL && strcmp(type, "error") == 0) ||
        (kn_stanza_child(st, 0, "body", NULL) < 0 &&
         kn_stanza_child(st, 0, "subject", NULL) < 0 &&
         kn_stanza_child(st, 0, "store", NS_HINTS) < 0 &&
         kn_stanza_child(st, 0, "propose", NS_JMI) < 0)) {
        /* chat states and receipts alone are not stored; a store hint
         * (XEP-0334) or a call proposal (XEP-0353: the callee sees a
         * missed call) is */
        pres_offline_handoff_done(p, env);
        return;
    }
    char *bare = pres_bare_of(to);
    pres_user_t *u = pres_user_find(p, bare);
    if (pres_user_navail(u) > 0 &&
        !(env->flags & (KN_F_NO_OFFLINE | KN_F_OFFLINE_RESENT))) {
        /* A resource came up while the message was in flight: sent on,
         * marked; if the router has no resource for it either, it comes
         * back marked and is stored below. */
        kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", bare);
        pres_send(p, t, KN_F_OFFLINE_RESENT);
        kn_stanza_unref(&t);
        free(bare);
        p->stats.offline_resent++;
        pres_offline_handoff_done(p, env); /* after the resend: in order */
        return;
    }
    if (env->flags & KN_F_OFFLINE_RESENT) {
        kn_log_info("offline: message for %s sent on to an available "
                    "resource came back (%s): stored",
                    bare,
                    env->kind == KN_ENV_BOUNCE ? "bounced" : "no resource");
        p->stats.offline_resent_stored++;
    }
    off_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->st = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = bare;
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_OFFLINE_HANDOFF))
        j->handoff = env->ack_id;
    char bytes[32], quota[32];
    snprintf(bytes, sizeof(bytes), "%zu", len);
    snprintf(quota, sizeof(quota), "%lld", p->conf.offline_quota_bytes);
    const char *from = kn_stanza_from(st);
    /* The sender as routed (prepared) for the XEP-0191 check. */
    char sender[KN_ENV_STR_MAX + 1];
    if (env->from_len > 0)
        snprintf(sender, sizeof(sender), "%.*s", (int)env->from_len, env->from);
    else
        snprintf(sender, sizeof(sender), "%s", from ? from : "");
    const char *k[4];
    char *kb = pres_block_key_params(sender, strlen(sender), k);
    j->params[0] = pres_localpart(bare);
    j->params[1] = kn_strdup(from ? from : "");
    j->params[2] = kn_malloc(len + 1);
    memcpy(j->params[2], payload, len);
    j->params[2][len] = '\0';
    j->params[3] = kn_strdup(bytes);
    j->params[4] = kn_strdup(quota);
    for (int i = 0; i < 4; i++)
        j->params[5 + i] = kn_strdup(k[i]);
    /* The sender's bare JID: a registration may mute it (a group room). */
    j->params[9] = pres_bare_of(sender);
    if (j->handoff != 0) { /* else NULL: no key */
        char hid[24];
        snprintf(hid, sizeof(hid), "%llu", (unsigned long long)j->handoff);
        j->params[10] = kn_strdup(hid);
    }
    free(kb);
    off_insert(j);
}

/* One row, or one per push registration (XEP-0357) not muting the
 * sender when the row was stored, with the user's stored count (the
 * main query does not see the insert: + 1). The router's hand-off id
 * ($11, NULL without) is stored once (a unique key): a message handed
 * again that is stored already is not inserted, and column 6 says so
 * (seen by this statement, or stored meanwhile by another presenced:
 * the conflict's update, xmax not 0). */
static void off_insert(off_job_t *j)
{
    kn_pg_query(pres_pg_ordered(j->p),
                "with b as (select exists (select 1 from blocklist where"
                " username = $1 and jid in ($6, $7, $8, $9)) as blocked),"
                " d as (select exists (select 1 from offline_messages where"
                " handoff = $11::bigint) as dup),"
                " ins as (insert into offline_messages (username, sender,"
                " stanza, bytes, handoff) select $1, $2, $3, $4::int,"
                " $11::bigint where not (select blocked from b) and not"
                " (select dup from d) and (select coalesce(sum(bytes), 0)"
                " from offline_messages where username = $1) + $4::int <="
                " $5::bigint on conflict (handoff) where handoff is not null"
                " do update set handoff = excluded.handoff"
                " returning id, xmax = 0 as fresh)"
                " select (select blocked from b), (select id from ins),"
                " r.jid, r.node, r.options, case when r.jid is null then null"
                " else (select count(*) from offline_messages where"
                " username = $1) + 1 end,"
                " (select dup from d) or coalesce((select not fresh from"
                " ins), false)"
                " from (select 1) one left join push_registrations r on"
                " r.username = $1 and exists (select 1 from ins where fresh)"
                " and not ($10 = any (r.muted))",
                OFF_STORE_PARAMS, (const char *const *)j->params, off_stored,
                j);
}

/* ---- rows in flight ---------------------------------------------------- */

static pres_off_row_t *off_find(pres_t *p, uint64_t id)
{
    pres_off_row_t *r = NULL;
    HASH_FIND(hh, p->off_rows, &id, sizeof(id), r);
    return r;
}

static void off_forget(pres_t *p, pres_off_row_t *r)
{
    HASH_DEL(p->off_rows, r);
    free(r);
}

static void off_mark(pres_t *p, pres_sess_t *s, uint64_t id)
{
    pres_off_row_t *r = kn_calloc(1, sizeof(*r));
    r->id = id;
    r->conn = s->conn;
    HASH_ADD(hh, p->off_rows, id, sizeof(r->id), r);
    if (s->noff == s->off_cap) {
        s->off_cap = s->off_cap ? 2 * s->off_cap : 16;
        s->off_ids = kn_realloc(s->off_ids, s->off_cap * sizeof(*s->off_ids));
    }
    s->off_ids[s->noff++] = id;
}

void pres_offline_free(pres_t *p)
{
    pres_off_row_t *r, *tmp;
    HASH_ITER(hh, p->off_rows, r, tmp)
    {
        off_forget(p, r);
    }
}

/* "{1,2,3}": a bigint[] parameter. */
static void off_id_array(const uint64_t *ids, size_t n, kn_buf_t *out)
{
    kn_buf_append_byte(out, '{');
    for (size_t i = 0; i < n; i++)
        kn_buf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
    kn_buf_append_byte(out, '}');
}

static void off_delete_try(pres_t *p, uint64_t *ids, size_t n, unsigned tries);

static void off_deleted(const PGresult *res, int err, void *arg)
{
    off_job_t *j = arg;
    pres_t *p = j->p;
    if ((err == -KN_EAGAIN || err == -KN_ECLOSED) &&
        j->tries < OFF_STORE_RETRIES) {
        /* A database restart: the delete is idempotent, so it is sent
         * again (else the written rows were delivered a second time);
         * the rows stay in flight meanwhile, so no read hands them out. */
        kn_log_info("offline delete of %zu written rows: %s, queued again",
                    j->nids, kn_strerror(err));
        off_delete_try(p, j->ids, j->nids, j->tries + 1);
        j->ids = NULL;
        off_job_free(j);
        return;
    }
    if (err != 0)
        kn_log_warn("offline delete of %zu written rows failed (they will be "
                    "delivered again): %s",
                    j->nids,
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    /* Deleted, or (failed) still stored and free for the next login. */
    for (size_t i = 0; i < j->nids; i++) {
        pres_off_row_t *r = off_find(p, j->ids[i]);
        if (r != NULL && r->acked)
            off_forget(p, r);
    }
    off_job_free(j);
}

/* Delete rows ids[0..n) (taken) through the ordered pool. */
static void off_delete(pres_t *p, uint64_t *ids, size_t n)
{
    off_delete_try(p, ids, n, 0);
}

static void off_delete_try(pres_t *p, uint64_t *ids, size_t n, unsigned tries)
{
    off_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->ids = ids;
    j->nids = n;
    j->tries = tries;
    kn_buf_t arr = KN_BUF_INIT;
    off_id_array(ids, n, &arr);
    const char *params[] = {arr.data};
    kn_pg_query(pres_pg_ordered(p),
                "delete from offline_messages where id = any($1::bigint[])", 1,
                params, off_deleted, j);
    kn_buf_free(&arr);
}

void pres_offline_ack(pres_t *p, const kn_env_t *env)
{
    if (env->ntargets == 0 || p->pg == NULL)
        return;
    uint64_t *ids = kn_malloc(env->ntargets * sizeof(*ids));
    for (size_t i = 0; i < env->ntargets; i++) {
        ids[i] = kn_env_target(env, i);
        pres_off_row_t *r = off_find(p, ids[i]);
        if (r != NULL)
            r->acked = true;
    }
    /* Rows we do not hold (we restarted since they were sent) were
     * written all the same. */
    p->stats.offline_acked += env->ntargets;
    off_delete(p, ids, env->ntargets);
}

/* ---- delivery --------------------------------------------------------------
 */

static kn_stanza_t *off_with_delay(pres_t *p, const char *xml, const char *full,
                                   double at)
{
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &st) < 0)
        return NULL;
    kn_stanza_builder_t *b = kn_stanza_dup(st);
    kn_stanza_unref(&st);
    kn_stanza_builder_set_attr(b, 0, "to", full);
    char stamp[32];
    pres_stamp(at, stamp, sizeof(stamp));
    kn_stanza_builder_start(b, "delay", NS_DELAY);
    kn_stanza_builder_attr(b, "from", p->domain);
    kn_stanza_builder_attr(b, "stamp", stamp);
    kn_stanza_builder_text(b, "Offline Storage", 15);
    kn_stanza_builder_end(b);
    st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    return st;
}

static void off_read(pres_t *p, const char *bare, pres_sess_t *s,
                     bool redelivery);

/* The session of u that freed rows go to: available, login done,
 * highest non-negative priority (RFC 6121 8.5.2.1.1); not `except`. */
static pres_sess_t *off_best_session(pres_user_t *u, const pres_sess_t *except)
{
    pres_sess_t *best = NULL;
    for (pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s != except && s->avail && s->initial_done && s->prio >= 0 &&
            (best == NULL || s->prio > best->prio))
            best = s;
    return best;
}

/* Rows of u were freed: hand them to its best other session (one read
 * per user at a time; rows freed during it take one more). */
static void off_redeliver(pres_t *p, pres_user_t *u, const pres_sess_t *except)
{
    pres_sess_t *s = off_best_session(u, except);
    if (s == NULL)
        return;
    if (u->off_pass) {
        u->off_again = true;
        return;
    }
    u->off_pass = true;
    off_read(p, u->bare, s, true);
}

static void off_rows(const PGresult *res, int err, void *arg)
{
    off_job_t *j = arg;
    pres_t *p = j->p;
    pres_sess_t *s = pres_sess_find(p, j->full);
    if (s != NULL && s->conn != j->conn)
        s = NULL; /* replaced: the new session reads for itself */
    if (err != 0)
        kn_log_warn("offline read for %s failed: %s", j->full,
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    uint64_t *bad = NULL;
    size_t nbad = 0, sent = 0;
    for (int i = 0; s != NULL && err == 0 && i < PQntuples(res); i++) {
        uint64_t id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        if (off_find(p, id) != NULL)
            continue; /* in flight to another session, or being deleted */
        kn_stanza_t *st = off_with_delay(p, PQgetvalue(res, i, 1), j->full,
                                         atof(PQgetvalue(res, i, 2)));
        if (st == NULL) {
            kn_log_warn("offline row %llu for %s does not parse: deleted",
                        (unsigned long long)id, j->bare);
            bad = kn_realloc(bad, (nbad + 1) * sizeof(*bad));
            bad[nbad++] = id;
            continue;
        }
        off_mark(p, s, id);
        pres_send_row(p, st, s->conn, id);
        p->stats.offline_sent++;
        sent++;
        kn_stanza_unref(&st);
    }
    if (sent > 0)
        kn_log_info("offline: %zu messages to %s, deleted once written", sent,
                    j->full);
    if (nbad > 0)
        off_delete(p, bad, nbad);
    if (j->redelivery) {
        pres_user_t *u = pres_user_find(p, j->bare);
        if (u != NULL) {
            u->off_pass = false;
            if (u->off_again) {
                u->off_again = false;
                off_redeliver(p, u, NULL);
            }
        }
    }
    off_job_free(j);
}

/* Read bare's rows for session s (the ordered pool: every insert queued
 * before is seen, every delete queued before has happened). */
static void off_read(pres_t *p, const char *bare, pres_sess_t *s,
                     bool redelivery)
{
    off_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(s->full);
    j->conn = s->conn;
    j->redelivery = redelivery;
    char *local = pres_localpart(bare);
    const char *params[] = {local};
    kn_pg_query(pres_pg_ordered(p),
                "select id, stanza, extract(epoch from created_at) from"
                " offline_messages where username = $1 order by id",
                1, params, off_rows, j);
    free(local);
}

void pres_offline_deliver(pres_t *p, const char *bare, const char *full)
{
    pres_sess_t *s = pres_sess_find(p, full);
    if (p->pg == NULL || s == NULL)
        return;
    off_read(p, bare, s, false);
}

void pres_offline_returned(pres_t *p, const kn_env_t *env)
{
    p->stats.offline_returned++;
    char to[KN_ENV_STR_MAX + 1];
    snprintf(to, sizeof(to), "%.*s", (int)env->to_len, env->to);
    kn_log_info("offline: message %llu for %s came back unwritten: kept",
                (unsigned long long)env->ack_id, to);
    pres_off_row_t *r = off_find(p, env->ack_id);
    if (r != NULL && (r->acked || r->conn != env->conn_id))
        return; /* written by now, or already on its way to another session */
    if (r != NULL)
        off_forget(p, r);
    char *bare = pres_bare_of(to);
    off_redeliver(p, pres_user_find(p, bare), NULL);
    free(bare);
}

void pres_offline_session_gone(pres_t *p, pres_sess_t *s)
{
    size_t freed = 0;
    for (size_t i = 0; i < s->noff; i++) {
        pres_off_row_t *r = off_find(p, s->off_ids[i]);
        if (r != NULL && r->conn == s->conn && !r->acked) {
            off_forget(p, r);
            freed++;
        }
    }
    kn_free(&s->off_ids);
    s->noff = s->off_cap = 0;
    if (freed == 0)
        return;
    kn_log_info("offline: %zu messages to %s not written: kept", freed,
                s->full);
    off_redeliver(p, s->user, s);
}

/* ---- a stop -------------------------------------------------------------
 */

/* The router's answer may not come (a router of an older build, or none
 * reachable): the stop waits for it this long at most. */
#define PRES_OFF_STOP_WAIT 2.0

static void off_stop_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pres_t *p = t->data;
    if (p->off_stop_wait)
        kn_log_warn("stopping: no answer from the router to our stopping "
                    "notice in %.0f s: stopping all the same",
                    PRES_OFF_STOP_WAIT);
    p->off_stop_wait = false;
}

void pres_offline_stopping(pres_t *p)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_REGISTER;
    e.flags = KN_REG_OFFLINE;
    e.reason = KN_ENV_REASON_SHUTDOWN;
    p->sink.send(p->sink.ud, &e, NULL, 0);
    if (p->loop == NULL)
        return;
    p->off_stop_wait = true;
    ev_timer_init(&p->off_stop_timer, off_stop_timeout, PRES_OFF_STOP_WAIT, 0.);
    p->off_stop_timer.data = p;
    ev_timer_start(p->loop, &p->off_stop_timer);
}

void pres_offline_stop_answered(pres_t *p)
{
    if (p->off_stop_wait)
        kn_log_info("stopping: the router hands us nothing more");
    p->off_stop_wait = false;
    if (p->loop != NULL)
        ev_timer_stop(p->loop, &p->off_stop_timer);
}

size_t pres_offline_stop_pending(const pres_t *p)
{
    return p != NULL && p->off_stop_wait ? 1 : 0;
}
