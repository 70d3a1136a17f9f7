/*
 * muc_mam.c - the room archive, XEP-0313 (urn:xmpp:mam:2) with RSM
 * (XEP-0059) paging: R-GRP-5.
 *
 * Archive ids are the room's stanza-ids (XEP-0359), a per-room counter
 * that only grows, so "everything after X" is `id > X` and pages never
 * overlap or leave gaps. Filters: form fields start, end, after-id,
 * before-id; RSM max (default 50, at most 250), after, before (empty:
 * the last page). Results go to the asker as <message><result/></message>
 * before the IQ result carrying <fin/>; they all travel the same ordered
 * path (mucd -> router -> one c2s connection), so the client sees them
 * first.
 *
 * Queries run on the ordered store queue (muc_store.c), behind the
 * archive inserts already queued, so a query right after a message sees
 * it. Without a store (unit tests), the history ring answers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "muc_aff.h"
#include "muc_history.h"
#include "muc_iq.h"
#include "muc_out.h"
#include "muc_room.h"
#include "muc_store.h"

#define MAM_MAX_DEFAULT 50
#define MAM_MAX_LIMIT   250

typedef struct mam_req {
    muc_t *m;
    kn_stanza_t *iq;
    char *room;
    char *queryid;
    size_t max;
    bool backward;
    int64_t after, before; /* -1: none */
    int64_t start, end;    /* epoch seconds, -1: none */
} mam_req_t;

static void mam_req_free(mam_req_t *r)
{
    kn_stanza_unref(&r->iq);
    free(r->room);
    free(r->queryid);
    free(r);
}

static void mam_result(muc_t *m, const mam_req_t *r, uint64_t id, time_t at,
                       const kn_stanza_t *msg)
{
    char sid[24], stamp[32], mid[48];
    snprintf(sid, sizeof(sid), "%" PRIu64, id);
    muc_time_format(at, stamp, sizeof(stamp));
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", r->room);
    kn_stanza_builder_attr(b, "to", kn_stanza_from(r->iq));
    kn_stanza_builder_attr(b, "id", muc_next_id(m, mid, sizeof(mid)));
    kn_stanza_builder_start(b, "result", MUC_NS_MAM);
    if (r->queryid)
        kn_stanza_builder_attr(b, "queryid", r->queryid);
    kn_stanza_builder_attr(b, "id", sid);
    kn_stanza_builder_start(b, "forwarded", MUC_NS_FORWARD);
    kn_stanza_builder_start(b, "delay", MUC_NS_DELAY);
    kn_stanza_builder_attr(b, "stamp", stamp);
    kn_stanza_builder_end(b);
    kn_stanza_builder_copy(b, msg, 0);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    muc_send(m, st);
    kn_stanza_unref(&st);
}

static void mam_fin(muc_t *m, const mam_req_t *r, bool complete, uint64_t first,
                    uint64_t last, size_t n)
{
    char num[24];
    kn_stanza_builder_t *b = m->b;
    muc_iq_result_start(m, r->iq);
    kn_stanza_builder_start(b, "fin", MUC_NS_MAM);
    if (r->queryid)
        kn_stanza_builder_attr(b, "queryid", r->queryid);
    if (complete)
        kn_stanza_builder_attr(b, "complete", "true");
    kn_stanza_builder_start(b, "set", MUC_NS_RSM);
    if (n > 0) {
        snprintf(num, sizeof(num), "%" PRIu64, first);
        kn_stanza_builder_start(b, "first", NULL);
        kn_stanza_builder_text(b, num, strlen(num));
        kn_stanza_builder_end(b);
        snprintf(num, sizeof(num), "%" PRIu64, last);
        kn_stanza_builder_start(b, "last", NULL);
        kn_stanza_builder_text(b, num, strlen(num));
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    muc_send(m, st);
    kn_stanza_unref(&st);
}

static void mam_on_rows(const PGresult *res, int err, void *arg)
{
    mam_req_t *r = arg;
    muc_t *m = r->m;
    if (err < 0) {
        if (err != -KN_ECLOSED || res != NULL)
            muc_send_error(m, r->iq, KN_STE_INTERNAL_SERVER_ERROR, NULL);
        mam_req_free(r);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    bool complete = n <= r->max;
    if (!complete)
        n = r->max;
    /* Rows come newest first when paging backwards: send oldest first. */
    uint64_t first = 0, last = 0;
    for (size_t k = 0; k < n; k++) {
        int i = r->backward ? (int)(n - 1 - k) : (int)k;
        uint64_t id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        time_t at = (time_t)strtoll(PQgetvalue(res, i, 1), NULL, 10);
        const char *xml = PQgetvalue(res, i, 2);
        kn_stanza_t *st = NULL;
        if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &st) < 0) {
            kn_log_warn("mam: archived row %" PRIu64 " of %s unreadable", id,
                        r->room);
            continue;
        }
        if (k == 0)
            first = id;
        last = id;
        mam_result(m, r, id, at, st);
        kn_stanza_unref(&st);
    }
    mam_fin(m, r, complete, first, last, n);
    mam_req_free(r);
}

