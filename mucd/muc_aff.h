/*
 * muc_aff.h - affiliation and role rules of XEP-0045 as pure functions:
 * names, default roles, who may change whose role or affiliation. No
 * state and no I/O, so unit tests drive every rule directly.
 */
#ifndef MUC_AFF_H
#define MUC_AFF_H

#include <stdbool.h>

#include "muc_types.h"

/* "owner", "admin", "member", "outcast", "none". Static. */
const char *muc_aff_name(muc_aff_t a);
const char *muc_role_name(muc_role_t r);
/* Parse a name; returns 0 or -KN_EINVAL (NULL or unknown). */
int muc_aff_parse(const char *s, muc_aff_t *out);
int muc_role_parse(const char *s, muc_role_t *out);

/* The role an occupant with affiliation a gets on joining room cfg
 * (owner/admin: moderator; member: participant; none: participant, or
 * visitor in a moderated room; outcast: none, i.e. may not join). */
muc_role_t muc_role_default(const muc_config_t *cfg, muc_aff_t a);

/* May an actor with affiliation actor change the affiliation of a user
 * whose affiliation is from, to to? Owners change anything; admins move
 * users among none, member and outcast when the user is neither admin
 * nor owner; nobody else changes affiliations. (Removing the last owner
 * is checked by the caller, who knows the list.) */
bool muc_aff_can_change(muc_aff_t actor, muc_aff_t from, muc_aff_t to);

/* May an occupant (actor_role, actor_aff) change the role of an occupant
 * (target_role, target_aff) to to? Kick (none) and voice (participant,
 * visitor) need a moderator acting on someone whose affiliation is below
 * admin or below the actor's; granting or revoking moderator needs an
 * admin or owner, and the role of an admin or owner cannot be lowered
 * (it follows the affiliation). */
bool muc_role_can_change(muc_role_t actor_role, muc_aff_t actor_aff,
                         muc_role_t target_role, muc_aff_t target_aff,
                         muc_role_t to);

/* May an occupant with this role and affiliation read the list of
 * affiliation list (muc#admin get)? Owner and admin lists, and the
 * outcast list: admins and owners. The member list: admins and owners,
 * and members of a members-only room. */
bool muc_aff_can_list(const muc_config_t *cfg, muc_aff_t actor, muc_aff_t list);

/* May an occupant send a private message under the room's policy? */
bool muc_pm_allowed(const muc_config_t *cfg, muc_role_t role);

/* May an occupant with (role, aff) change the subject? */
bool muc_subject_allowed(const muc_config_t *cfg, muc_role_t role);

/* May an occupant with this role ask for voice (XEP-0045 7.13)? Only a
 * visitor: everyone else already has voice. */
bool muc_voice_may_request(muc_role_t role);

/* Does a registration with the room (XEP-0045 7.10) wait for an owner or
 * admin (9.9)? In a members-only room membership is the way in, and in a
 * moderated room it is voice, so both need approval; elsewhere the
 * requester becomes a member at once (a reserved nick). */
bool muc_register_needs_approval(const muc_config_t *cfg);

/* Why a user with affiliation a may not file a registration request:
 * KN_STE_NOT_ALLOWED (outcast: XEP-0045 7.10), KN_STE_CONFLICT (already a
 * member, admin or owner), or -1 when it may. */
int muc_register_refusal(muc_aff_t a);

#endif
