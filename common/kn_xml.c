/*
 * kn_xml.c - XMPP stream parser over expat (see kn_xml.h for the contract).
 *
 * A note on suspension. Expat is namespace-aware with triplets ("uri SEP
 * local SEP prefix") so prefixed attributes keep their prefix. Stanzas are
 * built straight from the callbacks into a reused kn_stanza_builder: one
 * parse, one allocation per stanza. After each event the handler suspends
 * expat (XML_StopParser resumable), so expat holds the unparsed rest of its
 * buffer and kn_xml_next() resumes it when asked for the next event. At
 * most two events can be pending: expat still reports the end of an empty
 * element after a suspension in its start handler (<stream:stream/>).
 *
 * A note on limits. All positions are absolute byte indexes since the
 * parser was created. `mark` is where the unit the size limit applies to
 * began: offset 0 for the header, the '<' of the current stanza, or the end
 * of the last event or inter-stanza whitespace. Handlers check event ends
 * against it; after expat has swallowed a chunk without finishing a unit,
 * `fed - mark` bounds what an incomplete token (a megabyte attribute value)
 * can make expat buffer. `consumed` is the end of the last event, used to
 * carry unparsed bytes across kn_xml_reset().
 *
 * Restricted XML (RFC 6120 11.1) is enforced with handlers that fail the
 * parser as soon as a DOCTYPE, entity declaration, comment or processing
 * instruction appears, before any entity could be expanded: billion laughs
 * dies at "<!DOCTYPE". The parser is created for UTF-8, which makes expat
 * ignore a declared encoding, so the XML declaration handler refuses any
 * other declared encoding itself.
 */
#include "kn_xml.h"

#include "kn_features.h"

#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "kn_err.h"
#include "kn_mem.h"

#define XML_SEP   '\x01' /* not allowed anywhere in an XML 1.0 document */
#define XML_CHUNK 65536  /* bytes handed to expat per XML_Parse call */

enum xml_state { XML_ST_PROLOG, XML_ST_STREAM, XML_ST_CLOSED };

struct kn_xml {
    XML_Parser xp;
    kn_xml_limits_t lim;
    char *content_ns;
    kn_stanza_builder_t *b;
    kn_buf_t in; /* fed but not yet handed to expat */
    enum xml_state state;
    size_t depth;    /* open elements of the current stanza */
    size_t ns_decls; /* xmlns declarations of the start tag being parsed */
    uint64_t fed, mark, consumed;
    bool in_parse;  /* inside XML_Parse / XML_ResumeParser */
    bool suspended; /* expat holds unparsed input */
    int failed;     /* 0, KN_EPROTO or KN_ETOOBIG */
    kn_stream_err_t err;
    const char *detail;
    char *stream_ns, *stream_prefix;
    kn_xml_event_t ev[2];
    size_t nev;
    bool parked;    /* xp and b freed between stanzas (kn_xml_park) */
    bool restarted; /* by kn_xml_reset: whitespace before the new header */
};

struct xml_name {
    const char *ns, *local, *prefix;
    size_t ns_len, local_len, prefix_len;
};

static void xml_split(const char *s, struct xml_name *n)
{
    const char *a = strchr(s, XML_SEP);
    memset(n, 0, sizeof(*n));
    n->ns = "";
    n->local = s;
    if (a == NULL) {
        n->local_len = strlen(s);
        return;
    }
    n->ns = s;
    n->ns_len = (size_t)(a - s);
    n->local = a + 1;
    const char *b = strchr(n->local, XML_SEP);
    n->local_len = b ? (size_t)(b - n->local) : strlen(n->local);
    if (b != NULL) {
        n->prefix = b + 1;
        n->prefix_len = strlen(n->prefix);
    }
}

static void xml_fail(kn_xml_t *p, kn_stream_err_t err, int code,
                     const char *detail)
{
    if (p->failed)
        return;
    p->failed = code;
    p->err = err;
    p->detail = detail;
    if (p->in_parse)
        XML_StopParser(p->xp, XML_FALSE);
}

static void xml_suspend(kn_xml_t *p)
{
    XML_ParsingStatus s;
    XML_GetParsingStatus(p->xp, &s);
    if (s.parsing == XML_PARSING)
        XML_StopParser(p->xp, XML_TRUE);
}