static void mam_from_ring(muc_t *m, mam_req_t *r, const muc_room_t *room)
{
    size_t lo = 0, hi = room->hist_len; /* candidate range [lo, hi) */
    while (lo < hi) {
        const muc_hist_t *h = muc_history_at(room, lo);
        if ((r->after < 0 || h->seq > (uint64_t)r->after) &&
            (r->start < 0 || h->at >= r->start))
            break;
        lo++;
    }
    while (hi > lo) {
        const muc_hist_t *h = muc_history_at(room, hi - 1);
        if ((r->before < 0 || h->seq < (uint64_t)r->before) &&
            (r->end < 0 || h->at <= r->end))
            break;
        hi--;
    }
    bool complete = hi - lo <= r->max;
    if (!complete) {
        if (r->backward)
            lo = hi - r->max;
        else
            hi = lo + r->max;
    }
    uint64_t first = 0, last = 0;
    for (size_t i = lo; i < hi; i++) {
        const muc_hist_t *h = muc_history_at(room, i);
        if (i == lo)
            first = h->seq;
        last = h->seq;
        mam_result(m, r, h->seq, h->at, h->msg);
    }
    mam_fin(m, r, complete, first, last, hi - lo);
}

static int64_t mam_num(const char *s)
{
    char *end;
    if (s == NULL || *s == '\0')
        return -1;
    long long v = strtoll(s, &end, 10);
    return (*end != '\0' || v < 0) ? -2 : v;
}

static void mam_form(muc_t *m, const kn_stanza_t *iq)
{
    static const char *const vars[] = {"start", "end", "after-id", "before-id"};
    kn_stanza_builder_t *b = m->b;
    muc_iq_result_start(m, iq);
    kn_stanza_builder_start(b, "query", MUC_NS_MAM);
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", "FORM_TYPE");
    kn_stanza_builder_attr(b, "type", "hidden");
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, MUC_NS_MAM, strlen(MUC_NS_MAM));
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    for (size_t i = 0; i < KN_ARRAY_LEN(vars); i++) {
        kn_stanza_builder_start(b, "field", NULL);
        kn_stanza_builder_attr(b, "var", vars[i]);
        kn_stanza_builder_attr(b, "type", "text-single");
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    muc_send(m, st);
    kn_stanza_unref(&st);
}

