/*
 * muc_register.c - registration with a room (XEP-0045 7.10) and its
 * approval (9.9): the way into a members-only room when invitations do
 * not add members (R-GRP-7, invite_adds_member off).
 *
 * get: an outcast gets not-allowed (XEP-0045 7.10: "not allowed to
 * register"); a member (admin, owner) gets
 * <registered/> and the form with its reserved nick; anyone else the
 * muc#register form (the nick of a pending request filled in).
 *
 * set with the submitted form: outcast not-allowed, already a member
 * conflict (as the brief of R-GRP-7 and XEP-0077's "already registered"
 * on a set that would change nothing), a nick reserved, requested or in
 * use by someone else conflict, a form without a nick bad-request. Then,
 * in a room that needs approval (members-only or moderated,
 * muc_register_needs_approval), the request is kept and forwarded once to
 * every owner and admin as a normal message to their bare JID (so it
 * reaches their online resources or waits in offline storage) holding the
 * approval form: the requester's bare JID (muc#jid), the fields given and
 * muc#register_allow false. Elsewhere the requester becomes a member at
 * once. <remove/> cancels: a pending request, or the membership of a
 * member (owners and admins leave through muc#admin).
 *
 * An owner or admin approves by submitting that form back to the room
 * with muc#register_allow true: the requester becomes a member with the
 * nick reserved (muc_aff_apply: memory, muc_affiliation upsert and the
 * invalidation every mucd sees, bookmark). Approving through muc#admin
 * (affiliation member) works as well and drops the request.
 *
 * A note on pending requests: they live in memory only (room->regs),
 * bounded per room. They serve to answer a repeated request without
 * asking the owners again and to keep two requesters off one nick. The
 * approval itself needs nothing from memory, because the forwarded form
 * carries the requester and the nick: an approval after a mucd restart,
 * or sent to another mucd, still works.
 */
#include "muc_register.h"

#include <string.h>
#include <time.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_admin.h"
#include "muc_aff.h"
#include "muc_form.h"
#include "muc_iq.h"
#include "muc_out.h"
#include "muc_room.h"

#define REG_MAX_PENDING 100 /* pending requests per room */

static void reg_get(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    muc_aff_t aff = muc_room_aff(room, in->from_bare);
    if (aff == MUC_AFF_OUTCAST) {
        muc_send_error(m, st, KN_STE_NOT_ALLOWED,
                       "you may not register with this room");
        return;
    }
    kn_stanza_builder_t *b = m->b;
    muc_iq_result_start(m, st);
    kn_stanza_builder_start(b, "query", MUC_NS_REGISTER);
    const char *nick = NULL;
    if (aff >= MUC_AFF_MEMBER) {
        kn_stanza_builder_start(b, "registered", NULL);
        kn_stanza_builder_end(b);
        nick = muc_room_affrec(room, in->from_bare)->nick;
    } else {
        muc_regreq_t *q = muc_regreq_find(room, in->from_bare);
        nick = q ? q->nick : NULL;
    }
    muc_reg_form_request(b, muc_room_name(room), nick);
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    muc_send(m, out);
    kn_stanza_unref(&out);
}

/* Forward the request of bare to every owner and admin. Returns how many
 * got it. */
static size_t reg_forward(muc_t *m, muc_room_t *room, const char *bare,
                          const muc_reg_form_t *f)
{
    kn_buf_t body = KN_BUF_INIT;
    kn_buf_printf(&body,
                  "%s asks to become a member of %s with the nickname %s. "
                  "Answer with the form of this message.",
                  bare, room->jid, f->nick);
    size_t n = 0;
    kn_stanza_builder_t *b = m->b;
    for (const muc_affrec_t *a = room->affs; a; a = a->hh.next) {
        if (a->aff < MUC_AFF_ADMIN)
            continue;
        char id[48];
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "type", "normal");
        kn_stanza_builder_attr(b, "from", room->jid);
        kn_stanza_builder_attr(b, "to", a->bare);
        kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
        kn_stanza_builder_start(b, "body", NULL);
        kn_stanza_builder_text(b, body.data, body.len);
        kn_stanza_builder_end(b);
        muc_reg_form_approval(b, room->jid, bare, f);
        kn_stanza_t *out = kn_stanza_builder_finish(b);
        muc_send(m, out);
        kn_stanza_unref(&out);
        n++;
    }
    kn_buf_free(&body);
    return n;
}

static void reg_remove(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    muc_aff_t aff = muc_room_aff(room, in->from_bare);
    if (aff >= MUC_AFF_ADMIN) {
        muc_send_error(m, st, KN_STE_NOT_ALLOWED,
                       "owners and admins change their affiliation with "
                       "muc#admin");
        return;
    }
    if (aff == MUC_AFF_MEMBER) {
        muc_iq_result_empty(m, st);
        muc_aff_apply(m, room, in->from_bare, MUC_AFF_NONE, NULL, in->from_bare,
                      NULL, NULL);
        return;
    }
    if (muc_regreq_find(room, in->from_bare) == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND,
                       "you are not registered with this room");
        return;
    }
    muc_regreq_remove(room, in->from_bare);
    muc_iq_result_empty(m, st);
}

