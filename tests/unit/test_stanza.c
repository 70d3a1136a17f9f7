/*
 * test_stanza.c - the flat stanza: builder, accessors, serialisation and
 * escaping, derivation without mutation, dup, error bounces and the
 * stream/stanza error tables.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_stanza.h"
#include "kn_xmpp_err.h"

/* Serialise st into a static-ish buffer owned by the caller's kn_buf_t. */
static const char *ser(kn_buf_t *b, const kn_stanza_t *st, const char *ns)
{
    kn_buf_reset(b);
    kn_stanza_serialize(st, b, ns);
    return b->data;
}

/* The iq error of the brief, built by hand. */
static kn_stanza_t *build_iq_error(void)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "error");
    kn_stanza_builder_attr(b, "id", "q1");
    kn_stanza_builder_attr(b, "to", "juliet@example.com/balcony");
    kn_stanza_builder_attr(b, "from", "example.com");
    kn_stanza_builder_start(b, "error", NULL);
    kn_stanza_builder_attr(b, "type", "cancel");
    kn_stanza_builder_start(b, "service-unavailable", KN_NS_STANZA_ERRORS);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    ck_assert_ptr_null(b);
    return st;
}

START_TEST(builder_and_accessors)
{
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_t *st = build_iq_error();
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT),
                     "<iq type='error' id='q1' to='juliet@example.com/"
                     "balcony' from='example.com'><error type='cancel'>"
                     "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                     "xmpp-stanzas'/></error></iq>");
    ck_assert_str_eq(ser(&out, st, NULL),
                     "<iq xmlns='jabber:client' type='error' id='q1' "
                     "to='juliet@example.com/balcony' from='example.com'>"
                     "<error type='cancel'><service-unavailable "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                     "</iq>");
    ck_assert_int_eq(kn_stanza_kind(st), KN_STANZA_IQ);
    ck_assert_str_eq(kn_stanza_type(st), "error");
    ck_assert_str_eq(kn_stanza_id(st), "q1");
    ck_assert_str_eq(kn_stanza_to(st), "juliet@example.com/balcony");
    ck_assert_str_eq(kn_stanza_from(st), "example.com");
    ck_assert_uint_eq(kn_stanza_count(st), 3);
    ck_assert_str_eq(kn_stanza_name(st, 0), "iq");
    ck_assert_str_eq(kn_stanza_ns(st, 0), KN_NS_CLIENT);

    int err = kn_stanza_child(st, 0, "error", KN_NS_CLIENT);
    ck_assert_int_eq(err, 1);
    ck_assert_str_eq(kn_stanza_ns(st, err), KN_NS_CLIENT); /* inherited */
    ck_assert_int_lt(kn_stanza_child(st, 0, "error", KN_NS_STANZA_ERRORS), 0);
    ck_assert_int_lt(kn_stanza_child(st, 0, "query", NULL), 0);
    int cond = kn_stanza_child(st, err, "service-unavailable", NULL);
    ck_assert_int_eq(cond, 2);
    ck_assert_int_eq(kn_stanza_parent(st, cond), err);
    ck_assert_int_eq(kn_stanza_parent(st, 0), -KN_ENOENT);
    ck_assert_int_eq(kn_stanza_first_child(st, cond), -KN_ENOENT);
    ck_assert_int_eq(kn_stanza_next_sibling(st, err), -KN_ENOENT);
    ck_assert_int_eq(kn_stanza_next_sibling(st, 0), -KN_ENOENT);

    size_t len = 0;
    ck_assert_str_eq(kn_stanza_attr(st, err, "type", &len), "cancel");
    ck_assert_uint_eq(len, 6);
    ck_assert_ptr_null(kn_stanza_attr(st, err, "id", NULL));
    char small[4], big[64];
    ck_assert_int_eq(kn_stanza_attr_copy(st, 0, "id", big, sizeof(big)), 2);
    ck_assert_str_eq(big, "q1");
    ck_assert_int_eq(kn_stanza_attr_copy(st, 0, "from", small, sizeof(small)),
                     -KN_ETOOBIG);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(kn_stanza_attr_copy(st, 0, "nope", big, sizeof(big)),
                     -KN_ENOENT);
    ck_assert_uint_eq(kn_stanza_attr_count(st, 0), 4);
    const char *ns, *name, *value;
    kn_stanza_attr_at(st, 0, 2, &ns, &name, &value);
    ck_assert_str_eq(ns, "");
    ck_assert_str_eq(name, "to");
    ck_assert_str_eq(value, "juliet@example.com/balcony");

    kn_stanza_t *again = kn_stanza_ref(st);
    ck_assert_ptr_eq(again, st);
    kn_stanza_unref(&again);
    ck_assert_ptr_null(again);
    ck_assert_str_eq(kn_stanza_id(st), "q1"); /* still alive */
    kn_stanza_unref(&st);
    ck_assert_ptr_null(st);
    kn_stanza_unref(&st); /* idempotent */
    kn_buf_free(&out);
}
END_TEST

