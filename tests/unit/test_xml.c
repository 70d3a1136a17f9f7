/*
 * test_xml.c - the XMPP stream parser: a realistic client stream fed whole,
 * split in two at every byte and byte by byte (same events, same bytes);
 * every rejection with its stream error; limits; parse/serialise round
 * trips; stream restarts.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_xml.h"

#define HDR                                                                    \
    "<stream:stream xmlns='jabber:client' "                                    \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "        \
    "version='1.0'>"

static const char client_stream[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
    "version='1.0' xml:lang='en'>\n"
    "  <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n"
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
    "mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>"
    "<iq type='set' id='bind_1'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource>"
    "</bind></iq> \n\t \n"
    "<message to=\"romeo@example.net\" type='chat' id='m&amp;1' "
    "xml:lang='fr'>\n  <body>Fish &amp; chips &lt;3 &#x263A; caf&#233; "
    "<![CDATA[<raw & stuff>]]></body>\n  <active "
    "xmlns='http://jabber.org/protocol/chatstates'/><html "
    "xmlns='http://jabber.org/protocol/xhtml-im'><body "
    "xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>!</p></body>"
    "</html></message>"
    "<presence><show>away</show><status xml:lang='de'>weg</status><c "
    "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
    "node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
    "</presence>\n"
    "<r xmlns='urn:xmpp:sm:3'/>"
    "</stream:stream>";

static const char client_events[] =
    "H <stream xmlns='http://etherx.jabber.org/streams' to='example.com' "
    "version='1.0' xml:lang='en'/> ns=jabber:client prefix=stream\n"
    "S <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n"
    "S <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
    "mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>\n"
    "S <iq type='set' id='bind_1'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource>"
    "</bind></iq>\n"
    "S <message to='romeo@example.net' type='chat' id='m&amp;1' "
    "xml:lang='fr'>\n  <body>Fish &amp; chips &lt;3 \xE2\x98\xBA "
    "caf\xC3\xA9 &lt;raw &amp; stuff&gt;</body>\n  <active "
    "xmlns='http://jabber.org/protocol/chatstates'/><html "
    "xmlns='http://jabber.org/protocol/xhtml-im'><body "
    "xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>!</p></body>"
    "</html></message>\n"
    "S <presence><show>away</show><status xml:lang='de'>weg</status><c "
    "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
    "node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
    "</presence>\n"
    "S <r xmlns='urn:xmpp:sm:3'/>\n"
    "C\n";

/* Drain events into log; returns the last kn_xml_next() result. */
static int drain(kn_xml_t *p, kn_buf_t *log)
{
    kn_xml_event_t ev;
    int rc;
    while ((rc = kn_xml_next(p, &ev)) > 0) {
        switch (ev.type) {
        case KN_XML_HEADER:
            kn_buf_append_str(log, "H ");
            kn_stanza_serialize(ev.stanza, log, NULL);
            kn_buf_printf(log, " ns=%s prefix=%s\n", kn_xml_stream_ns(p),
                          kn_xml_stream_prefix(p));
            break;
        case KN_XML_STANZA:
            kn_buf_append_str(log, "S ");
            kn_stanza_serialize(ev.stanza, log, KN_NS_CLIENT);
            kn_buf_append_byte(log, '\n');
            break;
        case KN_XML_CLOSE:
            ck_assert_ptr_null(ev.stanza);
            kn_buf_append_str(log, "C\n");
            break;
        }
        kn_stanza_unref(&ev.stanza);
    }
    if (rc < 0)
        kn_buf_printf(log, "E %s\n", kn_stream_err_name(kn_xml_error(p, NULL)));
    return rc;
}

/* Feed data[0..split) and then the rest in pieces of step bytes (0: in one
 * piece), draining after each feed. Returns the final result. */
static int parse_log(const kn_xml_limits_t *lim, const char *data, size_t len,
                     size_t split, size_t step, kn_buf_t *log)
{
    kn_xml_t *p = kn_xml_new(lim, KN_NS_CLIENT);
    int rc = 0;
    if (split > 0) {
        ck_assert_int_eq(kn_xml_feed(p, data, split), 0);
        rc = drain(p, log);
    }
    for (size_t off = split; off < len && rc >= 0;) {
        size_t n = step ? (len - off < step ? len - off : step) : len - off;
        rc = kn_xml_feed(p, data + off, n);
        ck_assert_int_eq(rc, 0);
        rc = drain(p, log);
        off += n;
    }
    kn_xml_free(&p);
    ck_assert_ptr_null(p);
    return rc;
}

