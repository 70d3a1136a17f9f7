/*
 * pres_push_req.c - the pure half of push notifications (XEP-0357):
 * enable/disable parsing, the notification stanza, the reading of an app
 * server's error. No I/O; tests/unit/test_presenced_push.c drives it.
 *
 * A note on the enable form. XEP-0357 lets the client attach a
 * publish-options form that the server sends back with every publish (a
 * secret the app server checks, typically). We keep it as the client
 * wrote it, minus one field of our own: PUSH_MUTE_VAR lists bare JIDs
 * (group rooms, contacts) whose messages this registration is not
 * notified of, so it is stored apart and never reaches the app server. A
 * form left with nothing but its FORM_TYPE is not stored at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"
#include "pres_push.h"

void push_req_free(push_req_t *req)
{
    kn_free(&req->jid);
    kn_free(&req->node);
    kn_free(&req->options);
    kn_free(&req->muted);
}

static int push_fail(push_req_t *req, kn_stanza_err_t *err,
                     kn_stanza_err_t cond)
{
    push_req_free(req);
    *err = cond;
    return -KN_EPROTO;
}

/* The prepared form of s (len bytes) into a new string, or NULL. bare:
 * keep only its bare part. */
static char *push_prepare(const char *s, size_t len, bool bare)
{
    kn_jid_t j = KN_JID_INIT;
    if (kn_jid_parse(&j, s, len) < 0)
        return NULL;
    size_t n = kn_jid_len(&j);
    if (bare && j.resource_len > 0)
        n = j.resource_off - 1;
    char *out = kn_strndup(kn_jid_str(&j), n);
    kn_jid_free(&j);
    return out;
}

/* The text of the first <value/> of field f ("" when none). */
static const char *push_field_value(const kn_stanza_t *st, int f)
{
    int v = kn_stanza_child(st, f, "value", PUSH_NS_DATA);
    return v >= 0 ? kn_stanza_cdata(st, v, NULL) : "";
}

/* The mute field f: each <value/> a JID, stored as its bare part. */
static int push_mute_parse(const kn_stanza_t *st, int f, kn_buf_t *muted,
                           kn_stanza_err_t *cond)
{
    size_t n = 0;
    for (int v = kn_stanza_first_child(st, f); v >= 0;
         v = kn_stanza_next_sibling(st, v)) {
        if (strcmp(kn_stanza_name(st, v), "value") != 0 ||
            strcmp(kn_stanza_ns(st, v), PUSH_NS_DATA) != 0)
            continue;
        size_t len;
        const char *s = kn_stanza_cdata(st, v, &len);
        if (len == 0)
            continue;
        char *bare = push_prepare(s, len, true);
        if (bare == NULL) {
            *cond = KN_STE_JID_MALFORMED;
            return -KN_EPROTO;
        }
        if (++n > PUSH_MUTE_MAX) {
            free(bare);
            *cond = KN_STE_NOT_ACCEPTABLE;
            return -KN_EPROTO;
        }
        if (muted->len > 0)
            kn_buf_append_byte(muted, '\n');
        kn_buf_append_str(muted, bare);
        free(bare);
    }
    return 0;
}

/* The enable form x: checked, the mute field taken out into muted, the
 * rest serialized into req->options (NULL when only FORM_TYPE is left). */
static int push_form_parse(const kn_stanza_t *st, int x, push_req_t *req,
                           kn_buf_t *muted, kn_stanza_err_t *cond)
{
    const char *type = kn_stanza_attr(st, x, "type", NULL);
    if (type != NULL && strcmp(type, "submit") != 0) {
        *cond = KN_STE_BAD_REQUEST;
        return -KN_EPROTO;
    }
    bool form_type = false;
    size_t kept = 0;
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "x", PUSH_NS_DATA);
    kn_stanza_builder_attr(b, "type", "submit");
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (strcmp(kn_stanza_name(st, f), "field") != 0 ||
            strcmp(kn_stanza_ns(st, f), PUSH_NS_DATA) != 0)
            continue; /* <title/>, <instructions/>: nothing for us */
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        if (var == NULL || *var == '\0')
            goto bad; /* a submitted field needs its var (XEP-0004) */
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(push_field_value(st, f), PUSH_NS_PUBOPTS) != 0)
                goto bad;
            form_type = true;
        } else if (strcmp(var, PUSH_MUTE_VAR) == 0) {
            if (push_mute_parse(st, f, muted, cond) < 0) {
                kn_stanza_builder_free(&b);
                return -KN_EPROTO;
            }
            continue;
        } else {
            kept++;
        }
        kn_stanza_builder_copy(b, st, f);
    }
    if (!form_type)
        goto bad;
    kn_stanza_t *form = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    if (kept > 0) {
        kn_buf_t xml = KN_BUF_INIT;
        kn_stanza_serialize(form, &xml, NULL);
        if (xml.len > PUSH_FORM_MAX) {
            kn_buf_free(&xml);
            kn_stanza_unref(&form);
            *cond = KN_STE_NOT_ACCEPTABLE;
            return -KN_EPROTO;
        }
        req->options = kn_strndup(xml.data, xml.len);
        kn_buf_free(&xml);
    }
    kn_stanza_unref(&form);
    return 0;
