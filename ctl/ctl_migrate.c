/*
 * ctl_migrate.c - schema migrations.
 *
 * A note on versions. A migration is a file "NNNN_what.sql" (exactly four
 * digits, an underscore, a name). Its version is the four digits, stored
 * in schema_migrations(version text primary key, applied_at). Two files
 * with the same number (two branches that each added "0002_...") are
 * refused before anything is applied, rather than run in whatever order
 * their names sort. Renaming a file after the number keeps it applied;
 * editing a shipped file does nothing (write a new migration instead).
 *
 * Concurrency: the whole run holds a session-level pg_advisory_lock, taken
 * before schema_migrations is even created, so two migrators started
 * together (two hosts booting) apply each file once: the second waits,
 * then sees the first one's rows. Each file runs inside one transaction
 * with the insert of its version, so a failing file leaves neither its
 * half-applied statements nor a record behind.
 *
 * A file is sent whole through PQexec (the simple query protocol accepts
 * several statements); files must therefore not hold BEGIN/COMMIT.
 */
#include "ctl_migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_mem.h"

#define MIGRATE_LOCK_SQL   "select pg_advisory_lock(hashtext('kiln:migrate'))"
#define MIGRATE_UNLOCK_SQL "select pg_advisory_unlock(hashtext('kiln:migrate'))"

typedef struct migrate_files {
    char **names;
    size_t n;
} migrate_files_t;

static int migrate_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <dir of this kilnctl>/../share/kiln/sql: `make install PREFIX=...` and
 * an installed tree under any root put sql/ there. */
static const char *migrate_exe_dir(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return NULL;
    const char *tail = "/../share/kiln/sql";
    if ((size_t)(slash - path) + strlen(tail) + 1 > sizeof(path))
        return NULL;
    strcpy(slash, tail);
    return migrate_is_dir(path) ? path : NULL;
}

static const char *migrate_pick_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    dir = getenv("KILN_SQL_DIR");
    if (dir && *dir)
        return dir;
    dir = migrate_exe_dir();
    if (dir != NULL)
        return dir;
    if (migrate_is_dir(CTL_SQL_DIR_INSTALLED))
        return CTL_SQL_DIR_INSTALLED;
    return CTL_SQL_DIR_LOCAL;
}

/* "NNNN_x.sql": four digits, '_', at least one character, ".sql". */
static int migrate_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql") != 0)
        return 0;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return name[4] == '_';
}

static int migrate_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void migrate_files_free(migrate_files_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->names[i]);
    kn_free(&f->names);
    f->n = 0;
}

/* List dir's migrations in name order. Returns 0 or -KN_EIO/-KN_EINVAL
 * after printing why. */
static int migrate_list(const char *dir, migrate_files_t *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;

    out->names = NULL;
    out->n = 0;
    if (!d) {
        ctl_err("cannot open SQL folder %s: %s", dir, strerror(errno));
        return -KN_EIO;
    }
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (!migrate_name_ok(e->d_name)) {
            if (l > 4 && strcmp(e->d_name + l - 4, ".sql") == 0)
                ctl_err("warning: %s/%s ignored (not NNNN_name.sql)", dir,
                        e->d_name);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16;
            out->names = kn_realloc(out->names, cap * sizeof(char *));
        }
        out->names[out->n++] = kn_strdup(e->d_name);
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->names, out->n, sizeof(char *), migrate_cmp);
    for (size_t i = 1; i < out->n; i++) {
        if (memcmp(out->names[i - 1], out->names[i], 4) == 0) {
            ctl_err("%s: %s and %s have the same number", dir,
                    out->names[i - 1], out->names[i]);
            migrate_files_free(out);
            return -KN_EINVAL;
        }
    }
    return 0;
}

