/*
 * pres_subscr.h - the RFC 6121 subscription state machine (Appendix A),
 * pure: a state and a subscription presence in, the new state and what to
 * do out. No I/O, so tests/unit/test_presenced_subscr.c drives every
 * transition of both sides.
 */
#ifndef PRES_SUBSCR_H
#define PRES_SUBSCR_H

#include <stdbool.h>

#include "kn_env.h"

/* Bit 0: the user receives the contact's presence ("to");
 * bit 1: the contact receives the user's presence ("from"). */
typedef enum pres_sub {
    PRES_SUB_NONE = 0,
    PRES_SUB_TO = 1,
    PRES_SUB_FROM = 2,
    PRES_SUB_BOTH = 3,
} pres_sub_t;

/* One side of one relationship: the roster item user -> contact. */
typedef struct pres_substate {
    pres_sub_t sub;
    bool out; /* pending out: the user asked, no answer yet (ask='subscribe') */
    bool in;  /* pending in: the contact asked, the user did not answer */
    bool pre; /* pre-approved (RFC 6121 3.4): the next request is accepted */
} pres_substate_t;

typedef struct pres_subscr_result {
    pres_substate_t st; /* the new state */
    bool changed;       /* st differs: store it, push it if in the roster */
    bool deliver;       /* outbound: route to the contact's side;
                           inbound: deliver to the user's resources */
    bool autoreply;     /* inbound subscribe: answer "subscribed" for the
                           user (already from/both, or pre-approved) */
} pres_subscr_result_t;

/* The user sends type (subscribe, subscribed, unsubscribe, unsubscribed)
 * about the contact; cur is the user's item for the contact. */
void pres_subscr_outbound(kn_env_type_t type, const pres_substate_t *cur,
                          pres_subscr_result_t *out);

/* The user receives type from the contact; cur is the user's item for the
 * contact. */
void pres_subscr_inbound(kn_env_type_t type, const pres_substate_t *cur,
                         pres_subscr_result_t *out);

/* "none", "to", "from", "both". */
const char *pres_sub_name(pres_sub_t s);

/* True if the pair of states is equal in every field. */
bool pres_substate_eq(const pres_substate_t *a, const pres_substate_t *b);

#endif
