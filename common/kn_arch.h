/*
 * kn_arch.h - a batch of archive copies in one envelope (XEP-0313,
 * router -> archiver).
 *
 * The router sends its archive copies to the archiver as STANZA
 * envelopes with KN_F_ARCHIVE | KN_F_ARCHIVE_BATCH whose payload is a
 * sequence of records, one per copy, in id order; ack_id is the id of the
 * last one. A record: id (8 bytes), the message type (1), the lengths of
 * from (2), to (2) and the stanza (4), all big-endian, then from, to and
 * the stanza (the message as the client sent it). One envelope then
 * carries up to a few hundred copies: one ZeroMQ message and one wake-up
 * each side instead of one per copy.
 */
#ifndef KN_ARCH_H
#define KN_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"

#define KN_ARCH_HDR 17 /* bytes of a record before from, to, stanza */

typedef struct kn_arch_copy {
    uint64_t id;
    uint8_t type; /* kn_env type of the message */
    const char *from;
    size_t from_len;
    const char *to;
    size_t to_len;
    const void *stanza;
    size_t len;
} kn_arch_copy_t;

/* Bytes of c's record. */
size_t kn_arch_size(const kn_arch_copy_t *c);

/* Write c's record (kn_arch_size bytes) at dst; false (nothing written)
 * when a field is too long for it (from or to over 65,535 bytes, a
 * stanza over 4 GiB). */
bool kn_arch_write(uint8_t *dst, const kn_arch_copy_t *c);

/* Append one record; false (nothing appended) when a field is too long
 * for it (from or to over 65,535 bytes, a stanza over 4 GiB). */
bool kn_arch_append(kn_buf_t *b, const kn_arch_copy_t *c);

/* The record at *off of a batch: 1 and *off moved past it, 0 at the end,
 * -KN_EPROTO when what is left is not a whole record. The copy points
 * into data. */
int kn_arch_next(const void *data, size_t len, size_t *off, kn_arch_copy_t *c);

#endif
