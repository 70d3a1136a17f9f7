/*
 * kn_stanza.c - flat, immutable stanzas (after jabberd2's NAD).
 *
 * A note on the layout. A stanza is one malloc'd block: the struct, then
 * the element, attribute and namespace arrays, then the character buffer.
 * Strings are (offset, length) pairs into the buffer and each is followed
 * by a NUL, so accessors can hand out C strings.
 *
 * Elements are in document order. Each knows its parent and `end`, the
 * index one past its last descendant, so the children of e are e+1 ...
 * end-1 filtered by parent == e, and the next sibling of e is elems[end]
 * when that has the same parent. Text follows ElementTree: `text` is the
 * character data between the start tag and the first child, `tail` the
 * character data after the element's end tag (it belongs to the parent).
 * Each element's attributes are the contiguous range attrs[attr ..
 * attr+nattr), ranges in element order. Namespaces are interned per stanza
 * (uri, prefix); -1 is "no namespace". Element namespaces never carry a
 * prefix; attribute namespaces keep theirs for output.
 *
 * The builder holds the same arrays in growable form. A text run is open
 * while nothing else has been appended to the buffer; appending anything
 * else seals it with its NUL. If text arrives for a slot whose run was
 * sealed (only possible when building by hand), the run is moved to the end
 * of the buffer first, so every slot stays contiguous. finish() copies the
 * arrays into one block: one allocation per stanza, none per element.
 */
#include "kn_stanza.h"

#include <stdint.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"

struct kn_stanza_elem {
    uint32_t name, name_len;
    uint32_t text, text_len;
    uint32_t tail, tail_len;
    uint32_t attr, nattr;
    int32_t ns;
    int32_t parent;
    uint32_t end;
};

struct kn_stanza_attr {
    uint32_t name, name_len;
    uint32_t value, value_len;
    int32_t ns;
};

struct kn_stanza_ns {
    uint32_t uri, uri_len;
    uint32_t prefix, prefix_len;
};

enum { ROOT_TO, ROOT_FROM, ROOT_TYPE, ROOT_ID, ROOT_NATTRS };

struct kn_stanza {
    size_t refs;
    uint32_t nelems, nattrs, nns, nchars;
    kn_stanza_kind_t kind;
    int32_t root_attr[ROOT_NATTRS]; /* attribute index or -1 */
    struct kn_stanza_elem *elems;
    struct kn_stanza_attr *attrs;
    struct kn_stanza_ns *ns;
    char *chars;
};

struct kn_stanza_builder {
    struct kn_stanza_elem *elems;
    struct kn_stanza_attr *attrs;
    struct kn_stanza_ns *ns;
    size_t nelems, nattrs, nns;
    size_t elems_cap, attrs_cap, ns_cap;
    kn_buf_t chars;
    int32_t cur;   /* open element, -1 when none */
    int32_t prev;  /* last closed child of cur, -1 when none */
    bool run_open; /* the last bytes of chars are an unsealed text run */
};

#define STANZA_STR(st, off) ((st)->chars + (off))

/* ---- lifetime, accessors ------------------------------------------------- */

kn_stanza_t *kn_stanza_ref(kn_stanza_t *st)
{
    KN_ASSERT(st != NULL && st->refs > 0);
    st->refs++;
    return st;
}

void kn_stanza_unref(kn_stanza_t **stp)
{
    KN_ASSERT(stp != NULL);
    kn_stanza_t *st = *stp;
    *stp = NULL;
    if (st != NULL && --st->refs == 0)
        free(st);
}

static const struct kn_stanza_elem *stanza_elem(const kn_stanza_t *st, int e)
{
    KN_ASSERT(st != NULL && e >= 0 && (uint32_t)e < st->nelems);
    return &st->elems[e];
}

static const char *stanza_root_attr(const kn_stanza_t *st, int which)
{
    KN_ASSERT(st != NULL);
    int32_t a = st->root_attr[which];
    return a < 0 ? NULL : STANZA_STR(st, st->attrs[a].value);
}

kn_stanza_kind_t kn_stanza_kind(const kn_stanza_t *st)
{
    KN_ASSERT(st != NULL);
    return st->kind;
}

