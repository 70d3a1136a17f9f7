/*
 * fuzz_stanza.c - libFuzzer entry point for the stanza tree and its
 * serialiser: one stanza as carried between processes
 * (kn_xml_parse_stanza), then every way Kiln rebuilds or rewrites one.
 *
 * Input: byte 0 chooses the content namespace the stanza is parsed in
 * (bits 0-1: client, component, server, client) and an attribute to set
 * (bit 2); the rest is the stanza.
 *
 * Checked for every stanza that parses:
 *   - serialise -> parse -> serialise gives the same bytes, and the same
 *     tree (names, namespaces, attributes, text);
 *   - a builder copy (kn_stanza_builder_copy) and a dup reopened and
 *     finished (kn_stanza_dup) serialise to the same bytes;
 *   - written into a client, component or server stream (stream_ns) and
 *     parsed there, the tree is the same but for the content namespace
 *     (RFC 6120 4.8.3: a jabber:client stanza goes out on a component
 *     stream as jabber:component:accept);
 *   - with_attr / without_attr / error replies / the envelope fields
 *     (kn_env_from_stanza) never fail on it, and what they make parses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_env.h"
#include "kn_env_stanza.h"
#include "kn_err.h"
#include "kn_xml.h"
#include "kn_xmpp_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fz_ns[] = {KN_NS_CLIENT, KN_NS_COMPONENT, KN_NS_SERVER,
                                    KN_NS_CLIENT};

static bool fz_is_content(const char *ns)
{
    return *ns == '\0' || strcmp(ns, KN_NS_CLIENT) == 0 ||
           strcmp(ns, KN_NS_SERVER) == 0 || strcmp(ns, KN_NS_COMPONENT) == 0;
}

/* Element e of a as it should read after being written into a stream
 * whose content namespace is stream_ns (NULL: standalone, unchanged). */
static const char *fz_mapped_ns(const kn_stanza_t *a, int e,
                                const char *stream_ns)
{
    const char *ns = kn_stanza_ns(a, e);
    const char *root = kn_stanza_ns(a, 0);
    if (stream_ns != NULL && fz_is_content(root) && strcmp(ns, root) == 0)
        return stream_ns;
    return ns;
}

/* The same tree, but for namespaces mapped as fz_mapped_ns says. */
static void fz_same_tree(const kn_stanza_t *a, const kn_stanza_t *b,
                         const char *stream_ns)
{
    size_t n = kn_stanza_count(a);
    if (kn_stanza_count(b) != n)
        abort();
    kn_buf_t ta = KN_BUF_INIT, tb = KN_BUF_INIT;
    for (int e = 0; e < (int)n; e++) {
        if (strcmp(kn_stanza_name(a, e), kn_stanza_name(b, e)) != 0 ||
            strcmp(fz_mapped_ns(a, e, stream_ns), kn_stanza_ns(b, e)) != 0 ||
            kn_stanza_parent(a, e) != kn_stanza_parent(b, e))
            abort();
        size_t na = kn_stanza_attr_count(a, e);
        if (kn_stanza_attr_count(b, e) != na)
            abort();
        for (size_t i = 0; i < na; i++) {
            const char *ans, *an, *av;
            kn_stanza_attr_at(a, e, i, &ans, &an, &av);
            size_t blen = 0;
            const char *bv = kn_stanza_attr_ns(b, e, ans, an, &blen);
            if (bv == NULL || blen != strlen(av) || memcmp(av, bv, blen) != 0)
                abort();
        }
        kn_buf_reset(&ta);
        kn_buf_reset(&tb);
        kn_stanza_text(a, e, &ta);
        kn_stanza_text(b, e, &tb);
        if (ta.len != tb.len || (ta.len && memcmp(ta.data, tb.data, ta.len)))
            abort();
    }
    kn_buf_free(&ta);
    kn_buf_free(&tb);
}

/* Serialise st into a stream of content namespace stream_ns (NULL:
 * standalone), parse it back there, compare. */
