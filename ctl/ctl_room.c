/*
 * ctl_room.c - `kilnctl group-room` (see ctl_room.h).
 *
 * JIDs are prepared with the same stringprep as the daemons (kn_jid), so
 * what kilnctl writes matches what c2s stamps. The notification payload
 * is "kilnctl|<room jid>": mucd reloads the room's configuration and
 * affiliations, updates bookmarks of members added or removed, and
 * removes occupants who are no longer allowed in.
 */
#include "ctl_room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"

/* The prepared bare JID of arg; default_domain is appended when arg has
 * no '@'. Returns a new string or NULL after printing why. */
static char *room_jid(const char *arg, const char *default_domain,
                      const char *what)
{
    kn_buf_t text = KN_BUF_INIT;
    kn_jid_t j = KN_JID_INIT;
    char *out = NULL;
    size_t llen;
    kn_buf_append_str(&text, arg);
    if (!strchr(arg, '@'))
        kn_buf_printf(&text, "@%s", default_domain);
    if (strchr(arg, '/') || kn_jid_parse(&j, text.data, text.len) < 0 ||
        kn_jid_local(&j, &llen) == NULL)
        ctl_err("%s: not a valid %s", arg, what);
    else
        out = kn_strndup(kn_jid_str(&j), kn_jid_bare_len(&j));
    kn_jid_free(&j);
    kn_buf_free(&text);
    return out;
}

static char *room_service(const ctl_ctx_t *ctx)
{
    /* The same service name mucd and presenced use. */
    if (ctx->cf != NULL)
        return kn_conf_muc_service(ctx->cf, ctx->cc.domain);
    kn_buf_t b = KN_BUF_INIT;
    kn_buf_printf(&b, "conference.%s", ctx->cc.domain);
    return kn_buf_release(&b, NULL);
}

static int room_exec(PGconn *db, const char *what, const char *sql, int n,
                     const char *const *params, long *affected)
{
    PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ctl_db_err(what, res);
        PQclear(res);
        return -KN_EDB;
    }
    if (affected)
        *affected = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int room_notify_commit(PGconn *db, const char *jid)
{
    kn_buf_t p = KN_BUF_INIT;
    kn_buf_printf(&p, "kilnctl|%s", jid);
    const char *params[] = {p.data};
    int rc = room_exec(db, "notify", "select pg_notify('kiln_muc', $1)", 1,
                       params, NULL);
    kn_buf_free(&p);
    if (rc == 0)
        rc = ctl_db_exec(db, "commit");
    return rc;
}

/* Connect and open a transaction; NULL after printing why. */
static PGconn *room_begin(ctl_ctx_t *ctx)
{
    if (ctl_ctx_load(ctx) < 0)
        return NULL;
    PGconn *db = ctl_db_connect(ctx);
    if (db && ctl_db_exec(db, "begin") < 0) {
        PQfinish(db);
        return NULL;
    }
    return db;
}

/* A destroyed room's name is retired until its tombstone's
 * retired_until (R-GRP-7): refuse it, as mucd refuses a join that would
 * create it. After that the tombstone (and the old archive) goes, so the
 * new room starts empty. The row is locked for the transaction. Returns 0
 * or -KN_EDB / -KN_EINVAL (retired) after printing why. */
static int room_check_retired(PGconn *db, const char *jid)
{
    const char *p[] = {jid};
    PGresult *res = PQexecParams(
        db,
        "select retired_until > now(), to_char(retired_until at time zone "
        "'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"') from muc_room where jid = "
        "$1 and destroyed_at is not null for update",
        1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_db_err("create", res);
        PQclear(res);
        return -KN_EDB;
    }
    int rc = 0;
    if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't') {
        ctl_err("%s was destroyed; its name is retired until %s", jid,
                PQgetvalue(res, 0, 1));
        rc = -KN_EINVAL;
    } else if (PQntuples(res) == 1) {
        rc = room_exec(db, "create",
                       "delete from muc_room where jid = $1 and "
                       "destroyed_at is not null",
                       1, p, NULL);
    }
    PQclear(res);
    return rc;
}

