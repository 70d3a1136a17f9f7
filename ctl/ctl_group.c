/*
 * ctl_group.c - `kilnctl group add|del|member add|member del|list`.
 *
 * A shared group's name is kept verbatim (XEP-0083 nested names such as
 * "Company::R&D::Backend" included). Each edit and its
 * shared_group_changes row commit together, so presenced never sees a
 * change it cannot read.
 */
#include "ctl_group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"

/* The local part of user ("alice" or "alice@domain"); no preparation
 * beyond lower-casing ASCII, matching what `user add` stores for ASCII
 * names. Returns a malloc'd string. */
static char *group_user_local(const char *user)
{
    size_t n = strcspn(user, "@");
    char *s = strndup(user, n);
    for (char *c = s; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return s;
}

static int group_tx(ctl_ctx_t *ctx, const char *what, const char *sql,
                    int nparams, const char *const *params, const char *group,
                    const char *user, const char *op, int must_touch)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    PGconn *db = ctl_db_connect(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    if (ctl_db_exec(db, "begin") < 0)
        goto out;
    PGresult *r = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        ctl_db_err(what, r);
        PQclear(r);
        goto out;
    }
    if (must_touch && strcmp(PQcmdTuples(r), "0") == 0) {
        ctl_err("%s: no such group or member", what);
        PQclear(r);
        goto out;
    }
    PQclear(r);
    const char *cp[] = {group, user, op};
    r = PQexecParams(db,
                     "insert into shared_group_changes (group_name, username,"
                     " op) values ($1, $2, $3)",
                     3, NULL, cp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ctl_db_err(what, r);
        PQclear(r);
        goto out;
    }
    PQclear(r);
    if (ctl_db_exec(db, "commit") == 0)
        rc = CTL_EXIT_OK;
out:
    PQfinish(db);
    return rc;
}

int ctl_group_add(ctl_ctx_t *ctx, const char *name, const char *display,
                  const char *visibility)
{
    if (visibility == NULL)
        visibility = "only_group";
    if (strcmp(visibility, "nobody") != 0 &&
        strcmp(visibility, "everybody") != 0 &&
        strcmp(visibility, "only_group") != 0) {
        ctl_err("group add: visibility must be nobody, everybody or "
                "only_group");
        return CTL_EXIT_USAGE;
    }
    const char *p[] = {name, display ? display : name, visibility};
    return group_tx(ctx, "group add",
                    "insert into shared_groups (name, display_name,"
                    " visibility) values ($1, $2, $3) on conflict (name) do"
                    " update set display_name = excluded.display_name,"
                    " visibility = excluded.visibility",
                    3, p, name, NULL, "add", 0);
}

int ctl_group_del(ctl_ctx_t *ctx, const char *name)
{
    const char *p[] = {name};
    return group_tx(ctx, "group del",
                    "delete from shared_groups where name = $1", 1, p, name,
                    NULL, "del", 1);
}

int ctl_group_member_add(ctl_ctx_t *ctx, const char *name, const char *user)
{
    char *local = group_user_local(user);
    const char *p[] = {name, local};
    int rc = group_tx(ctx, "group member add",
                      "insert into shared_group_members (group_name,"
                      " username) values ($1, $2) on conflict do nothing",
                      2, p, name, local, "member add", 0);
    free(local);
    return rc;
}

int ctl_group_member_del(ctl_ctx_t *ctx, const char *name, const char *user)
{
    char *local = group_user_local(user);
    const char *p[] = {name, local};
    int rc = group_tx(ctx, "group member del",
                      "delete from shared_group_members where group_name ="
                      " $1 and username = $2",
                      2, p, name, local, "member del", 1);
    free(local);
    return rc;
}

int ctl_group_list(ctl_ctx_t *ctx)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    PGconn *db = ctl_db_connect(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    PGresult *r = PQexec(db, "select g.name, g.display_name, g.visibility,"
                             " coalesce(string_agg(m.username, ',' order by"
                             " m.username), '') from shared_groups g left"
                             " join shared_group_members m on m.group_name ="
                             " g.name group by g.name, g.display_name,"
                             " g.visibility order by g.name");
    int rc = CTL_EXIT_FAIL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ctl_db_err("group list", r);
    } else {
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
        rc = CTL_EXIT_OK;
    }
    PQclear(r);
    PQfinish(db);
    return rc;
}

int ctl_cmd_group(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "add") == 0 && argc >= 2) {
        const char *display = NULL, *vis = NULL;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--display") == 0 && i + 1 < argc)
                display = argv[++i];
            else if (strcmp(argv[i], "--visibility") == 0 && i + 1 < argc)
                vis = argv[++i];
            else
                goto usage;
        }
        return ctl_group_add(ctx, argv[1], display, vis);
    }
    if (strcmp(sub, "del") == 0 && argc == 2)
        return ctl_group_del(ctx, argv[1]);
    if (strcmp(sub, "list") == 0 && argc == 1)
        return ctl_group_list(ctx);
    if (strcmp(sub, "member") == 0 && argc == 4) {
        if (strcmp(argv[1], "add") == 0)
            return ctl_group_member_add(ctx, argv[2], argv[3]);
        if (strcmp(argv[1], "del") == 0)
            return ctl_group_member_del(ctx, argv[2], argv[3]);
    }
usage:
    fprintf(stderr, "kilnctl: group: expected add NAME [--display TEXT] "
                    "[--visibility nobody|everybody|only_group], del NAME, "
                    "member add|del NAME USER, or list (see kilnctl --help)\n");
    return CTL_EXIT_USAGE;
}
