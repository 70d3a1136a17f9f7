/*
 * muc_register.h - registration with a room (XEP-0045 7.10, jabber:iq:register)
 * and the approval of requests by owners and admins (9.9); the rules are
 * in muc_register.c.
 */
#ifndef MUC_REGISTER_H
#define MUC_REGISTER_H

#include "muc_types.h"

/* An iq get or set in jabber:iq:register to a room (in->room set). */
void muc_register_iq(muc_t *m, const muc_in_t *in);

/* A message to room holding the muc#register form x: an owner's or
 * admin's answer to a registration request. */
void muc_register_message(muc_t *m, const muc_in_t *in, muc_room_t *room,
                          int x);

#endif
