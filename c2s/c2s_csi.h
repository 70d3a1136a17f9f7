/*
 * c2s_csi.h - XEP-0352 client state indication: what c2s holds back from
 * an inactive client and when it lets it go (c2s_csi.c).
 *
 * The queue is pure (no stream, no socket) so a unit test drives it with
 * canned envelopes. The stream glue (c2s_csi_filter, c2s_csi_handle) is
 * declared in c2s_stream.h.
 */
#ifndef C2S_CSI_H
#define C2S_CSI_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_env.h"

#define C2S_NS_CSI        "urn:xmpp:csi:0"
#define C2S_NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* How an inactive session treats one delivery. */
typedef enum c2s_csi_class {
    C2S_CSI_URGENT = 0, /* flush what is held, then write it */
    C2S_CSI_PRESENCE,   /* held; only the newest per sender full JID */
    C2S_CSI_CHATSTATE,  /* held; only the newest per sender full JID */
} c2s_csi_class_t;

/* Classify a delivery from its envelope; the payload is looked at only
 * for presence (a MUC self-presence, status 110, is urgent: one memmem)
 * and for messages without body that name the chat-state namespace (a
 * scan of the root's children, no parse). Urgent: iq, errors,
 * subscription presence, messages with anything but chat states (a body,
 * a subject, receipts, encryption...), a stored offline message
 * (KN_F_ACK_WANTED), block-list pushes, deliveries without a sender. */
c2s_csi_class_t c2s_csi_classify(const kn_env_t *env, const void *pl,
                                 size_t len);

typedef struct c2s_csi c2s_csi_t;

/* Limits: at most max_count stanzas or max_bytes payload bytes held (0:
 * no limit for that one). Never NULL. */
c2s_csi_t *c2s_csi_new(size_t max_count, size_t max_bytes);
void c2s_csi_free(c2s_csi_t **qp);

/* Hold pl[0..len) from `from` (cls PRESENCE or CHATSTATE): an earlier
 * one of the same class from the same full JID is dropped, the new one
 * goes to the end. Returns true when the queue is now over a limit (the
 * caller flushes). */
bool c2s_csi_hold(c2s_csi_t *q, c2s_csi_class_t cls, const char *from,
                  size_t from_len, const void *pl, size_t len);

/* Hand every held payload to write(ud, pl, len), in order, and empty the
 * queue. Returns how many were written. */
size_t c2s_csi_flush(c2s_csi_t *q,
                     void (*write)(void *ud, const void *pl, size_t len),
                     void *ud);

/* Held now: stanzas and payload bytes. */
size_t c2s_csi_count(const c2s_csi_t *q);
size_t c2s_csi_bytes(const c2s_csi_t *q);

/* Over the queue's life: stanzas (and their bytes) that never reached
 * the client because a newer one replaced them, and stanzas that were
 * held (each one a write the socket did not need on its own). */
typedef struct c2s_csi_stats {
    size_t dropped, dropped_bytes;
    size_t held;
    size_t flushes;
} c2s_csi_stats_t;
const c2s_csi_stats_t *c2s_csi_stats(const c2s_csi_t *q);

#endif
