/*
 * muc_message.h - messages in a room: groupchat (reflected to every
 * occupant, stanza-id, history, archive, offline delivery to members who
 * are not in the room, R-GRP-4), subject changes, private messages
 * between occupants, mediated invitations and declines; and what a
 * joining occupant gets after its presence: history and subject.
 */
#ifndef MUC_MESSAGE_H
#define MUC_MESSAGE_H

#include "muc_history.h"
#include "muc_types.h"

/* A message addressed to a room or an occupant (in->room set). */
void muc_message_in(muc_t *m, const muc_in_t *in);

/* History per req (within the room's maximum, R-PERF-7), each with
 * <delay/>, to the real full JID to. */
void muc_message_send_history(muc_t *m, const muc_room_t *room, const char *to,
                              const muc_history_req_t *req);
/* The subject (an empty <subject/> when none was set) to to. */
void muc_message_send_subject(muc_t *m, const muc_room_t *room, const char *to);

#endif
