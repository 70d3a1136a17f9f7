/*
 * muc_disco.c - service discovery (XEP-0030) of the MUC service and its
 * rooms (XEP-0045 6.1-6.4): the service is conference/text with the muc
 * feature; its items are the public rooms; a room's info names its
 * features (muc_persistent, muc_membersonly, muc_nonanonymous,
 * muc_hidden ... R-GRP-1) and a muc#roominfo form. The service also
 * names Kiln's group-list IQ (urn:kiln:groups:0, muc_groups.c); rooms
 * name registration (jabber:iq:register) and voice requests
 * (muc#request). Hidden rooms answer disco#info like any other (clients
 * need it to join) but are not listed. A room that does not exist:
 * item-not-found. The node x-roomuser-item of a room (XEP-0045 7.12)
 * names the asker's reserved nick, the one of its affiliation, or
 * nothing when it has none.
 */
#include <stdio.h>
#include <string.h>

#include "kn_err.h"
#include "muc_iq.h"
#include "muc_out.h"
#include "muc_room.h"

static void disco_feature(kn_stanza_builder_t *b, const char *var)
{
    kn_stanza_builder_start(b, "feature", NULL);
    kn_stanza_builder_attr(b, "var", var);
    kn_stanza_builder_end(b);
}

static void disco_field(kn_stanza_builder_t *b, const char *var,
                        const char *type, const char *value)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", var);
    if (type)
        kn_stanza_builder_attr(b, "type", type);
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, value, strlen(value));
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
}

void muc_disco_info(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    muc_room_t *room = NULL;
    if (in->room != NULL) {
        room = muc_room_find(m, in->room);
        if (room == NULL) {
            muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
            return;
        }
    }
    kn_stanza_builder_t *b = m->b;
    muc_iq_result_start(m, st);
    kn_stanza_builder_start(b, "query", MUC_NS_INFO);
    const char *node = kn_stanza_attr(st, muc_iq_query(st), "node", NULL);
    if (node)
        kn_stanza_builder_attr(b, "node", node);
    if (room != NULL && node != NULL && strcmp(node, "x-roomuser-item") == 0) {
        const muc_affrec_t *r =
            in->from_bare != NULL ? muc_room_affrec(room, in->from_bare) : NULL;
        if (r != NULL && r->nick != NULL && r->nick[0] != '\0') {
            kn_stanza_builder_start(b, "identity", NULL);
            kn_stanza_builder_attr(b, "category", "conference");
            kn_stanza_builder_attr(b, "type", "text");
            kn_stanza_builder_attr(b, "name", r->nick);
            kn_stanza_builder_end(b);
        }
        kn_stanza_t *out = kn_stanza_builder_finish(b);
        muc_send(m, out);
        kn_stanza_unref(&out);
        return;
    }
    kn_stanza_builder_start(b, "identity", NULL);
    kn_stanza_builder_attr(b, "category", "conference");
    kn_stanza_builder_attr(b, "type", "text");
    const char *name = room == NULL ? "Chatrooms" : muc_room_name(room);
    kn_stanza_builder_attr(b, "name", name);
    kn_stanza_builder_end(b);
    disco_feature(b, MUC_NS);
    disco_feature(b, MUC_NS_INFO);
    disco_feature(b, MUC_NS_ITEMS);
    if (room == NULL) {
        disco_feature(b, "urn:xmpp:ping");
        disco_feature(b, MUC_NS_GROUPS);
        kn_stanza_t *out = kn_stanza_builder_finish(b);
        muc_send(m, out);
        kn_stanza_unref(&out);
        return;
    }
    const muc_config_t *c = &room->cfg;
    disco_feature(b, c->persistent ? "muc_persistent" : "muc_temporary");
    disco_feature(b, c->members_only ? "muc_membersonly" : "muc_open");
    disco_feature(b, c->whois == MUC_WHOIS_ANYONE ? "muc_nonanonymous"
                                                  : "muc_semianonymous");
    disco_feature(b, c->public_room ? "muc_public" : "muc_hidden");
    disco_feature(b, c->moderated ? "muc_moderated" : "muc_unmoderated");
    disco_feature(b, c->password && c->password[0] ? "muc_passwordprotected"
                                                   : "muc_unsecured");
    disco_feature(b, "urn:xmpp:sid:0");
    disco_feature(b, "urn:xmpp:ping");
    disco_feature(b, MUC_NS_REGISTER);
    disco_feature(b, MUC_NS_REQUEST);
    if (c->mam)
        disco_feature(b, MUC_NS_MAM);
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "result");
    disco_field(b, "FORM_TYPE", "hidden",
                "http://jabber.org/protocol/muc#roominfo");
    disco_field(b, "muc#roominfo_description", NULL,
                c->description ? c->description : "");
    disco_field(b, "muc#roominfo_subject", NULL,
                room->subject ? room->subject : "");
    char num[32];
    snprintf(num, sizeof(num), "%zu", room->nocc);
    disco_field(b, "muc#roominfo_occupants", NULL, num);
    disco_field(b, "muc#roomconfig_roomname", NULL, name);
    kn_stanza_builder_end(b);
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    muc_send(m, out);
    kn_stanza_unref(&out);
}

void muc_disco_items(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    muc_room_t *room = NULL;
    if (in->room != NULL && (room = muc_room_find(m, in->room)) == NULL) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    kn_stanza_builder_t *b = m->b;
    muc_iq_result_start(m, st);
    kn_stanza_builder_start(b, "query", MUC_NS_ITEMS);
    if (room == NULL) {
        for (const muc_room_t *r = m->rooms; r; r = r->hh.next) {
            if (!r->cfg.public_room)
                continue;
            kn_stanza_builder_start(b, "item", NULL);
            kn_stanza_builder_attr(b, "jid", r->jid);
            kn_stanza_builder_attr(b, "name", muc_room_name(r));
            kn_stanza_builder_end(b);
        }
    }
    /* A room's items (its occupants) are not disclosed (XEP-0045 6.5
     * allows an empty list). */
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    muc_send(m, out);
    kn_stanza_unref(&out);
}
