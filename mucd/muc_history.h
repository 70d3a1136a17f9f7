/*
 * muc_history.h - the per-room ring of recent groupchat messages sent to
 * joining occupants (R-PERF-7): `none`, `number` (default 25) or `all`
 * (bounded by the service's history_hard_max), and the client's
 * <history maxstanzas maxchars seconds since/> honoured within the
 * room's maximum.
 */
#ifndef MUC_HISTORY_H
#define MUC_HISTORY_H

#include <stdbool.h>
#include <time.h>

#include "muc_types.h"

typedef struct muc_history_req {
    long maxstanzas; /* -1: not given */
    long maxchars;   /* -1: not given */
    long seconds;    /* -1: not given */
    time_t since;    /* -1: not given */
} muc_history_req_t;

/* How many messages the room keeps (0 for `none`). */
size_t muc_history_room_max(const muc_room_t *room, size_t hard_max);
/* Make the ring fit the room's current configuration, dropping the
 * oldest messages that no longer fit. */
void muc_history_resize(muc_room_t *room, size_t hard_max);
/* Append msg (a reference is taken) said at `at` with stanza-id seq;
 * chars is the size counted against maxchars. The oldest goes when full. */
void muc_history_add(muc_room_t *room, size_t hard_max, const kn_stanza_t *msg,
                     time_t at, uint64_t seq, size_t chars);
/* Drop every message (the ring's storage stays). */
void muc_history_clear(muc_room_t *room);
/* The i-th kept message, oldest first (i < room->hist_len). */
const muc_hist_t *muc_history_at(const muc_room_t *room, size_t i);

/* Read <history/> from element x (the muc <x/> of a join presence; x < 0:
 * none) of st into *req. No element means "no limits given". */
void muc_history_req_parse(const kn_stanza_t *st, int x,
                           muc_history_req_t *req);
/* The first index (oldest first) to send under req at time now; messages
 * [first, hist_len) are sent. */
size_t muc_history_select(const muc_room_t *room, const muc_history_req_t *req,
                          time_t now);

/* XEP-0082 date-time: parse "YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm)" into
 * *out (UTC); returns 0 or -KN_EINVAL. Format t as
 * "YYYY-MM-DDThh:mm:ssZ" into buf (at least 21 bytes). */
int muc_time_parse(const char *s, time_t *out);
void muc_time_format(time_t t, char *buf, size_t size);

#endif