const char *kn_stanza_to(const kn_stanza_t *st)
{
    return stanza_root_attr(st, ROOT_TO);
}

const char *kn_stanza_from(const kn_stanza_t *st)
{
    return stanza_root_attr(st, ROOT_FROM);
}

const char *kn_stanza_type(const kn_stanza_t *st)
{
    return stanza_root_attr(st, ROOT_TYPE);
}

const char *kn_stanza_id(const kn_stanza_t *st)
{
    return stanza_root_attr(st, ROOT_ID);
}

size_t kn_stanza_count(const kn_stanza_t *st)
{
    KN_ASSERT(st != NULL);
    return st->nelems;
}

const char *kn_stanza_name(const kn_stanza_t *st, int e)
{
    return STANZA_STR(st, stanza_elem(st, e)->name);
}

static const char *stanza_ns_uri(const kn_stanza_t *st, int32_t ns, size_t *len)
{
    if (ns < 0) {
        *len = 0;
        return "";
    }
    *len = st->ns[ns].uri_len;
    return STANZA_STR(st, st->ns[ns].uri);
}

const char *kn_stanza_ns(const kn_stanza_t *st, int e)
{
    size_t len;
    return stanza_ns_uri(st, stanza_elem(st, e)->ns, &len);
}

int kn_stanza_parent(const kn_stanza_t *st, int e)
{
    int32_t p = stanza_elem(st, e)->parent;
    return p < 0 ? -KN_ENOENT : p;
}

int kn_stanza_first_child(const kn_stanza_t *st, int e)
{
    return stanza_elem(st, e)->end > (uint32_t)e + 1 ? e + 1 : -KN_ENOENT;
}

int kn_stanza_next_sibling(const kn_stanza_t *st, int e)
{
    const struct kn_stanza_elem *el = stanza_elem(st, e);
    if (el->parent < 0 || el->end >= st->nelems ||
        st->elems[el->end].parent != el->parent)
        return -KN_ENOENT;
    return (int)el->end;
}

int kn_stanza_child(const kn_stanza_t *st, int e, const char *name,
                    const char *ns)
{
    KN_ASSERT(name != NULL);
    for (int c = kn_stanza_first_child(st, e); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        if (strcmp(kn_stanza_name(st, c), name) == 0 &&
            (ns == NULL || strcmp(kn_stanza_ns(st, c), ns) == 0))
            return c;
    }
    return -KN_ENOENT;
}

const char *kn_stanza_cdata(const kn_stanza_t *st, int e, size_t *len)
{
    const struct kn_stanza_elem *el = stanza_elem(st, e);
    if (len != NULL)
        *len = el->text_len;
    return el->text_len ? STANZA_STR(st, el->text) : "";
}

size_t kn_stanza_text(const kn_stanza_t *st, int e, kn_buf_t *out)
{
    const struct kn_stanza_elem *el = stanza_elem(st, e);
    size_t n = el->text_len;
    kn_buf_append(out, STANZA_STR(st, el->text), el->text_len);
    for (int c = kn_stanza_first_child(st, e); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        kn_buf_append(out, STANZA_STR(st, st->elems[c].tail),
                      st->elems[c].tail_len);
        n += st->elems[c].tail_len;
    }
    return n;
}

/* "xml:lang" -> (KN_NS_XML, "lang"); "to" -> (NULL, "to"). */
static const char *stanza_split_name(const char *name, const char **ns)
{
    KN_ASSERT(name != NULL);
    if (strncmp(name, "xml:", 4) == 0) {
        *ns = KN_NS_XML;
        return name + 4;
    }
    *ns = NULL;
    return name;
}

static int32_t attrs_find(const struct kn_stanza_attr *attrs, uint32_t first,
                          uint32_t n, const struct kn_stanza_ns *nstab,
                          const char *chars, const char *ns, const char *name)
{
    size_t name_len = strlen(name), ns_len = ns ? strlen(ns) : 0;
    for (uint32_t i = first; i < first + n; i++) {
        const struct kn_stanza_attr *a = &attrs[i];
        if (a->name_len != name_len ||
            memcmp(chars + a->name, name, name_len) != 0)
            continue;
        if (a->ns < 0 ? ns_len == 0
                      : (nstab[a->ns].uri_len == ns_len &&
                         memcmp(chars + nstab[a->ns].uri, ns, ns_len) == 0))
            return (int32_t)i;
    }
    return -1;
}

