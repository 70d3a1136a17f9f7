/*
 * pres_avatar.c - vCard-based avatars (XEP-0153).
 *
 * A note on the flow. The server owns the avatar hash in presence: the
 * SHA-1 (hex) of the decoded PHOTO/BINVAL of the user's stored vCard
 * (XEP-0054, pres_iq.c), or empty when there is none. Every available
 * presence a user broadcasts gets <x xmlns='vcard-temp:x:update'> with
 * <photo>HASH</photo> (or <photo/>), replacing whatever x the client
 * sent; that stamped stanza is what s->last, Redis pres: and every later
 * login of a contact see.
 *
 * The hash lives on the pres_user_t while the user is online (photo;
 * NULL: not known yet) and in vcards.photo_hash (written with the vCard;
 * a row from before that column was filled is hashed from its xml). It is
 * loaded at SESSION_UP. A presence that goes out before the load answers
 * carries an empty <x/> ("not ready", XEP-0153 3.2) and marks the user
 * stale; when the hash arrives, or a vCard set changes it, each
 * available resource's presence is stamped again and re-broadcast.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_b64.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "pres.h"

#define NS_VCARD "vcard-temp"

int pres_avatar_hash_vcard(const kn_stanza_t *st, int v, char *hex, size_t size)
{
    if (size > 0)
        hex[0] = '\0';
    if (size < 2 * SHA_DIGEST_LENGTH + 1)
        return -KN_EINVAL;
    int ph = v >= 0 ? kn_stanza_child(st, v, "PHOTO", NULL) : -1;
    int bv = ph >= 0 ? kn_stanza_child(st, ph, "BINVAL", NULL) : -1;
    if (bv < 0)
        return 0;
    kn_buf_t txt = KN_BUF_INIT, clean = KN_BUF_INIT, img = KN_BUF_INIT;
    kn_stanza_text(st, bv, &txt);
    /* BINVAL is usually folded: base64 without the whitespace. */
    for (size_t i = 0; i < txt.len; i++) {
        char c = txt.data[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            kn_buf_append(&clean, &c, 1);
    }
    int rc = 0;
    if (clean.len == 0) {
        rc = 0;
    } else if (kn_b64_decode(clean.data, clean.len, &img) < 0) {
        rc = -KN_EPROTO;
    } else if (img.len > 0) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)img.data, img.len, md);
        for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    kn_buf_free(&txt);
    kn_buf_free(&clean);
    kn_buf_free(&img);
    return rc;
}

int pres_avatar_hash_xml(const char *xml, char *hex, size_t size)
{
    if (size > 0)
        hex[0] = '\0';
    kn_stanza_t *v = NULL;
    if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &v) < 0 || v == NULL)
        return -KN_EPROTO;
    int rc = pres_avatar_hash_vcard(v, 0, hex, size);
    kn_stanza_unref(&v);
    return rc;
}

kn_stanza_t *pres_avatar_stamp(pres_t *p, const kn_stanza_t *st,
                               const char *photo)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, kn_stanza_name(st, 0), kn_stanza_ns(st, 0));
    size_t na = kn_stanza_attr_count(st, 0);
    for (size_t i = 0; i < na; i++) {
        const char *ns = NULL, *name = NULL, *value = NULL;
        kn_stanza_attr_at(st, 0, i, &ns, &name, &value);
        if (ns == NULL || *ns == '\0') {
            kn_stanza_builder_attr(b, name, value);
        } else if (strcmp(ns, "http://www.w3.org/XML/1998/namespace") == 0) {
            char qn[128];
            snprintf(qn, sizeof(qn), "xml:%s", name);
            kn_stanza_builder_attr(b, qn, value);
        } else {
            kn_stanza_builder_attr_n(b, ns, strlen(ns), "", 0, name,
                                     strlen(name), value, strlen(value));
        }
    }
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (strcmp(kn_stanza_name(st, c), "x") == 0 &&
            strcmp(kn_stanza_ns(st, c), PRES_NS_VCARD_UPDATE) == 0)
            continue; /* the client's own: ours replaces it */
        kn_stanza_builder_copy(b, st, c);
    }
    kn_stanza_builder_start(b, "x", PRES_NS_VCARD_UPDATE);
    if (photo != NULL) {
        kn_stanza_builder_start(b, "photo", NULL);
        if (*photo != '\0')
            kn_stanza_builder_text(b, photo, strlen(photo));
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
    return kn_stanza_builder_finish(b);
}

/* ---- the per-user hash -------------------------------------------------- */

typedef struct avatar_load {
    pres_t *p;
    char *bare;
} avatar_load_t;

static void avatar_loaded(const PGresult *res, int err, void *arg)
{
    avatar_load_t *l = arg;
    pres_t *p = l->p;
    pres_user_t *u = pres_user_find(p, l->bare);
    if (u != NULL) {
        u->photo_loading = false;
        /* A vCard set that answered first wins: it is newer. */
        if (err == 0 && u->photo == NULL) {
            char hex[2 * SHA_DIGEST_LENGTH + 1] = "";
            if (PQntuples(res) > 0) {
                if (!PQgetisnull(res, 0, 0))
                    snprintf(hex, sizeof(hex), "%s", PQgetvalue(res, 0, 0));
                else if (pres_avatar_hash_xml(PQgetvalue(res, 0, 1), hex,
                                              sizeof(hex)) < 0)
                    hex[0] = '\0';
            }
            u->photo = kn_strdup(hex);
            if (u->photo_stale) {
                u->photo_stale = false;
                pres_broadcast_avatar(p, u);
            }
        }
        pres_broadcast_photo_known(p, u); /* last: u may be freed */
    }
    free(l->bare);
    free(l);
}

void pres_avatar_load(pres_t *p, pres_user_t *u)
{
    if (p->pg == NULL || u->photo != NULL || u->photo_loading ||
        !pres_is_local(p, u->bare))
        return;
    u->photo_loading = true;
    avatar_load_t *l = kn_malloc(sizeof(*l));
    l->p = p;
    l->bare = kn_strdup(u->bare);
    char *local = pres_localpart(u->bare);
    const char *params[] = {local};
    kn_pg_query(p->pg, "select photo_hash, xml from vcards where username = $1",
                1, params, avatar_loaded, l);
    free(local);
}

void pres_avatar_set(pres_t *p, const char *bare, const char *hash)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL)
        return; /* not online: loaded at the next login */
    /* Unknown before: only presences that went out without it (stale)
     * need it again; the parked ones get it now. */
    bool changed = u->photo != NULL && strcmp(u->photo, hash) != 0;
    free(u->photo);
    u->photo = kn_strdup(hash);
    if (changed || u->photo_stale) {
        u->photo_stale = false;
        pres_broadcast_avatar(p, u);
    }
    pres_broadcast_photo_known(p, u); /* last: u may be freed */
}
