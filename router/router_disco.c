/*
 * router_disco.c - service discovery (XEP-0030) of the server itself,
 * answered by the router from what the daemons registered: features
 * (KN_REG_FEATURE and every IQ namespace, KN_REG_IQ_NS) for disco#info,
 * and services (KN_REG_DOMAIN: the MUC service, components) for
 * disco#items. A daemon that registers the disco namespaces itself takes
 * this over.
 *
 * A node under the ad-hoc commands (XEP-0050, XEP-0133) goes on to the
 * daemon that registered http://jabber.org/protocol/commands.
 *
 * This is the one place the router reads a payload: IQs addressed to the
 * server are answered, not routed.
 */
#include <string.h>

#include "kn_log.h"
#include "kn_proto.h"
#include "kn_stanza.h"
#include "kn_xml.h"
#include "router.h"

#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_COMMANDS    "http://jabber.org/protocol/commands"
#define NS_ADMIN       "http://jabber.org/protocol/admin"

static void disco_feature(kn_stanza_builder_t *b, const char *var)
{
    kn_stanza_builder_start(b, "feature", NULL);
    kn_stanza_builder_attr(b, "var", var);
    kn_stanza_builder_end(b);
}

/* Whether the server's disco#info lists registration g as a feature. A
 * name registered both as a feature and as an IQ namespace (presenced
 * does so for roster, vcard-temp...) is listed once, for its feature
 * registration: no feature is repeated in one result. */
static bool disco_lists(router_t *r, const router_reg_t *g)
{
    router_node_t *n = r->nodes[g->node];
    if (n == NULL || !n->alive || !*g->name ||
        !(g->flags & (KN_REG_FEATURE | KN_REG_IQ_NS)) ||
        strcmp(g->name, NS_DISCO_INFO) == 0 ||
        strcmp(g->name, NS_DISCO_ITEMS) == 0 ||
        strcmp(g->name, "urn:xmpp:ping") == 0)
        return false;
    if (g->flags & KN_REG_FEATURE)
        return true;
    router_reg_t *f =
        router_reg_find(r, KN_REG_FEATURE, g->name, strlen(g->name));
    return f == NULL || !disco_lists(r, f);
}

static bool disco_ns_is(const kn_env_t *env, const char *ns)
{
    return env->node_len == strlen(ns) &&
           memcmp(env->node, ns, env->node_len) == 0;
}

bool router_disco_answer(router_t *r, router_node_t *src, const kn_env_t *env,
                         const router_payload_t *pl)
{
    bool info = disco_ns_is(env, NS_DISCO_INFO);
    bool items = disco_ns_is(env, NS_DISCO_ITEMS);
    if ((!info && !items) || env->type != KN_ENV_TYPE_GET || src == NULL)
        return false;
    kn_stanza_t *q = NULL;
    if (kn_xml_parse_stanza(pl->data, pl->len, NULL, &q) < 0)
        return false;
    int qe = kn_stanza_first_child(q, 0);
    const char *node = qe >= 0 ? kn_stanza_attr(q, qe, "node", NULL) : NULL;
    if (node != NULL) {
        /* The ad-hoc command list and its nodes (XEP-0050 / XEP-0133)
         * belong to whoever handles commands (presenced: pres_adhoc.c). */
        router_reg_t *g =
            (strncmp(node, NS_COMMANDS, sizeof(NS_COMMANDS) - 1) == 0 ||
             strncmp(node, NS_ADMIN "#", sizeof(NS_ADMIN)) == 0)
                ? router_reg_find(r, KN_REG_IQ_NS, NS_COMMANDS,
                                  sizeof(NS_COMMANDS) - 1)
                : NULL;
        router_node_t *h = g != NULL ? r->nodes[g->node] : NULL;
        if (h != NULL && !h->alive)
            h = NULL;
        kn_stanza_unref(&q);
        if (h != NULL) {
            router_emit(r, h, env, pl);
            r->stats.routed++;
        } else {
            router_bounce(r, src, env, pl, KN_STE_ITEM_NOT_FOUND);
        }
        return true;
    }
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_iq_result(b, q);
    kn_stanza_builder_attr(b, "from", r->domain);
    kn_stanza_builder_start(b, "query", info ? NS_DISCO_INFO : NS_DISCO_ITEMS);
    router_reg_t *g, *tmp;
    if (info) {
        kn_stanza_builder_start(b, "identity", NULL);
        kn_stanza_builder_attr(b, "category", "server");
        kn_stanza_builder_attr(b, "type", "im");
        kn_stanza_builder_attr(b, "name", "Kiln");
        kn_stanza_builder_end(b);
        disco_feature(b, NS_DISCO_INFO);
        disco_feature(b, NS_DISCO_ITEMS);
        disco_feature(b, "urn:xmpp:ping");
        disco_feature(b, "urn:xmpp:carbons:2"); /* router_carbons.c */
        HASH_ITER(hh, r->regs, g, tmp)
        {
            if (disco_lists(r, g))
                disco_feature(b, g->name);
        }
    } else {
        HASH_ITER(hh, r->regs, g, tmp)
        {
            router_node_t *n = r->nodes[g->node];
            if (n != NULL && n->alive && (g->flags & KN_REG_DOMAIN)) {
                kn_stanza_builder_start(b, "item", NULL);
                kn_stanza_builder_attr(b, "jid", g->name);
                kn_stanza_builder_end(b);
            }
        }
        /* Connected components (R-GW-2), with their configured name. */
        router_comp_t *c, *ctmp;
        HASH_ITER(hh, r->comps, c, ctmp)
        {
            if (c->n == 0)
                continue;
            kn_stanza_builder_start(b, "item", NULL);
            kn_stanza_builder_attr(b, "jid", c->domain);
            if (*c->name)
                kn_stanza_builder_attr(b, "name", c->name);
            kn_stanza_builder_end(b);
        }
    }
    kn_stanza_t *res = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_serialize(res, &out, NULL);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_IQ;
    e.type = KN_ENV_TYPE_RESULT;
    e.from = r->domain;
    e.from_len = strlen(r->domain);
    e.to = env->from;
    e.to_len = env->from_len;
    e.conn_id = env->conn_id;
    router_payload_t rp = {out.data, out.len, NULL};
    router_emit(r, src, &e, &rp);
    kn_buf_free(&out);
    kn_stanza_unref(&res);
    kn_stanza_unref(&q);
    return true;
}
