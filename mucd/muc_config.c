/*
 * muc_config.c - the muc#roomconfig form and muc#owner (XEP-0045 10).
 *
 * Standard fields where XEP-0045's registry has one; Kiln's own under
 * "kiln#": history mode (R-PERF-7), offline delivery (R-GRP-4),
 * invite_adds_member (R-GRP-7), the occupant presence flood limit
 * (R-GRP-9). A room is "instant" (usable at once, ejabberd-style) when
 * created: the owner may still submit a form, or the empty instant-room
 * form, which changes nothing.
 *
 * Destroy (10.9): every occupant gets unavailable with <destroy/> (and
 * the alternate venue and reason), group members lose the bookmark, the
 * row becomes a tombstone (muc_persist_destroy), the room is freed.
 */
#include "muc_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"
#include "muc_aff.h"
#include "muc_bookmark.h"
#include "muc_form.h"
#include "muc_history.h"
#include "muc_iq.h"
#include "muc_occupant.h"
#include "muc_out.h"
#include "muc_persist.h"
#include "muc_room.h"

static const char *const whois_names[] = {"moderators", "anyone", NULL};
static const char *const pm_names[] = {"anyone", "participants", "moderators",
                                       "none", NULL};
static const char *const hist_names[] = {"none", "number", "all", NULL};