START_TEST(mixed_text_and_iteration)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "p", "http://www.w3.org/1999/xhtml");
    kn_stanza_builder_text(b, "Hi ", 3);
    kn_stanza_builder_start(b, "em", NULL);
    kn_stanza_builder_text(b, "the", 3);
    kn_stanza_builder_text(b, "re", 2);
    kn_stanza_builder_end(b);
    kn_stanza_builder_text(b, "!", 1);
    kn_stanza_builder_start(b, "br", NULL);
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "b", NULL);
    kn_stanza_builder_text(b, "x", 1);
    /* An attribute after text seals the run; more text must still land
     * contiguously in the same slot. */
    kn_stanza_builder_attr(b, "class", "k");
    kn_stanza_builder_text(b, "yz", 2);
    kn_stanza_t *st = kn_stanza_builder_finish(b); /* closes b and p */
    kn_stanza_builder_free(&b);

    kn_buf_t out = KN_BUF_INIT;
    ck_assert_str_eq(ser(&out, st, NULL),
                     "<p xmlns='http://www.w3.org/1999/xhtml'>Hi <em>there"
                     "</em>!<br/><b class='k'>xyz</b></p>");
    size_t len;
    ck_assert_str_eq(kn_stanza_cdata(st, 0, &len), "Hi ");
    ck_assert_uint_eq(len, 3);
    kn_buf_reset(&out);
    ck_assert_uint_eq(kn_stanza_text(st, 0, &out), 4);
    ck_assert_str_eq(out.data, "Hi !");
    ck_assert_str_eq(kn_stanza_cdata(st, 1, NULL), "there");
    ck_assert_str_eq(kn_stanza_cdata(st, 2, NULL), "");
    ck_assert_str_eq(kn_stanza_cdata(st, 3, NULL), "xyz");

    const char *names[] = {"em", "br", "b"};
    size_t n = 0;
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        ck_assert_uint_lt(n, 3);
        ck_assert_str_eq(kn_stanza_name(st, c), names[n++]);
    }
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(kn_stanza_kind(st), KN_STANZA_OTHER);
    ck_assert_ptr_null(kn_stanza_type(st));
    kn_stanza_unref(&st);
    kn_buf_free(&out);
}
END_TEST

START_TEST(escaping)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "id", "a'b\"c<d>&e\tf\ng\rh");
    kn_stanza_builder_attr(b, "xml:lang", "en");
    kn_stanza_builder_start(b, "body", NULL);
    const char *text = "x ]]> & <y> 'q' \"z\"\r";
    kn_stanza_builder_text(b, text, strlen(text));
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT),
                     "<message id='a&apos;b&quot;c&lt;d&gt;&amp;e&#9;f&#10;g"
                     "&#13;h' xml:lang='en'><body>x ]]&gt; &amp; &lt;y&gt; "
                     "'q' \"z\"&#13;</body></message>");
    ck_assert_str_eq(kn_stanza_attr(st, 0, "xml:lang", NULL), "en");
    ck_assert_str_eq(kn_stanza_attr_ns(st, 0, KN_NS_XML, "lang", NULL), "en");
    ck_assert_ptr_null(kn_stanza_attr(st, 0, "lang", NULL));
    ck_assert_int_eq(kn_stanza_kind(st), KN_STANZA_MESSAGE);
    kn_stanza_unref(&st);
    kn_buf_free(&out);
}
END_TEST

