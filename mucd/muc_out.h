/*
 * muc_out.h - everything mucd sends: one stanza to one JID (a STANZA
 * envelope the router routes), the same payload to many occupants (one
 * MULTICAST envelope; the router splits it per c2s node, so a room over k
 * nodes costs k ZeroMQ messages), error replies, and the XEP-0045
 * occupant presence with its muc#user item and status codes.
 *
 * Payloads written to many occupants cannot carry a per-recipient `to`:
 * multicast payloads have no `to` attribute (RFC 6120 8.1.1.1: a stanza
 * without `to` is for the receiving entity); see mucd/NEEDS.md for the
 * c2s side. Stanzas are borrowed by every function here.
 */
#ifndef MUC_OUT_H
#define MUC_OUT_H

#include "kn_xmpp_err.h"
#include "muc_types.h"

/* Send st (whose root carries from and to) as a STANZA envelope. */
void muc_send(muc_t *m, const kn_stanza_t *st);
/* Send st to `to` (set as the root's to attribute). */
void muc_send_to(muc_t *m, const kn_stanza_t *st, const char *to);
/* Send st once to every seat of every occupant of room (except those of
 * `skip`, may be NULL) in one MULTICAST. */
void muc_send_room(muc_t *m, const muc_room_t *room, const kn_stanza_t *st,
                   const muc_occ_t *skip);
/* Send st to every seat of occ. */
void muc_send_occ(muc_t *m, const muc_occ_t *occ, const kn_stanza_t *st);
/* Reply to orig with a stanza error (never for errors). The <error/>
 * says who generated it (RFC 6120 8.3.2): by='room@service' when orig is
 * to a room this service holds (room@service or room@service/nick), else
 * by='service' (see muc_error_by()). */
void muc_send_error(muc_t *m, const kn_stanza_t *orig, kn_stanza_err_t cond,
                    const char *text);
/* The by of an error about a stanza addressed to `to` (a prepared JID,
 * may be NULL): the bare room JID when it names a room of m's service
 * that m holds, else the service. Borrowed from m or its rooms. */
const char *muc_error_by(muc_t *m, const char *to);

/* Do two presences say the same to the room (the children a
 * muc_pres_build() copies: show, status, priority, caps ...; the MUC
 * elements do not count)? NULL is a presence without children. */
bool muc_pres_same(const kn_stanza_t *a, const kn_stanza_t *b);

/* What an occupant presence says besides the occupant's state. */
typedef struct muc_pres_opts {
    bool unavailable;
    const kn_stanza_t *src; /* whose children (show, status ...) to copy;
                             * NULL: occ->pres */
    const int *codes;       /* status codes for everyone */
    size_t ncodes;
    const int *self_codes; /* extra codes for the occupant itself (110 is
                            * always added) */
    size_t nself_codes;
    const char *jid;         /* item jid shown to those who see real JIDs
                              * (NULL: muc_occ_jid(), the first seat); a
                              * leaving seat's own full JID */
    const char *new_nick;    /* item nick (303) */
    const char *actor;       /* item <actor nick/> (kick, ban) */
    const char *reason;      /* item <reason/> */
    const char *self_full;   /* self presence to this real full JID only
                              * (NULL: every seat of the occupant) */
    bool no_self;            /* send no self presence */
    bool no_others;          /* send only the self presence */
    const muc_occ_t *to_occ; /* others: only this occupant (joins) */
    muc_aff_t aff_override;  /* with has_aff: affiliation to show */
    bool has_aff;
} muc_pres_opts_t;

/* Build the presence of occ (from room/nick) as seen by a viewer that
 * sees real JIDs (with_jid) or not, with codes. Caller owns the result. */
kn_stanza_t *muc_pres_build(muc_t *m, const muc_occ_t *occ,
                            const muc_pres_opts_t *o, bool with_jid, bool self);
/* Send occ's presence to the room as o says: every other occupant gets
 * it (with the real JID when it may see it), the occupant's own seats get
 * it with status 110. */
void muc_pres_broadcast(muc_t *m, const muc_occ_t *occ,
                        const muc_pres_opts_t *o);

#endif
