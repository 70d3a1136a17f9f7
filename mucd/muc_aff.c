/*
 * muc_aff.c - XEP-0045 affiliation and role rules (see muc_aff.h). The
 * enums are ordered by rank (muc_types.h), so "at or above" is >=.
 */
#include "muc_aff.h"

#include <string.h>

#include "kn_err.h"
#include "kn_xmpp_err.h"

static const char *const aff_names[] = {"outcast", "none", "member", "admin",
                                        "owner"};
static const char *const role_names[] = {"none", "visitor", "participant",
                                         "moderator"};

const char *muc_aff_name(muc_aff_t a)
{
    return (unsigned)a < KN_ARRAY_LEN(aff_names) ? aff_names[a] : "none";
}

const char *muc_role_name(muc_role_t r)
{
    return (unsigned)r < KN_ARRAY_LEN(role_names) ? role_names[r] : "none";
}

int muc_aff_parse(const char *s, muc_aff_t *out)
{
    for (size_t i = 0; s != NULL && i < KN_ARRAY_LEN(aff_names); i++) {
        if (strcmp(s, aff_names[i]) == 0) {
            *out = (muc_aff_t)i;
            return 0;
        }
    }
    return -KN_EINVAL;
}

int muc_role_parse(const char *s, muc_role_t *out)
{
    for (size_t i = 0; s != NULL && i < KN_ARRAY_LEN(role_names); i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (muc_role_t)i;
            return 0;
        }
    }
    return -KN_EINVAL;
}

muc_role_t muc_role_default(const muc_config_t *cfg, muc_aff_t a)
{
    switch (a) {
    case MUC_AFF_OWNER:
    case MUC_AFF_ADMIN:
        return MUC_ROLE_MODERATOR;
    case MUC_AFF_MEMBER:
        return MUC_ROLE_PARTICIPANT;
    case MUC_AFF_NONE:
        return cfg->moderated ? MUC_ROLE_VISITOR : MUC_ROLE_PARTICIPANT;
    case MUC_AFF_OUTCAST:
    default:
        return MUC_ROLE_NONE;
    }
}

bool muc_aff_can_change(muc_aff_t actor, muc_aff_t from, muc_aff_t to)
{
    if (actor == MUC_AFF_OWNER)
        return true;
    if (actor != MUC_AFF_ADMIN)
        return false;
    return from < MUC_AFF_ADMIN && to < MUC_AFF_ADMIN;
}

bool muc_role_can_change(muc_role_t actor_role, muc_aff_t actor_aff,
                         muc_role_t target_role, muc_aff_t target_aff,
                         muc_role_t to)
{
    if (to == MUC_ROLE_MODERATOR || target_role == MUC_ROLE_MODERATOR) {
        /* Granting or revoking moderator (kicking or muting one is
         * revoking too): admins and owners only, and never against an
         * admin or owner, whose role is their affiliation's. */
        return actor_aff >= MUC_AFF_ADMIN && target_aff < MUC_AFF_ADMIN;
    }
    if (actor_role != MUC_ROLE_MODERATOR)
        return false;
    return target_aff < MUC_AFF_ADMIN || target_aff < actor_aff;
}

bool muc_aff_can_list(const muc_config_t *cfg, muc_aff_t actor, muc_aff_t list)
{
    if (actor >= MUC_AFF_ADMIN)
        return true;
    return list == MUC_AFF_MEMBER && actor == MUC_AFF_MEMBER &&
           cfg->members_only;
}

bool muc_pm_allowed(const muc_config_t *cfg, muc_role_t role)
{
    switch (cfg->allow_pm) {
    case MUC_PM_ANYONE:
        return role >= MUC_ROLE_VISITOR;
    case MUC_PM_PARTICIPANTS:
        return role >= MUC_ROLE_PARTICIPANT;
    case MUC_PM_MODERATORS:
        return role >= MUC_ROLE_MODERATOR;
    case MUC_PM_NONE:
    default:
        return false;
    }
}

bool muc_subject_allowed(const muc_config_t *cfg, muc_role_t role)
{
    if (role == MUC_ROLE_MODERATOR)
        return true;
    return cfg->change_subject && role >= MUC_ROLE_PARTICIPANT;
}

bool muc_voice_may_request(muc_role_t role)
{
    return role == MUC_ROLE_VISITOR;
}

bool muc_register_needs_approval(const muc_config_t *cfg)
{
    return cfg->members_only || cfg->moderated;
}

int muc_register_refusal(muc_aff_t a)
{
    if (a == MUC_AFF_OUTCAST)
        return KN_STE_NOT_ALLOWED;
    if (a >= MUC_AFF_MEMBER)
        return KN_STE_CONFLICT;
    return -1;
}
