/*
 * c2s_csi.c - XEP-0352 client state indication.
 *
 * <inactive/> and <active/> (urn:xmpp:csi:0) are nonzas of a bound
 * stream. While a session is inactive, deliveries from the router that a
 * client does not need at once are held here instead of being written:
 * presence broadcasts (available/unavailable; only the newest per sender
 * full JID survives) and standalone chat-state messages (XEP-0085, no
 * body; likewise the newest per sender). Everything else is urgent: it
 * first flushes what is held, in order, then goes out itself, so the
 * client never sees a message before the presence that preceded it.
 * <active/> flushes; so does a queue over csi_max_stanzas or
 * csi_max_bytes (the session stays inactive). See c2s_csi.h for the
 * classification.
 *
 * The hook sits in c2s_stream_inbound (c2s_block.c), after the XEP-0191
 * filter and before c2s_stanza_deliver: a held stanza is not in the
 * output buffer and counts as written only when a flush hands it to
 * c2s_stanza_deliver.
 */
#include <stdlib.h>
#include <string.h>

#include "c2s_csi.h"
#include "c2s_sm.h"
#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

typedef struct csi_item {
    c2s_csi_class_t cls;
    char *from; /* from_len bytes, then the payload, one allocation */
    size_t from_len;
    size_t len;
} csi_item_t;

struct c2s_csi {
    csi_item_t *items;
    size_t n, cap;
    size_t bytes;
    size_t max_count, max_bytes;
    c2s_csi_stats_t stats;
};

/* ---- classification ---------------------------------------------------- */

static bool csi_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether every child of the root of p[0..len) is a chat state (an
 * xmlns='...chatstates' attribute) or a <thread/>, and there is at least
 * one chat state. The payload was written by kn_stanza_serialize: well
 * formed, '<' and '>' only in markup, attribute values quoted. Anything
 * unexpected answers false (urgent), which is always safe. */
static bool csi_only_chatstates(const char *p, size_t len)
{
    static const char ns[] = C2S_NS_CHATSTATES;
    size_t i = 0;
    int depth = 0;
    bool any = false;
    for (;;) {
        const char *lt = memchr(p + i, '<', len - i);
        if (lt == NULL)
            return any && depth == 0;
        i = (size_t)(lt - p) + 1;
        if (i >= len)
            return false;
        if (p[i] == '/') {
            const char *gt = memchr(p + i, '>', len - i);
            if (gt == NULL || --depth < 0)
                return false;
            i = (size_t)(gt - p) + 1;
            continue;
        }
        size_t name = i;
        while (i < len && !csi_space(p[i]) && p[i] != '>' && p[i] != '/')
            i++;
        size_t name_len = i - name;
        bool cs = false, empty = false;
        for (;;) {
            while (i < len && csi_space(p[i]))
                i++;
            if (i >= len)
                return false;
            if (p[i] == '>') {
                i++;
                break;
            }
            if (p[i] == '/') {
                empty = true;
                i += 2;
                break;
            }
            size_t an = i;
            while (i < len && p[i] != '=' && !csi_space(p[i]))
                i++;
            size_t an_len = i - an;
            while (i < len && p[i] != '\'' && p[i] != '"')
                i++;
            if (i >= len)
                return false;
            char q = p[i++];
            const char *e = memchr(p + i, q, len - i);
            if (e == NULL)
                return false;
            size_t vl = (size_t)(e - (p + i));
            if (an_len == 5 && memcmp(p + an, "xmlns", 5) == 0 &&
                vl == sizeof(ns) - 1 && memcmp(p + i, ns, vl) == 0)
                cs = true;
            i = (size_t)(e - p) + 1;
        }
        if (depth == 1) {
            if (cs)
                any = true;
            else if (!(name_len == 6 && memcmp(p + name, "thread", 6) == 0))
                return false;
        }
        if (!empty)
            depth++;
        if (i > len)
            return false;
    }
}

c2s_csi_class_t c2s_csi_classify(const kn_env_t *env, const void *pl,
                                 size_t len)
{
    if ((env->kind != KN_ENV_STANZA && env->kind != KN_ENV_MULTICAST) ||
        (env->flags & (KN_F_ACK_WANTED | KN_F_BLOCKLIST)) ||
        env->from_len == 0 || pl == NULL || len == 0)
        return C2S_CSI_URGENT;
    switch (env->stanza) {
    case KN_ENV_ST_PRESENCE:
        if (env->type != KN_ENV_TYPE_AVAILABLE &&
            env->type != KN_ENV_TYPE_UNAVAILABLE)
            return C2S_CSI_URGENT; /* subscriptions, errors, probes */
        /* XEP-0045 self-presence (status 110): the client waits for it
         * to finish a join or a nick change. */
        if (memmem(pl, len, "code='110'", 10) != NULL ||
            memmem(pl, len, "code=\"110\"", 10) != NULL)
            return C2S_CSI_URGENT;
        return C2S_CSI_PRESENCE;
    case KN_ENV_ST_MESSAGE:
        if (env->type == KN_ENV_TYPE_ERROR)
            return C2S_CSI_URGENT;
        /* One memmem for most messages; the child scan only for those
         * that name the chat-state namespace. */
        if (memmem(pl, len, C2S_NS_CHATSTATES, sizeof(C2S_NS_CHATSTATES) - 1) ==
                NULL ||
            !csi_only_chatstates(pl, len))
            return C2S_CSI_URGENT;
        return C2S_CSI_CHATSTATE;
    default:
        return C2S_CSI_URGENT;
    }
}

