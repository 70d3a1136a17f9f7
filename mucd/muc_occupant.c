/*
 * muc_occupant.c - occupant presence: join, update, nick change, leave.
 *
 * Join order (XEP-0045 7.2.3): the joiner gets every other occupant's
 * presence (bounded by max_occupant_presence, R-GRP-9), the others get
 * the joiner's, the joiner gets its own with 110 (+100 non-anonymous,
 * +170 logged, +201 created), then history (R-PERF-7), then the subject.
 * A second device of an occupant (same bare JID, same nick) takes a seat
 * in the same occupant (R-GRP-10): it gets the room's state, and nobody
 * else hears about it. A join (with the MUC <x/>) from a seat that is
 * already in the room gets the whole sequence again (a client that lost
 * sync); the others hear of it only when its presence changed.
 *
 * Leaving: the item's jid is the leaving seat's full JID (the seat is
 * gone by the time the presence is built). Probes to room/nick from an
 * occupant get the probed occupant's presence (XEP-0045 17.3).
 *
 * Creation: a name retired by a destroyed room (muc_lookup.c) ->
 * not-allowed, as for restricted creation (XEP-0045 10.1.1).
 *
 * Access checks, in order: outcast -> forbidden; members-only and not a
 * member -> registration-required (R-GRP-3); password -> not-authorized;
 * nick held or reserved by someone else -> conflict; room full ->
 * service-unavailable (XEP-0045 7.2.10; full is the room's maxusers or
 * the service's max_occupants, whichever is lower; admins and owners
 * still get in).
 *
 * Rooms per user (issue 16): a join that would create a room is refused
 * with <not-allowed/> (XEP-0045 10.1.1) when the joiner already owns
 * max_rooms_per_user rooms. Every room with a row is in memory (see
 * muc_lookup.c), so counting the rooms in memory counts them all; the
 * count is a scan, paid only on creation.
 */
#include "muc_occupant.h"

#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_aff.h"
#include "muc_history.h"
#include "muc_message.h"
#include "muc_out.h"
#include "muc_persist.h"
#include "muc_room.h"

bool muc_room_gc(muc_t *m, muc_room_t *room)
{
    if (room->nocc > 0 || room->cfg.persistent || room->stored)
        return false;
    kn_log_debug("room %s: last occupant left, room removed", room->jid);
    muc_room_free(m, room);
    return true;
}

/* Rooms bare owns. */
static size_t occ_rooms_owned(const muc_t *m, const char *bare)
{
    size_t n = 0;
    for (const muc_room_t *r = m->rooms; r != NULL; r = r->hh.next)
        if (muc_room_aff(r, bare) == MUC_AFF_OWNER)
            n++;
    return n;
}

/* The most occupants room takes (0: no limit). */
static size_t occ_room_cap(const muc_t *m, const muc_room_t *room)
{
    size_t own = room->cfg.max_occupants, svc = m->set.max_occupants;
    if (own == 0)
        return svc;
    return svc != 0 && svc < own ? svc : own;
}

static bool occ_may_create(const muc_t *m, const char *bare)
{
    if (m->set.anyone_creates)
        return true;
    const char *at = strchr(bare, '@');
    const char *dom = at ? at + 1 : bare;
    return strcmp(dom, m->set.server_domain) == 0;
}

/* The joiner gets the other occupants' presences. */
static void occ_send_roster(muc_t *m, const muc_occ_t *joiner,
                            const char *to_full)
{
    const muc_room_t *room = joiner->room;
    if (!room->cfg.occupant_presence)
        return;
    bool sees = room->cfg.whois == MUC_WHOIS_ANYONE ||
                joiner->role == MUC_ROLE_MODERATOR;
    size_t sent = 0, max = room->cfg.max_occupant_presence;
    muc_pres_opts_t o = {0};
    for (const muc_occ_t *v = room->occs; v; v = v->hh.next) {
        if (v == joiner || v->seats == NULL)
            continue;
        if (max && sent >= max)
            break;
        kn_stanza_t *p = muc_pres_build(m, v, &o, sees, false);
        muc_send_to(m, p, to_full);
        kn_stanza_unref(&p);
        sent++;
    }
}

/* The status codes of a joiner's self-presence besides 110: 100
 * non-anonymous, 170 logged, 201 created. codes has room for 3. */
