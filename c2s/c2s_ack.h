/*
 * c2s_ack.h - which stored offline messages (KN_F_ACK_WANTED, R-PRES-5)
 * a connection has written to its socket.
 *
 * A connection appends everything for its client to one output buffer
 * and writes it from the front; the buffer only grows until it is fully
 * written, then starts again at offset 0. So "this stanza was written"
 * is "the written offset reached the buffer length just after the
 * stanza was appended". A connection keeps the (ack id, end offset) of
 * each such stanza in append order, and after each write moves the ids
 * whose end was reached to the node's ACK batch. Pure bookkeeping: no
 * socket, no loop, unit tested alone.
 */
#ifndef C2S_ACK_H
#define C2S_ACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct c2s_ack_mark {
    uint64_t id;
    size_t end; /* output offset just past the stanza */
} c2s_ack_mark_t;

/* One connection's marks: v[head..n) pending, ends non-decreasing. The
 * array is freed whenever it empties (idle connections hold none). */
typedef struct c2s_acks {
    c2s_ack_mark_t *v;
    size_t head, n, cap;
} c2s_acks_t;

/* A growing list of ids to acknowledge (the node's batch). */
typedef struct c2s_ack_ids {
    uint64_t *ids;
    size_t n, cap;
} c2s_ack_ids_t;

/* Remember that the stanza with ack id `id` ends at output offset end
 * (the buffer length right after it was appended). end must not be below
 * the previous mark's (programmer error). */
void c2s_acks_add(c2s_acks_t *a, uint64_t id, size_t end);

/* The output was written up to offset `written` (bytes the transport
 * accepted): move the ids of every mark with end <= written, in order,
 * to out. Returns how many moved. */
size_t c2s_acks_written(c2s_acks_t *a, size_t written, c2s_ack_ids_t *out);

/* Pending marks (not yet written). */
size_t c2s_acks_pending(const c2s_acks_t *a);

/* Forget every pending mark without acknowledging it (the output was
 * dropped: write error, slow consumer, connection freed). Returns how
 * many were forgotten. */
size_t c2s_acks_drop(c2s_acks_t *a);

/* Append one id to out. */
void c2s_ack_ids_push(c2s_ack_ids_t *out, uint64_t id);
void c2s_ack_ids_free(c2s_ack_ids_t *out);

#endif