START_TEST(client_stream_any_split)
{
    size_t len = strlen(client_stream);
    kn_buf_t log = KN_BUF_INIT;
    ck_assert_int_eq(parse_log(NULL, client_stream, len, 0, 0, &log), 0);
    ck_assert_str_eq(log.data, client_events);
    for (size_t i = 1; i < len; i++) {
        kn_buf_reset(&log);
        ck_assert_int_eq(parse_log(NULL, client_stream, len, i, 0, &log), 0);
        if (strcmp(log.data, client_events) != 0)
            ck_abort_msg("split at %zu:\n%s", i, log.data);
    }
    kn_buf_reset(&log);
    ck_assert_int_eq(parse_log(NULL, client_stream, len, 0, 1, &log), 0);
    ck_assert_str_eq(log.data, client_events);
    kn_buf_reset(&log);
    ck_assert_int_eq(parse_log(NULL, client_stream, len, 0, 7, &log), 0);
    ck_assert_str_eq(log.data, client_events);
    kn_buf_free(&log);
}
END_TEST

START_TEST(events_and_accessors)
{
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
    kn_xml_event_t ev;
    ck_assert_int_eq(kn_xml_feed(p, HDR, strlen(HDR)), 0);
    ck_assert_ptr_null(kn_xml_stream_ns(p));
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(ev.type, KN_XML_HEADER);
    ck_assert_str_eq(kn_stanza_name(ev.stanza, 0), "stream");
    ck_assert_str_eq(kn_stanza_ns(ev.stanza, 0), KN_NS_STREAMS);
    ck_assert_str_eq(kn_stanza_to(ev.stanza), "example.com");
    ck_assert_str_eq(kn_stanza_attr(ev.stanza, 0, "version", NULL), "1.0");
    ck_assert_ptr_null(kn_stanza_from(ev.stanza));
    kn_stanza_unref(&ev.stanza);
    ck_assert_str_eq(kn_xml_stream_ns(p), KN_NS_CLIENT);
    ck_assert_str_eq(kn_xml_stream_prefix(p), "stream");
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);

    /* Whitespace keepalives: no event, no error. */
    ck_assert_int_eq(kn_xml_feed(p, " \n ", 3), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);

    /* Two stanzas in one feed are two events (R-ARCH-1). */
    const char two[] = "<message id='a'><body>1</body></message>"
                       "<iq type='get' id='b'/>";
    ck_assert_int_eq(kn_xml_feed(p, two, strlen(two)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(ev.type, KN_XML_STANZA);
    ck_assert_int_eq(kn_stanza_kind(ev.stanza), KN_STANZA_MESSAGE);
    ck_assert_str_eq(kn_stanza_id(ev.stanza), "a");
    ck_assert_str_eq(kn_stanza_cdata(ev.stanza, 1, NULL), "1");
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(kn_stanza_kind(ev.stanza), KN_STANZA_IQ);
    ck_assert_str_eq(kn_stanza_type(ev.stanza), "get");
    ck_assert_str_eq(kn_stanza_ns(ev.stanza, 0), KN_NS_CLIENT);
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);

    /* A stanza is reported on its last byte, not before. */
    const char part[] = "<presence><show>dnd</show></presence";
    ck_assert_int_eq(kn_xml_feed(p, part, strlen(part)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);
    ck_assert_int_eq(kn_xml_feed(p, ">", 1), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(kn_stanza_kind(ev.stanza), KN_STANZA_PRESENCE);
    kn_stanza_unref(&ev.stanza);

    /* Events completed before an error come first. */
    const char bad[] = "<a/>junk";
    ck_assert_int_eq(kn_xml_feed(p, bad, strlen(bad)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_str_eq(kn_stanza_name(ev.stanza, 0), "a");
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    ck_assert_int_eq(kn_xml_error(p, NULL), KN_SE_BAD_FORMAT);
    ck_assert_int_eq(kn_xml_feed(p, "x", 1), -KN_EPROTO);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    kn_xml_free(&p);
    kn_xml_free(&p); /* idempotent */
}
END_TEST

START_TEST(empty_stream_and_close)
{
    kn_buf_t log = KN_BUF_INIT;
    const char doc[] = "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'/>";
    ck_assert_int_eq(parse_log(NULL, doc, strlen(doc), 0, 0, &log), 0);
    ck_assert_str_eq(log.data,
                     "H <stream xmlns='http://etherx.jabber.org/streams'/> "
                     "ns=jabber:client prefix=stream\nC\n");
    kn_buf_free(&log);
}
END_TEST

/* Parse doc whole and byte by byte; both must fail with want. Returns the
 * error code of the whole-input run. */
static int expect_err(const kn_xml_limits_t *lim, const char *doc, size_t len,
                      kn_stream_err_t want)
{
    int rc = 0;
    for (size_t step = 0; step <= 1; step++) {
        kn_xml_t *p = kn_xml_new(lim, KN_NS_CLIENT);
        kn_xml_event_t ev;
        int r = 0;
        for (size_t off = 0; off < len && r >= 0;) {
            size_t n = step ? 1 : len;
            ck_assert_int_eq(kn_xml_feed(p, doc + off, n), 0);
            off += n;
            while ((r = kn_xml_next(p, &ev)) > 0) {
                if (ev.type == KN_XML_STANZA)
                    ck_abort_msg("unexpected stanza in %s", doc);
                kn_stanza_unref(&ev.stanza);
            }
        }
        const char *detail = NULL;
        kn_stream_err_t got = kn_xml_error(p, &detail);
        if (r >= 0 || got != want)
            ck_abort_msg("%s (step %zu): rc %d, got %s, want %s", doc, step, r,
                         kn_stream_err_name(got), kn_stream_err_name(want));
        ck_assert_ptr_nonnull(detail);
        if (step == 0)
            rc = r;
        kn_xml_free(&p);
    }
    return rc;
}

#define EXPECT_ERR(lim, doc, want) expect_err(lim, doc, sizeof(doc) - 1, want)

START_TEST(restricted_xml)
{
    EXPECT_ERR(NULL, "<?xml version='1.0'?><!DOCTYPE stream:stream>" HDR,
               KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL,
               "<?xml version=\"1.0\"?>\n"
               "<!DOCTYPE lolz [\n"
               " <!ENTITY lol \"lol\">\n"
               " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
               " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
               " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
               " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
               " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
               " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
               " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
               " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
               " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
               "]>\n"
               "<stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams'>"
               "<message><body>&lol9;</body></message>",
               KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL,
               "<!DOCTYPE s [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>" HDR
               "<message><body>&e;</body></message>",
               KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, HDR "<!-- hello -->", KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, HDR "<message><!--x--></message>", KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, "<!-- before -->" HDR, KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, HDR "<?php echo 1; ?>", KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, "<?xml-stylesheet href='a.xsl'?>" HDR,
               KN_SE_RESTRICTED_XML);
    EXPECT_ERR(NULL, HDR "<iq><?pi x?></iq>", KN_SE_RESTRICTED_XML);
}
END_TEST

START_TEST(encoding_and_well_formedness)
{
    ck_assert_int_eq(EXPECT_ERR(NULL,
                                HDR "<message><body>\xC3\x28</body>"
                                    "</message>",
                                KN_SE_NOT_WELL_FORMED),
                     -KN_EPROTO);
    EXPECT_ERR(NULL, HDR "<message><body>\xFF</body></message>",
               KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<message to='\xED\xA0\x80'/>",
               KN_SE_NOT_WELL_FORMED); /* UTF-8 encoded surrogate */
    EXPECT_ERR(NULL, "<?xml version='1.0' encoding='ISO-8859-1'?>" HDR,
               KN_SE_UNSUPPORTED_ENCODING);
    EXPECT_ERR(NULL, "<?xml version='1.0' encoding='UTF-16'?>" HDR,
               KN_SE_UNSUPPORTED_ENCODING);
    EXPECT_ERR(NULL, HDR "<a></b>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<a x='1' x='2'/>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<a>&nbsp;</a>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<a>&#0;</a>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<a>\x01</a>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "</stream:stream><a/>", KN_SE_NOT_WELL_FORMED);
    EXPECT_ERR(NULL, HDR "<foo:bar/>", KN_SE_BAD_NAMESPACE_PREFIX);
    EXPECT_ERR(NULL, HDR "<a foo:x='1'/>", KN_SE_BAD_NAMESPACE_PREFIX);
    EXPECT_ERR(NULL, HDR "<a xmlns:xml='urn:x'/>", KN_SE_BAD_NAMESPACE_PREFIX);
    EXPECT_ERR(NULL, HDR "hello", KN_SE_BAD_FORMAT);
    EXPECT_ERR(NULL, HDR " \n x <b/>", KN_SE_BAD_FORMAT);

    /* Lower-case utf-8 is UTF-8. */
    kn_buf_t log = KN_BUF_INIT;
    const char ok[] = "<?xml version='1.0' encoding='utf-8'?>" HDR "<a/>";
    ck_assert_int_eq(parse_log(NULL, ok, strlen(ok), 0, 0, &log), 0);
    ck_assert_ptr_nonnull(strstr(log.data, "S <a/>\n"));
    kn_buf_free(&log);
}
END_TEST

START_TEST(stream_namespaces)
{
    EXPECT_ERR(NULL,
               "<stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://example.com/streams'>",
               KN_SE_INVALID_NAMESPACE);
    EXPECT_ERR(NULL, "<stream xmlns='jabber:client'>", KN_SE_INVALID_NAMESPACE);
    EXPECT_ERR(NULL,
               "<stream:features xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams'>",
               KN_SE_INVALID_NAMESPACE);
    EXPECT_ERR(NULL,
               "<stream:stream xmlns='foo' "
               "xmlns:stream='http://etherx.jabber.org/streams'>",
               KN_SE_INVALID_NAMESPACE);
    EXPECT_ERR(NULL,
               "<stream:stream "
               "xmlns:stream='http://etherx.jabber.org/streams'>",
               KN_SE_INVALID_NAMESPACE);
    EXPECT_ERR(NULL, "<stream:stream xmlns='jabber:client'>",
               KN_SE_BAD_NAMESPACE_PREFIX);

    /* A component parser wants jabber:component:accept. */
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_COMPONENT);
    kn_xml_event_t ev;
    ck_assert_int_eq(kn_xml_feed(p, HDR, strlen(HDR)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    ck_assert_int_eq(kn_xml_error(p, NULL), KN_SE_INVALID_NAMESPACE);
    kn_xml_free(&p);

    /* Any parser accepts any content namespace when given none. */
    p = kn_xml_new(NULL, NULL);
    const char doc[] = "<s:stream xmlns='jabber:server' "
                       "xmlns:s='http://etherx.jabber.org/streams'><a/>";
    ck_assert_int_eq(kn_xml_feed(p, doc, strlen(doc)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    kn_stanza_unref(&ev.stanza);
    ck_assert_str_eq(kn_xml_stream_ns(p), KN_NS_SERVER);
    ck_assert_str_eq(kn_xml_stream_prefix(p), "s");
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_str_eq(kn_stanza_ns(ev.stanza, 0), KN_NS_SERVER);
    kn_stanza_unref(&ev.stanza);
    kn_xml_free(&p);
}
END_TEST

/* A stanza of exactly n bytes: <a>xxx...</a>. */
static char *sized_stanza(size_t n)
{
    char *s = malloc(sizeof(HDR) + n);
    strcpy(s, HDR "<a>");
    size_t h = strlen(HDR);
    memset(s + h + 3, 'x', n - 7);
    strcpy(s + h + n - 4, "</a>");
    return s;
}

START_TEST(limits)
{
    kn_xml_limits_t lim = {100, 3, 4, 200};
    kn_buf_t log = KN_BUF_INIT;

    /* Stanza size: 100 bytes pass, 101 fail, at any split. */
    char *ok = sized_stanza(100), *big = sized_stanza(101);
    ck_assert_int_eq(parse_log(&lim, ok, strlen(ok), 0, 0, &log), 0);
    ck_assert_ptr_nonnull(strstr(log.data, "S <a>xxx"));
    for (size_t step = 0; step <= 1; step++) {
        kn_buf_reset(&log);
        ck_assert_int_eq(parse_log(&lim, big, strlen(big), 0, step, &log),
                         -KN_ETOOBIG);
        ck_assert_ptr_nonnull(strstr(log.data, "E policy-violation"));
        ck_assert_ptr_null(strstr(log.data, "S "));
    }
    free(ok);
    free(big);
    /* An unfinished giant token is caught without waiting for its end. */
    kn_buf_reset(&log);
    kn_buf_append_str(&log, HDR "<message to='");
    for (int i = 0; i < 200; i++)
        kn_buf_append_byte(&log, 'a');
    expect_err(&lim, log.data, log.len, KN_SE_POLICY_VIOLATION);
    /* Whitespace between stanzas does not count against a stanza. */
    kn_buf_reset(&log);
    kn_buf_append_str(&log, HDR);
    for (int i = 0; i < 300; i++)
        kn_buf_append_byte(&log, ' ');
    kn_buf_append_str(&log, "<a/>");
    char *ws = kn_buf_release(&log, NULL);
    ck_assert_int_eq(parse_log(&lim, ws, strlen(ws), 0, 0, &log), 0);
    ck_assert_ptr_nonnull(strstr(log.data, "S <a/>"));
    free(ws);

    /* Depth: the stanza is depth 1. */
    kn_buf_reset(&log);
    const char d3[] = HDR "<a><b><c/></b></a>";
    ck_assert_int_eq(parse_log(&lim, d3, strlen(d3), 0, 0, &log), 0);
    ck_assert_ptr_nonnull(strstr(log.data, "S <a><b><c/></b></a>"));
    ck_assert_int_eq(EXPECT_ERR(&lim, HDR "<a><b><c><d/></c></b></a>",
                                KN_SE_POLICY_VIOLATION),
                     -KN_ETOOBIG);

    /* Attributes, namespace declarations included. */
    kn_buf_reset(&log);
    const char a4[] = HDR "<a b='1' c='2' d='3' e='4'/>";
    ck_assert_int_eq(parse_log(&lim, a4, strlen(a4), 0, 0, &log), 0);
    EXPECT_ERR(&lim, HDR "<a b='1' c='2' d='3' e='4' f='5'/>",
               KN_SE_POLICY_VIOLATION);
    EXPECT_ERR(&lim, HDR "<a xmlns='x' xmlns:p='y' p:b='1' c='2' d='3'/>",
               KN_SE_POLICY_VIOLATION);

    /* Header size. */
    kn_buf_reset(&log);
    kn_buf_append_str(&log, "<stream:stream xmlns='jabber:client' "
                            "xmlns:stream='http://etherx.jabber.org/streams' "
                            "to='");
    for (int i = 0; i < 200; i++)
        kn_buf_append_byte(&log, 'h');
    kn_buf_append_str(&log, "'>");
    expect_err(&lim, log.data, log.len, KN_SE_POLICY_VIOLATION);
    kn_buf_free(&log);
}
END_TEST

/* Parse one stanza inside a jabber:client stream. */
static kn_stanza_t *parse_one(const char *xml)
{
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
    kn_xml_event_t ev;
    ck_assert_int_eq(kn_xml_feed(p, HDR, strlen(HDR)), 0);
    ck_assert_int_eq(kn_xml_feed(p, xml, strlen(xml)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    kn_stanza_unref(&ev.stanza);
    int rc = kn_xml_next(p, &ev);
    if (rc != 1)
        ck_abort_msg("no stanza (%d, %s) in %s", rc,
                     kn_stream_err_name(kn_xml_error(p, NULL)), xml);
    ck_assert_int_eq(ev.type, KN_XML_STANZA);
    kn_xml_free(&p);
    return ev.stanza;
}

/* Structural equality: names, namespaces, attributes, all text. */
static void assert_same_tree(const kn_stanza_t *a, const kn_stanza_t *b)
{
    ck_assert_uint_eq(kn_stanza_count(a), kn_stanza_count(b));
    kn_buf_t ta = KN_BUF_INIT, tb = KN_BUF_INIT;
    for (int e = 0; e < (int)kn_stanza_count(a); e++) {
        ck_assert_str_eq(kn_stanza_name(a, e), kn_stanza_name(b, e));
        ck_assert_str_eq(kn_stanza_ns(a, e), kn_stanza_ns(b, e));
        ck_assert_int_eq(kn_stanza_parent(a, e), kn_stanza_parent(b, e));
        ck_assert_uint_eq(kn_stanza_attr_count(a, e),
                          kn_stanza_attr_count(b, e));
        for (size_t i = 0; i < kn_stanza_attr_count(a, e); i++) {
            const char *ns, *name, *va;
            kn_stanza_attr_at(a, e, i, &ns, &name, &va);
            ck_assert_str_eq(kn_stanza_attr_ns(b, e, ns, name, NULL), va);
        }
        kn_buf_reset(&ta);
        kn_buf_reset(&tb);
        kn_stanza_text(a, e, &ta);
        kn_stanza_text(b, e, &tb);
        ck_assert_uint_eq(ta.len, tb.len);
        ck_assert_int_eq(memcmp(ta.data, tb.data, ta.len), 0);
    }
    kn_buf_free(&ta);
    kn_buf_free(&tb);
}

START_TEST(round_trip)
{
    static const char *const cases[] = {
        "<message id=\"a'b&quot;c&lt;d&gt;\" to='x&amp;y'><body>]]&gt; and "
        "<![CDATA[]]]]><![CDATA[>]]> &amp;&lt;</body></message>",
        "<iq id='t&#9;a&#10;b&#13;c' type='get'><q xmlns='urn:q'>line1&#13;\n"
        "line2\ttab</q></iq>",
        "<message xml:lang='en'><body xml:lang='fr'>salut</body><x "
        "xmlns:foo='urn:foo' xmlns:bar='urn:bar' foo:a='1' bar:b='2' "
        "c='3'><y xmlns:foo='urn:other' foo:a='4'/></x></message>",
        "<presence><x xmlns='urn:x'><y xmlns=''>none</y><z/></x>tail text"
        "<status>s</status>more</presence>",
        "<message><body>\xF0\x9F\x98\x80 &#x1F600; \xE2\x82\xAC</body>"
        "</message>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    };
    kn_buf_t s1 = KN_BUF_INIT, s2 = KN_BUF_INIT;
    for (size_t i = 0; i < KN_ARRAY_LEN(cases); i++) {
        kn_stanza_t *a = parse_one(cases[i]);
        kn_buf_reset(&s1);
        kn_stanza_serialize(a, &s1, KN_NS_CLIENT);
        kn_stanza_t *b = parse_one(s1.data);
        assert_same_tree(a, b);
        kn_buf_reset(&s2);
        kn_stanza_serialize(b, &s2, KN_NS_CLIENT);
        ck_assert_str_eq(s1.data, s2.data);
        /* Standalone form parses back to the same tree too. */
        kn_buf_reset(&s2);
        kn_stanza_serialize(a, &s2, NULL);
        kn_stanza_t *c = parse_one(s2.data);
        assert_same_tree(a, c);
        kn_stanza_unref(&a);
        kn_stanza_unref(&b);
        kn_stanza_unref(&c);
    }
    /* Spot-check the values that had to survive. */
    kn_stanza_t *a = parse_one(cases[0]);
    ck_assert_str_eq(kn_stanza_id(a), "a'b\"c<d>");
    ck_assert_str_eq(kn_stanza_to(a), "x&y");
    ck_assert_str_eq(kn_stanza_cdata(a, 1, NULL), "]]> and ]]> &<");
    kn_stanza_unref(&a);
    a = parse_one(cases[1]);
    ck_assert_str_eq(kn_stanza_id(a), "t\ta\nb\rc");
    ck_assert_str_eq(kn_stanza_cdata(a, 1, NULL), "line1\r\nline2\ttab");
    kn_stanza_unref(&a);
    a = parse_one(cases[2]);
    ck_assert_str_eq(kn_stanza_attr(a, 0, "xml:lang", NULL), "en");
    ck_assert_str_eq(kn_stanza_attr_ns(a, 2, "urn:foo", "a", NULL), "1");
    ck_assert_str_eq(kn_stanza_attr_ns(a, 3, "urn:other", "a", NULL), "4");
    kn_stanza_unref(&a);
    kn_buf_free(&s1);
    kn_buf_free(&s2);
}
END_TEST

START_TEST(restart_keeps_or_drops_input)
{
    const char auth[] = HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                            "mechanism='PLAIN'>AGEAYg==</auth>"
                            "<stream:stream xmlns='jabber:client' "
                            "xmlns:stream='http://etherx.jabber.org/streams' "
                            "to='new.example'><iq type='set' id='b'/>";
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
    kn_xml_event_t ev;
    ck_assert_int_eq(kn_xml_feed(p, auth, strlen(auth)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_str_eq(kn_stanza_name(ev.stanza, 0), "auth");
    kn_stanza_unref(&ev.stanza);
    /* SASL success: the pipelined header is kept for the new stream. */
    kn_xml_reset(p, true);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(ev.type, KN_XML_HEADER);
    ck_assert_str_eq(kn_stanza_to(ev.stanza), "new.example");
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_int_eq(kn_stanza_kind(ev.stanza), KN_STANZA_IQ);
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);

    /* STARTTLS: injected plaintext after <starttls/> is dropped. */
    kn_xml_reset(p, false);
    const char tls[] = HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                           "<message to='victim'/>";
    ck_assert_int_eq(kn_xml_feed(p, tls, strlen(tls)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_str_eq(kn_stanza_name(ev.stanza, 0), "starttls");
    kn_stanza_unref(&ev.stanza);
    kn_xml_reset(p, false);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);
    ck_assert_ptr_null(kn_xml_stream_ns(p));

    /* Reset clears a failure. */
    ck_assert_int_eq(kn_xml_feed(p, "<!-- x -->", 10), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    kn_xml_reset(p, true);
    ck_assert_int_eq(kn_xml_error(p, NULL), KN_SE_NONE);
    ck_assert_int_eq(kn_xml_feed(p, HDR "<a/>", strlen(HDR) + 4), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_next(p, &ev), 1);
    ck_assert_str_eq(kn_stanza_name(ev.stanza, 0), "a");
    /* Freed with an event still pending in the parser: no leak. */
    kn_stanza_unref(&ev.stanza);
    ck_assert_int_eq(kn_xml_feed(p, "</stream:stream>", 16), 0);
    kn_xml_free(&p);
}
END_TEST

START_TEST(restart_byte_by_byte)
{
    /* The restart point is exact however the bytes arrived. */
    const char first[] = HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    const char second[] = "<stream:stream xmlns='jabber:client' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "to='n'><iq id='z'/>";
    char all[sizeof(first) + sizeof(second)];
    strcpy(all, first);
    strcat(all, second);
    for (size_t cut = 1; cut < strlen(all); cut++) {
        kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
        kn_xml_event_t ev;
        int seen = 0, rc;
        ck_assert_int_eq(kn_xml_feed(p, all, cut), 0);
        /* Stop asking for events once <auth/> arrived, like c2s does. */
        while (seen < 2 && (rc = kn_xml_next(p, &ev)) > 0) {
            seen++;
            kn_stanza_unref(&ev.stanza);
        }
        ck_assert_int_eq(kn_xml_feed(p, all + cut, strlen(all) - cut), 0);
        while (seen < 2 && (rc = kn_xml_next(p, &ev)) > 0) {
            seen++;
            kn_stanza_unref(&ev.stanza);
        }
        ck_assert_int_eq(seen, 2);
        kn_xml_reset(p, true);
        ck_assert_int_eq(kn_xml_next(p, &ev), 1);
        ck_assert_str_eq(kn_stanza_to(ev.stanza), "n");
        kn_stanza_unref(&ev.stanza);
        ck_assert_int_eq(kn_xml_next(p, &ev), 1);
        ck_assert_str_eq(kn_stanza_id(ev.stanza), "z");
        kn_stanza_unref(&ev.stanza);
        kn_xml_free(&p);
    }
}
END_TEST

/* Drain at most want events into *seen; the rest stays queued (c2s stops
 * asking once <auth/> or <starttls/> arrived). */
static int drain_upto(kn_xml_t *p, int want, int *seen, kn_buf_t *log)
{
    kn_xml_event_t ev;
    int rc = 0;
    while (*seen < want && (rc = kn_xml_next(p, &ev)) > 0) {
        (*seen)++;
        if (log != NULL && ev.stanza != NULL) {
            kn_stanza_serialize(ev.stanza, log, NULL);
            kn_buf_append_str(log, "\n");
        }
        kn_stanza_unref(&ev.stanza);
    }
    return rc;
}

/* RFC 6120 6.4.6: whitespace that ended the old stream ("</auth>\n", as
 * go-sendxmpp writes it) must not make the new stream's XML declaration
 * "not at start of entity". Every split of the bytes, with the whitespace
 * before the reset, after it, or both; the same after STARTTLS. */
START_TEST(restart_whitespace_before_declaration)
{
    const char first[] = HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                             "mechanism='PLAIN'>AGEAYg==</auth>";
    const char second[] = " \r\n\t\n<?xml version='1.0'?>"
                          "<stream:stream xmlns='jabber:client' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "to='n' version='1.0'>\n<iq id='z'/>";
    const char want[] =
        "<stream xmlns='http://etherx.jabber.org/streams' "
        "to='n' version='1.0'/>\n<iq xmlns='jabber:client' id='z'/>\n";
    char all[sizeof(first) + sizeof(second)];
    strcpy(all, first);
    strcat(all, second);
    size_t len = strlen(all);
    for (int keep = 0; keep < 2; keep++) {
        for (size_t cut = 1; cut < len; cut++) {
            /* keep (SASL success): the bytes after <auth/> that arrived
             * with it are kept; !keep (STARTTLS): they are dropped, so
             * only cuts inside the first part make sense. */
            if (!keep && cut > strlen(first))
                break;
            kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
            kn_buf_t log = KN_BUF_INIT;
            int seen = 0;
            ck_assert_int_eq(kn_xml_feed(p, all, cut), 0);
            ck_assert_int_ge(drain_upto(p, 2, &seen, NULL), 0);
            size_t at = cut;
            if (seen < 2) {
                ck_assert_int_eq(kn_xml_feed(p, all + cut, strlen(first) - cut),
                                 0);
                at = strlen(first);
                ck_assert_int_ge(drain_upto(p, 2, &seen, NULL), 0);
            }
            ck_assert_int_eq(seen, 2);
            kn_xml_reset(p, keep);
            seen = 0;
            /* The rest byte by byte, asking for events after each. */
            for (size_t i = at; i < len; i++) {
                ck_assert_int_eq(kn_xml_feed(p, all + i, 1), 0);
                ck_assert_int_ge(drain_upto(p, 2, &seen, &log), 0);
            }
            ck_assert_int_eq(seen, 2);
            ck_assert_str_eq(log.data, want);
            kn_buf_free(&log);
            kn_xml_free(&p);
        }
    }

    /* Whitespace that arrives only after the reset, then the rest whole. */
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
    int seen = 0;
    ck_assert_int_eq(kn_xml_feed(p, first, strlen(first)), 0);
    ck_assert_int_eq(drain_upto(p, 2, &seen, NULL), 1);
    kn_xml_reset(p, true);
    kn_xml_event_t ev;
    ck_assert_int_eq(kn_xml_feed(p, "\n", 1), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);
    ck_assert_int_eq(kn_xml_feed(p, "\r\n ", 3), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), 0);
    kn_buf_t log = KN_BUF_INIT;
    seen = 0;
    ck_assert_int_eq(kn_xml_feed(p, second, strlen(second)), 0);
    ck_assert_int_eq(drain_upto(p, 2, &seen, &log), 1);
    ck_assert_str_eq(log.data, want);
    kn_buf_free(&log);

    /* Only leading whitespace: text after the new declaration or before
     * a header without one is still checked as before. */
    kn_xml_reset(p, true);
    const char junk[] = "\n x<stream:stream/>";
    ck_assert_int_eq(kn_xml_feed(p, junk, strlen(junk)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    ck_assert_int_eq(kn_xml_error(p, NULL), KN_SE_NOT_WELL_FORMED);
    kn_xml_free(&p);

    /* A brand-new stream is not a restart: XML puts the declaration
     * first. */
    p = kn_xml_new(NULL, KN_NS_CLIENT);
    const char lead[] = "\n<?xml version='1.0'?>" HDR;
    ck_assert_int_eq(kn_xml_feed(p, lead, strlen(lead)), 0);
    ck_assert_int_eq(kn_xml_next(p, &ev), -KN_EPROTO);
    ck_assert_int_eq(kn_xml_error(p, NULL), KN_SE_NOT_WELL_FORMED);
    kn_xml_free(&p);
}
END_TEST

/* Parking at every byte boundary where it is allowed changes nothing in
 * the events; it is refused inside a stanza and in the prolog. */
START_TEST(park_between_stanzas_is_invisible)
{
    size_t len = strlen(client_stream);
    kn_buf_t log = KN_BUF_INIT;
    kn_xml_t *p = kn_xml_new(NULL, KN_NS_CLIENT);
    ck_assert(!kn_xml_park(p)); /* prolog */
    size_t parked = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc >= 0; i++) {
        ck_assert_int_eq(kn_xml_feed(p, client_stream + i, 1), 0);
        rc = drain(p, &log);
        if (kn_xml_park(p)) {
            parked++;
            ck_assert(kn_xml_park(p)); /* idempotent */
        }
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(log.data, client_events);
    ck_assert_uint_ge(parked, 6);
    kn_xml_free(&p);

    /* Inside a stanza: refused, and parsing goes on. */
    p = kn_xml_new(NULL, KN_NS_CLIENT);
    const char *h = "<stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>";
    ck_assert_int_eq(kn_xml_feed(p, h, strlen(h)), 0);
    kn_buf_reset(&log);
    drain(p, &log);
    ck_assert(kn_xml_park(p));
    ck_assert_int_eq(kn_xml_feed(p, "<message><bo", 12), 0);
    ck_assert_int_eq(drain(p, &log), 0);
    ck_assert(!kn_xml_park(p));
    ck_assert_int_eq(kn_xml_feed(p, "dy>x</body></message>", 21), 0);
    kn_buf_reset(&log);
    ck_assert_int_eq(drain(p, &log), 0);
    ck_assert_str_eq(log.data, "S <message><body>x</body></message>\n");
    /* A park then a restart (kn_xml_reset) is fine too. */
    ck_assert(kn_xml_park(p));
    kn_xml_reset(p, true);
    ck_assert_int_eq(kn_xml_feed(p, h, strlen(h)), 0);
    kn_buf_reset(&log);
    ck_assert_int_eq(drain(p, &log), 0);
    ck_assert_ptr_nonnull(strstr(log.data, "H "));
    kn_xml_free(&p);
    kn_buf_free(&log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("xml");
    TCase *tc = tcase_create("xml");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, client_stream_any_split);
    tcase_add_test(tc, park_between_stanzas_is_invisible);
    tcase_add_test(tc, events_and_accessors);
    tcase_add_test(tc, empty_stream_and_close);
    tcase_add_test(tc, restricted_xml);
    tcase_add_test(tc, encoding_and_well_formedness);
    tcase_add_test(tc, stream_namespaces);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, restart_keeps_or_drops_input);
    tcase_add_test(tc, restart_byte_by_byte);
    tcase_add_test(tc, restart_whitespace_before_declaration);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