const char *kn_stanza_attr_ns(const kn_stanza_t *st, int e, const char *ns,
                              const char *name, size_t *len)
{
    const struct kn_stanza_elem *el = stanza_elem(st, e);
    int32_t a =
        attrs_find(st->attrs, el->attr, el->nattr, st->ns, st->chars, ns, name);
    if (a < 0)
        return NULL;
    if (len != NULL)
        *len = st->attrs[a].value_len;
    return STANZA_STR(st, st->attrs[a].value);
}

const char *kn_stanza_attr(const kn_stanza_t *st, int e, const char *name,
                           size_t *len)
{
    const char *ns;
    const char *local = stanza_split_name(name, &ns);
    return kn_stanza_attr_ns(st, e, ns, local, len);
}

int kn_stanza_attr_copy(const kn_stanza_t *st, int e, const char *name,
                        char *dst, size_t size)
{
    KN_ASSERT(dst != NULL && size > 0);
    size_t len;
    const char *v = kn_stanza_attr(st, e, name, &len);
    dst[0] = '\0';
    if (v == NULL)
        return -KN_ENOENT;
    if (len >= size || len > INT32_MAX)
        return -KN_ETOOBIG;
    memcpy(dst, v, len + 1);
    return (int)len;
}

size_t kn_stanza_attr_count(const kn_stanza_t *st, int e)
{
    return stanza_elem(st, e)->nattr;
}

void kn_stanza_attr_at(const kn_stanza_t *st, int e, size_t i, const char **ns,
                       const char **name, const char **value)
{
    const struct kn_stanza_elem *el = stanza_elem(st, e);
    KN_ASSERT(i < el->nattr);
    const struct kn_stanza_attr *a = &st->attrs[el->attr + i];
    size_t len;
    if (ns != NULL)
        *ns = stanza_ns_uri(st, a->ns, &len);
    if (name != NULL)
        *name = STANZA_STR(st, a->name);
    if (value != NULL)
        *value = STANZA_STR(st, a->value);
}

/* ---- serialisation --------------------------------------------------------
 * Text escapes CR as well, attributes TAB LF CR too: a parser normalises
 * the literal characters away, so only references survive a round trip. */

static void stanza_escape(kn_buf_t *out, const char *s, size_t n, bool attr)
{
    /* Text escapes the first four, attribute values all eight. */
    static const char from[] = "&<>\r'\"\t\n";
    static const char *const to[] = {"&amp;",  "&lt;",   "&gt;", "&#13;",
                                     "&apos;", "&quot;", "&#9;", "&#10;"};
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *hit = memchr(from, s[i], attr ? 8 : 4);
        if (hit != NULL) {
            kn_buf_append(out, s + start, i - start);
            kn_buf_append_str(out, to[hit - from]);
            start = i + 1;
        }
    }
    kn_buf_append(out, s + start, n - start);
}

static bool is_content_ns(const char *uri, size_t len)
{
    static const char *const content[] = {"", KN_NS_CLIENT, KN_NS_SERVER,
                                          KN_NS_COMPONENT};
    for (size_t i = 0; i < KN_ARRAY_LEN(content); i++) {
        if (strlen(content[i]) == len && memcmp(content[i], uri, len) == 0)
            return true;
    }
    return false;
}

struct ser_ctx {
    const kn_stanza_t *st;
    kn_buf_t *out;
    int32_t remap_ns; /* elements in this ns are written in stream_ns */
    bool remap;
    const char *stream_ns; /* NULL: standalone */
};

/* The namespace element e is written in. */
static const char *ser_ns(const struct ser_ctx *c, int32_t e, size_t *len)
{
    int32_t ns = c->st->elems[e].ns;
    if (c->remap && ns == c->remap_ns) {
        *len = strlen(c->stream_ns);
        return c->stream_ns;
    }
    return stanza_ns_uri(c->st, ns, len);
}

