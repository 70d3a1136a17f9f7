/*
 * kn_msgrules.h - which messages are copied (XEP-0280 carbons, XEP-0334
 * hints) and archived (XEP-0313), and the removal of stanza-ids a client
 * must not forge (XEP-0359). Pure functions over a parsed stanza: c2s
 * calls them on what a client sends (it has the parsed stanza anyway) and
 * puts the answer in the envelope flags (KN_F_CARBON_OK, KN_F_ARCHIVE_OK),
 * so the router never parses a message.
 */
#ifndef KN_MSGRULES_H
#define KN_MSGRULES_H

#include <stdint.h>

#include "kn_env.h"
#include "kn_stanza.h"

#define KN_NS_CARBONS  "urn:xmpp:carbons:2"
#define KN_NS_HINTS    "urn:xmpp:hints"
#define KN_NS_JMI      "urn:xmpp:jingle-message:0"
#define KN_NS_SID      "urn:xmpp:sid:0"
#define KN_NS_FORWARD  "urn:xmpp:forward:0"
#define KN_NS_MAM      "urn:xmpp:mam:2"
#define KN_NS_MUC_USER "http://jabber.org/protocol/muc#user"

/* The KN_F_CARBON_OK / KN_F_ARCHIVE_OK flags of message st (type its
 * envelope type) as a client sent it:
 *   carbons (XEP-0280 section 6): not groupchat or headline; not with
 *   <private xmlns='urn:xmpp:carbons:2'/> or <no-copy xmlns='urn:xmpp:hints'/>;
 *   not a carbon itself (<sent/>, <received/>); not a MUC private message
 *   (<x xmlns='...muc#user'/>: the occupant's other devices are not in the
 *   room); and then: chat, error, normal with a <body/>, or normal with a
 *   chat-state, receipt or chat-marker payload.
 *   archive (XEP-0313 section 5, XEP-0334): chat or normal; with a <body/>
 *   or a <store/> hint; not with <no-store/> or <no-permanent-store/>; not
 *   a MUC private message (the room's archive is the room's business). */
uint16_t kn_msg_rules(const kn_stanza_t *st, kn_env_type_t type);

/* st without the root children <stanza-id xmlns='urn:xmpp:sid:0'/> whose
 * `by` is `domain` or a JID at `domain` (only our server may say what our
 * archives hold, XEP-0359 section 4), or NULL when st has none. The
 * caller owns the result. */
kn_stanza_t *kn_msg_strip_sid(const kn_stanza_t *st, const char *domain);

#endif