static void fz_round_trip(const kn_stanza_t *st, const char *stream_ns)
{
    kn_buf_t a = KN_BUF_INIT, b = KN_BUF_INIT;
    kn_stanza_serialize(st, &a, stream_ns);
    kn_stanza_t *back = NULL;
    int rc = kn_xml_parse_stanza(a.data, a.len, stream_ns, &back);
    if (rc == -KN_ETOOBIG) /* escaping can push it over the limit */
        goto out;
    if (rc != 0)
        abort(); /* we wrote something we cannot read */
    /* standalone, a root in no namespace reads back as jabber:client,
     * kn_xml_parse_stanza's default, and then carries its xmlns */
    bool nons = stream_ns == NULL && *kn_stanza_ns(st, 0) == '\0';
    fz_same_tree(st, back, nons ? KN_NS_CLIENT : stream_ns);
    kn_stanza_serialize(back, &b, stream_ns);
    if (!nons && (a.len != b.len || memcmp(a.data, b.data, a.len) != 0))
        abort();
out:
    kn_stanza_unref(&back);
    kn_buf_free(&a);
    kn_buf_free(&b);
}

static void fz_same_bytes(const kn_stanza_t *a, const kn_stanza_t *b)
{
    kn_buf_t x = KN_BUF_INIT, y = KN_BUF_INIT;
    kn_stanza_serialize(a, &x, NULL);
    kn_stanza_serialize(b, &y, NULL);
    if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0)
        abort();
    kn_buf_free(&x);
    kn_buf_free(&y);
}

/* What a derivation made must at least parse again. */
static void fz_parses(const kn_stanza_t *st)
{
    kn_buf_t x = KN_BUF_INIT;
    kn_stanza_serialize(st, &x, NULL);
    kn_stanza_t *back = NULL;
    int rc = kn_xml_parse_stanza(x.data, x.len, NULL, &back);
    if (rc != 0 && rc != -KN_ETOOBIG)
        abort();
    kn_stanza_unref(&back);
    kn_buf_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(data + 1, size - 1, fz_ns[mode & 3], &st) != 0)
        return 0;

    fz_round_trip(st, NULL);
    fz_round_trip(st, KN_NS_CLIENT);
    fz_round_trip(st, KN_NS_COMPONENT);
    fz_round_trip(st, KN_NS_SERVER);

    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_copy(b, st, 0);
    kn_stanza_t *copy = kn_stanza_builder_finish(b);
    fz_same_bytes(st, copy);
    kn_stanza_builder_free(&b);

    b = kn_stanza_dup(st);
    kn_stanza_t *dup = kn_stanza_builder_finish(b);
    fz_same_bytes(st, dup);
    kn_stanza_builder_free(&b);
    b = kn_stanza_dup(st);
    kn_stanza_builder_start(b, "x", "urn:fuzz");
    kn_stanza_builder_attr(b, "a", "'\"<&>\t\r\n");
    kn_stanza_builder_text(b, "]]>&<\r\n", 7);
    kn_stanza_builder_end(b);
    kn_stanza_builder_set_attr(b, 0, "id", "i&'d");
    kn_stanza_t *grown = kn_stanza_builder_finish(b);
    fz_round_trip(grown, NULL);
    fz_round_trip(grown, KN_NS_CLIENT);
    kn_stanza_builder_free(&b);

    const char *name = (mode & 4) ? "to" : "from";
    kn_stanza_t *w = kn_stanza_with_attr(st, 0, name, "a@b/c'\"");
    kn_stanza_t *wo = kn_stanza_without_attr(w, 0, "to");
    fz_parses(w);
    fz_parses(wo);
    for (int c = 0; c < 3; c++) {
        static const kn_stanza_err_t conds[] = {KN_STE_SERVICE_UNAVAILABLE,
                                                KN_STE_BAD_REQUEST,
                                                KN_STE_POLICY_VIOLATION};
        kn_stanza_t *err = kn_stanza_error_reply(st, conds[c], "t<&>");
        if (err != NULL)
            fz_parses(err);
        kn_stanza_unref(&err);
    }
    kn_env_t e = {0};
    if (kn_env_from_stanza(&e, st) == 0) {
        /* what a daemon would send must encode */
        kn_buf_t f = KN_BUF_INIT;
        kn_env_t d;
        e.kind = KN_ENV_STANZA;
        if (kn_env_encode(&e, &f) == 0 &&
            (kn_env_decode(f.data, f.len, &d) != 0 || d.type != e.type ||
             d.stanza != e.stanza))
            abort();
        kn_buf_free(&f);
    }

    kn_stanza_unref(&w);
    kn_stanza_unref(&wo);
    kn_stanza_unref(&grown);
    kn_stanza_unref(&dup);
    kn_stanza_unref(&copy);
    kn_stanza_unref(&st);
    return 0;
}
