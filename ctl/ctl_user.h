/*
 * ctl_user.h - `kilnctl user ...`: accounts and their SCRAM credentials.
 *
 * USER is a local part ("alice") or a bare JID of the configured domain
 * ("alice@example.org"); it is stored nodeprep-prepared. A PASSWORD of
 * "-" or none is read from standard input (one line; echo is turned off
 * on a terminal), which keeps it out of `ps` and shell history. Every
 * function loads ctx's config and returns the process exit code.
 */
#ifndef CTL_USER_H
#define CTL_USER_H

#include <stdbool.h>

#include "ctl_ctx.h"

/* Create user with password (NULL or "-": stdin). Fails if it exists. */
int ctl_user_add(ctl_ctx_t *ctx, const char *user, const char *password);

/* Delete user. Fails if there is no such user. */
int ctl_user_del(ctl_ctx_t *ctx, const char *user);

/* Replace user's credentials (new salts too). Fails if no such user. */
int ctl_user_passwd(ctl_ctx_t *ctx, const char *user, const char *password);

/* Print every user name, one per line, sorted. */
int ctl_user_list(ctl_ctx_t *ctx);
/* `user disable|enable USER`: a disabled account fails SASL with
 * <account-disabled/>; disabling also ends its sessions (queued for
 * kiln-presenced in admin_commands). */
int ctl_user_set_disabled(ctl_ctx_t *ctx, const char *user, bool disabled);

#endif
