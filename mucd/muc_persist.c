/*
 * muc_persist.c - rooms, affiliations and the archive in PostgreSQL
 * (sql/0020_muc.sql), through the ordered queue of muc_store.c; loading
 * them at start; reloading one room when another process changed it.
 *
 * A note on invalidation (R-GRP-2, R-CACHE-3). Every affiliation or
 * configuration write is followed, in the same ordered queue, by
 * pg_notify('kiln_muc', '<origin>|<room jid>'). Every mucd (and kilnctl,
 * which writes the same tables) does the same; every mucd LISTENs
 * (muc_listen.c) and reloads the named room from the database unless the
 * origin is itself. NOTIFY is delivered only after the writing
 * transaction commits, so the reload always sees the change: no "restart
 * to see it". This is PostgreSQL's pub/sub rather than Redis's because
 * the database is where the change happens; there is no window between
 * write and announcement, and kilnctl needs no Redis.
 */
#include "muc_persist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "muc_aff.h"
#include "muc_bookmark.h"
#include "muc_config.h"
#include "muc_history.h"
#include "muc_load.h"
#include "muc_occupant.h"
#include "muc_room.h"
#include "muc_store.h"

bool muc_persist_wanted(const muc_room_t *room)
{
    return room->cfg.persistent || room->cfg.mam;
}

static void persist_notify(muc_t *m, const muc_room_t *room)
{
    kn_buf_t p = KN_BUF_INIT;
    kn_buf_printf(&p, "%s|%s", m->set.origin ? m->set.origin : "", room->jid);
    const char *params[] = {p.data};
    muc_store_query(m->store, "select pg_notify('kiln_muc', $1)", 1, params,
                    true, NULL, NULL);
    kn_buf_free(&p);
}

static void persist_aff_q(muc_t *m, const muc_room_t *room, const char *bare,
                          muc_aff_t aff, const char *nick, const char *by)
{
    if (aff == MUC_AFF_NONE) {
        const char *params[] = {room->jid, bare};
        muc_store_query(m->store,
                        "delete from muc_affiliation where room_id = (select "
                        "id from muc_room where jid = $1) and bare_jid = $2",
                        2, params, true, NULL, NULL);
        return;
    }
    const char *params[] = {room->jid, bare, muc_aff_name(aff), nick, by};
    muc_store_query(
        m->store,
        "insert into muc_affiliation (room_id, bare_jid, affiliation, nick, "
        "added_by) select id, $2, $3, $4, $5 from muc_room where jid = $1 "
        "and destroyed_at is null on conflict (room_id, bare_jid) do update "
        "set affiliation = "
        "excluded.affiliation, nick = coalesce(excluded.nick, "
        "muc_affiliation.nick), added_by = excluded.added_by, added_at = "
        "now()",
        5, params, true, NULL, NULL);
}

void muc_persist_room(muc_t *m, muc_room_t *room)
{
    if (m->store == NULL)
        return;
    const muc_config_t *c = &room->cfg;
    char hmax[24], maxo[24], maxp[24];
    snprintf(hmax, sizeof(hmax), "%zu", c->history_max);
    snprintf(maxo, sizeof(maxo), "%zu", c->max_occupants);
    snprintf(maxp, sizeof(maxp), "%zu", c->max_occupant_presence);
#define B(x) ((x) ? "t" : "f")
    const char *params[] = {
        room->jid,
        room->node,
        m->set.service,
        c->title,
        c->description,
        c->password,
        B(c->persistent),
        B(c->members_only),
        B(c->moderated),
        B(c->public_room),
        B(c->change_subject),
        B(c->allow_invites),
        B(c->mam),
        B(c->offline_delivery),
        B(c->invite_adds_member),
        B(c->is_group),
        muc_whois_name(c->whois),
        muc_pm_name(c->allow_pm),
        muc_history_mode_name(c->history_mode),
        hmax,
        maxo,
        maxp,
        B(c->occupant_presence),
        room->subject,
        room->subject_from,
    };
#undef B
    muc_store_query(
        m->store,
        "insert into muc_room (jid, node, service, title, description, "
        "password, persistent, members_only, moderated, public_room, "
        "change_subject, allow_invites, mam, offline_delivery, "
        "invite_adds_member, is_group, whois, allow_pm, history_mode, "
        "history_max, max_occupants, max_occupant_presence, "
        "occupant_presence, subject, subject_from) values ($1, $2, $3, $4, "
        "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
        "$19, $20, $21, $22, $23, $24, $25) on conflict (jid) do update set "
        "title = excluded.title, description = excluded.description, "
        "password = excluded.password, persistent = excluded.persistent, "
        "members_only = excluded.members_only, moderated = "
        "excluded.moderated, public_room = excluded.public_room, "
        "change_subject = excluded.change_subject, allow_invites = "
        "excluded.allow_invites, mam = excluded.mam, offline_delivery = "
        "excluded.offline_delivery, invite_adds_member = "
        "excluded.invite_adds_member, is_group = excluded.is_group, whois = "
        "excluded.whois, allow_pm = excluded.allow_pm, history_mode = "
        "excluded.history_mode, history_max = excluded.history_max, "
        "max_occupants = excluded.max_occupants, max_occupant_presence = "
        "excluded.max_occupant_presence, occupant_presence = "
        "excluded.occupant_presence, subject = excluded.subject, "
        "subject_from = excluded.subject_from where muc_room.destroyed_at "
        "is null",
        KN_ARRAY_LEN(params), params, true, NULL, NULL);
    if (!room->stored) {
        room->stored = true;
        for (const muc_affrec_t *a = room->affs; a; a = a->hh.next)
            persist_aff_q(m, room, a->bare, a->aff, a->nick, NULL);
    }
    persist_notify(m, room);
}