static size_t occ_self_codes(const muc_room_t *room, bool created, int *codes)
{
    size_t n = 0;
    if (room->cfg.whois == MUC_WHOIS_ANYONE)
        codes[n++] = 100;
    if (room->cfg.mam)
        codes[n++] = 170;
    if (created)
        codes[n++] = 201;
    return n;
}

/* The end of every join: history as the join asks, then the subject. */
static void occ_join_tail(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    int x = kn_stanza_child(in->st, 0, "x", MUC_NS);
    muc_history_req_t req;
    muc_history_req_parse(in->st, x, &req);
    muc_message_send_history(m, room, in->from, &req);
    muc_message_send_subject(m, room, in->from);
}

static void occ_join(muc_t *m, const muc_in_t *in, muc_room_t *room)
{
    const kn_stanza_t *st = in->st;
    bool created = false;
    if (room == NULL) {
        if (in->lookup == MUC_LOOKUP_RETIRED) {
            kn_buf_t why = KN_BUF_INIT;
            kn_buf_printf(&why,
                          "this room was destroyed; its name is retired "
                          "until %s",
                          in->until && in->until[0] ? in->until : "later");
            muc_send_error(m, st, KN_STE_NOT_ALLOWED, why.data);
            kn_buf_free(&why);
            return;
        }
        if (!occ_may_create(m, in->from_bare)) {
            muc_send_error(m, st, KN_STE_NOT_ALLOWED,
                           "room creation is restricted");
            return;
        }
        size_t max = m->set.max_rooms_per_user;
        if (max != 0 && occ_rooms_owned(m, in->from_bare) >= max) {
            kn_buf_t why = KN_BUF_INIT;
            kn_buf_printf(&why, "you own too many rooms already (at most %zu)",
                          max);
            muc_send_error(m, st, KN_STE_NOT_ALLOWED, why.data);
            kn_buf_free(&why);
            return;
        }
        room = muc_room_new(m, in->room);
        muc_room_set_aff(room, in->from_bare, MUC_AFF_OWNER, NULL);
        created = true;
        kn_log_info("room %s created by %s", room->jid, in->from_bare);
    }
    muc_aff_t aff = muc_room_aff(room, in->from_bare);
    int x = kn_stanza_child(st, 0, "x", MUC_NS);
    if (aff == MUC_AFF_OUTCAST) {
        muc_send_error(m, st, KN_STE_FORBIDDEN, NULL);
        return;
    }
    if (room->cfg.members_only && aff < MUC_AFF_MEMBER) {
        muc_send_error(m, st, KN_STE_REGISTRATION_REQUIRED, NULL);
        return;
    }
    if (room->cfg.password && room->cfg.password[0] && aff < MUC_AFF_OWNER) {
        int pw = x >= 0 ? kn_stanza_child(st, x, "password", NULL) : -1;
        kn_buf_t given = KN_BUF_INIT;
        if (pw >= 0)
            kn_stanza_text(st, pw, &given);
        bool ok = given.data && strcmp(given.data, room->cfg.password) == 0;
        kn_buf_free(&given);
        if (!ok) {
            muc_send_error(m, st, KN_STE_NOT_AUTHORIZED, NULL);
            return;
        }
    }
    muc_occ_t *occ = muc_occ_find(room, in->nick);
    if ((occ != NULL && strcmp(occ->bare, in->from_bare) != 0) ||
        muc_room_nick_reserved(room, in->nick, in->from_bare)) {
        muc_send_error(m, st, KN_STE_CONFLICT, NULL);
        return;
    }
    size_t cap = occ_room_cap(m, room);
    if (occ == NULL && cap != 0 && room->nocc >= cap && aff < MUC_AFF_ADMIN) {
        kn_buf_t why = KN_BUF_INIT;
        kn_buf_printf(&why, "room is full (at most %zu occupants)", cap);
        muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE, why.data);
        kn_buf_free(&why);
        return;
    }
    m->stats.joins++;
    int self_codes[3];
    muc_pres_opts_t o = {0};
    o.self_codes = self_codes;
    o.nself_codes = occ_self_codes(room, created, self_codes);
    o.self_full = in->from;
    if (occ != NULL) {
        /* Another device of the same occupant (R-GRP-10). */
        muc_seat_add(m, occ, in->from, in->conn);
        occ_send_roster(m, occ, in->from);
        o.no_others = true;
        muc_pres_broadcast(m, occ, &o);
    } else {
        occ = muc_occ_new(room, in->nick, in->from_bare,
                          muc_role_default(&room->cfg, aff));
        muc_occ_set_pres(occ, st);
        muc_seat_add(m, occ, in->from, in->conn);
        occ_send_roster(m, occ, in->from);
        muc_pres_broadcast(m, occ, &o);
    }
    occ_join_tail(m, in, room);
    if (created && muc_persist_wanted(room))
        muc_persist_room(m, room);
}

