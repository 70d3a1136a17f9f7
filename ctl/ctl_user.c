/*
 * ctl_user.c - user accounts.
 *
 * Only RFC 5802's server-side values reach the database: for SHA-1 and
 * SHA-256 each, a fresh 16-byte salt (RAND_bytes), StoredKey and
 * ServerKey, with KN_SCRAM_DEFAULT_ITERATIONS. The password is SASLprepped
 * (stored-string rules) before derivation, so what a client types after
 * its own SASLprep matches; the plaintext is wiped as soon as the keys
 * exist. Keys travel to PostgreSQL as binary bytea parameters, never
 * spliced into SQL text.
 *
 * "Exists" and "does not exist" are decided by the statement itself
 * (insert ... on conflict do nothing, and the affected-row count of
 * update/delete) so two admins racing get a clear answer, not a
 * constraint-violation message.
 */
#include "ctl_user.h"
#include "ctl_creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"
#include "kn_scram.h"

/* Longest password line read from stdin. */
#define USER_PASSWORD_MAX 4096

/* The nodeprepped local part of arg, which is "local" or "local@domain"
 * with domain the configured one. Returns a new string or NULL after
 * printing why. */
static char *user_local(const ctl_ctx_t *ctx, const char *arg)
{
    kn_jid_t j = KN_JID_INIT, dom = KN_JID_INIT;
    kn_buf_t text = KN_BUF_INIT;
    char *local = NULL;
    size_t llen, dlen, cdlen;

    if (strchr(arg, '/')) {
        ctl_err("%s: give a user name or bare JID, not a full JID", arg);
        return NULL;
    }
    if (kn_jid_parse(&dom, ctx->cc.domain, strlen(ctx->cc.domain)) < 0) {
        ctl_err("%s: domain \"%s\" is not a valid domain", ctx->conf_path,
                ctx->cc.domain);
        return NULL;
    }
    kn_buf_append_str(&text, arg);
    if (!strchr(arg, '@'))
        kn_buf_printf(&text, "@%s", ctx->cc.domain);
    if (kn_jid_parse(&j, text.data, text.len) < 0 ||
        kn_jid_local(&j, &llen) == NULL) {
        ctl_err("%s: not a valid user name", arg);
        goto out;
    }
    const char *d = kn_jid_domain(&j, &dlen);
    const char *cd = kn_jid_domain(&dom, &cdlen);
    if (dlen != cdlen || memcmp(d, cd, dlen) != 0) {
        ctl_err("%s: not in the configured domain %s", arg, ctx->cc.domain);
        goto out;
    }
    local = kn_strndup(kn_jid_local(&j, &llen), llen);
out:
    kn_jid_free(&j);
    kn_jid_free(&dom);
    kn_buf_free(&text);
    return local;
}

/* One line from stdin, without its line end; echo off on a terminal.
 * Returns a new string or NULL after printing why. */
