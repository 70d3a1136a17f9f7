/*
 * kn_stanza.h - immutable, refcounted XML stanzas and the builder that makes
 * them.
 *
 * A stanza is one allocation: flat arrays of elements, attributes and
 * namespaces holding offsets into one character buffer (jabberd2's NAD).
 * Elements are numbered in document order; 0 is the root. An element index
 * is an int; functions that look one up return a negative value (-KN_ENOENT)
 * when there is none. Every string handed out (names, namespaces, attribute
 * values, character data) is NUL-terminated and lives as long as the stanza.
 *
 * Reference counts are plain integers: a stanza belongs to one thread (one
 * event loop per process). Share it within the loop with kn_stanza_ref().
 *
 * Attribute names written "xml:NAME" (xml:lang) mean NAME in the XML
 * namespace, in every function below that takes an attribute name.
 */
#ifndef KN_STANZA_H
#define KN_STANZA_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_buf.h"

#define KN_NS_CLIENT    "jabber:client"
#define KN_NS_SERVER    "jabber:server"
#define KN_NS_COMPONENT "jabber:component:accept"
#define KN_NS_STREAMS   "http://etherx.jabber.org/streams"
#define KN_NS_XML       "http://www.w3.org/XML/1998/namespace"

typedef struct kn_stanza kn_stanza_t;
typedef struct kn_stanza_builder kn_stanza_builder_t;

typedef enum kn_stanza_kind {
    KN_STANZA_OTHER = 0, /* anything else: stream features, sasl, tls ... */
    KN_STANZA_MESSAGE,
    KN_STANZA_PRESENCE,
    KN_STANZA_IQ,
} kn_stanza_kind_t;

/* ---- lifetime ---------------------------------------------------------- */

/* Take one more reference to st; returns st. */
kn_stanza_t *kn_stanza_ref(kn_stanza_t *st);
/* Drop the reference *stp holds and set *stp = NULL. Idempotent: *stp may
 * already be NULL. Frees the stanza with its last reference. */
void kn_stanza_unref(kn_stanza_t **stp);

/* ---- root shortcuts (computed once, when the stanza is built) ----------- */

/* message / presence / iq when the root has that name and its namespace is
 * none, jabber:client, jabber:server or jabber:component:accept. */
kn_stanza_kind_t kn_stanza_kind(const kn_stanza_t *st);
/* The root's to / from / type / id attribute, or NULL when absent. */
const char *kn_stanza_to(const kn_stanza_t *st);
const char *kn_stanza_from(const kn_stanza_t *st);
const char *kn_stanza_type(const kn_stanza_t *st);
const char *kn_stanza_id(const kn_stanza_t *st);

/* ---- elements ----------------------------------------------------------- */

/* Number of elements (at least 1). */
size_t kn_stanza_count(const kn_stanza_t *st);
/* Local name and namespace URI of element e ("" when in no namespace).
 * e must be a valid index (asserted). */
const char *kn_stanza_name(const kn_stanza_t *st, int e);
const char *kn_stanza_ns(const kn_stanza_t *st, int e);
/* Parent of e, first child of e, next sibling of e; -KN_ENOENT if none. */
int kn_stanza_parent(const kn_stanza_t *st, int e);
int kn_stanza_first_child(const kn_stanza_t *st, int e);
int kn_stanza_next_sibling(const kn_stanza_t *st, int e);
/* First child of e with this local name and namespace (ns NULL: any
 * namespace); -KN_ENOENT if none. */
int kn_stanza_child(const kn_stanza_t *st, int e, const char *name,
                    const char *ns);
/* Character data of e that comes before its first child element (for a
 * leaf element: all of its text). Never NULL; *len may be NULL. */
const char *kn_stanza_cdata(const kn_stanza_t *st, int e, size_t *len);
/* Append all character data that is a direct child of e (concatenated,
 * child elements skipped) to out; returns the number of bytes appended. */
size_t kn_stanza_text(const kn_stanza_t *st, int e, kn_buf_t *out);

/* ---- attributes --------------------------------------------------------- */

/* Value of the attribute NAME (no namespace; "xml:lang" for the XML
 * namespace) on element e, or NULL if absent. *len (may be NULL) gets the
 * length. Borrowed: valid while the caller holds st. */
const char *kn_stanza_attr(const kn_stanza_t *st, int e, const char *name,
                           size_t *len);
/* Same with an explicit namespace URI (NULL or "" for none). */
const char *kn_stanza_attr_ns(const kn_stanza_t *st, int e, const char *ns,
                              const char *name, size_t *len);
/* Copy the value of NAME on e into dst[size] with a terminating NUL.
 * Returns its length, -KN_ENOENT if absent, -KN_ETOOBIG if it does not fit
 * (dst then holds the empty string). */
int kn_stanza_attr_copy(const kn_stanza_t *st, int e, const char *name,
                        char *dst, size_t size);
/* Number of attributes of e, and the i-th one (ns "" when none; any of the
 * out pointers may be NULL). */