void muc_mam_iq(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    muc_room_t *room = muc_room_find(m, in->room);
    if (room == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (!room->cfg.mam) {
        muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE,
                       "this room is not archived");
        return;
    }
    muc_aff_t aff = muc_room_aff(room, in->from_bare);
    if (aff == MUC_AFF_OUTCAST ||
        (room->cfg.members_only && aff < MUC_AFF_MEMBER)) {
        muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
        return;
    }
    if (strcmp(kn_stanza_type(st), "get") == 0) {
        mam_form(m, st);
        return;
    }
    int q = muc_iq_query(st);
    mam_req_t *r = kn_calloc(1, sizeof(*r));
    r->m = m;
    r->iq = kn_stanza_ref((kn_stanza_t *)st);
    r->room = kn_strdup(room->jid);
    const char *qid = kn_stanza_attr(st, q, "queryid", NULL);
    r->queryid = qid ? kn_strdup(qid) : NULL;
    r->max = MAM_MAX_DEFAULT;
    r->after = r->before = r->start = r->end = -1;
    bool bad = false;
    kn_buf_t v = KN_BUF_INIT;
    int x = kn_stanza_child(st, q, "x", MUC_NS_DATA);
    for (int f = x >= 0 ? kn_stanza_first_child(st, x) : -1; f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        int ve = kn_stanza_child(st, f, "value", NULL);
        if (var == NULL || ve < 0)
            continue;
        kn_buf_reset(&v);
        kn_buf_append_str(&v, "");
        kn_stanza_text(st, ve, &v);
        time_t t;
        if (strcmp(var, "after-id") == 0)
            bad |= (r->after = mam_num(v.data)) == -2;
        else if (strcmp(var, "before-id") == 0)
            bad |= (r->before = mam_num(v.data)) == -2;
        else if (strcmp(var, "start") == 0)
            bad |= muc_time_parse(v.data, &t) < 0, r->start = t;
        else if (strcmp(var, "end") == 0)
            bad |= muc_time_parse(v.data, &t) < 0, r->end = t;
    }
    int set = kn_stanza_child(st, q, "set", MUC_NS_RSM);
    if (set >= 0) {
        int e;
        if ((e = kn_stanza_child(st, set, "max", NULL)) >= 0) {
            kn_buf_reset(&v);
            kn_buf_append_str(&v, "");
            kn_stanza_text(st, e, &v);
            int64_t mx = mam_num(v.data);
            bad |= mx < 0;
            if (mx >= 0)
                r->max = mx > MAM_MAX_LIMIT ? MAM_MAX_LIMIT : (size_t)mx;
        }
        if ((e = kn_stanza_child(st, set, "after", NULL)) >= 0) {
            kn_buf_reset(&v);
            kn_buf_append_str(&v, "");
            kn_stanza_text(st, e, &v);
            int64_t a = mam_num(v.data);
            bad |= a < 0;
            if (a > r->after)
                r->after = a;
        }
        if ((e = kn_stanza_child(st, set, "before", NULL)) >= 0) {
            kn_buf_reset(&v);
            kn_buf_append_str(&v, "");
            kn_stanza_text(st, e, &v);
            int64_t bf = mam_num(v.data);
            bad |= bf == -2;
            r->backward = true;
            if (bf >= 0 && (r->before < 0 || bf < r->before))
                r->before = bf;
        }
    }
    kn_buf_free(&v);
    if (bad) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
        mam_req_free(r);
        return;
    }
    if (m->store == NULL || !room->stored) {
        mam_from_ring(m, r, room);
        mam_req_free(r);
        return;
    }
    char a[24], b4[24], s[24], e[24], lim[24];
    snprintf(a, sizeof(a), "%lld", (long long)r->after);
    snprintf(b4, sizeof(b4), "%lld", (long long)r->before);
    snprintf(s, sizeof(s), "%lld", (long long)r->start);
    snprintf(e, sizeof(e), "%lld", (long long)r->end);
    snprintf(lim, sizeof(lim), "%zu", r->max + 1);
    const char *params[] = {r->room,
                            r->after >= 0 ? a : NULL,
                            r->before >= 0 ? b4 : NULL,
                            r->start >= 0 ? s : NULL,
                            r->end >= 0 ? e : NULL,
                            lim};
    const char *sql_fwd =
        "select a.id, extract(epoch from a.at)::bigint, a.stanza from "
        "muc_archive a join muc_room r on r.id = a.room_id where r.jid = $1 "
        "and ($2::bigint is null or a.id > $2::bigint) and ($3::bigint is "
        "null or a.id < $3::bigint) and ($4::bigint is null or a.at >= "
        "to_timestamp($4::bigint)) and ($5::bigint is null or a.at <= "
        "to_timestamp($5::bigint)) order by a.id asc limit $6::bigint";
    const char *sql_back =
        "select a.id, extract(epoch from a.at)::bigint, a.stanza from "
        "muc_archive a join muc_room r on r.id = a.room_id where r.jid = $1 "
        "and ($2::bigint is null or a.id > $2::bigint) and ($3::bigint is "
        "null or a.id < $3::bigint) and ($4::bigint is null or a.at >= "
        "to_timestamp($4::bigint)) and ($5::bigint is null or a.at <= "
        "to_timestamp($5::bigint)) order by a.id desc limit $6::bigint";
    muc_store_query(m->store, r->backward ? sql_back : sql_fwd,
                    KN_ARRAY_LEN(params), params, false, mam_on_rows, r);
}
