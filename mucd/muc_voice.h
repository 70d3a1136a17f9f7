/*
 * muc_voice.h - voice requests in moderated rooms and their approval by
 * moderators (XEP-0045 7.13 and 8.6); the rules are in muc_voice.c.
 */
#ifndef MUC_VOICE_H
#define MUC_VOICE_H

#include "muc_types.h"

/* A message to room (in->room, not to an occupant) holding the
 * muc#request form x: a visitor's request or a moderator's answer. */
void muc_voice_message(muc_t *m, const muc_in_t *in, muc_room_t *room, int x);

#endif
