/*
 * muc_message.c - groupchat, subject, private messages, invitations;
 * messages to the room holding a muc#request form (voice, muc_voice.c) or
 * a muc#register form (registration approval, muc_register.c).
 *
 * A groupchat message from an occupant is stamped once (from = room/nick,
 * the client's id kept so it recognises its reflection, any stanza-id
 * claiming to be by this room removed, ours added when the room is
 * archived), then sent as one MULTICAST to every seat, added to the
 * history ring, archived (one row, the per-room stanza-id as key), and
 * delivered to every member with no occupant in the room (R-GRP-4(b)).
 *
 * A note on offline delivery. A groupchat message cannot go to a bare
 * JID (RFC 6121: the router bounces it), and per-occupant `to` is not
 * possible on a multicast payload anyway. So a member who is not in the
 * room gets a message of type `normal` from the room's bare JID, to the
 * member's bare JID, holding the body, the stanza-id, an empty
 * muc#user <x/> (the "this came from a group" flag) and an XEP-0033
 * `ofrom` address with the occupant JID of the author (room/nick). The
 * router delivers it like any normal message: to the member's online
 * resources, or to the offline store (presenced), which adds <delay/>
 * (R-GRP-4, R-GRP-8). Clients that know nothing of this still show the
 * text, from the room.
 */
#include "muc_message.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_admin.h"
#include "muc_aff.h"
#include "muc_form.h"
#include "muc_out.h"
#include "muc_persist.h"
#include "muc_register.h"
#include "muc_room.h"
#include "muc_voice.h"

/* Is element e of st a stanza-id claimed by room (to be stripped)? */
static bool msg_is_our_sid(const kn_stanza_t *st, int e, const char *room)
{
    if (strcmp(kn_stanza_ns(st, e), MUC_NS_SID) != 0 ||
        strcmp(kn_stanza_name(st, e), "stanza-id") != 0)
        return false;
    const char *by = kn_stanza_attr(st, e, "by", NULL);
    return by == NULL || strcmp(by, room) == 0;
}

static size_t msg_body_chars(const kn_stanza_t *st)
{
    int b = kn_stanza_child(st, 0, "body", NULL);
    size_t len = 0;
    if (b >= 0)
        kn_stanza_cdata(st, b, &len);
    return len;
}

/* Copy st's children into the open element of b, minus our stanza-ids. */
static void msg_copy_children(kn_stanza_builder_t *b, const kn_stanza_t *st,
                              const char *room)
{
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c))
        if (!msg_is_our_sid(st, c, room))
            kn_stanza_builder_copy(b, st, c);
}

static void msg_sid(kn_stanza_builder_t *b, const muc_room_t *room,
                    uint64_t seq)
{
    char id[32];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
    kn_stanza_builder_start(b, "stanza-id", MUC_NS_SID);
    kn_stanza_builder_attr(b, "id", id);
    kn_stanza_builder_attr(b, "by", room->jid);
    kn_stanza_builder_end(b);
}

static void msg_offline(muc_t *m, muc_room_t *room, const muc_occ_t *author,
                        const kn_stanza_t *stamped)
{
    kn_stanza_builder_t *b = m->b;
    kn_buf_t ofrom = KN_BUF_INIT;
    kn_buf_printf(&ofrom, "%s/%s", room->jid, author->nick);
    for (const muc_affrec_t *a = room->affs; a; a = a->hh.next) {
        if (a->aff < MUC_AFF_MEMBER || muc_occ_by_bare(room, a->bare))
            continue;
        char id[48];
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "type", "normal");
        kn_stanza_builder_attr(b, "from", room->jid);
        kn_stanza_builder_attr(b, "to", a->bare);
        kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
        for (int c = kn_stanza_first_child(stamped, 0); c >= 0;
             c = kn_stanza_next_sibling(stamped, c)) {
            const char *ns = kn_stanza_ns(stamped, c);
            if (strcmp(ns, MUC_NS_USER) != 0)
                kn_stanza_builder_copy(b, stamped, c);
        }
        kn_stanza_builder_start(b, "x", MUC_NS_USER);
        kn_stanza_builder_end(b);
        kn_stanza_builder_start(b, "addresses", MUC_NS_ADDRESS);
        kn_stanza_builder_start(b, "address", NULL);
        kn_stanza_builder_attr(b, "type", "ofrom");
        kn_stanza_builder_attr(b, "jid", ofrom.data);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
        kn_stanza_t *st = kn_stanza_builder_finish(b);
        muc_send(m, st);
        kn_stanza_unref(&st);
        m->stats.offline++;
    }
    kn_buf_free(&ofrom);
}

