/*
 * muc_room.c - rooms, affiliations, occupants and seats (the model and
 * its invariants are in muc_types.h). Hash tables are uthash on owned
 * strings; nothing here sends anything.
 */
#include "muc_room.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"
#include "muc_history.h"
#include "muc_lookup.h"

void muc_init(muc_t *m, const char *server_domain, const char *service,
              const muc_sink_t *sink)
{
    memset(m, 0, sizeof(*m));
    m->set.server_domain = kn_strdup(server_domain);
    m->set.service = kn_strdup(service);
    m->set.history_hard_max = 1000;
    m->set.anyone_creates = false;
    m->set.retire_days = 30;
    m->set.voice_interval = 60;
    m->set.max_rooms_per_user = 0;
    m->set.max_occupants = 0;
    m->sink = *sink;
    m->b = kn_stanza_builder_new();
}

void muc_fini(muc_t *m)
{
    muc_room_t *r, *tmp;
    HASH_ITER(hh, m->rooms, r, tmp)
    muc_room_free(m, r);
    KN_ASSERT(m->users == NULL);
    muc_lookup_fini(m);
    kn_stanza_builder_free(&m->b);
    kn_buf_free(&m->out);
    free(m->targets);
    free(m->set.service);
    free(m->set.server_domain);
    free(m->set.origin);
    memset(m, 0, sizeof(*m));
}

void muc_config_defaults(muc_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->public_room = true;
    c->change_subject = false;
    c->allow_invites = false;
    c->whois = MUC_WHOIS_MODERATORS;
    c->allow_pm = MUC_PM_ANYONE;
    c->history_mode = MUC_HISTORY_NUMBER;
    c->history_max = 25;
    c->max_occupants = 0;
    c->max_occupant_presence = 0;
    c->occupant_presence = true;
    c->offline_delivery = false;
    c->invite_adds_member = false;
}

void muc_config_group(muc_config_t *c)
{
    c->persistent = true;
    c->members_only = true;
    c->whois = MUC_WHOIS_ANYONE;
    c->public_room = false;
    c->allow_pm = MUC_PM_NONE;
    c->mam = true;
    c->offline_delivery = true;
    c->history_mode = MUC_HISTORY_NONE;
    c->is_group = true;
}

void muc_config_free(muc_config_t *c)
{
    kn_free(&c->title);
    kn_free(&c->description);
    kn_free(&c->password);
}

muc_room_t *muc_room_find(muc_t *m, const char *jid)
{
    muc_room_t *r = NULL;
    HASH_FIND_STR(m->rooms, jid, r);
    return r;
}

const char *muc_room_name(const muc_room_t *room)
{
    return room->cfg.title && room->cfg.title[0] ? room->cfg.title : room->node;
}

muc_room_t *muc_room_new(muc_t *m, const char *jid)
{
    KN_ASSERT(muc_room_find(m, jid) == NULL);
    muc_room_t *r = kn_calloc(1, sizeof(*r));
    r->jid = kn_strdup(jid);
    const char *at = strchr(jid, '@');
    r->node = at ? kn_strndup(jid, (size_t)(at - jid)) : kn_strdup(jid);
    muc_config_defaults(&r->cfg);
    r->next_seq = 1;
    HASH_ADD_KEYPTR(hh, m->rooms, r->jid, strlen(r->jid), r);
    return r;
}

void muc_room_free(muc_t *m, muc_room_t *room)
{
    muc_occ_t *o, *ot;
    HASH_ITER(hh, room->occs, o, ot)
    muc_occ_free(m, o);
    muc_affrec_t *a, *at;
    HASH_ITER(hh, room->affs, a, at)
    {
        HASH_DEL(room->affs, a);
        free(a->bare);
        free(a->nick);
        free(a);
    }
    muc_regreq_t *q, *qt;
    HASH_ITER(hh, room->regs, q, qt)
    muc_regreq_remove(room, q->bare);
    muc_history_clear(room);
    free(room->hist);
    HASH_DEL(m->rooms, room);
    muc_config_free(&room->cfg);
    free(room->subject);
    free(room->subject_from);
    free(room->jid);
    free(room->node);
    free(room);
}