int ctl_room_create(ctl_ctx_t *ctx, const char *room, const char *name,
                    const char *owner)
{
    PGconn *db = room_begin(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    char *svc = room_service(ctx);
    char *jid = room_jid(room, svc, "room");
    char *own = owner ? room_jid(owner, ctx->cc.domain, "owner JID") : NULL;
    if (jid == NULL || (owner && own == NULL))
        goto out;
    if (room_check_retired(db, jid) < 0)
        goto out;
    char *node = kn_strndup(jid, (size_t)(strchr(jid, '@') - jid));
    const char *service = strchr(jid, '@') + 1;
    const char *p1[] = {jid, node, service, name};
    int q = room_exec(
        db, "create",
        "insert into muc_room (jid, node, service, title, persistent, "
        "members_only, whois, public_room, allow_pm, mam, offline_delivery, "
        "history_mode, is_group) values ($1, $2, $3, $4, true, true, "
        "'anyone', false, 'none', true, true, 'none', true) on conflict "
        "(jid) do update set title = coalesce($4, muc_room.title), "
        "persistent = true, members_only = true, whois = 'anyone', "
        "public_room = false, allow_pm = 'none', mam = true, "
        "offline_delivery = true, is_group = true",
        4, p1, NULL);
    free(node);
    if (q == 0 && own) {
        const char *p2[] = {jid, own};
        q = room_exec(db, "owner",
                      "insert into muc_affiliation (room_id, bare_jid, "
                      "affiliation, added_by) select id, $2, 'owner', "
                      "'kilnctl' from muc_room where jid = $1 on conflict "
                      "(room_id, bare_jid) do update set affiliation = "
                      "'owner'",
                      2, p2, NULL);
    }
    if (q == 0 && room_notify_commit(db, jid) == 0) {
        printf("%s\n", jid);
        rc = CTL_EXIT_OK;
    }
out:
    free(own);
    free(jid);
    free(svc);
    PQfinish(db);
    return rc;
}

int ctl_room_add_member(ctl_ctx_t *ctx, const char *room, const char *jid,
                        const char *nick)
{
    PGconn *db = room_begin(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    char *svc = room_service(ctx);
    char *rj = room_jid(room, svc, "room");
    char *uj = room_jid(jid, ctx->cc.domain, "member JID");
    long n = 0;
    if (rj == NULL || uj == NULL)
        goto out;
    const char *p[] = {rj, uj, nick};
    if (room_exec(db, "add-member",
                  "insert into muc_affiliation (room_id, bare_jid, "
                  "affiliation, nick, added_by) select id, $2, 'member', $3, "
                  "'kilnctl' from muc_room where jid = $1 and destroyed_at "
                  "is null on conflict (room_id, bare_jid) do update set "
                  "affiliation = case when muc_affiliation.affiliation in "
                  "('owner', 'admin') then muc_affiliation.affiliation else "
                  "'member' end, nick = coalesce($3, muc_affiliation.nick)",
                  3, p, &n) < 0)
        goto out;
    if (n == 0) {
        ctl_err("%s: no such room", rj);
        goto out;
    }
    if (room_notify_commit(db, rj) == 0)
        rc = CTL_EXIT_OK;
out:
    free(uj);
    free(rj);
    free(svc);
    PQfinish(db);
    return rc;
}

int ctl_room_remove_member(ctl_ctx_t *ctx, const char *room, const char *jid)
{
    PGconn *db = room_begin(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    char *svc = room_service(ctx);
    char *rj = room_jid(room, svc, "room");
    char *uj = room_jid(jid, ctx->cc.domain, "member JID");
    long n = 0;
    if (rj == NULL || uj == NULL)
        goto out;
    const char *p[] = {rj, uj};
    if (room_exec(db, "remove-member",
                  "delete from muc_affiliation where room_id = (select id "
                  "from muc_room where jid = $1) and bare_jid = $2",
                  2, p, &n) < 0)
        goto out;
    if (n == 0) {
        ctl_err("%s: not affiliated with %s", uj, rj);
        goto out;
    }
    if (room_notify_commit(db, rj) == 0)
        rc = CTL_EXIT_OK;
out:
    free(uj);
    free(rj);
    free(svc);
    PQfinish(db);
    return rc;
}

int ctl_room_list(ctl_ctx_t *ctx, const char *room)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    PGconn *db = ctl_db_connect(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    char *svc = room_service(ctx);
    char *rj = room ? room_jid(room, svc, "room") : NULL;
    PGresult *res = NULL;
    if (room && rj == NULL)
        goto out;
    if (rj == NULL) {
        res = PQexec(db, "select r.jid, coalesce(r.title, ''), (select "
                         "count(*) from muc_affiliation a where a.room_id = "
                         "r.id and a.affiliation <> 'outcast') from muc_room "
                         "r where r.is_group and r.destroyed_at is null order "
                         "by r.jid");
    } else {
        const char *p[] = {rj};
        res = PQexecParams(db,
                           "select a.bare_jid, a.affiliation, "
                           "coalesce(a.nick, '') from muc_affiliation a join "
                           "muc_room r on r.id = a.room_id where r.jid = $1 "
                           "and r.destroyed_at is null order by a.bare_jid",
                           1, NULL, p, NULL, NULL, 0);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_db_err("list", res);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++)
        printf("%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2));
    rc = CTL_EXIT_OK;
out:
    PQclear(res);
    free(rj);
    free(svc);
    PQfinish(db);
    return rc;
}