/* A join from a seat already in the room, under its nick (XEP-0045 7.2;
 * what Prosody and ejabberd do): the client lost its view of the room (a
 * reconnect it did not notice, a stream it thinks new). It gets the whole
 * join sequence again: the occupants, its self-presence with the join
 * codes (not 201), history, subject. The others (and the occupant's other
 * seats) hear about it only when the presence changed. The seat takes
 * the connection id the join came on. */
static void occ_rejoin(muc_t *m, const muc_in_t *in, muc_seat_t *seat)
{
    muc_occ_t *occ = seat->occ;
    muc_room_t *room = occ->room;
    if (in->conn != 0)
        seat->conn = in->conn;
    occ_send_roster(m, occ, in->from);
    if (!muc_pres_same(occ->pres, in->st)) {
        muc_occ_set_pres(occ, in->st);
        muc_pres_opts_t a = {0};
        a.no_self = true;
        muc_pres_broadcast(m, occ, &a);
        kn_stanza_t *ps = NULL;
        for (const muc_seat_t *s = occ->seats; s; s = s->next_occ) {
            if (s == seat)
                continue;
            if (ps == NULL)
                ps = muc_pres_build(m, occ, &a, true, true);
            muc_send_to(m, ps, muc_seat_full(s));
        }
        kn_stanza_unref(&ps);
    }
    int self_codes[3];
    muc_pres_opts_t o = {0};
    o.self_codes = self_codes;
    o.nself_codes = occ_self_codes(room, false, self_codes);
    o.self_full = in->from;
    o.no_others = true;
    muc_pres_broadcast(m, occ, &o);
    occ_join_tail(m, in, room);
}

/* A presence probe to room@service/nick (XEP-0045 17.3, as Prosody
 * answers it): an occupant gets the probed occupant's current presence as
 * it would see it (real JID when it may see real JIDs; 110 when it probed
 * itself); for an absent member's reserved nick, unavailable presence;
 * for any other nick, nothing. A prober that is not an occupant gets
 * not-acceptable; a probe to a room that does not exist, item-not-found;
 * a probe to the room itself, nothing. */