muc_affrec_t *muc_room_affrec(const muc_room_t *room, const char *bare)
{
    muc_affrec_t *a = NULL;
    HASH_FIND_STR(room->affs, bare, a);
    return a;
}

muc_aff_t muc_room_aff(const muc_room_t *room, const char *bare)
{
    muc_affrec_t *a = muc_room_affrec(room, bare);
    return a ? a->aff : MUC_AFF_NONE;
}

void muc_room_set_aff(muc_room_t *room, const char *bare, muc_aff_t aff,
                      const char *nick)
{
    muc_affrec_t *a = muc_room_affrec(room, bare);
    if (aff != MUC_AFF_NONE)
        muc_regreq_remove(room, bare); /* decided: member, or banned */
    if (aff == MUC_AFF_NONE) {
        if (a != NULL) {
            HASH_DEL(room->affs, a);
            free(a->bare);
            free(a->nick);
            free(a);
        }
        return;
    }
    if (a == NULL) {
        a = kn_calloc(1, sizeof(*a));
        a->bare = kn_strdup(bare);
        HASH_ADD_KEYPTR(hh, room->affs, a->bare, strlen(a->bare), a);
    }
    a->aff = aff;
    if (nick != NULL && *nick != '\0') {
        free(a->nick);
        a->nick = kn_strdup(nick);
    }
}

size_t muc_room_owners(const muc_room_t *room)
{
    size_t n = 0;
    for (const muc_affrec_t *a = room->affs; a; a = a->hh.next)
        n += a->aff == MUC_AFF_OWNER;
    return n;
}

bool muc_room_nick_reserved(const muc_room_t *room, const char *nick,
                            const char *bare)
{
    for (const muc_affrec_t *a = room->affs; a; a = a->hh.next)
        if (a->nick && strcmp(a->nick, nick) == 0 && strcmp(a->bare, bare))
            return true;
    return false;
}

bool muc_room_nick_taken(const muc_room_t *room, const char *nick,
                         const char *bare)
{
    if (muc_room_nick_reserved(room, nick, bare))
        return true;
    for (const muc_regreq_t *q = room->regs; q; q = q->hh.next)
        if (strcmp(q->nick, nick) == 0 && strcmp(q->bare, bare))
            return true;
    const muc_occ_t *o = muc_occ_find(room, nick);
    return o != NULL && strcmp(o->bare, bare) != 0;
}

muc_regreq_t *muc_regreq_find(const muc_room_t *room, const char *bare)
{
    muc_regreq_t *q = NULL;
    HASH_FIND_STR(room->regs, bare, q);
    return q;
}

muc_regreq_t *muc_regreq_add(muc_room_t *room, const char *bare,
                             const char *nick, time_t at)
{
    muc_regreq_t *q = muc_regreq_find(room, bare);
    if (q == NULL) {
        q = kn_calloc(1, sizeof(*q));
        q->bare = kn_strdup(bare);
        HASH_ADD_KEYPTR(hh, room->regs, q->bare, strlen(q->bare), q);
        room->nregs++;
    }
    free(q->nick);
    q->nick = kn_strdup(nick);
    q->at = at;
    return q;
}

void muc_regreq_remove(muc_room_t *room, const char *bare)
{
    muc_regreq_t *q = muc_regreq_find(room, bare);
    if (q == NULL)
        return;
    HASH_DEL(room->regs, q);
    room->nregs--;
    free(q->bare);
    free(q->nick);
    free(q);
}

muc_occ_t *muc_occ_find(const muc_room_t *room, const char *nick)
{
    muc_occ_t *o = NULL;
    HASH_FIND_STR(room->occs, nick, o);
    return o;
}

muc_occ_t *muc_occ_by_bare(const muc_room_t *room, const char *bare)
{
    for (muc_occ_t *o = room->occs; o; o = o->hh.next)
        if (strcmp(o->bare, bare) == 0)
            return o;
    return NULL;
}

