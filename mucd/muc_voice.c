/*
 * muc_voice.c - voice requests (XEP-0045 7.13) and their approval (8.6).
 *
 * A visitor sends the room a message holding a submitted muc#request form
 * with muc#role = participant. The room forwards an approval form (the
 * requester's real full JID and nick, muc#request_allow false) to every
 * seat of every moderator. A moderator who submits that form back with
 * muc#request_allow true grants voice: the occupant becomes a
 * participant and everyone gets its presence with the new role, as for a
 * muc#admin voice grant. A cancelled form or request_allow false changes
 * nothing.
 *
 * Refusals: a form that is not a valid submitted muc#request form:
 * bad-request; a sender who is not an occupant: not-acceptable (as for a
 * groupchat message); an occupant who is not a visitor (it has voice
 * already): not-allowed; a second request from one occupant within
 * mucd.voice_request_interval seconds: resource-constraint (of type
 * wait: ask again later); no moderator in the room to ask:
 * recipient-unavailable. An answer from someone who is not a moderator:
 * forbidden; for an occupant who is gone (or whose nick now belongs to
 * someone else): item-not-found; against a user the moderator may not
 * change: not-allowed.
 */
#include "muc_voice.h"

#include <string.h>
#include <time.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_aff.h"
#include "muc_form.h"
#include "muc_out.h"
#include "muc_room.h"

/* Does occ have real JID jid (a full JID of one of its seats, or its bare
 * JID)? */
static bool voice_occ_is(muc_t *m, const muc_occ_t *occ, const char *jid)
{
    kn_jid_t j = KN_JID_INIT;
    bool same = false;
    if (kn_jid_parse(&j, jid, strlen(jid)) == 0) {
        const char *s = kn_jid_str(&j);
        if (kn_jid_is_bare(&j)) {
            same = strcmp(s, occ->bare) == 0;
        } else {
            muc_seat_t *seat = muc_seat_find(m, occ->room, s);
            same = seat != NULL && seat->occ == occ;
        }
    }
    kn_jid_free(&j);
    return same;
}

static void voice_request(muc_t *m, const muc_in_t *in, muc_room_t *room,
                          muc_seat_t *seat)
{
    const kn_stanza_t *st = in->st;
    if (seat == NULL) {
        muc_send_error(m, st, KN_STE_NOT_ACCEPTABLE,
                       "only occupants may request voice");
        return;
    }
    muc_occ_t *occ = seat->occ;
    if (!muc_voice_may_request(occ->role)) {
        muc_send_error(m, st, KN_STE_NOT_ALLOWED,
                       "only visitors request voice; you have it");
        return;
    }
    time_t now = time(NULL);
    unsigned gap = m->set.voice_interval;
    if (gap > 0 && occ->voice_req_at != 0 && now >= occ->voice_req_at &&
        (unsigned long long)(now - occ->voice_req_at) < gap) {
        muc_send_error(m, st, KN_STE_RESOURCE_CONSTRAINT,
                       "a voice request is already waiting for the "
                       "moderators");
        return;
    }
    size_t mods = 0;
    for (const muc_occ_t *o = room->occs; o; o = o->hh.next)
        mods += o->role == MUC_ROLE_MODERATOR && o->seats != NULL;
    if (mods == 0) {
        muc_send_error(m, st, KN_STE_RECIPIENT_UNAVAILABLE,
                       "no moderator is in the room");
        return;
    }
    occ->voice_req_at = now;
    char id[48];
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", room->jid);
    kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
    muc_voice_form_approval(b, muc_seat_full(seat), occ->nick);
    kn_stanza_t *fwd = kn_stanza_builder_finish(b);
    for (const muc_occ_t *o = room->occs; o; o = o->hh.next)
        if (o->role == MUC_ROLE_MODERATOR)
            muc_send_occ(m, o, fwd);
    kn_stanza_unref(&fwd);
    kn_log_debug("room %s: %s asks for voice", room->jid, occ->nick);
}

static void voice_answer(muc_t *m, const muc_in_t *in, muc_room_t *room,
                         muc_seat_t *seat, const muc_voice_form_t *f)
{
    const kn_stanza_t *st = in->st;
    if (seat == NULL || seat->occ->role != MUC_ROLE_MODERATOR) {
        muc_send_error(m, st, KN_STE_FORBIDDEN,
                       "only moderators answer voice requests");
        return;
    }
    if (!f->allow)
        return; /* denied: the visitor stays a visitor */
    muc_occ_t *target = NULL;
    if (f->nick != NULL) {
        target = muc_occ_find(room, f->nick);
        if (target != NULL && f->jid != NULL &&
            !voice_occ_is(m, target, f->jid))
            target = NULL; /* the nick changed hands since the request */
    } else if (f->jid != NULL) {
        kn_jid_t j = KN_JID_INIT;
        if (kn_jid_parse(&j, f->jid, strlen(f->jid)) == 0) {
            muc_seat_t *ts = muc_seat_find(m, room, kn_jid_str(&j));
            target = ts ? ts->occ : NULL;
        }
        kn_jid_free(&j);
    }
    if (target == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND,
                       "the occupant who asked is not in the room");
        return;
    }
    if (target->role >= MUC_ROLE_PARTICIPANT)
        return; /* voice already granted (by another moderator) */
    muc_aff_t actor_aff = muc_room_aff(room, in->from_bare);
    muc_aff_t target_aff = muc_room_aff(room, target->bare);
    if (!muc_role_can_change(seat->occ->role, actor_aff, target->role,
                             target_aff, MUC_ROLE_PARTICIPANT)) {
        muc_send_error(m, st, KN_STE_NOT_ALLOWED, NULL);
        return;
    }
    target->role = MUC_ROLE_PARTICIPANT;
    target->voice_req_at = 0;
    muc_pres_opts_t o = {0};
    muc_pres_broadcast(m, target, &o);
    kn_log_debug("room %s: %s granted voice to %s", room->jid, seat->occ->nick,
                 target->nick);
}

void muc_voice_message(muc_t *m, const muc_in_t *in, muc_room_t *room, int x)
{
    const kn_stanza_t *st = in->st;
    if (strcmp(muc_form_type(st, x), "cancel") == 0)
        return; /* a moderator skipped a request */
    muc_voice_form_t f;
    if (muc_voice_form_parse(st, x, &f) < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST,
                       "expected a submitted muc#request form with "
                       "muc#role participant or muc#request_allow");
        return;
    }
    muc_seat_t *seat = muc_seat_find(m, room, in->from);
    if (f.has_allow)
        voice_answer(m, in, room, seat, &f);
    else
        voice_request(m, in, room, seat);
    muc_voice_form_free(&f);
}
