/*
 * ctl_room.h - `kilnctl group-room ...`: server-admin management of
 * groups (R-GRP-1, R-GRP-7), straight in PostgreSQL (the tables of
 * sql/0020_muc.sql), each change in one transaction with a
 * pg_notify('kiln_muc', ...) so every running kiln-mucd reloads the room
 * at once (R-GRP-2): no restart to see it.
 *
 * ROOM is a room local part (the service is conference.<domain>) or a
 * room bare JID; JID is a user local part or bare JID. Every function
 * loads ctx's config and returns the process exit code.
 */
#ifndef CTL_ROOM_H
#define CTL_ROOM_H

#include "ctl_ctx.h"

/* Create (or turn into) a group: persistent, members-only, non-anonymous,
 * hidden, no private messages, archived, offline delivery. name and owner
 * may be NULL. Re-running on an existing group is not an error. */
int ctl_room_create(ctl_ctx_t *ctx, const char *room, const char *name,
                    const char *owner);
/* Add jid as a member (idempotent upsert); nick may be NULL. */
int ctl_room_add_member(ctl_ctx_t *ctx, const char *room, const char *jid,
                        const char *nick);
/* Remove jid's affiliation. Fails when it had none. */
int ctl_room_remove_member(ctl_ctx_t *ctx, const char *room, const char *jid);
/* room NULL: every group ("jid<TAB>name<TAB>members"); else the room's
 * affiliations ("bare_jid<TAB>affiliation<TAB>nick"). */
int ctl_room_list(ctl_ctx_t *ctx, const char *room);

#endif