static void msg_subject(muc_t *m, muc_room_t *room, muc_occ_t *occ,
                        const kn_stanza_t *st, int subj)
{
    if (!muc_subject_allowed(&room->cfg, occ->role)) {
        muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
        return;
    }
    kn_buf_t text = KN_BUF_INIT;
    kn_stanza_text(st, subj, &text);
    free(room->subject);
    free(room->subject_from);
    room->subject = kn_strdup(text.data ? text.data : "");
    room->subject_from = kn_strdup(occ->nick);
    kn_buf_free(&text);
    kn_buf_t from = KN_BUF_INIT;
    kn_buf_printf(&from, "%s/%s", room->jid, occ->nick);
    kn_stanza_t *out = kn_stanza_with_attr(st, 0, "from", from.data);
    kn_stanza_t *out2 = kn_stanza_without_attr(out, 0, "to");
    muc_send_room(m, room, out2, NULL);
    kn_stanza_unref(&out);
    kn_stanza_unref(&out2);
    kn_buf_free(&from);
    if (muc_persist_wanted(room))
        muc_persist_room(m, room);
}

static void msg_groupchat(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    muc_seat_t *seat = muc_seat_find(m, room, in->from);
    if (seat == NULL) {
        /* Not an occupant (R-GRP-3): nothing is delivered. */
        muc_send_error(m, st, KN_STE_NOT_ACCEPTABLE,
                       "only occupants may send messages to the room");
        return;
    }
    muc_occ_t *occ = seat->occ;
    if (occ->role < MUC_ROLE_PARTICIPANT) {
        muc_send_error(m, st, KN_STE_FORBIDDEN, "you have no voice");
        return;
    }
    int subj = kn_stanza_child(st, 0, "subject", NULL);
    if (subj >= 0 && kn_stanza_child(st, 0, "body", NULL) < 0) {
        msg_subject(m, room, occ, st, subj);
        return;
    }
    uint64_t seq = room->next_seq++;
    kn_buf_t from = KN_BUF_INIT;
    kn_buf_printf(&from, "%s/%s", room->jid, occ->nick);
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "groupchat");
    kn_stanza_builder_attr(b, "from", from.data);
    if (kn_stanza_id(st))
        kn_stanza_builder_attr(b, "id", kn_stanza_id(st));
    const char *lang = kn_stanza_attr(st, 0, "xml:lang", NULL);
    if (lang)
        kn_stanza_builder_attr(b, "xml:lang", lang);
    msg_copy_children(b, st, room->jid);
    if (room->cfg.mam)
        msg_sid(b, room, seq);
    kn_stanza_t *stamped = kn_stanza_builder_finish(b);
    m->stats.messages++;
    muc_send_room(m, room, stamped, NULL);
    time_t now = time(NULL);
    muc_history_add(room, m->set.history_hard_max, stamped, now, seq,
                    msg_body_chars(stamped));
    if (room->cfg.mam && muc_persist_wanted(room))
        muc_persist_archive(m, room, seq, now, occ->nick, in->from_bare,
                            stamped);
    if (room->cfg.offline_delivery)
        msg_offline(m, room, occ, stamped);
    kn_stanza_unref(&stamped);
    kn_buf_free(&from);
}