/* Read path into a NUL-terminated string (caller frees). */
static char *migrate_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    kn_buf_t b = KN_BUF_INIT;
    char chunk[8192];
    size_t n;

    if (!f) {
        ctl_err("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        kn_buf_append(&b, chunk, n);
    if (ferror(f)) {
        ctl_err("cannot read %s: %s", path, strerror(errno));
        fclose(f);
        kn_buf_free(&b);
        return NULL;
    }
    fclose(f);
    kn_buf_append(&b, "", 0); /* an empty file still yields "" */
    if (strlen(b.data) != b.len) {
        ctl_err("%s: contains a NUL byte", path);
        kn_buf_free(&b);
        return NULL;
    }
    return kn_buf_release(&b, NULL);
}

/* Is version recorded? Returns 1, 0, or -KN_EDB. */
static int migrate_applied(PGconn *db, const char *version)
{
    const char *params[1] = {version};
    PGresult *res =
        PQexecParams(db, "select 1 from schema_migrations where version = $1",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_db_err("reading schema_migrations", res);
        PQclear(res);
        return -KN_EDB;
    }
    int found = PQntuples(res) > 0;
    PQclear(res);
    return found;
}

/* Apply one file in one transaction with its record. */
static int migrate_apply(PGconn *db, const char *dir, const char *name)
{
    char version[5];
    kn_buf_t path = KN_BUF_INIT;
    int rc = -KN_EDB;

    memcpy(version, name, 4);
    version[4] = '\0';
    kn_buf_printf(&path, "%s/%s", dir, name);
    char *sql = migrate_read(path.data);
    if (!sql) {
        kn_buf_free(&path);
        return -KN_EIO;
    }
    if (ctl_db_exec(db, "begin") < 0)
        goto err_free;
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK) {
        ctl_db_err(path.data, res);
        PQclear(res);
        goto err_rollback;
    }
    PQclear(res);
    const char *params[1] = {version};
    res =
        PQexecParams(db, "insert into schema_migrations (version) values ($1)",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_db_err("recording the migration", res);
        PQclear(res);
        goto err_rollback;
    }
    PQclear(res);
    if (ctl_db_exec(db, "commit") < 0)
        goto err_rollback;
    printf("applied %s\n", name);
    rc = 0;
    goto err_free;

err_rollback:
    /* after an error the transaction is aborted; rollback ends it */
    res = PQexec(db, "rollback");
    PQclear(res);
    ctl_err("%s not applied; nothing of it was kept", name);
err_free:
    free(sql);
    kn_buf_free(&path);
    return rc;
}

int ctl_db_migrate(ctl_ctx_t *ctx, const char *dir)
{
    migrate_files_t files;
    int rc = CTL_EXIT_FAIL;
    size_t applied = 0;
    PGconn *db = NULL;

    dir = migrate_pick_dir(dir);
    if (migrate_list(dir, &files) < 0)
        return CTL_EXIT_FAIL;
    if (files.n == 0) {
        ctl_err("no migrations (NNNN_name.sql) in %s", dir);
        goto err_free_files;
    }
    if (ctl_ctx_load(ctx) < 0)
        goto err_free_files;
    db = ctl_db_connect(ctx);
    if (!db)
        goto err_free_files;
    if (ctl_db_exec(db, MIGRATE_LOCK_SQL) < 0)
        goto err_finish;
    if (ctl_db_exec(db, "create table if not exists schema_migrations ("
                        " version text primary key,"
                        " applied_at timestamptz not null default now())") < 0)
        goto err_unlock;
    for (size_t i = 0; i < files.n; i++) {
        char version[5];
        memcpy(version, files.names[i], 4);
        version[4] = '\0';
        int seen = migrate_applied(db, version);
        if (seen < 0)
            goto err_unlock;
        if (seen)
            continue;
        if (migrate_apply(db, dir, files.names[i]) < 0)
            goto err_unlock;
        applied++;
    }
    if (applied == 0)
        printf("up to date\n");
    else
        printf("%zu migration%s applied\n", applied, applied == 1 ? "" : "s");
    rc = CTL_EXIT_OK;

err_unlock:
    ctl_db_exec(db, MIGRATE_UNLOCK_SQL);
err_finish:
    PQfinish(db);
err_free_files:
    migrate_files_free(&files);
    return rc;
}