static void ser_attr_prefix(const struct ser_ctx *c, int32_t ns)
{
    const struct kn_stanza_ns *n = &c->st->ns[ns];
    if (n->prefix_len)
        kn_buf_append(c->out, STANZA_STR(c->st, n->prefix), n->prefix_len);
    else
        kn_buf_printf(c->out, "ns%d", (int)ns);
}

static void ser_open(const struct ser_ctx *c, uint32_t i)
{
    const kn_stanza_t *st = c->st;
    const struct kn_stanza_elem *el = &st->elems[i];
    kn_buf_t *out = c->out;
    size_t len, plen = 0;
    const char *uri = ser_ns(c, (int32_t)i, &len);
    const char *puri = c->stream_ns;
    if (el->parent >= 0)
        puri = ser_ns(c, el->parent, &plen);
    else if (puri != NULL)
        plen = strlen(puri);

    kn_buf_append_byte(out, '<');
    kn_buf_append(out, STANZA_STR(st, el->name), el->name_len);
    /* A standalone root in no namespace needs no declaration. */
    if (puri == NULL ? len > 0 : (len != plen || memcmp(uri, puri, len))) {
        kn_buf_append_str(out, " xmlns='");
        stanza_escape(out, uri, len, true);
        kn_buf_append_byte(out, '\'');
    }
    /* One declaration per attribute namespace used on this element. */
    for (uint32_t a = el->attr; a < el->attr + el->nattr; a++) {
        int32_t ns = st->attrs[a].ns;
        if (ns < 0)
            continue;
        const struct kn_stanza_ns *n = &st->ns[ns];
        if (n->uri_len == strlen(KN_NS_XML) &&
            memcmp(STANZA_STR(st, n->uri), KN_NS_XML, n->uri_len) == 0)
            continue;
        bool seen = false;
        for (uint32_t b = el->attr; b < a && !seen; b++)
            seen = st->attrs[b].ns == ns;
        if (seen)
            continue;
        kn_buf_append_str(out, " xmlns:");
        ser_attr_prefix(c, ns);
        kn_buf_append_str(out, "='");
        stanza_escape(out, STANZA_STR(st, n->uri), n->uri_len, true);
        kn_buf_append_byte(out, '\'');
    }
    for (uint32_t a = el->attr; a < el->attr + el->nattr; a++) {
        const struct kn_stanza_attr *at = &st->attrs[a];
        kn_buf_append_byte(out, ' ');
        if (at->ns >= 0) {
            const struct kn_stanza_ns *n = &st->ns[at->ns];
            bool xml =
                n->uri_len == strlen(KN_NS_XML) &&
                memcmp(STANZA_STR(st, n->uri), KN_NS_XML, n->uri_len) == 0;
            if (xml)
                kn_buf_append_str(out, "xml");
            else
                ser_attr_prefix(c, at->ns);
            kn_buf_append_byte(out, ':');
        }
        kn_buf_append(out, STANZA_STR(st, at->name), at->name_len);
        kn_buf_append_str(out, "='");
        stanza_escape(out, STANZA_STR(st, at->value), at->value_len, true);
        kn_buf_append_byte(out, '\'');
    }
    if (el->end == i + 1 && el->text_len == 0) {
        kn_buf_append_str(out, "/>");
        stanza_escape(out, STANZA_STR(st, el->tail), el->tail_len, false);
    } else {
        kn_buf_append_byte(out, '>');
        stanza_escape(out, STANZA_STR(st, el->text), el->text_len, false);
    }
}

static void ser_close(const struct ser_ctx *c, int32_t i)
{
    const struct kn_stanza_elem *el = &c->st->elems[i];
    kn_buf_append_str(c->out, "</");
    kn_buf_append(c->out, STANZA_STR(c->st, el->name), el->name_len);
    kn_buf_append_byte(c->out, '>');
    stanza_escape(c->out, STANZA_STR(c->st, el->tail), el->tail_len, false);
}