size_t kn_stanza_attr_count(const kn_stanza_t *st, int e);
void kn_stanza_attr_at(const kn_stanza_t *st, int e, size_t i, const char **ns,
                       const char **name, const char **value);

/* ---- derivation (the original is never modified) ------------------------ */

/* A new stanza (refcount 1, caller owns) equal to st except that attribute
 * NAME on element e is set to value (replaced in place, or appended). */
kn_stanza_t *kn_stanza_with_attr(const kn_stanza_t *st, int e, const char *name,
                                 const char *value);
/* A new stanza (caller owns) equal to st without attribute NAME on e (a copy
 * of st if e has no such attribute). */
kn_stanza_t *kn_stanza_without_attr(const kn_stanza_t *st, int e,
                                    const char *name);

/* ---- serialisation ------------------------------------------------------ */

/* Append st as XML to out. Element namespaces are written as default
 * namespace declarations (xmlns='...') wherever an element's namespace
 * differs from its parent's; namespaced attributes keep their prefix
 * (xml:lang needs no declaration). Text escapes & < > and CR; attribute
 * values are single-quoted and escape & < > ' " TAB LF CR, so parsing the
 * output gives back the same tree.
 *
 * stream_ns is the default namespace in scope where the stanza is written:
 * pass NULL for a standalone document (the root carries its xmlns), or the
 * stream's content namespace (jabber:client ...). With a stream_ns, a root
 * in none or a content namespace (jabber:client, jabber:server,
 * jabber:component:accept) is written in stream_ns, as are its descendants
 * in the root's namespace, without a declaration: a jabber:client stanza
 * goes out on a component stream as jabber:component:accept (RFC 6120
 * 4.8.3). */
void kn_stanza_serialize(const kn_stanza_t *st, kn_buf_t *out,
                         const char *stream_ns);

/* ---- builder ------------------------------------------------------------ */

/* A fresh, empty builder; caller frees it with kn_stanza_builder_free(). */
kn_stanza_builder_t *kn_stanza_builder_new(void);
/* Free *bp and set it to NULL; idempotent. */
void kn_stanza_builder_free(kn_stanza_builder_t **bp);
/* Forget everything built so far; keeps the memory for reuse. */
void kn_stanza_builder_reset(kn_stanza_builder_t *b);
/* Reset b and start the result of the iq request req: <iq type='result'>
 * with req's id, from = req's to and to = req's from (each only when
 * present). The root is left open for a payload; finish it as usual. */
void kn_stanza_builder_iq_result(kn_stanza_builder_t *b,
                                 const kn_stanza_t *req);
/* A builder holding a copy of st with its root reopened: children started
 * now are appended as the root's last children, attributes may be set on
 * any element. Caller owns the builder. */
kn_stanza_builder_t *kn_stanza_dup(const kn_stanza_t *st);

/* Open element name in namespace ns (NULL: the parent's namespace, none for
 * the root; "": no namespace) as a child of the open element. Only one
 * root: starting a second top-level element is asserted against. */
void kn_stanza_builder_start(kn_stanza_builder_t *b, const char *name,
                             const char *ns);
/* Set attribute name (no namespace, or "xml:NAME") to value on the open
 * element, replacing a previous value. */
void kn_stanza_builder_attr(kn_stanza_builder_t *b, const char *name,
                            const char *value);
/* Append character data (unescaped, len bytes) to the open element. */
void kn_stanza_builder_text(kn_stanza_builder_t *b, const char *text,
                            size_t len);
/* Close the open element. */
void kn_stanza_builder_end(kn_stanza_builder_t *b);
/* Index of the element start/attr/text currently apply to, or -KN_ENOENT. */
int kn_stanza_builder_current(const kn_stanza_builder_t *b);
/* Set (or, with value NULL, remove) attribute NAME on any element e built
 * so far. */
void kn_stanza_builder_set_attr(kn_stanza_builder_t *b, int e, const char *name,
                                const char *value);
/* Append a copy of element e of st, with its subtree, as a child of the
 * open element (or as the root when nothing is built yet). */
void kn_stanza_builder_copy(kn_stanza_builder_t *b, const kn_stanza_t *st,
                            int e);
/* Close every open element and return the stanza (refcount 1, caller owns).
 * At least one element must have been started. The builder is reset and
 * can be reused. */
kn_stanza_t *kn_stanza_builder_finish(kn_stanza_builder_t *b);

/* Length-counted forms for parsers: strings need not be NUL-terminated.
 * start_n: ns NULL means the parent's namespace. attr_n: ns/prefix may be
 * NULL (no namespace); an empty prefix gets a generated one on output. */
void kn_stanza_builder_start_n(kn_stanza_builder_t *b, const char *name,
                               size_t name_len, const char *ns, size_t ns_len);
void kn_stanza_builder_attr_n(kn_stanza_builder_t *b, const char *ns,
                              size_t ns_len, const char *prefix,
                              size_t prefix_len, const char *name,
                              size_t name_len, const char *value,
                              size_t value_len);

#endif