static int cfg_enum(const char *const *names, const char *s, int *out)
{
    for (int i = 0; s && names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return -KN_EINVAL;
}

const char *muc_whois_name(muc_whois_t w)
{
    return (unsigned)w < 2 ? whois_names[w] : "moderators";
}
const char *muc_pm_name(muc_pm_t p)
{
    return (unsigned)p < 4 ? pm_names[p] : "none";
}
const char *muc_history_mode_name(muc_history_mode_t h)
{
    return (unsigned)h < 3 ? hist_names[h] : "number";
}
int muc_whois_parse(const char *s, muc_whois_t *out)
{
    int v;
    int rc = cfg_enum(whois_names, s, &v);
    if (rc == 0)
        *out = (muc_whois_t)v;
    return rc;
}
int muc_pm_parse(const char *s, muc_pm_t *out)
{
    int v;
    int rc = cfg_enum(pm_names, s, &v);
    if (rc == 0)
        *out = (muc_pm_t)v;
    return rc;
}
int muc_history_mode_parse(const char *s, muc_history_mode_t *out)
{
    int v;
    int rc = cfg_enum(hist_names, s, &v);
    if (rc == 0)
        *out = (muc_history_mode_t)v;
    return rc;
}

static void form_bool(kn_stanza_builder_t *b, const char *var,
                      const char *label, bool v)
{
    muc_form_field(b, var, "boolean", label, v ? "1" : "0", NULL);
}

static void form_num(kn_stanza_builder_t *b, const char *var, const char *label,
                     size_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%zu", v);
    muc_form_field(b, var, "text-single", label, num, NULL);
}

void muc_config_form(kn_stanza_builder_t *b, const muc_config_t *c)
{
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    muc_form_field(b, "FORM_TYPE", "hidden", NULL, MUC_NS_CONFIG, NULL);
    muc_form_field(b, "muc#roomconfig_roomname", "text-single", "Name",
                   c->title ? c->title : "", NULL);
    muc_form_field(b, "muc#roomconfig_roomdesc", "text-single", "Description",
                   c->description ? c->description : "", NULL);
    form_bool(b, "muc#roomconfig_persistentroom", "Persistent", c->persistent);
    form_bool(b, "muc#roomconfig_publicroom", "Listed", c->public_room);
    form_bool(b, "muc#roomconfig_membersonly", "Members only", c->members_only);
    form_bool(b, "muc#roomconfig_moderatedroom", "Moderated", c->moderated);
    form_bool(b, "muc#roomconfig_passwordprotectedroom", "Password",
              c->password && c->password[0]);
    muc_form_field(b, "muc#roomconfig_roomsecret", "text-private", "Password",
                   c->password ? c->password : "", NULL);
    muc_form_field(b, "muc#roomconfig_whois", "list-single",
                   "Who sees real JIDs", muc_whois_name(c->whois), whois_names);
    form_num(b, "muc#roomconfig_maxusers", "Maximum occupants (0: no limit)",
             c->max_occupants);
    form_bool(b, "muc#roomconfig_changesubject", "Occupants change subject",
              c->change_subject);
    form_bool(b, "muc#roomconfig_allowinvites", "Occupants invite",
              c->allow_invites);
    muc_form_field(b, "muc#roomconfig_allowpm", "list-single",
                   "Who may send private messages", muc_pm_name(c->allow_pm),
                   pm_names);
    form_bool(b, "muc#roomconfig_enablearchiving", "Archive (MAM)", c->mam);
    muc_form_field(b, "kiln#history_mode", "list-single", "History on join",
                   muc_history_mode_name(c->history_mode), hist_names);
    form_num(b, "muc#maxhistoryfetch", "History length", c->history_max);
    form_bool(b, "kiln#offline_delivery", "Deliver to absent members",
              c->offline_delivery);
    form_bool(b, "kiln#invite_adds_member", "Invitations add members",
              c->invite_adds_member);
    form_bool(b, "kiln#occupant_presence", "Send occupant list on join",
              c->occupant_presence);
    form_num(b, "kiln#max_occupant_presence",
             "Most occupant presences on join (0: all)",
             c->max_occupant_presence);
    kn_stanza_builder_end(b);
}

static int cfg_size(const char *v, size_t *out)
{
    char *end;
    if (*v == '\0' || strcmp(v, "none") == 0) {
        *out = 0;
        return 0;
    }
    long long n = strtoll(v, &end, 10);
    if (*end != '\0' || n < 0)
        return -KN_EINVAL;
    *out = (size_t)n;
    return 0;
}

static void cfg_str(char **dst, const char *v)
{
    free(*dst);
    *dst = *v ? kn_strdup(v) : NULL;
}

int muc_config_apply(muc_config_t *c, const kn_stanza_t *st, int x)
{
    muc_config_t n = *c;
    n.title = c->title ? kn_strdup(c->title) : NULL;
    n.description = c->description ? kn_strdup(c->description) : NULL;
    n.password = c->password ? kn_strdup(c->password) : NULL;
    bool pw_on = c->password && c->password[0], pw_seen = false;
    int rc = 0;
    kn_buf_t val = KN_BUF_INIT;
    for (int f = kn_stanza_first_child(st, x); f >= 0 && rc == 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (strcmp(kn_stanza_name(st, f), "field") != 0)
            continue;
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        if (var == NULL)
            continue;
        int ve = kn_stanza_child(st, f, "value", NULL);
        kn_buf_reset(&val);
        kn_buf_append_str(&val, "");
        if (ve >= 0)
            kn_stanza_text(st, ve, &val);
        const char *v = val.data;
        if (strcmp(var, "muc#roomconfig_roomname") == 0)
            cfg_str(&n.title, v);
        else if (strcmp(var, "muc#roomconfig_roomdesc") == 0)
            cfg_str(&n.description, v);
        else if (strcmp(var, "muc#roomconfig_persistentroom") == 0)
            rc = muc_form_bool(v, &n.persistent);
        else if (strcmp(var, "muc#roomconfig_publicroom") == 0)
            rc = muc_form_bool(v, &n.public_room);
        else if (strcmp(var, "muc#roomconfig_membersonly") == 0)
            rc = muc_form_bool(v, &n.members_only);
        else if (strcmp(var, "muc#roomconfig_moderatedroom") == 0)
            rc = muc_form_bool(v, &n.moderated);
        else if (strcmp(var, "muc#roomconfig_passwordprotectedroom") == 0) {
            rc = muc_form_bool(v, &pw_on);
            pw_seen = true;
        } else if (strcmp(var, "muc#roomconfig_roomsecret") == 0)
            cfg_str(&n.password, v);
        else if (strcmp(var, "muc#roomconfig_whois") == 0)
            rc = muc_whois_parse(v, &n.whois);
        else if (strcmp(var, "muc#roomconfig_maxusers") == 0)
            rc = cfg_size(v, &n.max_occupants);
        else if (strcmp(var, "muc#roomconfig_changesubject") == 0)
            rc = muc_form_bool(v, &n.change_subject);
        else if (strcmp(var, "muc#roomconfig_allowinvites") == 0)
            rc = muc_form_bool(v, &n.allow_invites);
        else if (strcmp(var, "muc#roomconfig_allowpm") == 0)
            rc = muc_pm_parse(v, &n.allow_pm);
        else if (strcmp(var, "muc#roomconfig_enablearchiving") == 0 ||
                 strcmp(var, "mam") == 0)
            rc = muc_form_bool(v, &n.mam);
        else if (strcmp(var, "kiln#history_mode") == 0)
            rc = muc_history_mode_parse(v, &n.history_mode);
        else if (strcmp(var, "muc#maxhistoryfetch") == 0 ||
                 strcmp(var, "muc#roomconfig_historylength") == 0)
            rc = cfg_size(v, &n.history_max);
        else if (strcmp(var, "kiln#offline_delivery") == 0)
            rc = muc_form_bool(v, &n.offline_delivery);
        else if (strcmp(var, "kiln#invite_adds_member") == 0)
            rc = muc_form_bool(v, &n.invite_adds_member);
        else if (strcmp(var, "kiln#occupant_presence") == 0)
            rc = muc_form_bool(v, &n.occupant_presence);
        else if (strcmp(var, "kiln#max_occupant_presence") == 0)
            rc = cfg_size(v, &n.max_occupant_presence);
    }
    kn_buf_free(&val);
    if (rc == 0 && pw_seen && !pw_on)
        cfg_str(&n.password, "");
    if (rc != 0) {
        muc_config_free(&n);
        return -KN_EINVAL;
    }
    muc_config_free(c);
    *c = n;
    return 0;
}

static void owner_destroy(muc_t *m, const muc_in_t *in, muc_room_t *room, int d)
{
    const kn_stanza_t *st = in->st;
    kn_buf_t reason = KN_BUF_INIT;
    int r = kn_stanza_child(st, d, "reason", NULL);
    if (r >= 0)
        kn_stanza_text(st, r, &reason);
    kn_stanza_builder_t *b = m->b;
    muc_occ_t *o, *tmp;
    HASH_ITER(hh, room->occs, o, tmp)
    {
        kn_buf_t from = KN_BUF_INIT;
        kn_buf_printf(&from, "%s/%s", room->jid, o->nick);
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "from", from.data);
        kn_stanza_builder_attr(b, "type", "unavailable");
        kn_stanza_builder_start(b, "x", MUC_NS_USER);
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "affiliation", "none");
        kn_stanza_builder_attr(b, "role", "none");
        kn_stanza_builder_end(b);
        kn_stanza_builder_copy(b, st, d);
        kn_stanza_builder_end(b);
        kn_stanza_t *p = kn_stanza_builder_finish(b);
        muc_send_occ(m, o, p);
        kn_stanza_unref(&p);
        kn_buf_free(&from);
        muc_occ_free(m, o);
    }
    for (const muc_affrec_t *a = room->affs; a; a = a->hh.next)
        if (a->aff >= MUC_AFF_MEMBER)
            muc_bookmark_update(m, room, a->bare, false);
    muc_persist_destroy(m, room, reason.data);
    kn_buf_free(&reason);
    muc_iq_result_empty(m, st);
    muc_room_free(m, room);
}

