/*
 * pres_pep.h - the Personal Eventing Protocol service (XEP-0163 on
 * XEP-0060): the pure half (request and data-form parsing, option
 * matching; pres_pep_req.c, unit tested) and the service (pres_pep.c).
 *
 * A note on the model. Every local account is a pubsub service with one
 * leaf node per name; the owner (the account's own resources) may
 * publish, retract, retrieve, create, configure, purge and delete; the
 * server's own MUC service is a trusted internal publisher (it keeps group
 * members' XEP-0402 bookmarks, R-GRP-6); a contact may retrieve the items
 * of an `open` node, or of a `presence` node when the owner's roster item
 * for it has subscription from/both, and is notified on the same terms
 * when its caps ask for NODE+notify (pres_caps.h). PostgreSQL (pep_nodes,
 * pep_items, sql/0007_pep.sql) is the only copy of nodes and items:
 * nothing of them is cached, so there is nothing to invalidate.
 */
#ifndef PRES_PEP_H
#define PRES_PEP_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_stanza.h"
#include "kn_xmpp_err.h"

#define PEP_NS             "http://jabber.org/protocol/pubsub"
#define PEP_NS_OWNER       "http://jabber.org/protocol/pubsub#owner"
#define PEP_NS_EVENT       "http://jabber.org/protocol/pubsub#event"
#define PEP_NS_ERRORS      "http://jabber.org/protocol/pubsub#errors"
#define PEP_NS_PUBOPTS     "http://jabber.org/protocol/pubsub#publish-options"
#define PEP_NS_NODECONF    "http://jabber.org/protocol/pubsub#node_config"
#define PEP_NS_DATA        "jabber:x:data"
#define PEP_NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define PEP_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

/* Longest node name and item id, bytes (the columns' checks). */
#define PEP_ID_MAX 1023

typedef enum pep_access {
    PEP_ACCESS_OPEN = 0,
    PEP_ACCESS_PRESENCE,
    PEP_ACCESS_WHITELIST,
} pep_access_t;

typedef enum pep_send_last {
    PEP_SEND_LAST_NEVER = 0,
    PEP_SEND_LAST_ON_SUB,
    PEP_SEND_LAST_ON_SUB_AND_PRESENCE,
} pep_send_last_t;

/* A node's configuration (one pep_nodes row). */
typedef struct pep_conf {
    pep_access_t access;
    bool persist;
    long max_items; /* >= 1 */
    pep_send_last_t send_last;
} pep_conf_t;

/* Which fields of a form were given. */
enum {
    PEP_OPT_ACCESS = 1u << 0,
    PEP_OPT_PERSIST = 1u << 1,
    PEP_OPT_MAX_ITEMS = 1u << 2,
    PEP_OPT_SEND_LAST = 1u << 3,
};

/* A parsed publish-options or node_config form. */
typedef struct pep_opts {
    unsigned set; /* PEP_OPT_* */
    pep_conf_t v; /* the values of the fields in set */
} pep_opts_t;

/* An XEP-0060 error: the stanza condition and the pubsub#errors
 * condition (NULL: none); feature names the pubsub feature of an
 * <unsupported/> condition. */
typedef struct pep_err {
    kn_stanza_err_t cond;
    const char *app;
    const char *feature;
    const char *text; /* a <text/> for the client, or NULL */
} pep_err_t;

typedef enum pep_op {
    PEP_OP_PUBLISH = 0,
    PEP_OP_RETRACT,
    PEP_OP_ITEMS,
    PEP_OP_CREATE,
    PEP_OP_DELETE,
    PEP_OP_PURGE,
    PEP_OP_CONFIG_GET,
    PEP_OP_CONFIG_SET,
    PEP_OP_DISCO_INFO,
    PEP_OP_DISCO_ITEMS,
} pep_op_t;

/* One parsed request. Strings and element indices point into the stanza
 * it was parsed from (borrowed). */
typedef struct pep_req {
    pep_op_t op;
    const char *node;    /* NULL only for account disco */
    const char *item_id; /* publish (NULL: the service names it), retract */
    int item;            /* publish: the <item/> element */
    int payload;         /* publish: the payload element */
    int items;           /* items: the <items/> element (its <item id/>s) */
    size_t nids;         /* items: number of requested ids (0: all) */
    long max_items;      /* items: 0 = no limit */
    bool has_opts;       /* publish-options, or a create/configure form */
    pep_opts_t opts;
} pep_req_t;

/* The default configuration of an auto-created node (XEP-0163: presence
 * access, the last item persisted). */
void pep_conf_default(pep_conf_t *c);
/* Apply the given fields of o to c. */
void pep_conf_apply(pep_conf_t *c, const pep_opts_t *o);
/* XEP-0060 7.1.5: every field of o equals the node's configuration. */
bool pep_opts_match(const pep_conf_t *c, const pep_opts_t *o);

/* Names as stored and as in forms ("presence", "on_sub" ...), and back
 * (-1 for an unknown name). */
const char *pep_access_name(pep_access_t a);
int pep_access_parse(const char *s);
const char *pep_send_last_name(pep_send_last_t s);
int pep_send_last_parse(const char *s);

/*
 * Parse the data form x of st (a <x xmlns='jabber:x:data'/>) whose
 * FORM_TYPE must be form_type (a missing FORM_TYPE is accepted, a
 * different one is not). max_limit is the largest pubsub#max_items the
 * service allows ("max" means it). Fields we store go into out; a field
 * we do not store is accepted only with the value our service always has
 * (deliver_payloads true ...). Returns 0, or -KN_EPROTO with err filled:
 * not-acceptable for a value we do not support, bad-request for a
 * malformed form.
 */
int pep_form_parse(const kn_stanza_t *st, int x, const char *form_type,
                   long max_limit, pep_opts_t *out, pep_err_t *err);

/*
 * Parse the IQ st (type get or set; first child in the pubsub,
 * pubsub#owner, disco#info or disco#items namespace) into req. Returns 0,
 * or -KN_EPROTO with err filled with the XEP-0060 error to answer. Pure:
 * checks only what the request itself says (shape, attributes, forms).
 */
int pep_req_parse(const kn_stanza_t *st, long max_limit, pep_req_t *req,
                  pep_err_t *err);

#endif
