/*
 * muc_admin.c - muc#admin (XEP-0045 sections 8 and 9): affiliation and
 * role lists, kick, voice, moderator grants, ban, membership grants and
 * revocations, with the rules of muc_aff.c.
 *
 * An affiliation change updates the in-memory room first (the truth for
 * this node: a list query right after it sees it, R-GRP-2), then queues
 * the upsert and the cluster-wide invalidation (muc_persist.c), then
 * brings the occupant, if any, in line: banned (301) or, in a
 * members-only room, no longer a member (321) means removed; otherwise a
 * new role is broadcast. Group members added or removed get their
 * bookmark published or retracted (R-GRP-6).
 */
#include <string.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"
#include "muc_admin.h"
#include "muc_aff.h"
#include "muc_bookmark.h"
#include "muc_iq.h"
#include "muc_occupant.h"
#include "muc_out.h"
#include "muc_persist.h"
#include "muc_room.h"

static void admin_list(muc_t *m, const muc_in_t *in, muc_room_t *room, int item)
{
    const kn_stanza_t *st = in->st;
    muc_aff_t actor = muc_room_aff(room, in->from_bare);
    const char *a = kn_stanza_attr(st, item, "affiliation", NULL);
    const char *r = kn_stanza_attr(st, item, "role", NULL);
    muc_aff_t want_aff;
    muc_role_t want_role;
    kn_stanza_builder_t *b = m->b;
    if (a != NULL) {
        if (muc_aff_parse(a, &want_aff) < 0 || want_aff == MUC_AFF_NONE) {
            muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
            return;
        }
        if (!muc_aff_can_list(&room->cfg, actor, want_aff)) {
            muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
            return;
        }
        muc_iq_result_start(m, st);
        kn_stanza_builder_start(b, "query", MUC_NS_ADMIN);
        for (const muc_affrec_t *x = room->affs; x; x = x->hh.next) {
            if (x->aff != want_aff)
                continue;
            kn_stanza_builder_start(b, "item", NULL);
            kn_stanza_builder_attr(b, "affiliation", muc_aff_name(x->aff));
            kn_stanza_builder_attr(b, "jid", x->bare);
            if (x->nick)
                kn_stanza_builder_attr(b, "nick", x->nick);
            kn_stanza_builder_end(b);
        }
    } else if (r != NULL) {
        muc_seat_t *seat = muc_seat_find(m, room, in->from);
        if (muc_role_parse(r, &want_role) < 0 || want_role == MUC_ROLE_NONE) {
            muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
            return;
        }
        if (seat == NULL || seat->occ->role != MUC_ROLE_MODERATOR) {
            muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
            return;
        }
        muc_iq_result_start(m, st);
        kn_stanza_builder_start(b, "query", MUC_NS_ADMIN);
        for (const muc_occ_t *o = room->occs; o; o = o->hh.next) {
            if (o->role != want_role)
                continue;
            kn_stanza_builder_start(b, "item", NULL);
            kn_stanza_builder_attr(b, "role", muc_role_name(o->role));
            kn_stanza_builder_attr(b, "nick", o->nick);
            kn_stanza_builder_attr(b, "jid", muc_occ_jid(o));
            kn_stanza_builder_attr(b, "affiliation",
                                   muc_aff_name(muc_room_aff(room, o->bare)));
            kn_stanza_builder_end(b);
        }
    } else {
        muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
        return;
    }
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    muc_send(m, out);
    kn_stanza_unref(&out);
}

static char *admin_reason(const kn_stanza_t *st, int item)
{
    int r = kn_stanza_child(st, item, "reason", NULL);
    if (r < 0)
        return NULL;
    kn_buf_t t = KN_BUF_INIT;
    kn_stanza_text(st, r, &t);
    return t.data ? kn_buf_release(&t, NULL) : NULL;
}

/* One role item. Returns the error condition, or -1 when done. */
static int admin_set_role(muc_t *m, const muc_in_t *in, muc_room_t *room,
                          int item, muc_role_t to)
{
    const kn_stanza_t *st = in->st;
    const char *nick = kn_stanza_attr(st, item, "nick", NULL);
    muc_seat_t *seat = muc_seat_find(m, room, in->from);
    if (seat == NULL)
        return KN_STE_FORBIDDEN;
    muc_occ_t *target = nick ? muc_occ_find(room, nick) : NULL;
    if (target == NULL)
        return KN_STE_ITEM_NOT_FOUND;
    muc_aff_t actor_aff = muc_room_aff(room, in->from_bare);
    muc_aff_t target_aff = muc_room_aff(room, target->bare);
    if (!muc_role_can_change(seat->occ->role, actor_aff, target->role,
                             target_aff, to))
        return KN_STE_NOT_ALLOWED;
    char *reason = admin_reason(st, item);
    if (to == MUC_ROLE_NONE) {
        static const int c307[] = {307};
        char *actor = kn_strdup(seat->occ->nick);
        muc_occ_remove(m, target, c307, 1, actor, reason);
        free(actor);
    } else if (target->role != to) {
        target->role = to;
        muc_pres_opts_t o = {0};
        o.reason = reason;
        muc_pres_broadcast(m, target, &o);
    }
    free(reason);
    return -1;
}

