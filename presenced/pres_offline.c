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
 * (chat states) are not worth storing and are dropped. A message from a
 * JID the user blocked (XEP-0191) is refused by the same statement and
 * always answered with service-unavailable, as an online user's c2s
 * answers it (c2s_block.c).
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
 * Delivery runs at the end of the login flow (pres_broadcast.c), in id
 * order, each with a XEP-0203 delay; the rows are deleted (up to the last
 * id sent) only after all were handed to the router, on the same socket
 * the c2s node reads in order. If the session vanished meanwhile they are
 * kept for the next login. (Deleting only after the c2s write, or the
 * XEP-0198 ack, needs a c2s acknowledgement: NEEDS.md.)
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

#define NS_DELAY "urn:xmpp:delay"

typedef struct off_job {
    pres_t *p;
    kn_stanza_t *st;
    char *bare;
    char *full;
} off_job_t;

static void off_job_free(off_job_t *j)
{
    kn_stanza_unref(&j->st);
    free(j->bare);
    free(j->full);
    free(j);
}

static void off_stored(const PGresult *res, int err, void *arg)
{
    off_job_t *j = arg;
    pres_t *p = j->p;
    bool blocked =
        err == 0 && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    if (blocked) {
        /* XEP-0191: from a JID the user blocked; the user looks offline
         * to it, whatever offline_type says. */
        pres_send_error(p, j->st, KN_STE_SERVICE_UNAVAILABLE);
        p->stats.offline_bounced++;
    } else if (err == 0 && PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
        p->stats.offline_stored++;
    } else {
        if (err != 0)
            kn_log_info("offline store for %s failed: %s", j->bare,
                        res ? PQresultErrorMessage(res) : kn_strerror(err));
        if (err != 0 || p->conf.offline_type == PRES_OFFLINE_STORE_AND_BOUNCE) {
            pres_send_error(p, j->st, KN_STE_SERVICE_UNAVAILABLE);
            p->stats.offline_bounced++;
        }
    }
    off_job_free(j);
}

void pres_offline_store(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                        const void *payload, size_t len)
{
    (void)env;
    const char *to = kn_stanza_to(st);
    if (to == NULL || !pres_is_local(p, to) || p->pg == NULL)
        return;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0)
        return;
    if (kn_stanza_child(st, 0, "body", NULL) < 0 &&
        kn_stanza_child(st, 0, "subject", NULL) < 0)
        return; /* chat states and receipts alone are not stored */
    char *bare = pres_bare_of(to);
    pres_user_t *u = pres_user_find(p, bare);
    if (pres_user_navail(u) > 0 && !(env->flags & KN_F_NO_OFFLINE)) {
        /* A resource came up while the message was in flight. */
        kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", bare);
        pres_send(p, t, KN_F_NO_OFFLINE);
        kn_stanza_unref(&t);
        free(bare);
        return;
    }
    off_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->st = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = bare;
    char *local = pres_localpart(bare);
    char bytes[32], quota[32];
    snprintf(bytes, sizeof(bytes), "%zu", len);
    snprintf(quota, sizeof(quota), "%lld", p->conf.offline_quota_bytes);
    const char *from = kn_stanza_from(st);
    kn_buf_t xml = KN_BUF_INIT;
    kn_buf_append(&xml, payload, len);
    /* The sender as routed (prepared) for the XEP-0191 check. */
    char sender[KN_ENV_STR_MAX + 1];
    if (env->from_len > 0)
        snprintf(sender, sizeof(sender), "%.*s", (int)env->from_len, env->from);
    else
        snprintf(sender, sizeof(sender), "%s", from ? from : "");
    const char *k[4];
    char *kb = pres_block_key_params(sender, strlen(sender), k);
    const char *params[] = {
        local, from ? from : "", xml.data, bytes, quota, k[0], k[1], k[2],
        k[3]};
    kn_pg_query(pres_pg_ordered(p),
                "with b as (select exists (select 1 from blocklist where"
                " username = $1 and jid in ($6, $7, $8, $9)) as blocked),"
                " ins as (insert into offline_messages (username, sender,"
                " stanza, bytes) select $1, $2, $3, $4::int where not"
                " (select blocked from b) and (select coalesce(sum(bytes), 0)"
                " from offline_messages where username = $1) + $4::int <="
                " $5::bigint returning id)"
                " select (select blocked from b), (select id from ins)",
                9, params, off_stored, j);
    free(kb);
    kn_buf_free(&xml);
    free(local);
}

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

static void off_rows(const PGresult *res, int err, void *arg)
{
    off_job_t *j = arg;
    pres_t *p = j->p;
    if (err != 0 || PQntuples(res) == 0 || pres_sess_find(p, j->full) == NULL) {
        off_job_free(j);
        return;
    }
    const char *maxid = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        kn_stanza_t *st = off_with_delay(p, PQgetvalue(res, i, 1), j->full,
                                         atof(PQgetvalue(res, i, 2)));
        maxid = PQgetvalue(res, i, 0);
        if (st == NULL)
            continue;
        /* To the full JID: if it vanished, the router stores it again. */
        pres_send(p, st, 0);
        p->stats.offline_delivered++;
        kn_stanza_unref(&st);
    }
    char *local = pres_localpart(j->bare);
    const char *params[] = {local, maxid};
    kn_pg_query(pres_pg_ordered(p),
                "delete from offline_messages where username = $1 and"
                " id <= $2::bigint",
                2, params, pres_pg_ignore, (void *)"offline delete");
    free(local);
    off_job_free(j);
}

void pres_offline_deliver(pres_t *p, const char *bare, const char *full)
{
    if (p->pg == NULL)
        return;
    off_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(full);
    char *local = pres_localpart(bare);
    const char *params[] = {local};
    kn_pg_query(pres_pg_ordered(p),
                "select id, stanza, extract(epoch from created_at) from"
                " offline_messages where username = $1 order by id",
                1, params, off_rows, j);
    free(local);
}
