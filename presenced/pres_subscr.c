/*
 * pres_subscr.c - the subscription state machine of RFC 6121 Appendix A.
 *
 * A note on the encoding. The nine states of the RFC's tables ("None",
 * "None + Pending Out", "None + Pending In", "None + Pending Out/In",
 * "To", "To + Pending In", "From", "From + Pending Out", "Both") are the
 * reachable combinations of two subscription bits (to, from) and two
 * pending flags (out, in), with the invariants: out implies not to, in
 * implies not from. Pre-approval (RFC 6121 3.4) is a third flag that is
 * only set while from is not. Every rule below keeps those invariants,
 * and the unit test walks all nine states through all eight inputs.
 */
#include "pres_subscr.h"

#include <string.h>

#include "kn_err.h"

const char *pres_sub_name(pres_sub_t s)
{
    switch (s) {
    case PRES_SUB_TO:
        return "to";
    case PRES_SUB_FROM:
        return "from";
    case PRES_SUB_BOTH:
        return "both";
    default:
        return "none";
    }
}

bool pres_substate_eq(const pres_substate_t *a, const pres_substate_t *b)
{
    return a->sub == b->sub && a->out == b->out && a->in == b->in &&
           a->pre == b->pre;
}

static bool has_to(const pres_substate_t *s)
{
    return (s->sub & PRES_SUB_TO) != 0;
}

static bool has_from(const pres_substate_t *s)
{
    return (s->sub & PRES_SUB_FROM) != 0;
}

static void subscr_finish(const pres_substate_t *cur, pres_subscr_result_t *o)
{
    o->changed = !pres_substate_eq(cur, &o->st);
}

void pres_subscr_outbound(kn_env_type_t type, const pres_substate_t *cur,
                          pres_subscr_result_t *o)
{
    KN_ASSERT(cur != NULL && o != NULL);
    memset(o, 0, sizeof(*o));
    o->st = *cur;
    pres_substate_t *s = &o->st;
    switch (type) {
    case KN_ENV_TYPE_SUBSCRIBE:
        /* A.2.1: pending out unless already subscribed; the request is
         * routed either way (the contact's server auto-replies). */
        if (!has_to(s))
            s->out = true;
        o->deliver = true;
        break;
    case KN_ENV_TYPE_UNSUBSCRIBE:
        /* A.2.2 */
        s->sub &= ~PRES_SUB_TO;
        s->out = false;
        o->deliver = true;
        break;
    case KN_ENV_TYPE_SUBSCRIBED:
        /* A.2.3: approve a pending request; without one it is a
         * pre-approval (3.4), which is not routed. */
        if (s->in) {
            s->sub |= PRES_SUB_FROM;
            s->in = false;
            s->pre = false;
            o->deliver = true;
        } else if (!has_from(s)) {
            s->pre = true;
        }
        break;
    case KN_ENV_TYPE_UNSUBSCRIBED:
        /* A.2.4: cancel or refuse; also withdraws a pre-approval. */
        if (has_from(s) || s->in) {
            s->sub &= ~PRES_SUB_FROM;
            s->in = false;
            o->deliver = true;
        }
        s->pre = false;
        break;
    default:
        break;
    }
    subscr_finish(cur, o);
}

void pres_subscr_inbound(kn_env_type_t type, const pres_substate_t *cur,
                         pres_subscr_result_t *o)
{
    KN_ASSERT(cur != NULL && o != NULL);
    memset(o, 0, sizeof(*o));
    o->st = *cur;
    pres_substate_t *s = &o->st;
    switch (type) {
    case KN_ENV_TYPE_SUBSCRIBE:
        /* A.3.1 */
        if (has_from(s)) {
            o->autoreply = true;
        } else if (s->pre) {
            s->sub |= PRES_SUB_FROM;
            s->pre = false;
            s->in = false;
            o->autoreply = true;
        } else {
            s->in = true;
            o->deliver = true; /* again, if it was pending already */
        }
        break;
    case KN_ENV_TYPE_SUBSCRIBED:
        /* A.3.2: only an answer to our request counts. */
        if (s->out) {
            s->sub |= PRES_SUB_TO;
            s->out = false;
            o->deliver = true;
        }
        break;
    case KN_ENV_TYPE_UNSUBSCRIBE:
        /* A.3.3 */
        if (has_from(s) || s->in) {
            s->sub &= ~PRES_SUB_FROM;
            s->in = false;
            o->deliver = true;
        }
        break;
    case KN_ENV_TYPE_UNSUBSCRIBED:
        /* A.3.4 */
        if (has_to(s) || s->out) {
            s->sub &= ~PRES_SUB_TO;
            s->out = false;
            o->deliver = true;
        }
        break;
    default:
        break;
    }
    subscr_finish(cur, o);
}