void kn_stanza_serialize(const kn_stanza_t *st, kn_buf_t *out,
                         const char *stream_ns)
{
    KN_ASSERT(st != NULL && out != NULL);
    struct ser_ctx c = {st, out, st->elems[0].ns, false, stream_ns};
    if (stream_ns != NULL) {
        size_t len;
        const char *uri = stanza_ns_uri(st, c.remap_ns, &len);
        c.remap = is_content_ns(uri, len);
    }
    /* The open elements are exactly `top` and its ancestors, so no stack
     * is needed: before opening i, close everything that is not its
     * parent. */
    int32_t top = -1;
    for (uint32_t i = 0; i < st->nelems; i++) {
        const struct kn_stanza_elem *el = &st->elems[i];
        for (; top >= 0 && top != el->parent; top = st->elems[top].parent)
            ser_close(&c, top);
        ser_open(&c, i);
        if (!(el->end == i + 1 && el->text_len == 0))
            top = (int32_t)i;
    }
    for (; top >= 0; top = st->elems[top].parent)
        ser_close(&c, top);
}

/* ---- builder ---------------------------------------------------------------
 */

#define GROW(arr, n, cap)                                                      \
    do {                                                                       \
        if ((n) == (cap)) {                                                    \
            (cap) = (cap) ? (cap)*2 : 8;                                       \
            (arr) = kn_realloc((arr), (cap) * sizeof(*(arr)));                 \
        }                                                                      \
    } while (0)

kn_stanza_builder_t *kn_stanza_builder_new(void)
{
    kn_stanza_builder_t *b = kn_calloc(1, sizeof(*b));
    b->cur = b->prev = -1;
    return b;
}

void kn_stanza_builder_free(kn_stanza_builder_t **bp)
{
    KN_ASSERT(bp != NULL);
    kn_stanza_builder_t *b = *bp;
    if (b == NULL)
        return;
    free(b->elems);
    free(b->attrs);
    free(b->ns);
    kn_buf_free(&b->chars);
    kn_free(bp);
}

void kn_stanza_builder_reset(kn_stanza_builder_t *b)
{
    KN_ASSERT(b != NULL);
    b->nelems = b->nattrs = b->nns = 0;
    kn_buf_reset(&b->chars);
    b->cur = b->prev = -1;
    b->run_open = false;
}

static void builder_seal(kn_stanza_builder_t *b)
{
    if (b->run_open) {
        kn_buf_append_byte(&b->chars, 0);
        b->run_open = false;
    }
}

/* Store s[0..n) plus a NUL; returns its offset. */
static uint32_t builder_put(kn_stanza_builder_t *b, const char *s, size_t n)
{
    builder_seal(b);
    KN_ASSERT(b->chars.len + n + 1 < UINT32_MAX);
    uint32_t off = (uint32_t)b->chars.len;
    kn_buf_append(&b->chars, s, n);
    kn_buf_append_byte(&b->chars, 0);
    return off;
}

static bool builder_eq(const kn_stanza_builder_t *b, uint32_t off, uint32_t len,
                       const char *s, size_t n)
{
    return len == n && memcmp(b->chars.data + off, s, n) == 0;
}

static int32_t builder_ns(kn_stanza_builder_t *b, const char *uri,
                          size_t uri_len, const char *prefix, size_t prefix_len)
{
    if (uri == NULL || uri_len == 0)
        return -1;
    if (prefix == NULL) {
        prefix = "";
        prefix_len = 0;
    }
    for (size_t i = 0; i < b->nns; i++) {
        const struct kn_stanza_ns *n = &b->ns[i];
        if (builder_eq(b, n->uri, n->uri_len, uri, uri_len) &&
            builder_eq(b, n->prefix, n->prefix_len, prefix, prefix_len))
            return (int32_t)i;
    }
    GROW(b->ns, b->nns, b->ns_cap);
    struct kn_stanza_ns n;
    n.uri = builder_put(b, uri, uri_len);
    n.uri_len = (uint32_t)uri_len;
    n.prefix = builder_put(b, prefix, prefix_len);
    n.prefix_len = (uint32_t)prefix_len;
    b->ns[b->nns] = n;
    return (int32_t)b->nns++;
}

int kn_stanza_builder_current(const kn_stanza_builder_t *b)
{
    KN_ASSERT(b != NULL);
    return b->cur < 0 ? -KN_ENOENT : b->cur;
}