static char *user_read_password(void)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    char *line = kn_malloc(USER_PASSWORD_MAX + 2);

    if (tty) {
        fputs("Password: ", stderr);
        fflush(stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(line, USER_PASSWORD_MAX + 2, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got) {
        ctl_err("no password on standard input");
        goto err_free;
    }
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    else if (n > USER_PASSWORD_MAX) {
        ctl_err("password longer than %d bytes", USER_PASSWORD_MAX);
        goto err_free;
    }
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    return line;
err_free:
    OPENSSL_cleanse(line, USER_PASSWORD_MAX + 2);
    free(line);
    return NULL;
}

/* Derive both credential sets from the password argument (or stdin).
 * Returns 0 or -KN_EINVAL after printing why. */
static int user_creds(const char *arg, kn_scram_creds_t *sha1,
                      kn_scram_creds_t *sha256)
{
    char *raw =
        (arg && strcmp(arg, "-") != 0) ? kn_strdup(arg) : user_read_password();
    int rc;

    if (!raw)
        return -KN_EINVAL;
    rc = kn_scram_creds_from_password(raw, sha1, sha256);
    if (rc == -KN_EINVAL)
        ctl_err("password refused: empty, not UTF-8, or holds characters "
                "SASLprep prohibits");
    else if (rc < 0)
        ctl_err("no random bytes for the salt");
    OPENSSL_cleanse(raw, strlen(raw));
    free(raw);
    return rc;
}

/* Open the config and the database and prepare the user name. */
static PGconn *user_open(ctl_ctx_t *ctx, const char *user, char **local)
{
    *local = NULL;
    if (ctl_ctx_load(ctx) < 0)
        return NULL;
    if (user) {
        *local = user_local(ctx, user);
        if (!*local)
            return NULL;
    }
    PGconn *db = ctl_db_connect(ctx);
    if (!db)
        kn_free(local);
    return db;
}

/* Run a one-row write: sql with the user name as $1 and, when sha1 is
 * given, iterations and the six credential columns as $2..$8. Returns
 * the affected row count or -KN_EDB. */
static int user_write(PGconn *db, const char *sql, const char *what,
                      const char *local, const kn_scram_creds_t *sha1,
                      const kn_scram_creds_t *sha256)
{
    char iter[16];
    const char *values[8];
    int lengths[8] = {0};
    int formats[8] = {0};
    int n = 1;

    values[0] = local;
    if (sha1) {
        snprintf(iter, sizeof(iter), "%u", sha1->iterations);
        values[1] = iter;
        const kn_scram_creds_t *c[2] = {sha1, sha256};
        for (int h = 0; h < 2; h++) {
            int hl = (int)kn_scram_hash_len(c[h]->hash);
            const void *col[3] = {c[h]->salt, c[h]->stored_key,
                                  c[h]->server_key};
            int len[3] = {(int)c[h]->salt_len, hl, hl};
            for (int k = 0; k < 3; k++) {
                int i = 2 + 3 * h + k;
                values[i] = col[k];
                lengths[i] = len[k];
                formats[i] = 1;
            }
        }
        n = 8;
    }
    PGresult *res = PQexecParams(db, sql, n, NULL, values, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_db_err(what, res);
        PQclear(res);
        return -KN_EDB;
    }
    int rows = atoi(PQcmdTuples(res));
    PQclear(res);
    return rows;
}

/* Derive fresh SCRAM credentials for password and write them with sql
 * ($1 user, $2 iterations, $3..$8 salts and keys). if_none is the error
 * when no row was written, done the success line; both take the user and
 * the domain. */
static int user_set_creds(ctl_ctx_t *ctx, const char *user,
                          const char *password, const char *sql,
                          const char *what, const char *if_none,
                          const char *done, bool invalidate)
{
    kn_scram_creds_t c1, c256;
    char *local;
    int rc = CTL_EXIT_FAIL;

    PGconn *db = user_open(ctx, user, &local);
    if (!db)
        return CTL_EXIT_FAIL;
    if (user_creds(password, &c1, &c256) < 0)
        goto out;
    int rows = user_write(db, sql, what, local, &c1, &c256);
    if (rows < 0)
        goto out;
    if (rows == 0) {
        ctl_err(if_none, local, ctx->cc.domain);
        goto out;
    }
    if (invalidate)
        ctl_creds_invalidate(ctx, local);
    printf(done, local, ctx->cc.domain);
    rc = CTL_EXIT_OK;
out:
    OPENSSL_cleanse(&c1, sizeof(c1));
    OPENSSL_cleanse(&c256, sizeof(c256));
    free(local);
    PQfinish(db);
    return rc;
}

int ctl_user_add(ctl_ctx_t *ctx, const char *user, const char *password)
{
    return user_set_creds(ctx, user, password, KN_SQL_USER_INSERT,
                          "adding the user", "user %s@%s already exists",
                          "user %s@%s added\n", false);
}

int ctl_user_passwd(ctl_ctx_t *ctx, const char *user, const char *password)
{
    return user_set_creds(ctx, user, password, KN_SQL_USER_SET_CREDS,
                          "changing the password", "no user %s@%s",
                          "password of %s@%s changed\n", true);
}

int ctl_user_del(ctl_ctx_t *ctx, const char *user)
{
    char *local;
    int rc = CTL_EXIT_FAIL;

    PGconn *db = user_open(ctx, user, &local);
    if (!db)
        return CTL_EXIT_FAIL;
    int rows = user_write(db, "delete from users where username = $1",
                          "deleting the user", local, NULL, NULL);
    if (rows < 0)
        goto out;
    if (rows == 0) {
        ctl_err("no user %s@%s", local, ctx->cc.domain);
        goto out;
    }
    ctl_creds_invalidate(ctx, local);
    printf("user %s@%s deleted\n", local, ctx->cc.domain);
    rc = CTL_EXIT_OK;
out:
    free(local);
    PQfinish(db);
    return rc;
}

int ctl_user_list(ctl_ctx_t *ctx)
{
    char *local;
    PGconn *db = user_open(ctx, NULL, &local);
    if (!db)
        return CTL_EXIT_FAIL;
    PGresult *res = PQexec(db, "select username from users order by username");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_db_err("listing users", res);
        PQclear(res);
        PQfinish(db);
        return CTL_EXIT_FAIL;
    }
    for (int i = 0; i < PQntuples(res); i++)
        printf("%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    PQfinish(db);
    return CTL_EXIT_OK;
}

int ctl_user_set_disabled(ctl_ctx_t *ctx, const char *user, bool disabled)
{
    char *local;
    int rc = CTL_EXIT_FAIL;

    PGconn *db = user_open(ctx, user, &local);
    if (!db)
        return CTL_EXIT_FAIL;
    int rows = user_write(db,
                          disabled ? "update users set disabled = true"
                                     " where username = $1"
                                   : "update users set disabled = false"
                                     " where username = $1",
                          "updating the user", local, NULL, NULL);
    if (rows < 0)
        goto out;
    if (rows == 0) {
        ctl_err("no user %s@%s", local, ctx->cc.domain);
        goto out;
    }
    ctl_creds_invalidate(ctx, local);
    if (disabled) {
        /* kiln-presenced ends the account's sessions (pres_admin.c). */
        kn_buf_t bare = KN_BUF_INIT;
        kn_buf_printf(&bare, "%s@%s", local, ctx->cc.domain);
        const char *v[1] = {bare.data};
        PGresult *res = PQexecParams(db,
                                     "insert into admin_commands (kind, arg)"
                                     " values ('disable', $1)",
                                     1, NULL, v, NULL, NULL, 0);
        kn_buf_free(&bare);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ctl_db_err("queueing the sessions' end", res);
            PQclear(res);
            goto out;
        }
        PQclear(res);
    }
    printf("user %s@%s %s\n", local, ctx->cc.domain,
           disabled ? "disabled" : "enabled");
    rc = CTL_EXIT_OK;
out:
    free(local);
    PQfinish(db);
    return rc;
}
