/*
 * muc_out.c - what mucd sends (see muc_out.h).
 *
 * A note on fan-out: muc_send_room() collects the connection ids of
 * every seat into one target list and sends one MULTICAST; the router
 * splits it per node. Presence is the exception that needs two lists in
 * semi-anonymous rooms: moderators see real JIDs, others do not, so there
 * are two payloads and two multicasts. Seats whose connection id is
 * unknown (0) get a STANZA to their full JID instead.
 */
#include "muc_out.h"

#include <stdio.h>
#include <string.h>

#include "kn_env_stanza.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_aff.h"
#include "muc_room.h"

void muc_send(muc_t *m, const kn_stanza_t *st)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    if (kn_env_from_stanza(&e, st) < 0)
        return;
    kn_buf_reset(&m->out);
    kn_stanza_serialize(st, &m->out, NULL);
    m->sink.send(m->sink.ud, &e, m->out.data, m->out.len);
}

void muc_send_to(muc_t *m, const kn_stanza_t *st, const char *to)
{
    kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", to);
    muc_send(m, t);
    kn_stanza_unref(&t);
}

static void out_target(muc_t *m, size_t *n, uint64_t conn)
{
    if (*n == m->targets_cap) {
        m->targets_cap = m->targets_cap ? 2 * m->targets_cap : 64;
        m->targets =
            kn_realloc(m->targets, m->targets_cap * sizeof(*m->targets));
    }
    m->targets[(*n)++] = conn;
}

static void out_multicast(muc_t *m, const kn_stanza_t *st, size_t n)
{
    if (n == 0)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_MULTICAST;
    if (kn_env_from_stanza(&e, st) < 0)
        return;
    e.targets = m->targets;
    e.ntargets = n;
    kn_buf_reset(&m->out);
    kn_stanza_serialize(st, &m->out, NULL);
    m->sink.send(m->sink.ud, &e, m->out.data, m->out.len);
    m->stats.deliveries += n;
}

void muc_send_room(muc_t *m, const muc_room_t *room, const kn_stanza_t *st,
                   const muc_occ_t *skip)
{
    size_t n = 0;
    for (const muc_occ_t *o = room->occs; o; o = o->hh.next) {
        if (o == skip)
            continue;
        for (const muc_seat_t *s = o->seats; s; s = s->next_occ) {
            if (s->conn != 0)
                out_target(m, &n, s->conn);
            else
                muc_send_to(m, st, muc_seat_full(s));
        }
    }
    out_multicast(m, st, n);
}

void muc_send_occ(muc_t *m, const muc_occ_t *occ, const kn_stanza_t *st)
{
    for (const muc_seat_t *s = occ->seats; s; s = s->next_occ)
        muc_send_to(m, st, muc_seat_full(s));
}

const char *muc_error_by(muc_t *m, const char *to)
{
    if (to == NULL)
        return m->set.service;
    const char *slash = strchr(to, '/');
    size_t blen = slash ? (size_t)(slash - to) : strlen(to);
    const char *at = memchr(to, '@', blen);
    if (at == NULL)
        return m->set.service;
    char *bare = kn_strndup(to, blen);
    const muc_room_t *room = muc_room_find(m, bare);
    free(bare);
    return room ? room->jid : m->set.service;
}

void muc_send_error(muc_t *m, const kn_stanza_t *orig, kn_stanza_err_t cond,
                    const char *text)
{
    kn_stanza_t *e = kn_stanza_error_reply(orig, cond, text);
    if (e == NULL)
        return;
    /* <error/> is the root's last child. */
    int err = -1;
    for (int c = kn_stanza_first_child(e, 0); c >= 0;
         c = kn_stanza_next_sibling(e, c))
        err = c;
    KN_ASSERT(err > 0 && strcmp(kn_stanza_name(e, err), "error") == 0);
    kn_stanza_t *t =
        kn_stanza_with_attr(e, err, "by", muc_error_by(m, kn_stanza_to(orig)));
    muc_send(m, t);
    kn_stanza_unref(&t);
    kn_stanza_unref(&e);
}

/* What of a presence the room passes on, serialised (see muc_pres_same). */
static void pres_kept(kn_stanza_builder_t *b, const kn_stanza_t *src,
                      kn_buf_t *out)
{
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    for (int c = src ? kn_stanza_first_child(src, 0) : -1; c >= 0;
         c = kn_stanza_next_sibling(src, c)) {
        const char *ns = kn_stanza_ns(src, c);
        if (strcmp(ns, MUC_NS) == 0 || strcmp(ns, MUC_NS_USER) == 0)
            continue;
        kn_stanza_builder_copy(b, src, c);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_stanza_serialize(st, out, NULL);
    kn_stanza_unref(&st);
}

bool muc_pres_same(const kn_stanza_t *a, const kn_stanza_t *b)
{
    kn_stanza_builder_t *sb = kn_stanza_builder_new();
    kn_buf_t x = KN_BUF_INIT, y = KN_BUF_INIT;
    pres_kept(sb, a, &x);
    pres_kept(sb, b, &y);
    bool same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    kn_buf_free(&x);
    kn_buf_free(&y);
    kn_stanza_builder_free(&sb);
    return same;
}

static void pres_status(kn_stanza_builder_t *b, int code)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    kn_stanza_builder_start(b, "status", NULL);
    kn_stanza_builder_attr(b, "code", num);
    kn_stanza_builder_end(b);
}