/* ---- the queue ----------------------------------------------------------- */

c2s_csi_t *c2s_csi_new(size_t max_count, size_t max_bytes)
{
    c2s_csi_t *q = kn_calloc(1, sizeof(*q));
    q->max_count = max_count;
    q->max_bytes = max_bytes;
    return q;
}

void c2s_csi_free(c2s_csi_t **qp)
{
    c2s_csi_t *q = *qp;
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->items[i].from);
    free(q->items);
    free(q);
    *qp = NULL;
}

static void csi_remove(c2s_csi_t *q, size_t i)
{
    q->bytes -= q->items[i].len;
    free(q->items[i].from);
    memmove(&q->items[i], &q->items[i + 1], (q->n - i - 1) * sizeof(*q->items));
    q->n--;
}

bool c2s_csi_hold(c2s_csi_t *q, c2s_csi_class_t cls, const char *from,
                  size_t from_len, const void *pl, size_t len)
{
    KN_ASSERT(cls == C2S_CSI_PRESENCE || cls == C2S_CSI_CHATSTATE);
    for (size_t i = 0; i < q->n; i++) {
        csi_item_t *it = &q->items[i];
        if (it->cls == cls && it->from_len == from_len &&
            memcmp(it->from, from, from_len) == 0) {
            q->stats.dropped++;
            q->stats.dropped_bytes += it->len;
            csi_remove(q, i);
            break; /* at most one per (class, sender) */
        }
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->items = kn_realloc(q->items, q->cap * sizeof(*q->items));
    }
    csi_item_t *it = &q->items[q->n++];
    it->cls = cls;
    it->from = kn_malloc(from_len + len);
    memcpy(it->from, from, from_len);
    memcpy(it->from + from_len, pl, len);
    it->from_len = from_len;
    it->len = len;
    q->bytes += len;
    q->stats.held++;
    return (q->max_count && q->n > q->max_count) ||
           (q->max_bytes && q->bytes > q->max_bytes);
}

size_t c2s_csi_flush(c2s_csi_t *q,
                     void (*write)(void *ud, const void *pl, size_t len),
                     void *ud)
{
    size_t n = q->n;
    if (n == 0)
        return 0;
    /* Detach first: write() may not re-enter the queue, but keep it
     * consistent anyway. */
    csi_item_t *items = q->items;
    q->items = NULL;
    q->n = q->cap = 0;
    q->bytes = 0;
    for (size_t i = 0; i < n; i++) {
        write(ud, items[i].from + items[i].from_len, items[i].len);
        free(items[i].from);
    }
    free(items);
    q->stats.flushes++;
    return n;
}

size_t c2s_csi_count(const c2s_csi_t *q)
{
    return q->n;
}

size_t c2s_csi_bytes(const c2s_csi_t *q)
{
    return q->bytes;
}

const c2s_csi_stats_t *c2s_csi_stats(const c2s_csi_t *q)
{
    return &q->stats;
}

/* ---- the stream ---------------------------------------------------------- */

static void csi_write(void *ud, const void *pl, size_t len)
{
    c2s_stream_t *s = ud;
    size_t off = s->out->len;
    c2s_stanza_deliver(s, pl, len);
    /* XEP-0198 counts what reaches the client, held or not: without
     * this the client's h would run ahead of ours. Held stanzas are
     * presence and chat states, nothing to reroute if unacked. */
    c2s_sm_sent(s, off, NULL);
}

static void csi_flush_stream(c2s_stream_t *s)
{
    if (s->csi != NULL)
        c2s_csi_flush(s->csi, csi_write, s);
}

bool c2s_csi_filter(c2s_stream_t *s, const kn_env_t *env, const void *pl,
                    size_t len)
{
    if (s->csi == NULL)
        return false;
    c2s_csi_class_t cls =
        s->inactive ? c2s_csi_classify(env, pl, len) : C2S_CSI_URGENT;
    if (cls == C2S_CSI_URGENT) {
        csi_flush_stream(s);
        return false;
    }
    if (c2s_csi_hold(s->csi, cls, env->from, env->from_len, pl, len)) {
        kn_log_debug("c2s: %s: CSI queue over its limits, flushing",
                     kn_jid_str(&s->jid));
        csi_flush_stream(s);
    }
    return true;
}

c2s_act_t c2s_csi_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    const char *name = kn_stanza_name(st, 0);
    if (s->cf->csi_max_stanzas == 0)
        return c2s_stream_fail(s, KN_SE_UNSUPPORTED_STANZA_TYPE, name);
    if (strcmp(name, "inactive") == 0) {
        s->inactive = true;
        if (s->csi == NULL)
            s->csi = c2s_csi_new(s->cf->csi_max_stanzas, s->cf->csi_max_bytes);
    } else if (strcmp(name, "active") == 0) {
        s->inactive = false;
        csi_flush_stream(s);
        c2s_csi_end(s);
    } else {
        return c2s_stream_fail(s, KN_SE_UNSUPPORTED_STANZA_TYPE, name);
    }
    return C2S_ACT_MORE;
}

void c2s_csi_end(c2s_stream_t *s)
{
    if (s->csi == NULL)
        return;
    const c2s_csi_stats_t *t = c2s_csi_stats(s->csi);
    if (t->held > 0)
        kn_log_debug("c2s: %s: CSI held %zu stanzas, %zu (%zu bytes) "
                     "replaced by newer ones, %zu flushes",
                     s->jid.str ? s->jid.str : "?", t->held, t->dropped,
                     t->dropped_bytes, t->flushes);
    c2s_csi_free(&s->csi);
}