START_TEST(namespaces_on_output)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_start(b, "body", NULL);
    kn_stanza_builder_text(b, "hi", 2);
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "x", "urn:x");
    kn_stanza_builder_start(b, "y", NULL); /* inherits urn:x */
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "z", ""); /* no namespace */
    kn_stanza_builder_attr_n(b, "urn:p", 5, "p", 1, "a", 1, "1", 1);
    kn_stanza_builder_attr_n(b, "urn:p", 5, "p", 1, "b", 1, "2", 1);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_buf_t out = KN_BUF_INIT;
    const char *inner = "<body>hi</body><x xmlns='urn:x'><y/><z xmlns='' "
                        "xmlns:p='urn:p' p:a='1' p:b='2'/></x></message>";
    kn_buf_t want = KN_BUF_INIT;
    kn_buf_printf(&want, "<message>%s", inner);
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT), want.data);
    /* Re-namespaced for a component stream: still no declaration. */
    ck_assert_str_eq(ser(&out, st, KN_NS_COMPONENT), want.data);
    kn_buf_reset(&want);
    kn_buf_printf(&want, "<message xmlns='jabber:client'>%s", inner);
    ck_assert_str_eq(ser(&out, st, NULL), want.data);
    ck_assert_str_eq(kn_stanza_ns(st, 3), "urn:x");
    ck_assert_str_eq(kn_stanza_ns(st, 4), "");
    ck_assert_str_eq(kn_stanza_attr_ns(st, 4, "urn:p", "b", NULL), "2");
    ck_assert_ptr_null(kn_stanza_attr(st, 4, "b", NULL));
    kn_stanza_unref(&st);

    /* A non-content root keeps its namespace inside any stream. */
    b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "proceed", "urn:ietf:params:xml:ns:xmpp-tls");
    st = kn_stanza_builder_finish(b);
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT),
                     "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    kn_stanza_unref(&st);
    /* A root without namespace counts as the stream's content. */
    kn_stanza_builder_start(b, "presence", NULL);
    st = kn_stanza_builder_finish(b);
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT), "<presence/>");
    ck_assert_str_eq(ser(&out, st, NULL), "<presence/>");
    ck_assert_int_eq(kn_stanza_kind(st), KN_STANZA_PRESENCE);
    kn_stanza_unref(&st);
    kn_stanza_builder_free(&b);
    kn_buf_free(&out);
    kn_buf_free(&want);
}
END_TEST

START_TEST(with_and_without_attr)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "to", "Romeo@Example.NET");
    kn_stanza_builder_attr(b, "id", "m1");
    kn_stanza_builder_start(b, "body", NULL);
    kn_stanza_builder_text(b, "hi", 2);
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "x", "urn:x");
    kn_stanza_builder_attr(b, "k", "v");
    kn_stanza_t *orig = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);

    kn_buf_t out = KN_BUF_INIT, before = KN_BUF_INIT;
    kn_stanza_serialize(orig, &before, KN_NS_CLIENT);

    kn_stanza_t *a = kn_stanza_with_attr(orig, 0, "from", "juliet@a/b");
    kn_stanza_t *c = kn_stanza_with_attr(a, 0, "to", "romeo@example.net");
    ck_assert_str_eq(ser(&out, c, KN_NS_CLIENT),
                     "<message to='romeo@example.net' id='m1' "
                     "from='juliet@a/b'><body>hi</body><x xmlns='urn:x' "
                     "k='v'/></message>");
    ck_assert_str_eq(kn_stanza_from(c), "juliet@a/b");
    ck_assert_str_eq(kn_stanza_to(c), "romeo@example.net");
    ck_assert_str_eq(kn_stanza_to(a), "Romeo@Example.NET");
    ck_assert_ptr_null(kn_stanza_from(orig));
    ck_assert_str_eq(ser(&out, orig, KN_NS_CLIENT), before.data);

    /* An attribute added to an inner element shifts later elements'
     * attribute ranges: x must keep k='v'. */
    kn_stanza_t *d = kn_stanza_with_attr(c, 1, "xml:lang", "fr");
    ck_assert_str_eq(ser(&out, d, KN_NS_CLIENT),
                     "<message to='romeo@example.net' id='m1' "
                     "from='juliet@a/b'><body xml:lang='fr'>hi</body>"
                     "<x xmlns='urn:x' k='v'/></message>");
    kn_stanza_t *e = kn_stanza_without_attr(d, 0, "id");
    kn_stanza_t *f = kn_stanza_without_attr(e, 1, "xml:lang");
    ck_assert_str_eq(ser(&out, f, KN_NS_CLIENT),
                     "<message to='romeo@example.net' from='juliet@a/b'>"
                     "<body>hi</body><x xmlns='urn:x' k='v'/></message>");
    ck_assert_ptr_null(kn_stanza_id(f));
    ck_assert_str_eq(kn_stanza_id(d), "m1");
    kn_stanza_t *g = kn_stanza_without_attr(f, 0, "absent");
    ck_assert_str_eq(ser(&out, g, KN_NS_CLIENT), ser(&before, f, KN_NS_CLIENT));
    kn_stanza_t *all[] = {orig, a, c, d, e, f, g};
    for (size_t i = 0; i < KN_ARRAY_LEN(all); i++)
        kn_stanza_unref(&all[i]);
    kn_buf_free(&out);
    kn_buf_free(&before);
}
END_TEST