void kn_stanza_builder_start_n(kn_stanza_builder_t *b, const char *name,
                               size_t name_len, const char *ns, size_t ns_len)
{
    KN_ASSERT(b != NULL && name != NULL && name_len > 0);
    KN_ASSERT(b->cur >= 0 || b->nelems == 0); /* a single root */
    KN_ASSERT(b->nelems < INT32_MAX);
    struct kn_stanza_elem el = {0};
    el.ns = ns != NULL ? builder_ns(b, ns, ns_len, NULL, 0)
                       : (b->cur >= 0 ? b->elems[b->cur].ns : -1);
    el.name = builder_put(b, name, name_len);
    el.name_len = (uint32_t)name_len;
    el.attr = (uint32_t)b->nattrs;
    el.parent = b->cur;
    GROW(b->elems, b->nelems, b->elems_cap);
    b->elems[b->nelems] = el;
    b->cur = (int32_t)b->nelems++;
    b->prev = -1;
}

void kn_stanza_builder_start(kn_stanza_builder_t *b, const char *name,
                             const char *ns)
{
    KN_ASSERT(name != NULL);
    kn_stanza_builder_start_n(b, name, strlen(name), ns,
                              ns != NULL ? strlen(ns) : 0);
}

void kn_stanza_builder_end(kn_stanza_builder_t *b)
{
    KN_ASSERT(b != NULL && b->cur >= 0);
    builder_seal(b);
    b->elems[b->cur].end = (uint32_t)b->nelems;
    b->prev = b->cur;
    b->cur = b->elems[b->cur].parent;
}

void kn_stanza_builder_text(kn_stanza_builder_t *b, const char *text,
                            size_t len)
{
    KN_ASSERT(b != NULL && b->cur >= 0 && (text != NULL || len == 0));
    if (len == 0)
        return;
    struct kn_stanza_elem *el = &b->elems[b->prev >= 0 ? b->prev : b->cur];
    uint32_t *off = b->prev >= 0 ? &el->tail : &el->text;
    uint32_t *n = b->prev >= 0 ? &el->tail_len : &el->text_len;
    KN_ASSERT(b->chars.len + *n + len + 1 < UINT32_MAX);
    if (!(b->run_open && *n > 0 && *off + *n == b->chars.len)) {
        builder_seal(b);
        uint32_t old = *off;
        *off = (uint32_t)b->chars.len;
        kn_buf_reserve(&b->chars, *n);
        kn_buf_append(&b->chars, b->chars.data + old, *n);
        b->run_open = true;
    }
    kn_buf_append(&b->chars, text, len);
    *n += (uint32_t)len;
}

/* Set, replace or (value NULL) remove an attribute of element e. */
static void builder_attr(kn_stanza_builder_t *b, int32_t e, const char *ns,
                         size_t ns_len, const char *prefix, size_t prefix_len,
                         const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
    KN_ASSERT(b != NULL && e >= 0 && (size_t)e < b->nelems);
    KN_ASSERT(name != NULL && name_len > 0 && b->nattrs < INT32_MAX);
    struct kn_stanza_elem *el = &b->elems[e];
    int32_t nsi = builder_ns(b, ns, ns_len, prefix, prefix_len);
    int32_t found = -1;
    for (uint32_t i = el->attr; i < el->attr + el->nattr && found < 0; i++) {
        const struct kn_stanza_attr *a = &b->attrs[i];
        bool same_ns = a->ns < 0 ? nsi < 0
                                 : nsi >= 0 && builder_eq(b, b->ns[a->ns].uri,
                                                          b->ns[a->ns].uri_len,
                                                          ns, ns_len);
        if (same_ns && builder_eq(b, a->name, a->name_len, name, name_len))
            found = (int32_t)i;
    }
    if (value == NULL) {
        if (found < 0)
            return;
        memmove(&b->attrs[found], &b->attrs[found + 1],
                (b->nattrs - (size_t)found - 1) * sizeof(*b->attrs));
        b->nattrs--;
        el->nattr--;
        for (size_t k = (size_t)e + 1; k < b->nelems; k++)
            b->elems[k].attr--;
        return;
    }
    struct kn_stanza_attr a = {0};
    a.value = builder_put(b, value, value_len);
    a.value_len = (uint32_t)value_len;
    if (found >= 0) {
        b->attrs[found].value = a.value;
        b->attrs[found].value_len = a.value_len;
        return;
    }
    a.name = builder_put(b, name, name_len);
    a.name_len = (uint32_t)name_len;
    a.ns = nsi;
    GROW(b->attrs, b->nattrs, b->attrs_cap);
    uint32_t pos = el->attr + el->nattr;
    memmove(&b->attrs[pos + 1], &b->attrs[pos],
            (b->nattrs - pos) * sizeof(*b->attrs));
    b->attrs[pos] = a;
    b->nattrs++;
    el->nattr++;
    for (size_t k = (size_t)e + 1; k < b->nelems; k++)
        b->elems[k].attr++;
}