void muc_persist_aff(muc_t *m, muc_room_t *room, const char *bare,
                     muc_aff_t aff, const char *nick, const char *by)
{
    if (m->store == NULL)
        return;
    if (!room->stored) {
        if (muc_persist_wanted(room))
            muc_persist_room(m, room); /* writes every affiliation */
        return;
    }
    persist_aff_q(m, room, bare, aff, nick, by);
    persist_notify(m, room);
}

void muc_persist_archive(muc_t *m, muc_room_t *room, uint64_t seq, time_t at,
                         const char *nick, const char *from_jid,
                         const kn_stanza_t *msg)
{
    if (m->store == NULL)
        return;
    if (!room->stored)
        muc_persist_room(m, room);
    char id[24], ts[24];
    snprintf(id, sizeof(id), "%" PRIu64, seq);
    snprintf(ts, sizeof(ts), "%lld", (long long)at);
    kn_buf_t xml = KN_BUF_INIT;
    kn_stanza_serialize(msg, &xml, NULL);
    const char *params[] = {room->jid, id, ts, nick, from_jid, xml.data};
    muc_store_query(m->store,
                    "insert into muc_archive (room_id, id, at, nick, "
                    "from_jid, stanza) select id, $2, to_timestamp($3), $4, "
                    "$5, $6 from muc_room where jid = $1 and destroyed_at "
                    "is null on conflict do nothing",
                    6, params, true, NULL, NULL);
    kn_buf_free(&xml);
}

void muc_persist_destroy(muc_t *m, muc_room_t *room, const char *reason)
{
    if (m->store == NULL || !room->stored)
        return;
    char days[24];
    snprintf(days, sizeof(days), "%u", m->set.retire_days);
    const char *p1[] = {room->jid, reason, days};
    muc_store_query(m->store,
                    "update muc_room set destroyed_at = now(), "
                    "retired_until = now() + make_interval(days => $3::int), "
                    "destroy_reason = $2 where jid = $1 and destroyed_at is "
                    "null",
                    3, p1, true, NULL, NULL);
    const char *p2[] = {room->jid};
    muc_store_query(m->store,
                    "delete from muc_affiliation where room_id = (select id "
                    "from muc_room where jid = $1)",
                    1, p2, true, NULL, NULL);
    persist_notify(m, room);
}

/* ---- loading ------------------------------------------------------------ */

#define LOAD_ROOM_COLS                                                         \
    "r.jid, r.title, r.description, r.password, r.persistent, "                \
    "r.members_only, r.moderated, r.public_room, r.change_subject, "           \
    "r.allow_invites, r.mam, r.offline_delivery, r.invite_adds_member, "       \
    "r.is_group, r.whois, r.allow_pm, r.history_mode, r.history_max, "         \
    "r.max_occupants, r.max_occupant_presence, r.occupant_presence, "          \
    "r.subject, r.subject_from, coalesce((select max(a.id) from muc_archive "  \
    "a where a.room_id = r.id), 0)"

typedef struct load_ctx {
    muc_t *m;
    char *only; /* one room, or NULL for all */
    muc_load_done_cb done;
    void *arg;
    int err;
    char **seen; /* rooms found by the first query (reload: one) */
    size_t nseen;
    bool fresh; /* one room new to this node: load its history too */
} load_ctx_t;

static char *load_val(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return kn_strdup(PQgetvalue(res, row, col));
}

