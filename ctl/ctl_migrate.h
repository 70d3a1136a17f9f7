/*
 * ctl_migrate.h - `kilnctl db migrate`: apply the numbered SQL migrations
 * that the database has not seen yet.
 */
#ifndef CTL_MIGRATE_H
#define CTL_MIGRATE_H

#include "ctl_ctx.h"

/* Default folders tried in order when neither --dir nor $KILN_SQL_DIR is
 * given: the installed one, then ./sql. */
#define CTL_SQL_DIR_INSTALLED "/usr/share/kiln/sql"
#define CTL_SQL_DIR_LOCAL     "./sql"

/*
 * Apply every NNNN_name.sql file of dir (borrowed; NULL: $KILN_SQL_DIR,
 * else the first existing default) that schema_migrations does not
 * record, in name order, each in one transaction with its
 * schema_migrations row, under a PostgreSQL advisory lock. Prints one line
 * per file applied, or "up to date". Loads ctx's config. Returns the exit
 * code.
 */
int ctl_db_migrate(ctl_ctx_t *ctx, const char *dir);

#endif