muc_occ_t *muc_occ_new(muc_room_t *room, const char *nick, const char *bare,
                       muc_role_t role)
{
    KN_ASSERT(muc_occ_find(room, nick) == NULL);
    muc_occ_t *o = kn_calloc(1, sizeof(*o));
    o->nick = kn_strdup(nick);
    o->bare = kn_strdup(bare);
    o->room = room;
    o->role = role;
    HASH_ADD_KEYPTR(hh, room->occs, o->nick, strlen(o->nick), o);
    room->nocc++;
    return o;
}

void muc_occ_free(muc_t *m, muc_occ_t *occ)
{
    while (occ->seats != NULL)
        muc_seat_remove(m, occ->seats);
    muc_room_t *room = occ->room;
    HASH_DEL(room->occs, occ);
    room->nocc--;
    kn_stanza_unref(&occ->pres);
    free(occ->nick);
    free(occ->bare);
    free(occ);
}

void muc_occ_rename(muc_occ_t *occ, const char *nick)
{
    muc_room_t *room = occ->room;
    KN_ASSERT(muc_occ_find(room, nick) == NULL);
    HASH_DEL(room->occs, occ);
    free(occ->nick);
    occ->nick = kn_strdup(nick);
    HASH_ADD_KEYPTR(hh, room->occs, occ->nick, strlen(occ->nick), occ);
}

void muc_occ_set_pres(muc_occ_t *occ, const kn_stanza_t *pres)
{
    kn_stanza_unref(&occ->pres);
    if (pres != NULL)
        occ->pres = kn_stanza_ref((kn_stanza_t *)pres);
}

const char *muc_occ_jid(const muc_occ_t *occ)
{
    return occ->seats ? occ->seats->user->full : occ->bare;
}

size_t muc_occ_nseats(const muc_occ_t *occ)
{
    size_t n = 0;
    for (const muc_seat_t *s = occ->seats; s; s = s->next_occ)
        n++;
    return n;
}

static muc_user_t *room_user(muc_t *m, const char *full)
{
    muc_user_t *u = NULL;
    HASH_FIND_STR(m->users, full, u);
    return u;
}

muc_seat_t *muc_user_seats(muc_t *m, const char *full)
{
    muc_user_t *u = room_user(m, full);
    return u ? u->seats : NULL;
}

muc_seat_t *muc_seat_find(muc_t *m, const muc_room_t *room, const char *full)
{
    for (muc_seat_t *s = muc_user_seats(m, full); s; s = s->next_user)
        if (s->occ->room == room)
            return s;
    return NULL;
}

muc_seat_t *muc_seat_add(muc_t *m, muc_occ_t *occ, const char *full,
                         uint64_t conn)
{
    muc_user_t *u = room_user(m, full);
    if (u == NULL) {
        u = kn_calloc(1, sizeof(*u));
        u->full = kn_strdup(full);
        HASH_ADD_KEYPTR(hh, m->users, u->full, strlen(u->full), u);
    }
    muc_seat_t *s = kn_calloc(1, sizeof(*s));
    s->occ = occ;
    s->user = u;
    s->conn = conn;
    /* Append, so the first seat (the jid shown) stays the first. */
    muc_seat_t **pp = &occ->seats;
    while (*pp)
        pp = &(*pp)->next_occ;
    *pp = s;
    s->next_user = u->seats;
    u->seats = s;
    return s;
}

void muc_seat_remove(muc_t *m, muc_seat_t *seat)
{
    for (muc_seat_t **pp = &seat->occ->seats; *pp; pp = &(*pp)->next_occ) {
        if (*pp == seat) {
            *pp = seat->next_occ;
            break;
        }
    }
    muc_user_t *u = seat->user;
    for (muc_seat_t **pp = &u->seats; *pp; pp = &(*pp)->next_user) {
        if (*pp == seat) {
            *pp = seat->next_user;
            break;
        }
    }
    if (u->seats == NULL) {
        HASH_DEL(m->users, u);
        free(u->full);
        free(u);
    }
    free(seat);
}

const char *muc_seat_full(const muc_seat_t *s)
{
    return s->user->full;
}

const char *muc_next_id(muc_t *m, char *buf, size_t size)
{
    snprintf(buf, size, "kiln-muc-%" PRIu64, ++m->id_counter);
    return buf;
}
