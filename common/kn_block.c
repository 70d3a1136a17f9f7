/*
 * kn_block.c - XEP-0191 block lists (see kn_block.h).
 *
 * A note on the layout. One allocation: the item count, the size of the
 * string area, n index entries {offset, length} sorted by the bytes of
 * the item (shorter first on a common prefix), then the NUL-terminated
 * strings. Lookup is a binary search over the index; matching a JID is
 * at most four of them (kn_block_keys). A change builds a new allocation
 * from the old items plus or minus one, in order, so the list is never
 * half-changed and never over-allocated.
 */
#include "kn_block.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"

typedef struct bl_ent {
    uint32_t off, len;
} bl_ent_t;

struct kn_blocklist {
    uint32_t n;
    uint32_t text; /* bytes of the string area, NULs included */
    bl_ent_t ent[];
};

/* A source item for a build: borrowed bytes. */
typedef struct bl_src {
    const char *s;
    size_t len;
} bl_src_t;

static const char *bl_text(const kn_blocklist_t *l)
{
    return (const char *)&l->ent[l->n];
}

static int bl_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int bl_src_cmp(const void *x, const void *y)
{
    const bl_src_t *a = x, *b = y;
    return bl_cmp(a->s, a->len, b->s, b->len);
}

/* Index of the first item >= key; *found when it equals key. */
static size_t bl_find(const kn_blocklist_t *l, const char *key, size_t len,
                      bool *found)
{
    size_t lo = 0, hi = l->n;
    const char *t = bl_text(l);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bl_ent_t *e = &l->ent[mid];
        if (bl_cmp(t + e->off, e->len, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < l->n && l->ent[lo].len == len &&
             memcmp(t + l->ent[lo].off, key, len) == 0;
    return lo;
}

/* A list of src[0..n), sorted and without duplicates; NULL for n == 0. */
static kn_blocklist_t *bl_build(const bl_src_t *src, size_t n)
{
    if (n == 0)
        return NULL;
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += src[i].len + 1;
    KN_ASSERT(n < UINT32_MAX && text < UINT32_MAX);
    kn_blocklist_t *l = kn_malloc(sizeof(*l) + n * sizeof(bl_ent_t) + text);
    l->n = (uint32_t)n;
    l->text = (uint32_t)text;
    char *t = (char *)&l->ent[n];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        l->ent[i].off = (uint32_t)off;
        l->ent[i].len = (uint32_t)src[i].len;
        if (src[i].len > 0)
            memcpy(t + off, src[i].s, src[i].len);
        t[off + src[i].len] = '\0';
        off += src[i].len + 1;
    }
    return l;
}

size_t kn_block_keys(const char *jid, size_t len, kn_block_key_t keys[4])
{
    if (len == 0)
        return 0;
    const char *slash = memchr(jid, '/', len);
    size_t bare = slash ? (size_t)(slash - jid) : len;
    const char *at = memchr(jid, '@', bare);
    size_t dom = at ? (size_t)(at - jid) + 1 : 0; /* offset of the domain */
    size_t n = 0;
    keys[n++] = (kn_block_key_t){0, len};
    if (slash != NULL)
        keys[n++] = (kn_block_key_t){0, bare}; /* bare */
    if (at != NULL && slash != NULL)
        keys[n++] = (kn_block_key_t){dom, len - dom}; /* domain/resource */
    if (at != NULL)
        keys[n++] = (kn_block_key_t){dom, bare - dom}; /* domain */
    return n;
}

bool kn_block_item_matches(const char *item, size_t ilen, const char *jid,
                           size_t jlen)
{
    kn_block_key_t k[4];
    size_t n = kn_block_keys(jid, jlen, k);
    for (size_t i = 0; i < n; i++)
        if (k[i].len == ilen && memcmp(jid + k[i].off, item, ilen) == 0)
            return true;
    return false;
}

kn_blocklist_t *kn_blocklist_new(const char *const *jids, const size_t *lens,
                                 size_t n)
{
    if (n == 0)
        return NULL;
    bl_src_t *src = kn_malloc(n * sizeof(*src));
    for (size_t i = 0; i < n; i++)
        src[i] = (bl_src_t){jids[i], lens[i]};
    qsort(src, n, sizeof(*src), bl_src_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || bl_src_cmp(&src[k - 1], &src[i]) != 0)
            src[k++] = src[i];
    kn_blocklist_t *l = bl_build(src, k);
    free(src);
    return l;
}

kn_blocklist_t *kn_blocklist_dup(const kn_blocklist_t *l)
{
    if (l == NULL)
        return NULL;
    return kn_memdup(l, sizeof(*l) + l->n * sizeof(bl_ent_t) + l->text);
}

void kn_blocklist_free(kn_blocklist_t **lp)
{
    kn_free(lp);
}

/* Rebuild *lp with key inserted at index at (add) or item at removed. */
static void bl_rebuild(kn_blocklist_t **lp, size_t at, const char *key,
                       size_t len, bool add)
{
    kn_blocklist_t *old = *lp;
    size_t n = old ? old->n : 0;
    bl_src_t *src = kn_malloc((n + 1) * sizeof(*src));
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == at && add)
            src[k++] = (bl_src_t){key, len};
        if (i < n && !(i == at && !add))
            src[k++] =
                (bl_src_t){bl_text(old) + old->ent[i].off, old->ent[i].len};
    }
    *lp = bl_build(src, k);
    free(src);
    free(old);
}

bool kn_blocklist_add(kn_blocklist_t **lp, const char *jid, size_t len)
{
    bool found = false;
    size_t at = *lp ? bl_find(*lp, jid, len, &found) : 0;
    if (found)
        return false;
    bl_rebuild(lp, at, jid, len, true);
    return true;
}

bool kn_blocklist_del(kn_blocklist_t **lp, const char *jid, size_t len)
{
    bool found = false;
    size_t at = *lp ? bl_find(*lp, jid, len, &found) : 0;
    if (!found)
        return false;
    bl_rebuild(lp, at, NULL, 0, false);
    return true;
}

size_t kn_blocklist_count(const kn_blocklist_t *l)
{
    return l ? l->n : 0;
}

const char *kn_blocklist_item(const kn_blocklist_t *l, size_t i, size_t *len)
{
    KN_ASSERT(l != NULL && i < l->n);
    if (len != NULL)
        *len = l->ent[i].len;
    return bl_text(l) + l->ent[i].off;
}

bool kn_blocklist_has(const kn_blocklist_t *l, const char *jid, size_t len)
{
    bool found = false;
    if (l != NULL)
        bl_find(l, jid, len, &found);
    return found;
}

bool kn_blocklist_match(const kn_blocklist_t *l, const char *jid, size_t len)
{
    if (l == NULL || len == 0)
        return false;
    kn_block_key_t k[4];
    size_t n = kn_block_keys(jid, len, k);
    for (size_t i = 0; i < n; i++)
        if (kn_blocklist_has(l, jid + k[i].off, k[i].len))
            return true;
    return false;
}
