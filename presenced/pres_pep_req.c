/*
 * pres_pep_req.c - the pure half of PEP (see pres_pep.h): XEP-0060
 * requests and XEP-0004 forms in, a pep_req_t or the exact error out.
 * No I/O, no pres_t: tests/unit/test_presenced_pep.c drives it.
 *
 * A note on forms. We store four settings per node (access model,
 * persist_items, max_items, send_last_published_item). A form may also
 * name a setting we do not store; it is accepted only when it asks for
 * what this service always does (notifications with payloads, headline
 * messages, retract and delete notifications ...), so a client never
 * believes a setting took effect when it did not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "pres_pep.h"

/* ---- configuration -------------------------------------------------- */

void pep_conf_default(pep_conf_t *c)
{
    c->access = PEP_ACCESS_PRESENCE;
    c->persist = true;
    c->max_items = 1;
    c->send_last = PEP_SEND_LAST_ON_SUB_AND_PRESENCE;
}

void pep_conf_apply(pep_conf_t *c, const pep_opts_t *o)
{
    if (o->set & PEP_OPT_ACCESS)
        c->access = o->v.access;
    if (o->set & PEP_OPT_PERSIST)
        c->persist = o->v.persist;
    if (o->set & PEP_OPT_MAX_ITEMS)
        c->max_items = o->v.max_items;
    if (o->set & PEP_OPT_SEND_LAST)
        c->send_last = o->v.send_last;
}

bool pep_opts_match(const pep_conf_t *c, const pep_opts_t *o)
{
    if ((o->set & PEP_OPT_ACCESS) && c->access != o->v.access)
        return false;
    if ((o->set & PEP_OPT_PERSIST) && c->persist != o->v.persist)
        return false;
    if ((o->set & PEP_OPT_MAX_ITEMS) && c->max_items != o->v.max_items)
        return false;
    if ((o->set & PEP_OPT_SEND_LAST) && c->send_last != o->v.send_last)
        return false;
    return true;
}

static const char *const access_names[] = {"open", "presence", "whitelist",
                                           NULL};
static const char *const send_last_names[] = {"never", "on_sub",
                                              "on_sub_and_presence", NULL};

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; s != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

const char *pep_access_name(pep_access_t a)
{
    return access_names[a];
}

int pep_access_parse(const char *s)
{
    return name_index(access_names, s);
}

const char *pep_send_last_name(pep_send_last_t s)
{
    return send_last_names[s];
}

int pep_send_last_parse(const char *s)
{
    return name_index(send_last_names, s);
}

/* ---- forms ---------------------------------------------------------- */

static int pep_fail(pep_err_t *err, kn_stanza_err_t cond, const char *app,
                    const char *feature)
{
    err->cond = cond;
    err->app = app;
    err->feature = feature;
    err->text = NULL;
    return -KN_EPROTO;
}

/* XEP-0004 boolean: 1 true, 0 false, -1 neither. */
static int form_bool(const char *v)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        return 1;
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        return 0;
    return -1;
}

/* Settings we do not store, with the one value this service has. */
typedef struct form_fixed {
    const char *var;
    const char *value; /* "1": a boolean that must be true, "0": false */
} form_fixed_t;

static const form_fixed_t form_fixed[] = {
    {"pubsub#deliver_notifications", "1"},
    {"pubsub#deliver_payloads", "1"},
    {"pubsub#notify_retract", "1"},
    {"pubsub#notify_delete", "1"},
    {"pubsub#notify_config", "0"},
    {"pubsub#notify_sub", "0"},
    {"pubsub#presence_based_delivery", "0"},
    {"pubsub#purge_offline", "0"},
    {"pubsub#notification_type", "headline"},
    {"pubsub#publish_model", "publishers"},
    {"pubsub#node_type", "leaf"},
    {NULL, NULL},
};

static bool form_fixed_ok(const char *var, const char *v, bool *known)
{
    for (const form_fixed_t *f = form_fixed; f->var != NULL; f++) {
        if (strcmp(f->var, var) != 0)
            continue;
        *known = true;
        if (strcmp(f->value, "1") == 0 || strcmp(f->value, "0") == 0)
            return form_bool(v) == (f->value[0] == '1');
        return strcmp(f->value, v) == 0;
    }
    *known = false;
    return false;
}

/* The first <value/> of field f ("" when it has none). */
static const char *form_value(const kn_stanza_t *st, int f)
{
    int v = kn_stanza_child(st, f, "value", PEP_NS_DATA);
    return v >= 0 ? kn_stanza_cdata(st, v, NULL) : "";
}

