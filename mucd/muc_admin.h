/*
 * muc_admin.h - affiliation changes as every path makes them: muc#admin
 * (muc_admin.c), an invitation that adds a member (muc_message.c), an
 * approved registration (muc_register.c).
 */
#ifndef MUC_ADMIN_H
#define MUC_ADMIN_H

#include "muc_types.h"

/* Make bare's affiliation in room `to` (the caller checked the actor's
 * right to): the in-memory room first (a list query right after sees it,
 * R-GRP-2), then the upsert and the cluster-wide invalidation, the
 * bookmark of a member added or removed (R-GRP-6), and the occupant, if
 * any: banned (301) or, in a members-only room, no longer a member (321)
 * means removed; otherwise its new role is broadcast. nick (reserved
 * nick), by (bare JID recorded as added_by), actor_full (real full JID of
 * the actor, for the actor nick shown) and reason may be NULL. */
void muc_aff_apply(muc_t *m, muc_room_t *room, const char *bare, muc_aff_t to,
                   const char *nick, const char *by, const char *actor_full,
                   const char *reason);

#endif