bad:
    kn_stanza_builder_free(&b);
    *cond = KN_STE_BAD_REQUEST;
    return -KN_EPROTO;
}

int push_req_parse(const kn_stanza_t *st, push_req_t *req, kn_stanza_err_t *err)
{
    memset(req, 0, sizeof(*req));
    const char *type = kn_stanza_type(st);
    int c = kn_stanza_first_child(st, 0);
    if (type == NULL || strcmp(type, "set") != 0 || c < 0 ||
        strcmp(kn_stanza_ns(st, c), PUSH_NS) != 0)
        return push_fail(req, err, KN_STE_BAD_REQUEST);
    const char *name = kn_stanza_name(st, c);
    if (strcmp(name, "enable") == 0)
        req->op = PUSH_OP_ENABLE;
    else if (strcmp(name, "disable") == 0)
        req->op = PUSH_OP_DISABLE;
    else
        return push_fail(req, err, KN_STE_BAD_REQUEST);
    size_t jl, nl;
    const char *jid = kn_stanza_attr(st, c, "jid", &jl);
    const char *node = kn_stanza_attr(st, c, "node", &nl);
    if (jid == NULL || jl == 0)
        return push_fail(req, err, KN_STE_BAD_REQUEST);
    req->jid = push_prepare(jid, jl, false);
    if (req->jid == NULL)
        return push_fail(req, err, KN_STE_JID_MALFORMED);
    if (node != NULL && nl > PUSH_NODE_MAX)
        return push_fail(req, err, KN_STE_BAD_REQUEST);
    if (req->op == PUSH_OP_DISABLE) {
        /* No node, or an empty one: every node of that app server. */
        if (node != NULL && nl > 0)
            req->node = kn_strndup(node, nl);
        return 0;
    }
    if (node == NULL || nl == 0)
        return push_fail(req, err, KN_STE_BAD_REQUEST);
    req->node = kn_strndup(node, nl);
    kn_buf_t muted = KN_BUF_INIT;
    int x = kn_stanza_child(st, c, "x", PUSH_NS_DATA);
    kn_stanza_err_t cond = KN_STE_BAD_REQUEST;
    if (x >= 0 && push_form_parse(st, x, req, &muted, &cond) < 0) {
        kn_buf_free(&muted);
        return push_fail(req, err, cond);
    }
    req->muted = kn_strndup(muted.len ? muted.data : "", muted.len);
    kn_buf_free(&muted);
    return 0;
}

bool push_error_is_transient(const kn_stanza_t *st)
{
    int e = kn_stanza_child(st, 0, "error", NULL);
    if (e < 0)
        return false;
    const char *type = kn_stanza_attr(st, e, "type", NULL);
    if (type != NULL && strcmp(type, "wait") == 0)
        return true;
    static const char *const moment[] = {
        "internal-server-error", "resource-constraint", "remote-server-timeout",
        "recipient-unavailable", NULL};
    for (int c = kn_stanza_first_child(st, e); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (strcmp(kn_stanza_ns(st, c),
                   "urn:ietf:params:xml:ns:xmpp-stanzas") != 0)
            continue;
        for (size_t i = 0; moment[i] != NULL; i++)
            if (strcmp(kn_stanza_name(st, c), moment[i]) == 0)
                return true;
    }
    return false;
}

size_t push_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    /* Back off continuation bytes, then the lead byte they belong to. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void push_field(kn_stanza_builder_t *b, const char *var, const char *v,
                       size_t len)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", var);
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, v, len);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
}

kn_stanza_t *push_note_build(kn_stanza_builder_t *b, const push_note_t *n)
{
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", "jabber:client");
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "id", n->id);
    kn_stanza_builder_attr(b, "from", n->from);
    kn_stanza_builder_attr(b, "to", n->to);
    kn_stanza_builder_start(b, "pubsub", PUSH_NS_PUBSUB);
    kn_stanza_builder_start(b, "publish", NULL);
    kn_stanza_builder_attr(b, "node", n->node);
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_start(b, "notification", PUSH_NS);
    kn_stanza_builder_start(b, "x", PUSH_NS_DATA);
    kn_stanza_builder_attr(b, "type", "submit");
    push_field(b, "FORM_TYPE", PUSH_NS_SUMMARY, strlen(PUSH_NS_SUMMARY));
    char count[24];
    int cl = snprintf(count, sizeof(count), "%lld", n->count);
    push_field(b, "message-count", count, (size_t)cl);
    if (n->sender != NULL)
        push_field(b, "last-message-sender", n->sender, strlen(n->sender));
    if (n->body != NULL)
        push_field(b, "last-message-body", n->body, n->body_len);
    kn_stanza_builder_end(b); /* x */
    kn_stanza_builder_end(b); /* notification */
    kn_stanza_builder_end(b); /* item */
    kn_stanza_builder_end(b); /* publish */
    if (n->options != NULL) {
        kn_stanza_builder_start(b, "publish-options", NULL);
        kn_stanza_builder_copy(b, n->options, 0);
        kn_stanza_builder_end(b);
    }
    return kn_stanza_builder_finish(b);
}
