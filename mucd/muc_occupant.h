/*
 * muc_occupant.h - occupant presence (XEP-0045 sections 7.1 to 7.4 and
 * 7.14): join (with room creation), presence updates, nick changes and
 * conflicts, leaving, and the removal of occupants whose session ended
 * by any path (SESSION_DOWN copies from the router).
 */
#ifndef MUC_OCCUPANT_H
#define MUC_OCCUPANT_H

#include "muc_types.h"

/* A presence addressed to the room (in->room set): join, rejoin of a
 * seat already in (the whole join sequence again), update, nick change,
 * leave, probe (answered to occupants; others get not-acceptable). */
void muc_presence_in(muc_t *m, const muc_in_t *in);

/* The session full ended: it leaves every room it was in; the others get
 * its unavailable presence. */
void muc_session_down(muc_t *m, const char *full);

/* Remove occ from its room with unavailable presence to everyone (its
 * own seats included, with 110) carrying codes (307 kick, 301 ban, 321
 * affiliation change, 322 members-only, 332 shutdown), actor and reason.
 * occ is freed; the room stays even when empty (call muc_room_gc()). */
void muc_occ_remove(muc_t *m, muc_occ_t *occ, const int *codes, size_t ncodes,
                    const char *actor, const char *reason);

/* Free room if it is empty and neither persistent nor stored. Returns true
 * when it was freed. */
bool muc_room_gc(muc_t *m, muc_room_t *room);

#endif
