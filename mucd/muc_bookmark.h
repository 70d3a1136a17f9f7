/*
 * muc_bookmark.h - the "group list" of a member (R-GRP-6): when a member
 * is added to or removed from a group (or the group is destroyed), the
 * member's XEP-0402 bookmarks node (urn:xmpp:bookmarks:1, item id = room
 * JID, autojoin, name = room name) is updated by a PEP publish or
 * retract that the service sends on the member's behalf to the member's
 * bare JID; the PEP service (presenced) stores it and notifies every
 * resource. Only rooms with the group profile are bookmarked.
 */
#ifndef MUC_BOOKMARK_H
#define MUC_BOOKMARK_H

#include <stdbool.h>

#include "muc_types.h"

#define MUC_NS_BOOKMARKS "urn:xmpp:bookmarks:1"
#define MUC_NS_PUBSUB    "http://jabber.org/protocol/pubsub"

/* Publish (added) or retract (!added) room in bare's bookmarks. */
void muc_bookmark_update(muc_t *m, const muc_room_t *room, const char *bare,
                         bool added);

#endif