static void msg_private(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "groupchat") == 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "groupchat messages go to the room's bare JID");
        return;
    }
    muc_seat_t *seat = muc_seat_find(m, room, in->from);
    if (seat == NULL) {
        muc_send_error(m, st, KN_STE_NOT_ACCEPTABLE,
                       "only occupants may send private messages");
        return;
    }
    muc_occ_t *to = muc_occ_find(room, in->nick);
    if (to == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (!muc_pm_allowed(&room->cfg, seat->occ->role)) {
        muc_send_error(m, st, KN_STE_FORBIDDEN,
                       "private messages are not allowed in this room");
        return;
    }
    kn_buf_t from = KN_BUF_INIT;
    kn_buf_printf(&from, "%s/%s", room->jid, seat->occ->nick);
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", type ? type : "normal");
    kn_stanza_builder_attr(b, "from", from.data);
    if (kn_stanza_id(st))
        kn_stanza_builder_attr(b, "id", kn_stanza_id(st));
    bool has_x = false;
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        has_x |= strcmp(kn_stanza_ns(st, c), MUC_NS_USER) == 0;
        kn_stanza_builder_copy(b, st, c);
    }
    if (!has_x) {
        kn_stanza_builder_start(b, "x", MUC_NS_USER);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    muc_send_occ(m, to, out);
    kn_stanza_unref(&out);
    kn_buf_free(&from);
}

/* <x muc#user><invite to=.../></x>: a mediated invitation (XEP-0045 7.8.2).
 * <decline to=.../>: forwarded to the inviter. */
static void msg_invite(muc_t *m, const muc_in_t *in, muc_room_t *room, int x)
{
    const kn_stanza_t *st = in->st;
    muc_aff_t aff = muc_room_aff(room, in->from_bare);
    muc_seat_t *seat = muc_seat_find(m, room, in->from);
    for (int c = kn_stanza_first_child(st, x); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        const char *name = kn_stanza_name(st, c);
        bool invite = strcmp(name, "invite") == 0;
        if (!invite && strcmp(name, "decline") != 0)
            continue;
        const char *to = kn_stanza_attr(st, c, "to", NULL);
        kn_buf_t jid = KN_BUF_INIT;
        if (to == NULL || kn_jid_prepare_str(to, strlen(to), &jid) < 0) {
            muc_send_error(m, st, KN_STE_JID_MALFORMED, NULL);
            kn_buf_free(&jid);
            return;
        }
        if (invite) {
            bool may = seat != NULL || aff >= MUC_AFF_MEMBER;
            if (room->cfg.members_only)
                may = aff >= MUC_AFF_ADMIN ||
                      (aff >= MUC_AFF_MEMBER &&
                       (room->cfg.allow_invites || room->cfg.is_group)) ||
                      (seat != NULL && room->cfg.allow_invites);
            if (!may) {
                muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
                kn_buf_free(&jid);
                return;
            }
            if (room->cfg.members_only && room->cfg.invite_adds_member) {
                /* The invitee's bare JID becomes a member (R-GRP-7). */
                kn_jid_t j = KN_JID_INIT;
                if (kn_jid_parse(&j, jid.data, jid.len) == 0) {
                    char *bare =
                        kn_strndup(kn_jid_str(&j), kn_jid_bare_len(&j));
                    muc_aff_t had = muc_room_aff(room, bare);
                    if (had == MUC_AFF_NONE)
                        muc_aff_apply(m, room, bare, MUC_AFF_MEMBER, NULL,
                                      in->from_bare, in->from, NULL);
                    free(bare);
                }
                kn_jid_free(&j);
            }
        }
        char id[48];
        kn_stanza_builder_t *b = m->b;
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "from", room->jid);
        kn_stanza_builder_attr(b, "to", jid.data);
        kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
        kn_stanza_builder_start(b, "x", MUC_NS_USER);
        kn_stanza_builder_start(b, name, NULL);
        kn_stanza_builder_attr(b, "from", invite ? in->from : in->from_bare);
        int r = kn_stanza_child(st, c, "reason", NULL);
        if (r >= 0)
            kn_stanza_builder_copy(b, st, r);
        kn_stanza_builder_end(b);
        if (invite && room->cfg.password && room->cfg.password[0]) {
            kn_stanza_builder_start(b, "password", NULL);
            kn_stanza_builder_text(b, room->cfg.password,
                                   strlen(room->cfg.password));
            kn_stanza_builder_end(b);
        }
        kn_stanza_builder_end(b);
        if (invite) {
            kn_stanza_builder_start(b, "x", "jabber:x:conference");
            kn_stanza_builder_attr(b, "jid", room->jid);
            kn_stanza_builder_end(b);
        }
        kn_stanza_t *out = kn_stanza_builder_finish(b);
        muc_send(m, out);
        kn_stanza_unref(&out);
        kn_buf_free(&jid);
    }
}