static void xml_push(kn_xml_t *p, kn_xml_event_type_t type, kn_stanza_t *st)
{
    KN_ASSERT(p->nev < KN_ARRAY_LEN(p->ev));
    p->ev[p->nev].type = type;
    p->ev[p->nev].stanza = st;
    p->nev++;
}

static uint64_t xml_event_end(kn_xml_t *p)
{
    return (uint64_t)XML_GetCurrentByteIndex(p->xp) +
           (uint64_t)XML_GetCurrentByteCount(p->xp);
}

static bool xml_check_size(kn_xml_t *p, uint64_t end)
{
    size_t limit =
        p->state == XML_ST_PROLOG ? p->lim.max_header : p->lim.max_stanza;
    if (p->state == XML_ST_CLOSED || end - p->mark <= limit)
        return true;
    xml_fail(p, KN_SE_POLICY_VIOLATION, KN_ETOOBIG,
             p->state == XML_ST_PROLOG ? "stream header too big"
                                       : "stanza too big");
    return false;
}

/* ---- expat handlers ------------------------------------------------------ */

static void xml_add_attrs(kn_xml_t *p, const XML_Char **atts)
{
    for (const XML_Char **a = atts; *a != NULL; a += 2) {
        struct xml_name n;
        xml_split(a[0], &n);
        kn_stanza_builder_attr_n(p->b, n.ns, n.ns_len, n.prefix, n.prefix_len,
                                 n.local, n.local_len, a[1], strlen(a[1]));
    }
}

static void xml_on_header(kn_xml_t *p, const struct xml_name *n,
                          const XML_Char **atts, uint64_t end)
{
    if (n->ns_len != strlen(KN_NS_STREAMS) ||
        memcmp(n->ns, KN_NS_STREAMS, n->ns_len) != 0 || n->local_len != 6 ||
        memcmp(n->local, "stream", 6) != 0) {
        xml_fail(p, KN_SE_INVALID_NAMESPACE, KN_EPROTO,
                 "root is not {" KN_NS_STREAMS "}stream");
        return;
    }
    if (p->stream_ns == NULL)
        p->stream_ns = kn_strdup("");
    if (p->stream_prefix == NULL)
        p->stream_prefix = kn_strdup("");
    if (p->content_ns != NULL && strcmp(p->stream_ns, p->content_ns) != 0) {
        xml_fail(p, KN_SE_INVALID_NAMESPACE, KN_EPROTO,
                 "unexpected default namespace on the stream");
        return;
    }
    kn_stanza_builder_reset(p->b);
    kn_stanza_builder_start_n(p->b, n->local, n->local_len, n->ns, n->ns_len);
    xml_add_attrs(p, atts);
    xml_push(p, KN_XML_HEADER, kn_stanza_builder_finish(p->b));
    p->state = XML_ST_STREAM;
    p->mark = p->consumed = end;
    xml_suspend(p);
}

static void XMLCALL xml_on_start(void *ud, const XML_Char *name,
                                 const XML_Char **atts)
{
    kn_xml_t *p = ud;
    if (p->failed)
        return;
    size_t nattrs = p->ns_decls;
    p->ns_decls = 0;
    for (const XML_Char **a = atts; *a != NULL; a += 2)
        nattrs++;
    uint64_t end = xml_event_end(p);
    if (p->state == XML_ST_STREAM && p->depth == 0)
        p->mark = (uint64_t)XML_GetCurrentByteIndex(p->xp);
    if (!xml_check_size(p, end))
        return;
    if (nattrs > p->lim.max_attrs) {
        xml_fail(p, KN_SE_POLICY_VIOLATION, KN_ETOOBIG, "too many attributes");
        return;
    }
    struct xml_name n;
    xml_split(name, &n);
    if (p->state == XML_ST_PROLOG) {
        xml_on_header(p, &n, atts, end);
        return;
    }
    if (++p->depth > p->lim.max_depth) {
        xml_fail(p, KN_SE_POLICY_VIOLATION, KN_ETOOBIG, "stanza too deep");
        return;
    }
    /* <xml:x/> is well-formed but cannot be written back with a default
     * namespace declaration; nothing legitimate sends it. */
    if (n.ns_len == strlen(KN_NS_XML) &&
        memcmp(n.ns, KN_NS_XML, n.ns_len) == 0) {
        xml_fail(p, KN_SE_BAD_NAMESPACE_PREFIX, KN_EPROTO,
                 "element in the xml namespace");
        return;
    }
    if (p->depth == 1)
        kn_stanza_builder_reset(p->b);
    kn_stanza_builder_start_n(p->b, n.local, n.local_len, n.ns, n.ns_len);
    xml_add_attrs(p, atts);
}