kn_stanza_t *muc_pres_build(muc_t *m, const muc_occ_t *occ,
                            const muc_pres_opts_t *o, bool with_jid, bool self)
{
    kn_stanza_builder_t *b = m->b;
    kn_buf_t from = KN_BUF_INIT;
    kn_buf_printf(&from, "%s/%s", occ->room->jid, occ->nick);
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", from.data);
    if (o->unavailable)
        kn_stanza_builder_attr(b, "type", "unavailable");
    const kn_stanza_t *src = o->src ? o->src : occ->pres;
    for (int c = src ? kn_stanza_first_child(src, 0) : -1; c >= 0;
         c = kn_stanza_next_sibling(src, c)) {
        const char *ns = kn_stanza_ns(src, c);
        if (strcmp(ns, MUC_NS) == 0 || strcmp(ns, MUC_NS_USER) == 0)
            continue;
        if (o->unavailable && strcmp(kn_stanza_name(src, c), "status") != 0)
            continue;
        kn_stanza_builder_copy(b, src, c);
    }
    kn_stanza_builder_start(b, "x", MUC_NS_USER);
    kn_stanza_builder_start(b, "item", NULL);
    muc_aff_t aff =
        o->has_aff ? o->aff_override : muc_room_aff(occ->room, occ->bare);
    kn_stanza_builder_attr(b, "affiliation", muc_aff_name(aff));
    kn_stanza_builder_attr(
        b, "role", muc_role_name(o->unavailable ? MUC_ROLE_NONE : occ->role));
    if (with_jid)
        kn_stanza_builder_attr(b, "jid", o->jid ? o->jid : muc_occ_jid(occ));
    if (o->new_nick)
        kn_stanza_builder_attr(b, "nick", o->new_nick);
    if (o->actor) {
        kn_stanza_builder_start(b, "actor", NULL);
        kn_stanza_builder_attr(b, "nick", o->actor);
        kn_stanza_builder_end(b);
    }
    if (o->reason) {
        kn_stanza_builder_start(b, "reason", NULL);
        kn_stanza_builder_text(b, o->reason, strlen(o->reason));
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b); /* item */
    if (self)
        pres_status(b, 110);
    for (size_t i = 0; i < o->ncodes; i++)
        pres_status(b, o->codes[i]);
    for (size_t i = 0; self && i < o->nself_codes; i++)
        pres_status(b, o->self_codes[i]);
    kn_buf_free(&from);
    return kn_stanza_builder_finish(b);
}

void muc_pres_broadcast(muc_t *m, const muc_occ_t *occ,
                        const muc_pres_opts_t *o)
{
    const muc_room_t *room = occ->room;
    bool anyone = room->cfg.whois == MUC_WHOIS_ANYONE;
    if (!o->no_others) {
        kn_stanza_t *pj = muc_pres_build(m, occ, o, true, false);
        kn_stanza_t *pn =
            anyone ? NULL : muc_pres_build(m, occ, o, false, false);
        /* Two passes, one target list each: with the JID, then without. */
        for (int pass = 0; pass < (anyone ? 1 : 2); pass++) {
            size_t n = 0;
            const kn_stanza_t *st = pass == 0 ? pj : pn;
            for (const muc_occ_t *v = room->occs; v; v = v->hh.next) {
                if (v == occ || (o->to_occ && v != o->to_occ))
                    continue;
                bool sees = anyone || v->role == MUC_ROLE_MODERATOR;
                if (sees != (pass == 0))
                    continue;
                for (const muc_seat_t *s = v->seats; s; s = s->next_occ) {
                    if (s->conn != 0)
                        out_target(m, &n, s->conn);
                    else
                        muc_send_to(m, st, muc_seat_full(s));
                }
            }
            out_multicast(m, st, n);
        }
        kn_stanza_unref(&pj);
        kn_stanza_unref(&pn);
    }
    if (o->no_self)
        return;
    kn_stanza_t *ps = muc_pres_build(m, occ, o, true, true);
    if (o->self_full != NULL) {
        muc_send_to(m, ps, o->self_full);
    } else {
        for (const muc_seat_t *s = occ->seats; s; s = s->next_occ)
            muc_send_to(m, ps, muc_seat_full(s));
    }
    kn_stanza_unref(&ps);
}