START_TEST(dup_appends_to_root)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "to", "r@e");
    kn_stanza_builder_start(b, "body", NULL);
    kn_stanza_builder_text(b, "hello", 5);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);

    b = kn_stanza_dup(st);
    kn_stanza_builder_start(b, "delay", "urn:xmpp:delay");
    kn_stanza_builder_attr(b, "stamp", "2024-01-01T00:00:00Z");
    kn_stanza_builder_end(b);
    kn_stanza_builder_set_attr(b, 0, "type", "chat");
    kn_stanza_t *st2 = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_str_eq(ser(&out, st2, KN_NS_CLIENT),
                     "<message to='r@e' type='chat'><body>hello</body>"
                     "<delay xmlns='urn:xmpp:delay' "
                     "stamp='2024-01-01T00:00:00Z'/></message>");
    ck_assert_str_eq(ser(&out, st, KN_NS_CLIENT),
                     "<message to='r@e'><body>hello</body></message>");
    ck_assert_str_eq(kn_stanza_type(st2), "chat");
    ck_assert_int_eq(kn_stanza_next_sibling(st2, 1), 2);

    /* Copy a subtree into a fresh stanza. */
    b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "wrap", "urn:w");
    kn_stanza_builder_copy(b, st2, 0);
    kn_stanza_t *w = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    ck_assert_str_eq(ser(&out, w, NULL),
                     "<wrap xmlns='urn:w'><message xmlns='jabber:client' "
                     "to='r@e' type='chat'><body>hello</body><delay "
                     "xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/>"
                     "</message></wrap>");
    kn_stanza_unref(&st);
    kn_stanza_unref(&st2);
    kn_stanza_unref(&w);
    kn_buf_free(&out);
}
END_TEST