static bool load_bool(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

static size_t load_size(const PGresult *res, int row, int col)
{
    return (size_t)strtoull(PQgetvalue(res, row, col), NULL, 10);
}

static void load_finish(load_ctx_t *c)
{
    if (c->done)
        c->done(c->err, c->arg);
    for (size_t i = 0; i < c->nseen; i++)
        free(c->seen[i]);
    free(c->seen);
    free(c->only);
    free(c);
}

static void load_on_hist(const PGresult *res, int err, void *arg)
{
    load_ctx_t *c = arg;
    if (err < 0) {
        c->err = err;
        load_finish(c);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        muc_room_t *room = muc_room_find(c->m, PQgetvalue(res, i, 0));
        if (room == NULL)
            continue;
        uint64_t seq = strtoull(PQgetvalue(res, i, 1), NULL, 10);
        time_t at = (time_t)strtoll(PQgetvalue(res, i, 2), NULL, 10);
        const char *xml = PQgetvalue(res, i, 3);
        kn_stanza_t *st = NULL;
        if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &st) < 0)
            continue;
        int b = kn_stanza_child(st, 0, "body", NULL);
        size_t chars = 0;
        if (b >= 0)
            kn_stanza_cdata(st, b, &chars);
        muc_history_add(room, c->m->set.history_hard_max, st, at, seq, chars);
        kn_stanza_unref(&st);
    }
    load_finish(c);
}

/* Members added or removed by someone else: bookmarks and occupants. */
static void load_aff_diff(muc_t *m, muc_room_t *room, muc_affrec_t *old)
{
    for (muc_affrec_t *a = room->affs; a; a = a->hh.next) {
        muc_affrec_t *o = NULL;
        HASH_FIND_STR(old, a->bare, o);
        bool was = o && o->aff >= MUC_AFF_MEMBER;
        if (!was && a->aff >= MUC_AFF_MEMBER)
            muc_bookmark_update(m, room, a->bare, true);
    }
    for (muc_affrec_t *o = old; o; o = o->hh.next) {
        muc_aff_t now = muc_room_aff(room, o->bare);
        if (o->aff >= MUC_AFF_MEMBER && now < MUC_AFF_MEMBER)
            muc_bookmark_update(m, room, o->bare, false);
        if (now != o->aff) {
            muc_occ_t *occ;
            while ((occ = muc_occ_by_bare(room, o->bare)) != NULL) {
                if (now == MUC_AFF_OUTCAST ||
                    (room->cfg.members_only && now < MUC_AFF_MEMBER)) {
                    static const int c301[] = {301}, c321[] = {321};
                    muc_occ_remove(m, occ, now == MUC_AFF_OUTCAST ? c301 : c321,
                                   1, NULL, NULL);
                    continue;
                }
                occ->role = muc_role_default(&room->cfg, now);
                break;
            }
        }
    }
}

static void load_on_affs(const PGresult *res, int err, void *arg)
{
    load_ctx_t *c = arg;
    muc_t *m = c->m;
    if (err < 0) {
        c->err = err;
        load_finish(c);
        return;
    }
    /* Swap each seen room's affiliations for the loaded ones. */
    muc_affrec_t **old = kn_calloc(c->nseen + 1, sizeof(*old));
    for (size_t i = 0; i < c->nseen; i++) {
        muc_room_t *room = muc_room_find(m, c->seen[i]);
        if (room) {
            old[i] = room->affs;
            room->affs = NULL;
        }
    }
    for (int i = 0; i < PQntuples(res); i++) {
        muc_room_t *room = muc_room_find(m, PQgetvalue(res, i, 0));
        muc_aff_t aff;
        if (room == NULL || muc_aff_parse(PQgetvalue(res, i, 2), &aff) < 0)
            continue;
        const char *nick =
            PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
        muc_room_set_aff(room, PQgetvalue(res, i, 1), aff, nick);
    }
    for (size_t i = 0; i < c->nseen; i++) {
        muc_room_t *room = muc_room_find(m, c->seen[i]);
        if (room && c->only)
            load_aff_diff(m, room, old[i]);
        muc_affrec_t *a, *tmp;
        HASH_ITER(hh, old[i], a, tmp)
        {
            HASH_DEL(old[i], a);
            free(a->bare);
            free(a->nick);
            free(a);
        }
        if (room)
            muc_room_gc(m, room);
    }
    free(old);
    char hard[24];
    snprintf(hard, sizeof(hard), "%zu", m->set.history_hard_max);
    if (c->only && c->fresh && c->nseen > 0) {
        const char *p1[] = {c->only, hard};
        muc_store_query(m->store,
                        "select * from (select r.jid, a.id, extract(epoch "
                        "from a.at)::bigint, a.stanza from muc_archive a "
                        "join muc_room r on r.id = a.room_id where r.jid = "
                        "$1 and r.destroyed_at is null order by a.id desc "
                        "limit $2::bigint) t order by 2",
                        2, p1, false, load_on_hist, c);
        return;
    }
    if (c->only) {
        load_finish(c);
        return;
    }
    const char *params[] = {m->set.service, hard};
    muc_store_query(m->store,
                    "select r.jid, a.id, extract(epoch from a.at)::bigint, "
                    "a.stanza from (select *, row_number() over (partition "
                    "by room_id order by id desc) as rn from muc_archive) a "
                    "join muc_room r on r.id = a.room_id where a.rn <= $2 and "
                    "r.destroyed_at is null and r.service = $1 order by "
                    "r.jid, a.id",
                    2, params, false, load_on_hist, c);
}

