/*
 * ctl_group.h - `kilnctl group ...`: shared roster groups (R-ROSTER-2).
 *
 * Every edit runs in one transaction with a shared_group_changes row,
 * which kiln-presenced polls: online members get roster pushes at once,
 * without a restart (R-CACHE-3). Each function loads ctx's config and
 * returns the process exit code.
 */
#ifndef CTL_GROUP_H
#define CTL_GROUP_H

#include "ctl_ctx.h"

/* Create group name (display name defaults to name; visibility nobody,
 * everybody or only_group, default only_group), or update both if it
 * exists. */
int ctl_group_add(ctl_ctx_t *ctx, const char *name, const char *display,
                  const char *visibility);
/* Delete a group and its memberships. */
int ctl_group_del(ctl_ctx_t *ctx, const char *name);
/* Add / remove user (local part or bare JID) to / from group name. */
int ctl_group_member_add(ctl_ctx_t *ctx, const char *name, const char *user);
int ctl_group_member_del(ctl_ctx_t *ctx, const char *name, const char *user);
/* Print "name<TAB>display<TAB>visibility<TAB>member,member..." lines. */
int ctl_group_list(ctl_ctx_t *ctx);
/* argv after "group": dispatch. */
int ctl_cmd_group(ctl_ctx_t *ctx, int argc, char **argv);

#endif