static void XMLCALL xml_on_end(void *ud, const XML_Char *name)
{
    kn_xml_t *p = ud;
    KN_UNUSED(name);
    if (p->failed)
        return;
    uint64_t end = xml_event_end(p);
    if (p->depth == 0) {
        xml_push(p, KN_XML_CLOSE, NULL);
        p->state = XML_ST_CLOSED;
        p->consumed = end;
        xml_suspend(p);
        return;
    }
    if (!xml_check_size(p, end))
        return;
    kn_stanza_builder_end(p->b);
    if (--p->depth == 0) {
        xml_push(p, KN_XML_STANZA, kn_stanza_builder_finish(p->b));
        p->mark = p->consumed = end;
        xml_suspend(p);
    }
}

static void XMLCALL xml_on_text(void *ud, const XML_Char *s, int len)
{
    kn_xml_t *p = ud;
    if (p->failed || p->state != XML_ST_STREAM)
        return;
    uint64_t end = xml_event_end(p);
    if (p->depth > 0) {
        if (xml_check_size(p, end))
            kn_stanza_builder_text(p->b, s, (size_t)len);
        return;
    }
    for (int i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            xml_fail(p, KN_SE_BAD_FORMAT, KN_EPROTO, "text between stanzas");
            return;
        }
    }
    p->mark = p->consumed = end;
}

static void XMLCALL xml_on_ns_decl(void *ud, const XML_Char *prefix,
                                   const XML_Char *uri)
{
    kn_xml_t *p = ud;
    if (p->failed)
        return;
    p->ns_decls++;
    if (p->state != XML_ST_PROLOG)
        return;
    if (prefix == NULL) {
        free(p->stream_ns);
        p->stream_ns = kn_strdup(uri != NULL ? uri : "");
    } else if (uri != NULL && strcmp(uri, KN_NS_STREAMS) == 0) {
        free(p->stream_prefix);
        p->stream_prefix = kn_strdup(prefix);
    }
}

static void XMLCALL xml_on_xmldecl(void *ud, const XML_Char *version,
                                   const XML_Char *encoding, int standalone)
{
    kn_xml_t *p = ud;
    KN_UNUSED(version);
    KN_UNUSED(standalone);
    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
        xml_fail(p, KN_SE_UNSUPPORTED_ENCODING, KN_EPROTO,
                 "declared encoding is not UTF-8");
}

static void xml_restricted(void *ud, const char *what)
{
    xml_fail(ud, KN_SE_RESTRICTED_XML, KN_EPROTO, what);
}

static void XMLCALL xml_on_doctype(void *ud, const XML_Char *name,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   int has_internal)
{
    KN_UNUSED(name);
    KN_UNUSED(sysid);
    KN_UNUSED(pubid);
    KN_UNUSED(has_internal);
    xml_restricted(ud, "DOCTYPE");
}

static void XMLCALL xml_on_entity(void *ud, const XML_Char *name, int is_pe,
                                  const XML_Char *value, int value_len,
                                  const XML_Char *base, const XML_Char *sysid,
                                  const XML_Char *pubid,
                                  const XML_Char *notation)
{
    KN_UNUSED(name);
    KN_UNUSED(is_pe);
    KN_UNUSED(value);
    KN_UNUSED(value_len);
    KN_UNUSED(base);
    KN_UNUSED(sysid);
    KN_UNUSED(pubid);
    KN_UNUSED(notation);
    xml_restricted(ud, "entity declaration");
}

static void XMLCALL xml_on_pi(void *ud, const XML_Char *target,
                              const XML_Char *data)
{
    KN_UNUSED(target);
    KN_UNUSED(data);
    xml_restricted(ud, "processing instruction");
}

static void XMLCALL xml_on_comment(void *ud, const XML_Char *data)
{
    KN_UNUSED(data);
    xml_restricted(ud, "comment");
}