void kn_stanza_builder_attr_n(kn_stanza_builder_t *b, const char *ns,
                              size_t ns_len, const char *prefix,
                              size_t prefix_len, const char *name,
                              size_t name_len, const char *value,
                              size_t value_len)
{
    KN_ASSERT(b != NULL && b->cur >= 0 && value != NULL);
    builder_attr(b, b->cur, ns, ns_len, prefix, prefix_len, name, name_len,
                 value, value_len);
}

void kn_stanza_builder_set_attr(kn_stanza_builder_t *b, int e, const char *name,
                                const char *value)
{
    const char *ns;
    const char *local = stanza_split_name(name, &ns);
    const char *prefix = ns != NULL ? "xml" : NULL;
    builder_attr(b, e, ns, ns != NULL ? strlen(ns) : 0, prefix,
                 prefix != NULL ? strlen(prefix) : 0, local, strlen(local),
                 value, value != NULL ? strlen(value) : 0);
}

void kn_stanza_builder_attr(kn_stanza_builder_t *b, const char *name,
                            const char *value)
{
    KN_ASSERT(b != NULL && b->cur >= 0 && value != NULL);
    kn_stanza_builder_set_attr(b, b->cur, name, value);
}

void kn_stanza_builder_copy(kn_stanza_builder_t *b, const kn_stanza_t *st,
                            int e)
{
    const struct kn_stanza_elem *root = stanza_elem(st, e);
    int32_t top = -1;
    for (uint32_t i = (uint32_t)e; i < root->end; i++) {
        const struct kn_stanza_elem *el = &st->elems[i];
        for (; top >= 0 && top != el->parent; top = st->elems[top].parent) {
            kn_stanza_builder_end(b);
            kn_stanza_builder_text(b, STANZA_STR(st, st->elems[top].tail),
                                   st->elems[top].tail_len);
        }
        size_t ns_len;
        const char *ns = stanza_ns_uri(st, el->ns, &ns_len);
        kn_stanza_builder_start_n(b, STANZA_STR(st, el->name), el->name_len, ns,
                                  ns_len);
        for (uint32_t a = el->attr; a < el->attr + el->nattr; a++) {
            const struct kn_stanza_attr *at = &st->attrs[a];
            const struct kn_stanza_ns *n = at->ns >= 0 ? &st->ns[at->ns] : NULL;
            kn_stanza_builder_attr_n(
                b, n ? STANZA_STR(st, n->uri) : NULL, n ? n->uri_len : 0,
                n ? STANZA_STR(st, n->prefix) : NULL, n ? n->prefix_len : 0,
                STANZA_STR(st, at->name), at->name_len,
                STANZA_STR(st, at->value), at->value_len);
        }
        kn_stanza_builder_text(b, STANZA_STR(st, el->text), el->text_len);
        top = (int32_t)i;
    }
    /* Close the copied subtree; the tail of e itself is not part of it. */
    for (; top >= 0 && top != root->parent; top = st->elems[top].parent) {
        kn_stanza_builder_end(b);
        if (top != e)
            kn_stanza_builder_text(b, STANZA_STR(st, st->elems[top].tail),
                                   st->elems[top].tail_len);
    }
}

void kn_stanza_builder_iq_result(kn_stanza_builder_t *b, const kn_stanza_t *req)
{
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "result");
    if (kn_stanza_id(req))
        kn_stanza_builder_attr(b, "id", kn_stanza_id(req));
    if (kn_stanza_to(req))
        kn_stanza_builder_attr(b, "from", kn_stanza_to(req));
    if (kn_stanza_from(req))
        kn_stanza_builder_attr(b, "to", kn_stanza_from(req));
}

