/*
 * fuzz_xml.c - libFuzzer entry point for the XMPP stream parser.
 *
 * The first two bytes choose where the rest is split into two feeds and
 * which content namespace the parser expects. Every event is serialised;
 * every stanza must also survive serialise -> parse -> serialise
 * unchanged, and is put through the derivation and bounce paths. An
 * <auth/> stanza triggers a stream restart that keeps the unparsed bytes.
 *
 * Built by `make fuzz-bin` (build/fuzz/bin), run by `make fuzz` and
 * `make fuzz-check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_hdr[] =
    "<s:stream xmlns:s='http://etherx.jabber.org/streams'>";

/* Serialise st standalone, parse it back, serialise again: same bytes. */
static void fuzz_round_trip(const kn_stanza_t *st)
{
    kn_buf_t a = KN_BUF_INIT, b = KN_BUF_INIT;
    kn_stanza_serialize(st, &a, NULL);
    kn_xml_t *p = kn_xml_new(NULL, NULL);
    kn_xml_event_t ev;
    kn_xml_feed(p, fuzz_hdr, strlen(fuzz_hdr));
    kn_xml_feed(p, a.data, a.len);
    KN_ASSERT(kn_xml_next(p, &ev) == 1 && ev.type == KN_XML_HEADER);
    kn_stanza_unref(&ev.stanza);
    int rc = kn_xml_next(p, &ev);
    if (rc == -KN_ETOOBIG) /* escaping can push it over the limit */
        goto out;
    KN_ASSERT(rc == 1 && ev.type == KN_XML_STANZA);
    kn_stanza_serialize(ev.stanza, &b, NULL);
    KN_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    kn_stanza_unref(&ev.stanza);
out:
    kn_xml_free(&p);
    kn_buf_free(&a);
    kn_buf_free(&b);
}

static void fuzz_stanza(const kn_stanza_t *st, kn_buf_t *out)
{
    kn_stanza_serialize(st, out, KN_NS_CLIENT);
    kn_stanza_serialize(st, out, KN_NS_COMPONENT);
    for (int e = 0; e < (int)kn_stanza_count(st); e++)
        kn_stanza_text(st, e, out);
    fuzz_round_trip(st);
    kn_stanza_t *w = kn_stanza_with_attr(st, 0, "from", "a@b/c");
    kn_stanza_t *wo = kn_stanza_without_attr(w, 0, "to");
    kn_stanza_t *err =
        kn_stanza_error_reply(st, KN_STE_SERVICE_UNAVAILABLE, "x");
    kn_stanza_serialize(wo, out, NULL);
    if (err != NULL)
        kn_stanza_serialize(err, out, KN_NS_CLIENT);
    kn_stanza_unref(&w);
    kn_stanza_unref(&wo);
    kn_stanza_unref(&err);
}

/* Returns false once the parser has failed. */
static bool fuzz_drain(kn_xml_t *p, kn_buf_t *out)
{
    kn_xml_event_t ev;
    int rc;
    while ((rc = kn_xml_next(p, &ev)) > 0) {
        if (ev.stanza != NULL && ev.type == KN_XML_STANZA)
            fuzz_stanza(ev.stanza, out);
        else if (ev.stanza != NULL)
            kn_stanza_serialize(ev.stanza, out, NULL);
        bool restart = ev.type == KN_XML_STANZA &&
                       strcmp(kn_stanza_name(ev.stanza, 0), "auth") == 0;
        kn_stanza_unref(&ev.stanza);
        if (restart)
            kn_xml_reset(p, true);
    }
    if (rc < 0)
        kn_stream_err_write(out, kn_xml_error(p, NULL), NULL);
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    const char *ns = (data[0] & 0x80) ? NULL : KN_NS_CLIENT;
    data += 2;
    size -= 2;
    kn_xml_limits_t lim = {4096, 16, 16, 1024};
    kn_xml_t *p = kn_xml_new(&lim, ns);
    kn_buf_t out = KN_BUF_INIT;
    if (kn_xml_feed(p, data, split) == 0 && fuzz_drain(p, &out) &&
        kn_xml_feed(p, data + split, size - split) == 0)
        fuzz_drain(p, &out);
    kn_buf_free(&out);
    kn_xml_free(&p);
    return 0;
}
