/*
 * muc_bookmark.c - server-maintained XEP-0402 bookmarks for group
 * members (see muc_bookmark.h). The IQ goes from the service's domain to
 * the member's bare JID; the router hands pubsub IQs for bare JIDs to
 * the PEP owner (presenced). Its result or error comes back to us and is
 * only logged: membership is the truth (muc_affiliation), the bookmark a
 * projection of it that the next change repairs.
 */
#include "muc_bookmark.h"

#include <string.h>

#include "kn_log.h"
#include "muc_out.h"
#include "muc_room.h"

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
        kn_stanza_builder_attr(b, "name",
                               room->cfg.title && room->cfg.title[0]
                                   ? room->cfg.title
                                   : room->node);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
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