kn_stanza_builder_t *kn_stanza_dup(const kn_stanza_t *st)
{
    KN_ASSERT(st != NULL);
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    b->nelems = b->elems_cap = st->nelems;
    b->nattrs = b->attrs_cap = st->nattrs;
    b->nns = b->ns_cap = st->nns;
    b->elems = kn_memdup(st->elems, st->nelems * sizeof(*st->elems));
    b->attrs = kn_memdup(st->attrs, st->nattrs * sizeof(*st->attrs));
    b->ns = kn_memdup(st->ns, st->nns * sizeof(*st->ns));
    kn_buf_append(&b->chars, st->chars, st->nchars);
    b->cur = 0;
    for (uint32_t i = 1; i < st->nelems; i++) {
        if (st->elems[i].parent == 0)
            b->prev = (int32_t)i;
    }
    return b;
}

static void stanza_index_root(kn_stanza_t *st)
{
    static const char *const names[ROOT_NATTRS] = {"to", "from", "type", "id"};
    const struct kn_stanza_elem *root = &st->elems[0];
    for (int i = 0; i < ROOT_NATTRS; i++)
        st->root_attr[i] = attrs_find(st->attrs, root->attr, root->nattr,
                                      st->ns, st->chars, NULL, names[i]);
    size_t len;
    const char *uri = stanza_ns_uri(st, root->ns, &len);
    const char *name = STANZA_STR(st, root->name);
    st->kind = KN_STANZA_OTHER;
    if (!is_content_ns(uri, len))
        return;
    if (strcmp(name, "message") == 0)
        st->kind = KN_STANZA_MESSAGE;
    else if (strcmp(name, "presence") == 0)
        st->kind = KN_STANZA_PRESENCE;
    else if (strcmp(name, "iq") == 0)
        st->kind = KN_STANZA_IQ;
}

kn_stanza_t *kn_stanza_builder_finish(kn_stanza_builder_t *b)
{
    KN_ASSERT(b != NULL && b->nelems > 0);
    while (b->cur >= 0)
        kn_stanza_builder_end(b);
    builder_seal(b);
    size_t esz = b->nelems * sizeof(*b->elems);
    size_t asz = b->nattrs * sizeof(*b->attrs);
    size_t nsz = b->nns * sizeof(*b->ns);
    kn_stanza_t *st =
        kn_malloc(sizeof(*st) + esz + asz + nsz + b->chars.len + 1);
    st->refs = 1;
    st->nelems = (uint32_t)b->nelems;
    st->nattrs = (uint32_t)b->nattrs;
    st->nns = (uint32_t)b->nns;
    st->nchars = (uint32_t)b->chars.len;
    st->elems = (struct kn_stanza_elem *)(st + 1);
    st->attrs = (struct kn_stanza_attr *)((char *)st->elems + esz);
    st->ns = (struct kn_stanza_ns *)((char *)st->attrs + asz);
    st->chars = (char *)st->ns + nsz;
    memcpy(st->elems, b->elems, esz);
    if (asz)
        memcpy(st->attrs, b->attrs, asz);
    if (nsz)
        memcpy(st->ns, b->ns, nsz);
    if (b->chars.len)
        memcpy(st->chars, b->chars.data, b->chars.len);
    st->chars[st->nchars] = '\0';
    stanza_index_root(st);
    kn_stanza_builder_reset(b);
    return st;
}

/* ---- derivation ------------------------------------------------------------
 */

static kn_stanza_t *stanza_derive(const kn_stanza_t *st, int e,
                                  const char *name, const char *value)
{
    KN_ASSERT(st != NULL && e >= 0 && (uint32_t)e < st->nelems);
    kn_stanza_builder_t *b = kn_stanza_dup(st);
    kn_stanza_builder_set_attr(b, e, name, value);
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    return out;
}

kn_stanza_t *kn_stanza_with_attr(const kn_stanza_t *st, int e, const char *name,
                                 const char *value)
{
    KN_ASSERT(value != NULL);
    return stanza_derive(st, e, name, value);
}

kn_stanza_t *kn_stanza_without_attr(const kn_stanza_t *st, int e,
                                    const char *name)
{
    return stanza_derive(st, e, name, NULL);
}