static void xml_fail_expat(kn_xml_t *p)
{
    enum XML_Error e = XML_GetErrorCode(p->xp);
    kn_stream_err_t se = KN_SE_NOT_WELL_FORMED;
    switch (e) {
    case XML_ERROR_UNBOUND_PREFIX:
    case XML_ERROR_UNDECLARING_PREFIX:
    case XML_ERROR_RESERVED_PREFIX_XML:
    case XML_ERROR_RESERVED_PREFIX_XMLNS:
    case XML_ERROR_RESERVED_NAMESPACE_URI:
        se = KN_SE_BAD_NAMESPACE_PREFIX;
        break;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        se = KN_SE_UNSUPPORTED_ENCODING;
        break;
    case XML_ERROR_NO_MEMORY:
        se = KN_SE_RESOURCE_CONSTRAINT;
        break;
    default:
        break;
    }
    xml_fail(p, se, KN_EPROTO, XML_ErrorString(e));
}

/* ---- lifetime ---------------------------------------------------------- */

/* Expat salts its hash tables (against hash flooding) with getrandom()
 * for every parser it creates unless told a salt: three parsers per
 * login (the streams before TLS, before SASL, after). One random salt
 * per process serves every parser; it stays secret like expat's own. */
static unsigned long xml_salt(void)
{
    static unsigned long salt;
    while (salt == 0) {
        if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
            salt = 0; /* EINTR; the pool is initialised after boot */
    }
    return salt;
}

static void xml_start(kn_xml_t *p)
{
    static const XML_Memory_Handling_Suite mem = {kn_malloc, kn_realloc, free};
    static const XML_Char sep = XML_SEP;
    p->xp = XML_ParserCreate_MM("UTF-8", &mem, &sep);
    KN_ASSERT(p->xp != NULL);
    XML_SetHashSalt(p->xp, xml_salt());
    XML_SetUserData(p->xp, p);
    XML_SetReturnNSTriplet(p->xp, XML_TRUE);
    /* Expat >= 2.6 (and Debian's later 2.5.0 security updates) may hold
     * back a small final chunk waiting for more; a stream must see each
     * stanza as soon as its last byte arrives. Builds without the call
     * never defer, so there is nothing to switch off. */
#ifdef KN_HAVE_XML_REPARSE_DEFERRAL
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
#endif
    XML_SetElementHandler(p->xp, xml_on_start, xml_on_end);
    XML_SetCharacterDataHandler(p->xp, xml_on_text);
    XML_SetStartNamespaceDeclHandler(p->xp, xml_on_ns_decl);
    XML_SetXmlDeclHandler(p->xp, xml_on_xmldecl);
    XML_SetStartDoctypeDeclHandler(p->xp, xml_on_doctype);
    XML_SetEntityDeclHandler(p->xp, xml_on_entity);
    XML_SetProcessingInstructionHandler(p->xp, xml_on_pi);
    XML_SetCommentHandler(p->xp, xml_on_comment);
    p->state = XML_ST_PROLOG;
    p->depth = p->ns_decls = 0;
    p->fed = p->mark = p->consumed = 0;
    p->in_parse = p->suspended = false;
    p->failed = 0;
    p->err = KN_SE_NONE;
    p->detail = NULL;
}

/* Free the expat parser and everything tied to the current stream. */
static void xml_stop(kn_xml_t *p)
{
    for (size_t i = 0; i < p->nev; i++)
        kn_stanza_unref(&p->ev[i].stanza);
    p->nev = 0;
    if (p->xp != NULL)
        XML_ParserFree(p->xp);
    p->xp = NULL;
    kn_free(&p->stream_ns);
    kn_free(&p->stream_prefix);
    if (p->parked) {
        p->b = kn_stanza_builder_new();
        p->parked = false;
    }
    kn_stanza_builder_reset(p->b);
}

kn_xml_t *kn_xml_new(const kn_xml_limits_t *lim, const char *content_ns)
{
    static const kn_xml_limits_t defaults = KN_XML_LIMITS_DEFAULT;
    kn_xml_t *p = kn_calloc(1, sizeof(*p));
    p->lim = lim != NULL ? *lim : defaults;
    p->content_ns = content_ns != NULL ? kn_strdup(content_ns) : NULL;
    p->b = kn_stanza_builder_new();
    xml_start(p);
    return p;
}