START_TEST(error_reply)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "to", "romeo@example.net");
    kn_stanza_builder_attr(b, "from", "juliet@example.com/balcony");
    kn_stanza_builder_attr(b, "type", "chat");
    kn_stanza_builder_attr(b, "id", "m7");
    kn_stanza_builder_attr(b, "xml:lang", "en");
    kn_stanza_builder_start(b, "body", NULL);
    kn_stanza_builder_text(b, "a<b", 3);
    kn_stanza_t *msg = kn_stanza_builder_finish(b);

    kn_stanza_t *r =
        kn_stanza_error_reply(msg, KN_STE_SERVICE_UNAVAILABLE, "gone & away");
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_str_eq(
        ser(&out, r, KN_NS_CLIENT),
        "<message id='m7' xml:lang='en' to='juliet@example.com/balcony' "
        "from='romeo@example.net' type='error'><body>a&lt;b</body>"
        "<error type='cancel'><service-unavailable "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone &amp; away</text>"
        "</error></message>");
    ck_assert_int_eq(kn_stanza_kind(r), KN_STANZA_MESSAGE);
    ck_assert_ptr_null(kn_stanza_error_reply(r, KN_STE_BAD_REQUEST, NULL));

    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "get");
    kn_stanza_builder_attr(b, "id", "q");
    kn_stanza_builder_start(b, "query", "jabber:iq:version");
    kn_stanza_t *iq = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_stanza_t *ri = kn_stanza_error_reply(iq, KN_STE_FORBIDDEN, NULL);
    ck_assert_str_eq(ser(&out, ri, KN_NS_CLIENT),
                     "<iq id='q' type='error'><error type='auth'><forbidden "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                     "</iq>");
    /* XEP-0191: a given type and an application-specific condition */
    kn_stanza_t *rb =
        kn_stanza_error_reply_ext(msg, KN_STE_NOT_ACCEPTABLE, "cancel", NULL,
                                  "blocked", "urn:xmpp:blocking:errors");
    ck_assert_str_eq(
        ser(&out, rb, KN_NS_CLIENT),
        "<message id='m7' xml:lang='en' to='juliet@example.com/balcony' "
        "from='romeo@example.net' type='error'><body>a&lt;b</body>"
        "<error type='cancel'><not-acceptable "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><blocked "
        "xmlns='urn:xmpp:blocking:errors'/></error></message>");
    kn_stanza_unref(&rb);
    kn_stanza_unref(&msg);
    kn_stanza_unref(&r);
    kn_stanza_unref(&iq);
    kn_stanza_unref(&ri);
    kn_buf_free(&out);
}
END_TEST

START_TEST(error_tables)
{
    ck_assert_str_eq(kn_stanza_err_type(KN_STE_BAD_REQUEST), "modify");
    ck_assert_str_eq(kn_stanza_err_type(KN_STE_FORBIDDEN), "auth");
    ck_assert_str_eq(kn_stanza_err_type(KN_STE_RESOURCE_CONSTRAINT), "wait");
    ck_assert_str_eq(kn_stanza_err_type(KN_STE_ITEM_NOT_FOUND), "cancel");
    ck_assert_str_eq(kn_stanza_err_name(KN_STE_UNEXPECTED_REQUEST),
                     "unexpected-request");
    for (int i = 0; i < KN_STE_COUNT_; i++) {
        ck_assert_ptr_nonnull(kn_stanza_err_name(i));
        ck_assert_ptr_nonnull(kn_stanza_err_type(i));
    }
    /* Every stream condition has a distinct name. */
    for (int i = 0; i < KN_SE_COUNT_; i++) {
        ck_assert_ptr_nonnull(kn_stream_err_name(i));
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(kn_stream_err_name(i), kn_stream_err_name(j));
    }
    ck_assert_str_eq(kn_stream_err_name(KN_SE_RESTRICTED_XML),
                     "restricted-xml");
    ck_assert_str_eq(kn_stream_err_name(KN_SE_UNSUPPORTED_ENCODING),
                     "unsupported-encoding");
    ck_assert_str_eq(kn_stream_err_name(KN_SE_COUNT_ + 3),
                     "undefined-condition");

    kn_buf_t out = KN_BUF_INIT;
    kn_stream_err_write(&out, KN_SE_NOT_WELL_FORMED, NULL);
    ck_assert_str_eq(out.data, "<stream:error><not-well-formed "
                               "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                               "</stream:error>");
    kn_buf_reset(&out);
    kn_stream_err_write(&out, KN_SE_POLICY_VIOLATION, "too <big>");
    ck_assert_str_eq(out.data,
                     "<stream:error><policy-violation "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too "
                     "&lt;big&gt;</text></stream:error>");
    kn_buf_reset(&out);
    kn_stream_err_write(&out, KN_SE_SEE_OTHER_HOST, "[2001:db8::1]:5222");
    ck_assert_str_eq(out.data,
                     "<stream:error><see-other-host "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                     "[2001:db8::1]:5222</see-other-host></stream:error>");
    kn_buf_free(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stanza");
    TCase *tc = tcase_create("stanza");
    tcase_add_test(tc, builder_and_accessors);
    tcase_add_test(tc, mixed_text_and_iteration);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, namespaces_on_output);
    tcase_add_test(tc, with_and_without_attr);
    tcase_add_test(tc, dup_appends_to_root);
    tcase_add_test(tc, error_reply);
    tcase_add_test(tc, error_tables);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