static int form_field(const char *var, const char *v, long max_limit,
                      pep_opts_t *out, pep_err_t *err)
{
    if (strcmp(var, "pubsub#access_model") == 0) {
        int a = pep_access_parse(v);
        if (a < 0) {
            if (strcmp(v, "roster") == 0)
                return pep_fail(err, KN_STE_FEATURE_NOT_IMPLEMENTED,
                                "unsupported", "access-roster");
            if (strcmp(v, "authorize") == 0)
                return pep_fail(err, KN_STE_FEATURE_NOT_IMPLEMENTED,
                                "unsupported", "access-authorize");
            return pep_fail(err, KN_STE_NOT_ACCEPTABLE, NULL, NULL);
        }
        out->v.access = (pep_access_t)a;
        out->set |= PEP_OPT_ACCESS;
    } else if (strcmp(var, "pubsub#persist_items") == 0) {
        int b = form_bool(v);
        if (b < 0)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        out->v.persist = b == 1;
        out->set |= PEP_OPT_PERSIST;
    } else if (strcmp(var, "pubsub#max_items") == 0) {
        long n;
        if (strcmp(v, "max") == 0) {
            n = max_limit;
        } else {
            char *end = NULL;
            errno = 0;
            n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno != 0 || n < 1)
                return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
            if (n > max_limit)
                return pep_fail(err, KN_STE_NOT_ACCEPTABLE, NULL, NULL);
        }
        out->v.max_items = n;
        out->set |= PEP_OPT_MAX_ITEMS;
    } else if (strcmp(var, "pubsub#send_last_published_item") == 0) {
        int s = pep_send_last_parse(v);
        if (s < 0)
            return pep_fail(err, KN_STE_NOT_ACCEPTABLE, NULL, NULL);
        out->v.send_last = (pep_send_last_t)s;
        out->set |= PEP_OPT_SEND_LAST;
    } else {
        bool known;
        if (!form_fixed_ok(var, v, &known))
            return pep_fail(err, KN_STE_NOT_ACCEPTABLE, NULL, NULL);
    }
    return 0;
}

