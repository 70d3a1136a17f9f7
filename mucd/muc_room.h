/*
 * muc_room.h - the service's rooms, their affiliations, occupants and
 * seats (muc_types.h has the model and its invariants). Bookkeeping only:
 * nothing here sends a stanza, so every function may be called from any
 * callback.
 */
#ifndef MUC_ROOM_H
#define MUC_ROOM_H

#include "muc_types.h"

/* Set *m up for service (e.g. "conference.localhost") of server_domain;
 * both copied. sink is copied. Persistence is off until m->store is set. */
void muc_init(muc_t *m, const char *server_domain, const char *service,
              const muc_sink_t *sink);
/* Free every room, occupant and user, and what muc_init allocated. */
void muc_fini(muc_t *m);

/* Default configuration of a new room (an open, temporary room with
 * history of 25, Openfire's HistoryStrategy default). */
void muc_config_defaults(muc_config_t *c);
/* Turn c into the group profile (R-GRP-1): persistent, members-only,
 * non-anonymous, hidden, no private messages, archived, offline delivery,
 * no history on join (R-GRP-9: MAM covers catch-up). */
void muc_config_group(muc_config_t *c);
/* Free the strings of c (c itself is the caller's). */
void muc_config_free(muc_config_t *c);

/* The room with bare JID jid, or NULL. */
muc_room_t *muc_room_find(muc_t *m, const char *jid);
/* A new room jid (bare room JID; its local part is taken from it) with
 * the default configuration; the caller made sure it does not exist. */
muc_room_t *muc_room_new(muc_t *m, const char *jid);
/* The name shown for the room: its title, else its node. (The group-list
 * query's SQL, muc_groups.c, says the same with coalesce/nullif.) */
const char *muc_room_name(const muc_room_t *room);
/* Remove the room and everything in it (occupants' seats too). */
void muc_room_free(muc_t *m, muc_room_t *room);

/* Affiliation of bare in room (MUC_AFF_NONE without a record). */
muc_aff_t muc_room_aff(const muc_room_t *room, const char *bare);
/* The record of bare, or NULL. */
muc_affrec_t *muc_room_affrec(const muc_room_t *room, const char *bare);
/* Set bare's affiliation (MUC_AFF_NONE removes the record); nick may be
 * NULL (keeps a previous reserved nick). Idempotent. */
void muc_room_set_aff(muc_room_t *room, const char *bare, muc_aff_t aff,
                      const char *nick);
/* Number of owners. */
size_t muc_room_owners(const muc_room_t *room);

/* Is nick reserved (an affiliation's nick) by someone other than bare? */
bool muc_room_nick_reserved(const muc_room_t *room, const char *nick,
                            const char *bare);
/* May bare not register nick: reserved by, asked for by (a pending
 * request) or in use by an occupant of someone else? */
bool muc_room_nick_taken(const muc_room_t *room, const char *nick,
                         const char *bare);

/* Pending registration requests (XEP-0045 7.10): the request of bare, or
 * NULL; add (or replace the nick of) one; remove one (no-op when absent).
 * Setting an affiliation other than none removes the request. */
muc_regreq_t *muc_regreq_find(const muc_room_t *room, const char *bare);
muc_regreq_t *muc_regreq_add(muc_room_t *room, const char *bare,
                             const char *nick, time_t at);
void muc_regreq_remove(muc_room_t *room, const char *bare);

/* Occupant by nick, or by real bare JID (first found), or NULL. */
muc_occ_t *muc_occ_find(const muc_room_t *room, const char *nick);
muc_occ_t *muc_occ_by_bare(const muc_room_t *room, const char *bare);
/* A new occupant (no seat yet); nick must be free. */
muc_occ_t *muc_occ_new(muc_room_t *room, const char *nick, const char *bare,
                       muc_role_t role);
/* Remove occ and its seats from the room and free it. */
void muc_occ_free(muc_t *m, muc_occ_t *occ);
/* Rename occ (the new nick must be free). */
void muc_occ_rename(muc_occ_t *occ, const char *nick);
/* Replace the presence kept for new joiners (takes a reference). */
void muc_occ_set_pres(muc_occ_t *occ, const kn_stanza_t *pres);
/* The real full JID of occ's first seat (for the jid attribute). */
const char *muc_occ_jid(const muc_occ_t *occ);
/* The number of seats of occ. */
size_t muc_occ_nseats(const muc_occ_t *occ);

/* The seat of real full JID full in room, or NULL. */
muc_seat_t *muc_seat_find(muc_t *m, const muc_room_t *room, const char *full);
/* Seat full (connection conn) in occ. The caller checked it is not
 * seated in this room yet. */
muc_seat_t *muc_seat_add(muc_t *m, muc_occ_t *occ, const char *full,
                         uint64_t conn);
/* Remove and free one seat; the occupant stays even when seatless (the
 * caller decides what to broadcast, then frees it). */
void muc_seat_remove(muc_t *m, muc_seat_t *seat);
/* The seats of real full JID full in every room (a list linked by
 * next_user), or NULL. */
muc_seat_t *muc_user_seats(muc_t *m, const char *full);
/* The real full JID of a seat. */
const char *muc_seat_full(const muc_seat_t *s);

/* A fresh id for stanzas the service originates ("kiln-muc-N"). */
const char *muc_next_id(muc_t *m, char *buf, size_t size);

#endif
