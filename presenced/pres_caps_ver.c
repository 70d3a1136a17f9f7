/*
 * pres_caps_ver.c - the pure half of entity capabilities (see
 * pres_caps.h): the XEP-0115 5.1 verification string of a disco#info
 * answer and the <c/> of a presence. No I/O, no pres_t:
 * tests/unit/test_presenced_caps.c checks the 5.2 and 5.3 examples.
 *
 * A note on ordering. "i;octet" collation (RFC 4790) is byte order, so
 * strcmp sorts identities (by category, type, xml:lang, name), features,
 * forms (by FORM_TYPE), fields (by var) and values exactly as the XEP
 * asks; for valid UTF-8 that is also code point order.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_b64.h"
#include "kn_err.h"
#include "kn_mem.h"
#include "pres_caps.h"

#define NS_INFO "http://jabber.org/protocol/disco#info"
#define NS_DATA "jabber:x:data"

bool pres_caps_hash_known(const char *hash)
{
    return hash != NULL &&
           (strcmp(hash, "sha-1") == 0 || strcmp(hash, "sha-256") == 0);
}

typedef struct caps_ident {
    const char *f[4]; /* category, type, xml:lang, name ("" when absent) */
} caps_ident_t;

static int ident_cmp(const void *a, const void *b)
{
    const caps_ident_t *x = a, *y = b;
    for (int i = 0; i < 4; i++) {
        int c = strcmp(x->f[i], y->f[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *attr_or_empty(const kn_stanza_t *st, int e, const char *n)
{
    const char *v = kn_stanza_attr(st, e, n, NULL);
    return v != NULL ? v : "";
}

static bool is_el(const kn_stanza_t *st, int e, const char *name,
                  const char *ns)
{
    return strcmp(kn_stanza_name(st, e), name) == 0 &&
           strcmp(kn_stanza_ns(st, e), ns) == 0;
}

/* A form that takes part: its FORM_TYPE and its element. */
typedef struct caps_form {
    const char *type;
    int x;
} caps_form_t;

static int form_cmp(const void *a, const void *b)
{
    return strcmp(((const caps_form_t *)a)->type,
                  ((const caps_form_t *)b)->type);
}

/* The values of field f, sorted, into a new array (*n of them). */
static const char **field_values(const kn_stanza_t *st, int f, size_t *n)
{
    size_t cap = 0;
    const char **v = NULL;
    *n = 0;
    for (int c = kn_stanza_first_child(st, f); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (!is_el(st, c, "value", NS_DATA))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            v = kn_realloc(v, cap * sizeof(*v));
        }
        v[(*n)++] = kn_stanza_cdata(st, c, NULL);
    }
    if (*n > 1)
        qsort(v, *n, sizeof(*v), str_cmp);
    return v;
}

/* FORM_TYPE of form x: 1 and *type when it takes part, 0 when it is left
 * out (no FORM_TYPE, or not hidden), -KN_EPROTO when ill-formed. */
static int form_type(const kn_stanza_t *st, int x, const char **type)
{
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (!is_el(st, f, "field", NS_DATA))
            continue;
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        if (var == NULL || strcmp(var, "FORM_TYPE") != 0)
            continue;
        const char *ft = kn_stanza_attr(st, f, "type", NULL);
        if (ft == NULL || strcmp(ft, "hidden") != 0)
            return 0;
        size_t n = 0;
        const char **v = field_values(st, f, &n);
        int rc = 1;
        if (n == 0)
            rc = 0;
        else if (strcmp(v[0], v[n - 1]) != 0)
            rc = -KN_EPROTO; /* two different values */
        else
            *type = v[0];
        free(v);
        return rc;
    }
    return 0;
}

typedef struct caps_field {
    const char *var;
    int f;
} caps_field_t;

static int field_cmp(const void *a, const void *b)
{
    return strcmp(((const caps_field_t *)a)->var,
                  ((const caps_field_t *)b)->var);
}

static void form_append(const kn_stanza_t *st, const caps_form_t *fm,
                        kn_buf_t *out)
{
    kn_buf_append_str(out, fm->type);
    kn_buf_append(out, "<", 1);
    size_t n = 0, cap = 0;
    caps_field_t *fs = NULL;
    for (int f = kn_stanza_first_child(st, fm->x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (!is_el(st, f, "field", NS_DATA))
            continue;
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            fs = kn_realloc(fs, cap * sizeof(*fs));
        }
        fs[n].var = var;
        fs[n++].f = f;
    }
    if (n > 1)
        qsort(fs, n, sizeof(*fs), field_cmp);
    for (size_t i = 0; i < n; i++) {
        kn_buf_append_str(out, fs[i].var);
        kn_buf_append(out, "<", 1);
        size_t nv = 0;
        const char **v = field_values(st, fs[i].f, &nv);
        for (size_t k = 0; k < nv; k++) {
            kn_buf_append_str(out, v[k]);
            kn_buf_append(out, "<", 1);
        }
        free(v);
    }
    free(fs);
}

int pres_caps_s(const kn_stanza_t *st, int query, kn_buf_t *out)
{
    size_t ni = 0, nf = 0, nx = 0, ci = 0, cf = 0, cx = 0;
    caps_ident_t *ids = NULL;
    const char **feats = NULL;
    caps_form_t *forms = NULL;
    int rc = 0;
    for (int c = kn_stanza_first_child(st, query); c >= 0 && rc == 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (is_el(st, c, "identity", NS_INFO)) {
            if (ni == ci) {
                ci = ci ? ci * 2 : 4;
                ids = kn_realloc(ids, ci * sizeof(*ids));
            }
            ids[ni].f[0] = attr_or_empty(st, c, "category");
            ids[ni].f[1] = attr_or_empty(st, c, "type");
            ids[ni].f[2] = attr_or_empty(st, c, "xml:lang");
            ids[ni].f[3] = attr_or_empty(st, c, "name");
            ni++;
        } else if (is_el(st, c, "feature", NS_INFO)) {
            const char *var = kn_stanza_attr(st, c, "var", NULL);
            if (var == NULL)
                continue;
            if (nf == cf) {
                cf = cf ? cf * 2 : 16;
                feats = kn_realloc(feats, cf * sizeof(*feats));
            }
            feats[nf++] = var;
        } else if (is_el(st, c, "x", NS_DATA)) {
            const char *type = NULL;
            int t = form_type(st, c, &type);
            if (t < 0)
                rc = t;
            if (t <= 0)
                continue;
            if (nx == cx) {
                cx = cx ? cx * 2 : 2;
                forms = kn_realloc(forms, cx * sizeof(*forms));
            }
            forms[nx].type = type;
            forms[nx++].x = c;
        }
    }
    if (rc < 0)
        goto out;
    if (ni > 1)
        qsort(ids, ni, sizeof(*ids), ident_cmp);
    if (nf > 1)
        qsort(feats, nf, sizeof(*feats), str_cmp);
    if (nx > 1)
        qsort(forms, nx, sizeof(*forms), form_cmp);
    /* XEP-0115 5.4: repeated identities, features or FORM_TYPEs make the
     * whole answer ill-formed. */
    for (size_t i = 1; i < ni; i++)
        if (ident_cmp(&ids[i - 1], &ids[i]) == 0)
            rc = -KN_EPROTO;
    for (size_t i = 1; i < nf; i++)
        if (strcmp(feats[i - 1], feats[i]) == 0)
            rc = -KN_EPROTO;
    for (size_t i = 1; i < nx; i++)
        if (strcmp(forms[i - 1].type, forms[i].type) == 0)
            rc = -KN_EPROTO;
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < ni; i++) {
        for (int k = 0; k < 4; k++) {
            kn_buf_append_str(out, ids[i].f[k]);
            kn_buf_append(out, k < 3 ? "/" : "<", 1);
        }
    }
    for (size_t i = 0; i < nf; i++) {
        kn_buf_append_str(out, feats[i]);
        kn_buf_append(out, "<", 1);
    }
    for (size_t i = 0; i < nx; i++)
        form_append(st, &forms[i], out);
out:
    free(ids);
    free(feats);
    free(forms);
    return rc;
}

int pres_caps_ver(const kn_stanza_t *st, int query, const char *hash, char *out,
                  size_t size)
{
    KN_ASSERT(size >= 64);
    out[0] = '\0';
    if (!pres_caps_hash_known(hash))
        return -KN_EINVAL;
    kn_buf_t s = KN_BUF_INIT;
    int rc = pres_caps_s(st, query, &s);
    if (rc < 0) {
        kn_buf_free(&s);
        return rc;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t mdlen;
    if (strcmp(hash, "sha-1") == 0) {
        SHA1((const unsigned char *)(s.data ? s.data : ""), s.len, md);
        mdlen = SHA_DIGEST_LENGTH;
    } else {
        SHA256((const unsigned char *)(s.data ? s.data : ""), s.len, md);
        mdlen = SHA256_DIGEST_LENGTH;
    }
    kn_buf_free(&s);
    kn_buf_t b = KN_BUF_INIT;
    kn_b64_encode(md, mdlen, &b);
    snprintf(out, size, "%s", b.data);
    kn_buf_free(&b);
    return 0;
}

int pres_caps_claim(const kn_stanza_t *st, pres_caps_claim_t *out)
{
    int c = kn_stanza_child(st, 0, "c", PRES_NS_CAPS);
    if (c < 0)
        return -KN_ENOENT;
    out->hash = kn_stanza_attr(st, c, "hash", NULL);
    out->node = kn_stanza_attr(st, c, "node", NULL);
    out->ver = kn_stanza_attr(st, c, "ver", NULL);
    if (out->hash == NULL || out->ver == NULL || out->node == NULL ||
        *out->ver == '\0' || strlen(out->ver) > 128 || strlen(out->node) > 1023)
        return -KN_ENOENT;
    return 0;
}