int pep_form_parse(const kn_stanza_t *st, int x, const char *form_type,
                   long max_limit, pep_opts_t *out, pep_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(kn_stanza_name(st, x), "x") != 0 ||
        strcmp(kn_stanza_ns(st, x), PEP_NS_DATA) != 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    const char *type = kn_stanza_attr(st, x, "type", NULL);
    if (type != NULL && strcmp(type, "cancel") == 0)
        return 0; /* nothing submitted */
    if (type == NULL || strcmp(type, "submit") != 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (strcmp(kn_stanza_name(st, f), "field") != 0 ||
            strcmp(kn_stanza_ns(st, f), PEP_NS_DATA) != 0)
            continue;
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        if (var == NULL)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        const char *v = form_value(st, f);
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(v, form_type) != 0)
                return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
            continue;
        }
        int rc = form_field(var, v, max_limit, out, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- requests ------------------------------------------------------- */

/* Node attribute of e: NULL when absent, empty or too long (the caller
 * answers nodeid-required). */
static const char *req_node(const kn_stanza_t *st, int e)
{
    size_t len = 0;
    const char *n = kn_stanza_attr(st, e, "node", &len);
    if (n == NULL || len == 0 || len > PEP_ID_MAX)
        return NULL;
    return n;
}

/* The form inside wrapper element w (publish-options, configure), if any. */
static int req_form(const kn_stanza_t *st, int w, const char *form_type,
                    long max_limit, pep_req_t *req, pep_err_t *err)
{
    int x = kn_stanza_child(st, w, "x", PEP_NS_DATA);
    if (x < 0)
        return 0;
    int rc = pep_form_parse(st, x, form_type, max_limit, &req->opts, err);
    if (rc < 0)
        return rc;
    req->has_opts = req->opts.set != 0;
    return 0;
}

static int req_publish(const kn_stanza_t *st, int ps, int pub, long max_limit,
                       pep_req_t *req, pep_err_t *err)
{
    req->op = PEP_OP_PUBLISH;
    req->node = req_node(st, pub);
    if (req->node == NULL)
        return pep_fail(err, KN_STE_BAD_REQUEST, "nodeid-required", NULL);
    int item = -1;
    for (int c = kn_stanza_first_child(st, pub); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (strcmp(kn_stanza_name(st, c), "item") != 0 ||
            strcmp(kn_stanza_ns(st, c), PEP_NS) != 0)
            return pep_fail(err, KN_STE_BAD_REQUEST, "invalid-payload", NULL);
        if (item >= 0) /* one item per publish (XEP-0060 7.1.1) */
            return pep_fail(err, KN_STE_BAD_REQUEST, "invalid-payload", NULL);
        item = c;
    }
    if (item < 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, "item-required", NULL);
    size_t idlen = 0;
    req->item = item;
    req->item_id = kn_stanza_attr(st, item, "id", &idlen);
    if (req->item_id != NULL && (idlen == 0 || idlen > PEP_ID_MAX))
        return pep_fail(err, KN_STE_BAD_REQUEST, "item-required", NULL);
    req->payload = kn_stanza_first_child(st, item);
    if (req->payload < 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, "payload-required", NULL);
    if (kn_stanza_next_sibling(st, req->payload) >= 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, "invalid-payload", NULL);
    int po = kn_stanza_child(st, ps, "publish-options", PEP_NS);
    if (po >= 0)
        return req_form(st, po, PEP_NS_PUBOPTS, max_limit, req, err);
    return 0;
}

static int req_retract(const kn_stanza_t *st, int r, pep_req_t *req,
                       pep_err_t *err)
{
    req->op = PEP_OP_RETRACT;
    req->node = req_node(st, r);
    if (req->node == NULL)
        return pep_fail(err, KN_STE_BAD_REQUEST, "nodeid-required", NULL);
    /* notify='false' leaves it to notify_retract, which is always on. */
    int item = kn_stanza_child(st, r, "item", PEP_NS);
    size_t idlen = 0;
    req->item_id = item >= 0 ? kn_stanza_attr(st, item, "id", &idlen) : NULL;
    if (req->item_id == NULL || idlen == 0 || idlen > PEP_ID_MAX)
        return pep_fail(err, KN_STE_BAD_REQUEST, "item-required", NULL);
    if (kn_stanza_next_sibling(st, item) >= 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    req->item = item;
    return 0;
}

static int req_items(const kn_stanza_t *st, int it, pep_req_t *req,
                     pep_err_t *err)
{
    req->op = PEP_OP_ITEMS;
    req->items = it;
    req->node = req_node(st, it);
    if (req->node == NULL)
        return pep_fail(err, KN_STE_BAD_REQUEST, "nodeid-required", NULL);
    const char *max = kn_stanza_attr(st, it, "max_items", NULL);
    if (max != NULL) {
        char *end = NULL;
        errno = 0;
        long n = strtol(max, &end, 10);
        if (*max == '\0' || *end != '\0' || errno != 0 || n < 1)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        req->max_items = n;
    }
    for (int c = kn_stanza_first_child(st, it); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        size_t idlen = 0;
        const char *id = kn_stanza_attr(st, c, "id", &idlen);
        if (strcmp(kn_stanza_name(st, c), "item") != 0 || id == NULL ||
            idlen == 0 || idlen > PEP_ID_MAX)
            return pep_fail(err, KN_STE_BAD_REQUEST, "item-required", NULL);
        req->nids++;
    }
    return 0;
}

/* Requests of the pubsub namespace we answer with feature-not-implemented,
 * and the feature each lacks. */
typedef struct req_unsup {
    const char *ns;
    const char *name;
    const char *feature;
} req_unsup_t;

static const req_unsup_t req_unsup[] = {
    {PEP_NS, "subscribe", "subscribe"},
    {PEP_NS, "unsubscribe", "subscribe"},
    {PEP_NS, "options", "subscription-options"},
    {PEP_NS, "subscriptions", "retrieve-subscriptions"},
    {PEP_NS, "affiliations", "retrieve-affiliations"},
    {PEP_NS, "default", "retrieve-default"},
    {PEP_NS_OWNER, "default", "retrieve-default"},
    {PEP_NS_OWNER, "subscriptions", "manage-subscriptions"},
    {PEP_NS_OWNER, "affiliations", "modify-affiliations"},
    {NULL, NULL, NULL},
};

static int req_pubsub(const kn_stanza_t *st, int ps, bool set, long max_limit,
                      pep_req_t *req, pep_err_t *err)
{
    /* The action is the first child that is not an options wrapper. */
    int a = -1;
    for (int c = kn_stanza_first_child(st, ps); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        const char *n = kn_stanza_name(st, c);
        if (strcmp(kn_stanza_ns(st, c), PEP_NS) != 0)
            continue;
        if (strcmp(n, "publish-options") != 0 && strcmp(n, "configure") != 0) {
            a = c;
            break;
        }
    }
    if (a < 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    const char *name = kn_stanza_name(st, a);
    for (const req_unsup_t *u = req_unsup; u->ns != NULL; u++)
        if (strcmp(u->ns, PEP_NS) == 0 && strcmp(u->name, name) == 0)
            return pep_fail(err, KN_STE_FEATURE_NOT_IMPLEMENTED, "unsupported",
                            u->feature);
    if (set && strcmp(name, "publish") == 0)
        return req_publish(st, ps, a, max_limit, req, err);
    if (set && strcmp(name, "retract") == 0)
        return req_retract(st, a, req, err);
    if (!set && strcmp(name, "items") == 0)
        return req_items(st, a, req, err);
    if (set && strcmp(name, "create") == 0) {
        req->op = PEP_OP_CREATE;
        req->node = req_node(st, a);
        if (req->node == NULL) /* no instant nodes in PEP */
            return pep_fail(err, KN_STE_NOT_ACCEPTABLE, "nodeid-required",
                            NULL);
        int cf = kn_stanza_child(st, ps, "configure", PEP_NS);
        if (cf >= 0)
            return req_form(st, cf, PEP_NS_NODECONF, max_limit, req, err);
        return 0;
    }
    return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
}

static int req_owner(const kn_stanza_t *st, int ps, bool set, long max_limit,
                     pep_req_t *req, pep_err_t *err)
{
    int a = kn_stanza_first_child(st, ps);
    if (a < 0 || strcmp(kn_stanza_ns(st, a), PEP_NS_OWNER) != 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    const char *name = kn_stanza_name(st, a);
    for (const req_unsup_t *u = req_unsup; u->ns != NULL; u++)
        if (strcmp(u->ns, PEP_NS_OWNER) == 0 && strcmp(u->name, name) == 0)
            return pep_fail(err, KN_STE_FEATURE_NOT_IMPLEMENTED, "unsupported",
                            u->feature);
    if (strcmp(name, "delete") == 0 && set)
        req->op = PEP_OP_DELETE;
    else if (strcmp(name, "purge") == 0 && set)
        req->op = PEP_OP_PURGE;
    else if (strcmp(name, "configure") == 0)
        req->op = set ? PEP_OP_CONFIG_SET : PEP_OP_CONFIG_GET;
    else
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    req->node = req_node(st, a);
    if (req->node == NULL)
        return pep_fail(err, KN_STE_BAD_REQUEST, "nodeid-required", NULL);
    if (req->op == PEP_OP_CONFIG_SET) {
        int x = kn_stanza_child(st, a, "x", PEP_NS_DATA);
        if (x < 0)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        return req_form(st, a, PEP_NS_NODECONF, max_limit, req, err);
    }
    return 0;
}

int pep_req_parse(const kn_stanza_t *st, long max_limit, pep_req_t *req,
                  pep_err_t *err)
{
    memset(req, 0, sizeof(*req));
    req->item = req->payload = req->items = -1;
    err->cond = KN_STE_BAD_REQUEST;
    err->app = err->feature = err->text = NULL;
    const char *type = kn_stanza_type(st);
    bool set = type != NULL && strcmp(type, "set") == 0;
    if (!set && (type == NULL || strcmp(type, "get") != 0))
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    int q = kn_stanza_first_child(st, 0);
    if (q < 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    const char *ns = kn_stanza_ns(st, q);
    const char *name = kn_stanza_name(st, q);
    bool query = strcmp(name, "query") == 0;
    if (query && strcmp(ns, PEP_NS_DISCO_INFO) == 0) {
        if (set)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        req->op = PEP_OP_DISCO_INFO;
        req->node = kn_stanza_attr(st, q, "node", NULL);
        return 0;
    }
    if (query && strcmp(ns, PEP_NS_DISCO_ITEMS) == 0) {
        if (set)
            return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
        req->op = PEP_OP_DISCO_ITEMS;
        req->node = kn_stanza_attr(st, q, "node", NULL);
        return 0;
    }
    if (strcmp(name, "pubsub") != 0)
        return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
    if (strcmp(ns, PEP_NS) == 0)
        return req_pubsub(st, q, set, max_limit, req, err);
    if (strcmp(ns, PEP_NS_OWNER) == 0)
        return req_owner(st, q, set, max_limit, req, err);
    return pep_fail(err, KN_STE_BAD_REQUEST, NULL, NULL);
}