static void load_apply_room(muc_t *m, const PGresult *res, int i)
{
    const char *jid = PQgetvalue(res, i, 0);
    muc_room_t *room = muc_room_find(m, jid);
    if (room == NULL)
        room = muc_room_new(m, jid);
    muc_config_t *cfg = &room->cfg;
    bool was_mo = cfg->members_only;
    muc_config_free(cfg);
    cfg->title = load_val(res, i, 1);
    cfg->description = load_val(res, i, 2);
    cfg->password = load_val(res, i, 3);
    cfg->persistent = load_bool(res, i, 4);
    cfg->members_only = load_bool(res, i, 5);
    cfg->moderated = load_bool(res, i, 6);
    cfg->public_room = load_bool(res, i, 7);
    cfg->change_subject = load_bool(res, i, 8);
    cfg->allow_invites = load_bool(res, i, 9);
    cfg->mam = load_bool(res, i, 10);
    cfg->offline_delivery = load_bool(res, i, 11);
    cfg->invite_adds_member = load_bool(res, i, 12);
    cfg->is_group = load_bool(res, i, 13);
    muc_whois_parse(PQgetvalue(res, i, 14), &cfg->whois);
    muc_pm_parse(PQgetvalue(res, i, 15), &cfg->allow_pm);
    muc_history_mode_parse(PQgetvalue(res, i, 16), &cfg->history_mode);
    cfg->history_max = load_size(res, i, 17);
    cfg->max_occupants = load_size(res, i, 18);
    cfg->max_occupant_presence = load_size(res, i, 19);
    cfg->occupant_presence = load_bool(res, i, 20);
    free(room->subject);
    free(room->subject_from);
    room->subject = load_val(res, i, 21);
    room->subject_from = load_val(res, i, 22);
    uint64_t maxseq = strtoull(PQgetvalue(res, i, 23), NULL, 10);
    if (room->next_seq <= maxseq)
        room->next_seq = maxseq + 1;
    room->stored = true;
    (void)was_mo;
    muc_history_resize(room, m->set.history_hard_max);
}

static void load_on_rooms(const PGresult *res, int err, void *arg)
{
    load_ctx_t *c = arg;
    muc_t *m = c->m;
    if (err < 0) {
        c->err = err;
        load_finish(c);
        return;
    }
    int n = PQntuples(res);
    c->seen = kn_calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        load_apply_room(m, res, i);
        c->seen[c->nseen++] = kn_strdup(PQgetvalue(res, i, 0));
    }
    if (c->only && n == 0) {
        /* Destroyed (or never stored) elsewhere: occupants are told. */
        muc_room_t *room = muc_room_find(m, c->only);
        if (room != NULL && room->stored) {
            static const int c332[] = {332};
            muc_occ_t *o, *tmp;
            HASH_ITER(hh, room->occs, o, tmp)
            muc_occ_remove(m, o, c332, 1, NULL, "room destroyed");
            muc_room_free(m, room);
        }
        load_finish(c);
        return;
    }
    const char *params[] = {m->set.service, c->only};
    muc_store_query(
        m->store,
        "select r.jid, a.bare_jid, a.affiliation, a.nick from "
        "muc_affiliation a join muc_room r on r.id = a.room_id "
        "where r.destroyed_at is null and r.service = $1 and ($2::text "
        "is null or r.jid = $2)",
        2, params, false, load_on_affs, c);
}

static void load_start(muc_t *m, const char *only, bool fresh,
                       muc_load_done_cb done, void *arg)
{
    load_ctx_t *c = kn_calloc(1, sizeof(*c));
    c->fresh = fresh;
    c->m = m;
    c->only = only ? kn_strdup(only) : NULL;
    c->done = done;
    c->arg = arg;
    const char *params[] = {m->set.service, only};
    muc_store_query(
        m->store,
        "select " LOAD_ROOM_COLS " from muc_room r where "
        "r.destroyed_at is null and r.service = $1 and ($2::text is "
        "null or r.jid = $2)",
        2, params, false, load_on_rooms, c);
}

void muc_load(muc_t *m, const char *only, muc_load_done_cb done, void *arg)
{
    load_start(m, only, false, done, arg);
}

void muc_load_room(muc_t *m, const char *jid, muc_load_done_cb done, void *arg)
{
    load_start(m, jid, true, done, arg);
}
