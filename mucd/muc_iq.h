/*
 * muc_iq.h - IQs to the service and its rooms: dispatch by namespace to
 * disco (muc_disco.c), muc#admin (muc_admin.c), muc#owner (muc_config.c),
 * MAM (muc_mam.c), registration (muc_register.c), Kiln's group list
 * (muc_groups.c); XEP-0410 self-ping to an occupant JID; results and
 * errors of IQs the service sent (bookmark publishes) are dropped.
 */
#ifndef MUC_IQ_H
#define MUC_IQ_H

#include "muc_types.h"

void muc_iq_in(muc_t *m, const muc_in_t *in);

/* Helpers for the IQ modules. */
/* The first child element of the iq (the query), or -KN_ENOENT. */
int muc_iq_query(const kn_stanza_t *st);
/* Reply with an empty result. */
void muc_iq_result_empty(muc_t *m, const kn_stanza_t *iq);
/* Start a result reply for iq in m->b (iq element open, query not). */
void muc_iq_result_start(muc_t *m, const kn_stanza_t *iq);

void muc_disco_info(muc_t *m, const muc_in_t *in);
void muc_disco_items(muc_t *m, const muc_in_t *in);
void muc_admin_iq(muc_t *m, const muc_in_t *in);
void muc_owner_iq(muc_t *m, const muc_in_t *in);
void muc_mam_iq(muc_t *m, const muc_in_t *in);
/* urn:kiln:groups:0 get to the service: the groups of the sender. */
void muc_groups_iq(muc_t *m, const muc_in_t *in);

#endif