void kn_xml_free(kn_xml_t **pp)
{
    KN_ASSERT(pp != NULL);
    kn_xml_t *p = *pp;
    if (p == NULL)
        return;
    xml_stop(p);
    kn_stanza_builder_free(&p->b);
    kn_buf_free(&p->in);
    free(p->content_ns);
    kn_free(pp);
}

void kn_xml_reset(kn_xml_t *p, bool keep_unparsed)
{
    KN_ASSERT(p != NULL && !p->in_parse);
    kn_buf_t rest = KN_BUF_INIT;
    if (keep_unparsed && !p->failed) {
        /* Expat's buffer ends with the last bytes fed; the unparsed ones
         * are its last fed - consumed bytes. */
        uint64_t left = p->fed - p->consumed;
        int off = 0, size = 0;
        const char *ctx =
            left && p->xp ? XML_GetInputContext(p->xp, &off, &size) : NULL;
        if (ctx != NULL && left <= (uint64_t)size)
            kn_buf_append(&rest, ctx + size - left, (size_t)left);
        kn_buf_append(&rest, p->in.data, p->in.len);
    }
    xml_stop(p);
    kn_buf_free(&p->in);
    p->in = rest;
    xml_start(p);
    p->restarted = true;
}

/* ---- parking ------------------------------------------------------------ */

/*
 * A note on parking. An idle stream sits between stanzas for minutes; its
 * expat parser and stanza builder hold about 13 KB that it does not need
 * until the next byte. kn_xml_park() frees both when nothing is pending
 * (no open element, no queued event, only whitespace unparsed) and keeps
 * what the stream's context needs: the default namespace and the streams
 * prefix. The next kn_xml_next() with input re-creates the parser and
 * replays a stream tag declaring the same namespaces, swallowing its
 * event, so parsing goes on as if nothing had happened.
 */
static bool xml_tail_is_space(kn_xml_t *p)
{
    uint64_t left = p->fed - p->consumed;
    if (left == 0)
        return true;
    int off = 0, size = 0;
    const char *ctx = XML_GetInputContext(p->xp, &off, &size);
    if (ctx == NULL || left > (uint64_t)size)
        return false;
    for (const char *c = ctx + size - left; c < ctx + size; c++)
        if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
            return false;
    return true;
}

bool kn_xml_park(kn_xml_t *p)
{
    KN_ASSERT(p != NULL && !p->in_parse);
    if (p->parked)
        return true;
    if (p->failed || p->state != XML_ST_STREAM || p->depth != 0 ||
        p->nev != 0 || p->suspended || p->in.len != 0 ||
        p->stream_prefix == NULL || *p->stream_prefix == '\0' ||
        !xml_tail_is_space(p))
        return false;
    XML_ParserFree(p->xp);
    p->xp = NULL;
    kn_stanza_builder_free(&p->b);
    kn_buf_free(&p->in);
    p->parked = true;
    return true;
}

static void xml_unpark(kn_xml_t *p)
{
    char *ns = p->stream_ns, *prefix = p->stream_prefix;
    p->stream_ns = p->stream_prefix = NULL;
    p->b = kn_stanza_builder_new();
    xml_start(p);
    p->parked = false;
    kn_buf_t h = KN_BUF_INIT;
    kn_buf_printf(&h, "<%s:stream xmlns:%s='%s' xmlns='", prefix, prefix,
                  KN_NS_STREAMS);
    kn_buf_append_xml_escaped(&h, ns, strlen(ns));
    kn_buf_append_str(&h, "'>");
    p->in_parse = true;
    p->fed = h.len;
    enum XML_Status rc = XML_Parse(p->xp, h.data, (int)h.len, XML_FALSE);
    if (rc == XML_STATUS_SUSPENDED)
        rc = XML_ResumeParser(p->xp);
    p->in_parse = false;
    KN_ASSERT(rc != XML_STATUS_ERROR && !p->failed && p->nev == 1);
    kn_stanza_unref(&p->ev[0].stanza);
    p->nev = 0;
    kn_buf_free(&h);
    free(ns);
    free(prefix);
}

/* ---- feeding and events ----------------------------------------------------
 */

int kn_xml_feed(kn_xml_t *p, const void *buf, size_t len)
{
    KN_ASSERT(p != NULL && (buf != NULL || len == 0));
    if (p->failed)
        return -p->failed;
    kn_buf_append(&p->in, buf, len);
    return 0;
}