void muc_aff_apply(muc_t *m, muc_room_t *room, const char *bare, muc_aff_t to,
                   const char *nick, const char *by, const char *actor_full,
                   const char *reason)
{
    muc_aff_t from = muc_room_aff(room, bare);
    muc_room_set_aff(room, bare, to, nick);
    muc_persist_aff(m, room, bare, to, nick, by);
    bool was = from >= MUC_AFF_MEMBER, is = to >= MUC_AFF_MEMBER;
    if (was != is)
        muc_bookmark_update(m, room, bare, is);
    muc_occ_t *o;
    while ((o = muc_occ_by_bare(room, bare)) != NULL) {
        if (to == MUC_AFF_OUTCAST ||
            (room->cfg.members_only && to < MUC_AFF_MEMBER)) {
            static const int c301[] = {301}, c321[] = {321};
            /* The actor's seat is looked up again each time: removing
             * occupants of the actor's own bare JID may have freed it. */
            muc_seat_t *as =
                actor_full ? muc_seat_find(m, room, actor_full) : NULL;
            char *an = as ? kn_strdup(as->occ->nick) : NULL;
            muc_occ_remove(m, o, to == MUC_AFF_OUTCAST ? c301 : c321, 1, an,
                           reason);
            free(an);
            continue;
        }
        o->role = muc_role_default(&room->cfg, to);
        muc_pres_opts_t po = {0};
        po.reason = reason;
        muc_pres_broadcast(m, o, &po);
        break; /* one occupant per bare JID is the common case */
    }
}

/* One affiliation item. Returns the error condition, or -1 when done. */
static int admin_set_aff(muc_t *m, const muc_in_t *in, muc_room_t *room,
                         int item, muc_aff_t to)
{
    const kn_stanza_t *st = in->st;
    const char *jid = kn_stanza_attr(st, item, "jid", NULL);
    if (jid == NULL) {
        /* By nick: the occupant's real bare JID. */
        const char *nick = kn_stanza_attr(st, item, "nick", NULL);
        muc_occ_t *o = nick ? muc_occ_find(room, nick) : NULL;
        if (o == NULL)
            return KN_STE_ITEM_NOT_FOUND;
        jid = o->bare;
    }
    kn_jid_t j = KN_JID_INIT;
    if (kn_jid_parse(&j, jid, strlen(jid)) < 0)
        return KN_STE_JID_MALFORMED;
    char *bare = kn_strndup(kn_jid_str(&j), kn_jid_bare_len(&j));
    kn_jid_free(&j);
    int rc = -1;
    muc_aff_t actor = muc_room_aff(room, in->from_bare);
    muc_aff_t from = muc_room_aff(room, bare);
    if (!muc_aff_can_change(actor, from, to)) {
        rc = KN_STE_FORBIDDEN;
        goto out;
    }
    if (from == MUC_AFF_OWNER && to != MUC_AFF_OWNER &&
        muc_room_owners(room) <= 1) {
        rc = KN_STE_CONFLICT; /* the last owner stays */
        goto out;
    }
    const char *nick = kn_stanza_attr(st, item, "nick", NULL);
    char *reason = admin_reason(st, item);
    muc_aff_apply(m, room, bare, to, nick, in->from_bare, in->from, reason);
    free(reason);
out:
    free(bare);
    return rc;
}

void muc_admin_iq(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    muc_room_t *room = muc_room_find(m, in->room);
    if (room == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    int q = muc_iq_query(st);
    int item = kn_stanza_child(st, q, "item", NULL);
    if (item < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
        return;
    }
    if (strcmp(kn_stanza_type(st), "get") == 0) {
        admin_list(m, in, room, item);
        return;
    }
    for (; item >= 0; item = kn_stanza_next_sibling(st, item)) {
        if (strcmp(kn_stanza_name(st, item), "item") != 0)
            continue;
        const char *a = kn_stanza_attr(st, item, "affiliation", NULL);
        const char *r = kn_stanza_attr(st, item, "role", NULL);
        int rc;
        muc_aff_t aff;
        muc_role_t role;
        if (a != NULL && muc_aff_parse(a, &aff) == 0)
            rc = admin_set_aff(m, in, room, item, aff);
        else if (a == NULL && r != NULL && muc_role_parse(r, &role) == 0)
            rc = admin_set_role(m, in, room, item, role);
        else
            rc = KN_STE_BAD_REQUEST;
        if (rc >= 0) {
            muc_send_error(m, st, (kn_stanza_err_t)rc, NULL);
            muc_room_gc(m, room);
            return;
        }
    }
    muc_iq_result_empty(m, st);
    /* A kick or ban may have emptied a temporary room. */
    muc_room_gc(m, room);
}