static void occ_probe(muc_t *m, const muc_in_t *in, muc_room_t *room,
                      const muc_seat_t *seat)
{
    if (in->nick == NULL || in->nick[0] == '\0')
        return;
    if (room == NULL) {
        muc_send_error(m, in->st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (seat == NULL) {
        muc_send_error(m, in->st, KN_STE_NOT_ACCEPTABLE,
                       "you are not an occupant of this room");
        return;
    }
    const muc_occ_t *prober = seat->occ;
    bool sees = room->cfg.whois == MUC_WHOIS_ANYONE ||
                prober->role == MUC_ROLE_MODERATOR;
    const muc_occ_t *v = muc_occ_find(room, in->nick);
    muc_pres_opts_t o = {0};
    kn_stanza_t *p = NULL;
    if (v != NULL) {
        p = muc_pres_build(m, v, &o, sees, v == prober);
    } else {
        const muc_affrec_t *a = NULL;
        for (a = room->affs; a; a = a->hh.next)
            if (a->nick && strcmp(a->nick, in->nick) == 0)
                break;
        if (a == NULL || a->aff < MUC_AFF_MEMBER)
            return;
        muc_occ_t absent = {0};
        absent.nick = a->nick;
        absent.bare = a->bare;
        absent.room = room;
        o.unavailable = true;
        o.jid = a->bare;
        p = muc_pres_build(m, &absent, &o, sees, false);
    }
    muc_send_to(m, p, in->from);
    kn_stanza_unref(&p);
}

static void occ_nick_change(muc_t *m, const muc_in_t *in, muc_seat_t *seat)
{
    muc_occ_t *occ = seat->occ;
    muc_room_t *room = occ->room;
    if (muc_occ_find(room, in->nick) != NULL ||
        muc_room_nick_reserved(room, in->nick, in->from_bare)) {
        muc_send_error(m, in->st, KN_STE_CONFLICT, NULL);
        return;
    }
    static const int c303[] = {303};
    muc_pres_opts_t o = {0};
    o.unavailable = true;
    o.codes = c303;
    o.ncodes = 1;
    o.new_nick = in->nick;
    muc_pres_broadcast(m, occ, &o);
    muc_occ_rename(occ, in->nick);
    muc_occ_set_pres(occ, in->st);
    muc_pres_opts_t a = {0};
    muc_pres_broadcast(m, occ, &a);
}

/* One seat leaves: the last seat of an occupant takes it out of the
 * room. src is the unavailable presence (NULL when synthesised);
 * notify_self is false when the session is gone. */
static void occ_leave(muc_t *m, muc_seat_t *seat, const kn_stanza_t *src,
                      bool notify_self)
{
    muc_occ_t *occ = seat->occ;
    muc_room_t *room = occ->room;
    char *full = kn_strdup(muc_seat_full(seat));
    muc_seat_remove(m, seat);
    muc_pres_opts_t o = {0};
    o.unavailable = true;
    o.src = src;
    o.self_full = full;
    o.jid = full; /* the seat is gone: its JID, not the bare one */
    o.no_self = !notify_self;
    if (occ->seats != NULL) {
        o.no_others = true;
        if (notify_self)
            muc_pres_broadcast(m, occ, &o);
    } else {
        m->stats.leaves++;
        muc_pres_broadcast(m, occ, &o);
        muc_occ_free(m, occ);
        muc_room_gc(m, room);
    }
    free(full);
}

void muc_occ_remove(muc_t *m, muc_occ_t *occ, const int *codes, size_t ncodes,
                    const char *actor, const char *reason)
{
    muc_pres_opts_t o = {0};
    o.unavailable = true;
    o.codes = codes;
    o.ncodes = ncodes;
    o.actor = actor;
    o.reason = reason;
    o.src = NULL;
    kn_stanza_t *keep = occ->pres;
    occ->pres = NULL; /* an unavailable presence carries no show/status */
    muc_pres_broadcast(m, occ, &o);
    occ->pres = keep;
    m->stats.leaves++;
    muc_occ_free(m, occ);
}

void muc_presence_in(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    const char *type = kn_stanza_type(st);
    muc_room_t *room = muc_room_find(m, in->room);
    muc_seat_t *seat = room ? muc_seat_find(m, room, in->from) : NULL;
    if (type != NULL && strcmp(type, "unavailable") == 0) {
        if (seat != NULL)
            occ_leave(m, seat, st, true);
        return;
    }
    if (type != NULL && strcmp(type, "error") == 0) {
        /* The occupant's client bounced our presence: it is gone. */
        if (seat != NULL)
            occ_leave(m, seat, NULL, false);
        return;
    }
    if (type != NULL && strcmp(type, "probe") == 0) {
        occ_probe(m, in, room, seat);
        return;
    }
    if (type != NULL)
        return; /* subscription presences mean nothing to a room */
    if (in->nick == NULL || in->nick[0] == '\0') {
        muc_send_error(m, st, KN_STE_JID_MALFORMED, "a nickname is required");
        return;
    }
    if (seat == NULL) {
        occ_join(m, in, room);
        return;
    }
    if (strcmp(seat->occ->nick, in->nick) != 0) {
        occ_nick_change(m, in, seat);
        return;
    }
    if (kn_stanza_child(st, 0, "x", MUC_NS) >= 0) {
        occ_rejoin(m, in, seat);
        return;
    }
    muc_occ_set_pres(seat->occ, st);
    muc_pres_opts_t o = {0};
    muc_pres_broadcast(m, seat->occ, &o);
}

void muc_session_down(muc_t *m, const char *full)
{
    muc_seat_t *s;
    while ((s = muc_user_seats(m, full)) != NULL)
        occ_leave(m, s, NULL, false);
}