/*
 * After a restart, whitespace that ends the old stream ("</auth>\n", and a
 * newline after <starttls/>) may come before the new stream's XML
 * declaration, which XML only allows as the very first bytes of a
 * document. RFC 6120 6.4.6 / 5.4.3.3: the old stream is gone, so its
 * trailing whitespace is dropped here before expat sees anything. Returns
 * false while only whitespace has arrived.
 */
static bool xml_skip_restart_space(kn_xml_t *p)
{
    size_t n = 0;
    while (n < p->in.len && (p->in.data[n] == ' ' || p->in.data[n] == '\t' ||
                             p->in.data[n] == '\r' || p->in.data[n] == '\n'))
        n++;
    if (n > 0)
        kn_buf_consume(&p->in, n);
    if (p->in.len == 0)
        return false;
    p->restarted = false;
    return true;
}

int kn_xml_next(kn_xml_t *p, kn_xml_event_t *ev)
{
    KN_ASSERT(p != NULL && ev != NULL && !p->in_parse);
    for (;;) {
        if (p->nev > 0) {
            *ev = p->ev[0];
            p->ev[0] = p->ev[1];
            p->ev[1].stanza = NULL;
            p->nev--;
            return 1;
        }
        if (p->failed)
            return -p->failed;
        if (p->parked) {
            if (p->in.len == 0)
                return 0;
            xml_unpark(p);
        }
        if (p->restarted && !xml_skip_restart_space(p))
            return 0;
        enum XML_Status rc;
        p->in_parse = true;
        if (p->suspended) {
            p->suspended = false;
            rc = XML_ResumeParser(p->xp);
        } else if (p->in.len > 0) {
            size_t n = p->in.len < XML_CHUNK ? p->in.len : XML_CHUNK;
            p->fed += n;
            rc = XML_Parse(p->xp, p->in.data, (int)n, XML_FALSE);
            kn_buf_consume(&p->in, n);
        } else {
            p->in_parse = false;
            return 0;
        }
        p->in_parse = false;
        if (p->failed)
            continue;
        if (rc == XML_STATUS_ERROR)
            xml_fail_expat(p);
        else if (rc == XML_STATUS_SUSPENDED)
            p->suspended = true;
        else
            xml_check_size(p, p->fed);
    }
}

kn_stream_err_t kn_xml_error(const kn_xml_t *p, const char **detail)
{
    KN_ASSERT(p != NULL);
    if (detail != NULL)
        *detail = p->detail;
    return p->err;
}

const char *kn_xml_stream_ns(const kn_xml_t *p)
{
    KN_ASSERT(p != NULL);
    return p->state == XML_ST_PROLOG ? NULL : p->stream_ns;
}

const char *kn_xml_stream_prefix(const kn_xml_t *p)
{
    KN_ASSERT(p != NULL);
    return p->state == XML_ST_PROLOG ? NULL : p->stream_prefix;
}

int kn_xml_parse_stanza(const void *buf, size_t len, const char *content_ns,
                        kn_stanza_t **out)
{
    *out = NULL;
    const char *ns = content_ns ? content_ns : KN_NS_CLIENT;
    kn_buf_t head = KN_BUF_INIT;
    kn_buf_append_str(&head, "<stream:stream xmlns='");
    kn_buf_append_xml_escaped(&head, ns, strlen(ns));
    kn_buf_append_str(&head, "' xmlns:stream='" KN_NS_STREAMS "'>");
    kn_xml_t *p = kn_xml_new(NULL, NULL);
    int rc = kn_xml_feed(p, head.data, head.len);
    if (rc == 0)
        rc = kn_xml_feed(p, buf, len);
    kn_buf_free(&head);
    kn_xml_event_t ev;
    while (rc == 0) {
        int n = kn_xml_next(p, &ev);
        if (n < 0) {
            rc = n;
        } else if (n == 0) {
            rc = -KN_EPROTO; /* incomplete */
        } else if (ev.type == KN_XML_STANZA) {
            *out = ev.stanza;
            break;
        } else {
            kn_stanza_unref(&ev.stanza);
        }
    }
    kn_xml_free(&p);
    return rc < 0 ? rc : 0;
}
