/*
 * muc_iq.c - IQ dispatch for the service (see muc_iq.h).
 */
#include "muc_iq.h"

#include <string.h>

#include "kn_err.h"
#include "muc_out.h"
#include "muc_register.h"
#include "muc_room.h"

int muc_iq_query(const kn_stanza_t *st)
{
    return kn_stanza_first_child(st, 0);
}

void muc_iq_result_start(muc_t *m, const kn_stanza_t *iq)
{
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_iq_result(b, iq);
}

void muc_iq_result_empty(muc_t *m, const kn_stanza_t *iq)
{
    muc_iq_result_start(m, iq);
    kn_stanza_t *st = kn_stanza_builder_finish(m->b);
    muc_send(m, st);
    kn_stanza_unref(&st);
}

void muc_iq_in(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    const char *type = kn_stanza_type(st);
    if (type == NULL || strcmp(type, "result") == 0 ||
        strcmp(type, "error") == 0)
        return;
    bool get = strcmp(type, "get") == 0;
    int q = muc_iq_query(st);
    if (q < 0) {
        muc_send_error(m, st, KN_STE_BAD_REQUEST, NULL);
        return;
    }
    const char *ns = kn_stanza_ns(st, q);
    const char *name = kn_stanza_name(st, q);
    if (in->nick != NULL) {
        /* XEP-0410: an occupant pinging its own occupant JID. */
        muc_room_t *room = muc_room_find(m, in->room);
        muc_seat_t *seat = room ? muc_seat_find(m, room, in->from) : NULL;
        if (strcmp(ns, "urn:xmpp:ping") == 0 && seat != NULL &&
            strcmp(seat->occ->nick, in->nick) == 0)
            muc_iq_result_empty(m, st);
        else if (seat == NULL)
            muc_send_error(m, st, KN_STE_NOT_ACCEPTABLE, NULL);
        else
            muc_send_error(m, st, KN_STE_FEATURE_NOT_IMPLEMENTED, NULL);
        return;
    }
    if (get && strcmp(ns, MUC_NS_INFO) == 0) {
        muc_disco_info(m, in);
    } else if (get && strcmp(ns, MUC_NS_ITEMS) == 0) {
        muc_disco_items(m, in);
    } else if (strcmp(ns, "urn:xmpp:ping") == 0 && get) {
        muc_iq_result_empty(m, st);
    } else if (in->room == NULL && strcmp(ns, MUC_NS_GROUPS) == 0) {
        if (get)
            muc_groups_iq(m, in);
        else
            muc_send_error(m, st, KN_STE_NOT_ALLOWED,
                           "the group list is read-only");
    } else if (in->room == NULL) {
        muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE, NULL);
    } else if (strcmp(ns, MUC_NS_REGISTER) == 0) {
        muc_register_iq(m, in);
    } else if (strcmp(ns, MUC_NS_ADMIN) == 0) {
        muc_admin_iq(m, in);
    } else if (strcmp(ns, MUC_NS_OWNER) == 0) {
        muc_owner_iq(m, in);
    } else if (strcmp(ns, MUC_NS_MAM) == 0 && !get &&
               strcmp(name, "query") == 0) {
        muc_mam_iq(m, in);
    } else if (strcmp(ns, MUC_NS_MAM) == 0 && get) {
        muc_mam_iq(m, in); /* form request */
    } else {
        muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE, NULL);
    }
}
