/*
 * ctl_ctx.h - what every kilnctl command shares: the config file, the
 * common settings read from it, the PostgreSQL connection, and how errors
 * are reported (one line on stderr, "kilnctl: ...").
 *
 * kilnctl is a short-lived CLI, so it uses libpq synchronously; nothing
 * here may be reused from an event loop.
 */
#ifndef CTL_CTX_H
#define CTL_CTX_H

#include <libpq-fe.h>

#include "kn_config.h"

/* Process exit codes. */
enum {
    CTL_EXIT_OK = 0,    /* done */
    CTL_EXIT_FAIL = 1,  /* operational error (message on stderr) */
    CTL_EXIT_USAGE = 2, /* bad command line */
};

#define CTL_DEFAULT_CONF "/etc/kiln/kiln.conf"

typedef struct ctl_ctx {
    const char *conf_path; /* borrowed (argv or environment) */
    kn_conf_t *cf;         /* owned; NULL until ctl_ctx_load */
    kn_common_conf_t cc;   /* owned strings; valid after ctl_ctx_load */
    int loaded;
} ctl_ctx_t;

/* Print "kilnctl: <message>\n" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set ctx to empty with conf_path (borrowed; may be NULL for the default:
 * $KILN_CONF, else CTL_DEFAULT_CONF). */
void ctl_ctx_init(ctl_ctx_t *ctx, const char *conf_path);

/* Parse the config file and load the common settings. Returns 0, or
 * -KN_EINVAL after printing "kilnctl: file:line: message". */
int ctl_ctx_load(ctl_ctx_t *ctx);

/* Release what ctl_ctx_load built. Idempotent. */
void ctl_ctx_free(ctl_ctx_t *ctx);

/* --check-config: load, print "config ok" on stdout or the error on
 * stderr. Returns the exit code (CTL_EXIT_OK or CTL_EXIT_FAIL). */
int ctl_check_config(ctl_ctx_t *ctx);

/* Connect to PostgreSQL with db.conninfo (ctx must be loaded); notices
 * are quietened to warnings. Returns the connection (caller PQfinish-es)
 * or NULL after printing why. */
PGconn *ctl_db_connect(const ctl_ctx_t *ctx);

/* Print "kilnctl: <what>: <server message>" for a failed result, with a
 * hint to migrate when the table is missing. Borrows res. */
void ctl_db_err(const char *what, const PGresult *res);

/* Run sql (no parameters) and check it succeeded; prints on failure.
 * Returns 0 or -KN_EDB. */
int ctl_db_exec(PGconn *db, const char *sql);

#endif
