/*
 * ctl_ctx.c - config loading, PostgreSQL connection and error reporting
 * shared by the kilnctl commands.
 *
 * Every failure is reported once, where it is detected, as one line on
 * stderr; callers only turn the returned code into an exit status. The
 * config is loaded lazily by the commands that need it, so `kilnctl help`
 * works without a config file.
 */
#include "ctl_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"

void ctl_err(const char *fmt, ...)
{
    va_list ap;
    fputs("kilnctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ctl_ctx_init(ctl_ctx_t *ctx, const char *conf_path)
{
    memset(ctx, 0, sizeof(*ctx));
    if (!conf_path || !*conf_path)
        conf_path = getenv("KILN_CONF");
    if (!conf_path || !*conf_path)
        conf_path = CTL_DEFAULT_CONF;
    ctx->conf_path = conf_path;
}

int ctl_ctx_load(ctl_ctx_t *ctx)
{
    char err[512];
    int rc;

    if (ctx->loaded)
        return 0;
    rc = kn_conf_open(&ctx->cf, ctx->conf_path, err, sizeof(err));
    if (rc < 0) {
        ctl_err("%s", err);
        return -KN_EINVAL;
    }
    rc = kn_common_conf_load(ctx->cf, &ctx->cc, err, sizeof(err));
    if (rc < 0) {
        ctl_err("%s: %s", ctx->conf_path, err);
        kn_common_conf_free(&ctx->cc);
        kn_conf_close(&ctx->cf);
        return -KN_EINVAL;
    }
    ctx->loaded = 1;
    return 0;
}

void ctl_ctx_free(ctl_ctx_t *ctx)
{
    if (ctx->loaded)
        kn_common_conf_free(&ctx->cc);
    kn_conf_close(&ctx->cf);
    ctx->loaded = 0;
}

int ctl_check_config(ctl_ctx_t *ctx)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    printf("config ok\n");
    return CTL_EXIT_OK;
}

static void ctl_notice(void *arg, const char *message)
{
    KN_UNUSED(arg);
    fprintf(stderr, "kilnctl: postgres: %s", message);
}

PGconn *ctl_db_connect(const ctl_ctx_t *ctx)
{
    KN_ASSERT(ctx->loaded);
    if (!ctx->cc.db_conninfo || !*ctx->cc.db_conninfo) {
        ctl_err("%s: db.conninfo is not set", ctx->conf_path);
        return NULL;
    }
    PGconn *db = PQconnectdb(ctx->cc.db_conninfo);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        /* libpq's message ends with a newline */
        const char *m = db ? PQerrorMessage(db) : "out of memory\n";
        fprintf(stderr, "kilnctl: cannot connect to PostgreSQL: %s", m);
        PQfinish(db);
        return NULL;
    }
    PQsetNoticeProcessor(db, ctl_notice, NULL);
    if (ctl_db_exec(db, "set client_min_messages = warning") < 0) {
        PQfinish(db);
        return NULL;
    }
    return db;
}

void ctl_db_err(const char *what, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    ctl_err("%s: %s", what, msg ? msg : "no result from the server");
    if (state && strcmp(state, "42P01") == 0)
        ctl_err("hint: run `kilnctl db migrate` first");
}

int ctl_db_exec(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ctl_db_err(sql, res);
        PQclear(res);
        return -KN_EDB;
    }
    PQclear(res);
    return 0;
}
