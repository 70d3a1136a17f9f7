/*
 * muc_bookmark.c - server-maintained XEP-0402 bookmarks for group
 * members (see muc_bookmark.h). The IQ goes from the service's domain to
 * the member's bare JID; the router hands pubsub IQs for bare JIDs to
 * the PEP owner (presenced), which trusts our domain as a publisher. Its
 * result or error comes back to us and is dropped (muc_iq_in): membership
 * is the truth (muc_affiliation), the bookmark a projection of it that the
 * next change repairs.
 */
#include "muc_bookmark.h"

#include <string.h>

#include "kn_log.h"
#include "muc_form.h"
#include "muc_out.h"
#include "muc_room.h"

/* XEP-0402 3.1: the node is private (whitelist), persistent and keeps
 * every bookmark; without these options the PEP service would create it
 * with its defaults (presence access, one item). */
static void bookmark_options(kn_stanza_builder_t *b)
{
    kn_stanza_builder_start(b, "publish-options", NULL);
    kn_stanza_builder_start(b, "x", MUC_NS_DATA);
    kn_stanza_builder_attr(b, "type", "submit");
    muc_form_field(b, "FORM_TYPE", "hidden", NULL,
                   "http://jabber.org/protocol/pubsub#publish-options", NULL);
    muc_form_field(b, "pubsub#persist_items", NULL, NULL, "true", NULL);
    muc_form_field(b, "pubsub#max_items", NULL, NULL, "max", NULL);
    muc_form_field(b, "pubsub#send_last_published_item", NULL, NULL, "never",
                   NULL);
    muc_form_field(b, "pubsub#access_model", NULL, NULL, "whitelist", NULL);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
}

void muc_bookmark_update(muc_t *m, const muc_room_t *room, const char *bare,
                         bool added)
{
    if (!room->cfg.is_group)
        return;
    char id[48];
    kn_stanza_builder_t *b = m->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "from", m->set.service);
    kn_stanza_builder_attr(b, "to", bare);
    kn_stanza_builder_attr(b, "id", muc_next_id(m, id, sizeof(id)));
    kn_stanza_builder_start(b, "pubsub", MUC_NS_PUBSUB);
    if (added) {
        kn_stanza_builder_start(b, "publish", NULL);
        kn_stanza_builder_attr(b, "node", MUC_NS_BOOKMARKS);
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "id", room->jid);
        kn_stanza_builder_start(b, "conference", MUC_NS_BOOKMARKS);
        kn_stanza_builder_attr(b, "autojoin", "true");
        kn_stanza_builder_attr(b, "name", muc_room_name(room));
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
        bookmark_options(b);
    } else {
        kn_stanza_builder_start(b, "retract", NULL);
        kn_stanza_builder_attr(b, "node", MUC_NS_BOOKMARKS);
        kn_stanza_builder_attr(b, "notify", "true");
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "id", room->jid);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    muc_send(m, st);
    kn_stanza_unref(&st);
    kn_log_debug("bookmark %s for %s in %s", added ? "published" : "retracted",
                 room->jid, bare);
}