void muc_owner_iq(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    muc_room_t *room = muc_room_find(m, in->room);
    if (room == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (muc_room_aff(room, in->from_bare) != MUC_AFF_OWNER) {
        muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
        return;
    }
    int q = muc_iq_query(st);
    if (strcmp(kn_stanza_type(st), "get") == 0) {
        muc_iq_result_start(m, st);
        kn_stanza_builder_start(m->b, "query", MUC_NS_OWNER);
        muc_config_form(m->b, &room->cfg);
        kn_stanza_t *out = kn_stanza_builder_finish(m->b);
        muc_send(m, out);
        kn_stanza_unref(&out);
        return;
    }
    int d = kn_stanza_child(st, q, "destroy", NULL);
    if (d >= 0) {
        owner_destroy(m, in, room, d);
        return;
    }
    int x = kn_stanza_child(st, q, "x", MUC_NS_DATA);
    if (x < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
        return;
    }
    const char *xt = kn_stanza_attr(st, x, "type", NULL);
    if (xt != NULL && strcmp(xt, "cancel") == 0) {
        muc_iq_result_empty(m, st);
        return;
    }
    bool was_mo = room->cfg.members_only;
    if (muc_config_apply(&room->cfg, st, x) < 0) {
        muc_send_error(m, st, KN_STE_NOT_ACCEPTABLE, "bad field value");
        return;
    }
    muc_history_resize(room, m->set.history_hard_max);
    if (muc_persist_wanted(room) || room->stored)
        muc_persist_room(m, room);
    muc_iq_result_empty(m, st);
    if (!was_mo && room->cfg.members_only) {
        /* Non-members leave (322). */
        static const int c322[] = {322};
        muc_occ_t *o, *tmp;
        HASH_ITER(hh, room->occs, o, tmp)
        if (muc_room_aff(room, o->bare) < MUC_AFF_MEMBER)
            muc_occ_remove(m, o, c322, 1, NULL, NULL);
    }
    muc_room_gc(m, room);
}