static void reg_set(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    int q = muc_iq_query(st);
    if (kn_stanza_child(st, q, "remove", NULL) >= 0) {
        reg_remove(m, in, room);
        return;
    }
    int x = muc_form_find(st, q, MUC_NS_REGFORM);
    if (x < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "a muc#register data form is required");
        return;
    }
    if (strcmp(muc_form_type(st, x), "cancel") == 0) {
        muc_iq_result_empty(m, st);
        return;
    }
    muc_reg_form_t f;
    if (muc_reg_form_parse(st, x, &f) < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "not a valid submitted muc#register form");
        return;
    }
    int refusal = muc_register_refusal(muc_room_aff(room, in->from_bare));
    if (f.nick == NULL) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "muc#register_roomnick is required");
    } else if (refusal >= 0) {
        muc_send_error(m, st, (kn_stanza_err_t)refusal,
                       refusal == KN_STE_CONFLICT
                           ? "you are already registered with this room"
                           : NULL);
    } else if (muc_room_nick_taken(room, f.nick, in->from_bare)) {
        muc_send_error(m, st, KN_STE_CONFLICT,
                       "that nickname is reserved by someone else");
    } else if (!muc_register_needs_approval(&room->cfg)) {
        muc_iq_result_empty(m, st);
        muc_aff_apply(m, room, in->from_bare, MUC_AFF_MEMBER, f.nick,
                      in->from_bare, NULL, NULL);
        kn_log_info("room %s: %s registered as %s", room->jid, in->from_bare,
                    f.nick);
    } else {
        muc_regreq_t *old = muc_regreq_find(room, in->from_bare);
        bool same = old != NULL && strcmp(old->nick, f.nick) == 0;
        if (old == NULL && room->nregs >= REG_MAX_PENDING) {
            muc_send_error(m, st, KN_STE_RESOURCE_CONSTRAINT,
                           "too many registration requests are waiting");
        } else if (same) {
            muc_iq_result_empty(m, st); /* the owners were asked already */
        } else if (reg_forward(m, room, in->from_bare, &f) == 0) {
            muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE,
                           "this room has no owner or admin to approve "
                           "registrations");
        } else {
            muc_regreq_add(room, in->from_bare, f.nick, time(NULL));
            muc_iq_result_empty(m, st);
            kn_log_info("room %s: %s asks to register as %s", room->jid,
                        in->from_bare, f.nick);
        }
    }
    muc_reg_form_free(&f);
}

void muc_register_iq(muc_t *m, const muc_in_t *in)
{
    muc_room_t *room = muc_room_find(m, in->room);
    if (room == NULL) {
        muc_send_error(m, in->st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (strcmp(kn_stanza_type(in->st), "get") == 0)
        reg_get(m, in, room);
    else
        reg_set(m, in, room);
}

void muc_register_message(muc_t *m, const muc_in_t *in, muc_room_t *room, int x)
{
    const kn_stanza_t *st = in->st;
    if (strcmp(muc_form_type(st, x), "cancel") == 0)
        return; /* an owner skipped a request */
    muc_reg_form_t f;
    if (muc_reg_form_parse(st, x, &f) < 0 || !f.has_allow || f.jid == NULL) {
        muc_reg_form_free(&f); /* idempotent: parse may have freed it */
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "expected the submitted approval form with muc#jid "
                       "and muc#register_allow");
        return;
    }
    kn_jid_t j = KN_JID_INIT;
    char *bare = NULL;
    if (kn_jid_parse(&j, f.jid, strlen(f.jid)) < 0) {
        muc_send_error(m, st, KN_STE_JID_MALFORMED, NULL);
        goto out;
    }
    bare = kn_strndup(kn_jid_str(&j), kn_jid_bare_len(&j));
    muc_aff_t actor = muc_room_aff(room, in->from_bare);
    muc_aff_t had = muc_room_aff(room, bare);
    if (actor < MUC_AFF_ADMIN) {
        muc_send_error(m, st, KN_STE_FORBIDDEN,
                       "only owners and admins approve registrations");
        goto out;
    }
    if (had >= MUC_AFF_MEMBER)
        goto out; /* decided already (by another admin, or muc#admin) */
    if (!f.allow) {
        muc_regreq_remove(room, bare);
        kn_log_info("room %s: %s turned down the registration of %s", room->jid,
                    in->from_bare, bare);
        goto out;
    }
    muc_regreq_t *q = muc_regreq_find(room, bare);
    const char *nick = f.nick ? f.nick : q ? q->nick : NULL;
    if (nick != NULL && muc_room_nick_reserved(room, nick, bare)) {
        muc_send_error(m, st, KN_STE_CONFLICT,
                       "that nickname is reserved by someone else now");
        goto out;
    }
    char *keep = nick ? kn_strdup(nick) : NULL; /* q goes with the change */
    muc_aff_apply(m, room, bare, MUC_AFF_MEMBER, keep, in->from_bare, in->from,
                  NULL);
    kn_log_info("room %s: %s approved the registration of %s", room->jid,
                in->from_bare, bare);
    free(keep);
out:
    free(bare);
    kn_jid_free(&j);
    muc_reg_form_free(&f);
}