void muc_message_in(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0)
        return; /* an occupant's client bounced a message: nothing to do */
    muc_room_t *room = muc_room_find(m, in->room);
    if (room == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (in->nick != NULL) {
        msg_private(m, in, room);
        return;
    }
    int x = kn_stanza_child(st, 0, "x", MUC_NS_USER);
    if (x >= 0 && (kn_stanza_child(st, x, "invite", NULL) >= 0 ||
                   kn_stanza_child(st, x, "decline", NULL) >= 0)) {
        msg_invite(m, in, room, x);
        return;
    }
    if (type != NULL && strcmp(type, "groupchat") == 0) {
        msg_groupchat(m, in, room);
        return;
    }
    int form = muc_form_find(st, 0, MUC_NS_REQUEST);
    if (form >= 0) {
        muc_voice_message(m, in, room, form);
        return;
    }
    form = muc_form_find(st, 0, MUC_NS_REGFORM);
    if (form >= 0) {
        muc_register_message(m, in, room, form);
        return;
    }
    muc_send_error(m, st, KN_STE_BAD_REQUEST,
                   "send groupchat messages to the room");
}

void muc_message_send_history(muc_t *m, const muc_room_t *room, const char *to,
                              const muc_history_req_t *req)
{
    size_t first = muc_history_select(room, req, time(NULL));
    char stamp[32];
    for (size_t i = first; i < room->hist_len; i++) {
        const muc_hist_t *h = muc_history_at(room, i);
        kn_stanza_builder_t *b = kn_stanza_dup(h->msg);
        muc_time_format(h->at, stamp, sizeof(stamp));
        kn_stanza_builder_start(b, "delay", MUC_NS_DELAY);
        kn_stanza_builder_attr(b, "stamp", stamp);
        kn_stanza_builder_attr(b, "from", room->jid);
        kn_stanza_builder_end(b);
        kn_stanza_t *st = kn_stanza_builder_finish(b);
        kn_stanza_builder_free(&b);
        muc_send_to(m, st, to);
        kn_stanza_unref(&st);
    }
}

void muc_message_send_subject(muc_t *m, const muc_room_t *room, const char *to)
{
    kn_stanza_builder_t *b = m->b;
    kn_buf_t from = KN_BUF_INIT;
    if (room->subject_from)
        kn_buf_printf(&from, "%s/%s", room->jid, room->subject_from);
    else
        kn_buf_append_str(&from, room->jid);
    char id[48];
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "groupchat");
    kn_stanza_builder_attr(b, "from", from.data);
    kn_stanza_builder_attr(b, "to", to);
    kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
    kn_stanza_builder_start(b, "subject", NULL);
    if (room->subject)
        kn_stanza_builder_text(b, room->subject, strlen(room->subject));
    kn_stanza_builder_end(b);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    muc_send(m, st);
    kn_stanza_unref(&st);
    kn_buf_free(&from);
}
