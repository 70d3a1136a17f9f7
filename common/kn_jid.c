/*
 * kn_jid.c - JID parsing and preparation (see kn_jid.h).
 *
 * A note on the canonical form. A parsed JID is one heap string laid out
 * as  local '@' domain '/' resource  with the '@' and '/' present only
 * when their part is; the struct records where each part starts and how
 * long it is. Invariants, for a JID that kn_jid_parse() accepted:
 *   - every present part is 1..KN_JID_PART_MAX bytes of valid UTF-8 after
 *     preparation, and the string holds no NUL byte before its end;
 *   - the local part holds no '@' or '/' (Nodeprep prohibits them) and
 *     the domain only [a-z0-9.-] in ASCII or is an IPv6 literal, so the
 *     canonical string parses back to the same parts;
 *   - the bare JID is the prefix str[0..kn_jid_bare_len()).
 * Equality is therefore memcmp on canonical strings.
 *
 * Preparation: libidn's stringprep converts to UCS-4 and allocates on
 * every call, so a part that is pure ASCII (nearly every real JID) goes
 * through a fast path that applies exactly what the three profiles do to
 * ASCII: case folding for Nodeprep and Nameprep, rejection of control
 * characters (and, for Nodeprep, of space and  " & ' / : < > @). The unit
 * test checks the fast path against libidn for every ASCII byte.
 *
 * Scratch space is on the stack (three parts of KN_JID_PART_RAW_MAX),
 * so a parse costs one allocation: the result.
 */
#include "kn_jid.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <stringprep.h>

#include "kn_err.h"
#include "kn_mem.h"

enum jid_profile { JID_NODE, JID_NAME, JID_RESOURCE };

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF. */
static bool jid_utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static bool jid_is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* What the profiles do to ASCII; see the design note. */
static int jid_prep_ascii(enum jid_profile prof, const char *in, size_t n,
                          char *buf, size_t *outn)
{
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (prof != JID_NAME && ((unsigned char)c < 0x20 || c == 0x7F))
            return -KN_EINVAL;
        if (prof == JID_NODE && strchr(" \"&'/:<>@", c) != NULL)
            return -KN_EINVAL;
        if (prof != JID_RESOURCE && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        buf[i] = c;
    }
    buf[n] = '\0';
    *outn = n;
    return 0;
}

/* Prepare in[0..n) (valid UTF-8, no NUL, n <= KN_JID_PART_RAW_MAX) into
 * buf (KN_JID_PART_RAW_MAX + 1 bytes). An empty result, or one over
 * KN_JID_PART_MAX, is invalid; the domain is allowed room for the trailing
 * dot (up to three bytes when ideographic) that jid_domain_check() strips
 * before checking the length itself. */
static int jid_prep(enum jid_profile prof, const char *in, size_t n, char *buf,
                    size_t *outn)
{
    if (n == 0 || n > KN_JID_PART_RAW_MAX)
        return -KN_EINVAL;
    if (jid_is_ascii(in, n)) {
        if (jid_prep_ascii(prof, in, n, buf, outn) < 0)
            return -KN_EINVAL;
    } else {
        memcpy(buf, in, n);
        buf[n] = '\0';
        int rc;
        switch (prof) {
        case JID_NODE:
            rc = stringprep_xmpp_nodeprep(buf, KN_JID_PART_RAW_MAX + 1);
            break;
        case JID_NAME:
            rc = stringprep_nameprep(buf, KN_JID_PART_RAW_MAX + 1);
            break;
        default:
            rc = stringprep_xmpp_resourceprep(buf, KN_JID_PART_RAW_MAX + 1);
            break;
        }
        if (rc != STRINGPREP_OK)
            return -KN_EINVAL;
        *outn = strlen(buf);
    }
    if (*outn == 0 || *outn > KN_JID_PART_MAX + (prof == JID_NAME ? 3 : 0))
        return -KN_EINVAL;
    return 0;
}

/* "[" IPv6 "]", kept as written once inet_pton() accepts it. */
static int jid_ipv6_literal(const char *in, size_t n, char *buf, size_t *outn)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (n < 3 || in[n - 1] != ']' || n - 2 > INET6_ADDRSTRLEN)
        return -KN_EINVAL;
    memcpy(addr, in + 1, n - 2);
    addr[n - 2] = '\0';
    if (inet_pton(AF_INET6, addr, bin) != 1)
        return -KN_EINVAL;
    memcpy(buf, in, n);
    buf[n] = '\0';
    *outn = n;
    return 0;
}

/* Host-name rules on a Nameprep output: the ideographic full stop is a
 * label separator (RFC 3490 section 3.1), one trailing dot is dropped
 * (RFC 7622 section 3.2), labels are non-empty, ASCII in them is
 * letter/digit/hyphen with no hyphen at either end (STD3), and an
 * all-ASCII label is at most 63 bytes. */
static int jid_domain_check(char *buf, size_t *np)
{
    size_t n = *np, w = 0;
    for (size_t r = 0; r < n; r++) {
        if (n - r >= 3 && memcmp(buf + r, "\xE3\x80\x82", 3) == 0) {
            buf[w++] = '.';
            r += 2;
        } else {
            buf[w++] = buf[r];
        }
    }
    if (w > 0 && buf[w - 1] == '.')
        w--;
    buf[w] = '\0';
    if (w == 0 || w > KN_JID_PART_MAX)
        return -KN_EINVAL;

    size_t start = 0;
    while (start <= w) {
        const char *dot = memchr(buf + start, '.', w - start);
        size_t end = dot ? (size_t)(dot - buf) : w;
        size_t llen = end - start;
        if (llen == 0)
            return -KN_EINVAL;
        if (buf[start] == '-' || buf[end - 1] == '-')
            return -KN_EINVAL;
        bool ascii = true;
        for (size_t i = start; i < end; i++) {
            unsigned char c = (unsigned char)buf[i];
            if (c >= 0x80) {
                ascii = false;
                continue;
            }
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return -KN_EINVAL;
        }
        if (ascii && llen > 63)
            return -KN_EINVAL;
        start = end + 1;
    }
    *np = w;
    return 0;
}

/* Parse s[0..len) into the prepared parts; *out gets the canonical
 * string built in a new allocation. */
int kn_jid_parse(kn_jid_t *out, const char *s, size_t len)
{
    char lbuf[KN_JID_PART_RAW_MAX + 1];
    char dbuf[KN_JID_PART_RAW_MAX + 1];
    char rbuf[KN_JID_PART_RAW_MAX + 1];
    size_t llen = 0, dlen = 0, rlen = 0;

    KN_ASSERT(out != NULL);
    KN_ASSERT(s != NULL || len == 0);
    *out = (kn_jid_t)KN_JID_INIT;

    if (len == 0 || len > 3 * KN_JID_PART_RAW_MAX + 2)
        return -KN_EINVAL;
    if (memchr(s, '\0', len) != NULL ||
        !jid_utf8_valid((const unsigned char *)s, len))
        return -KN_EINVAL;

    /* RFC 7622 section 3.1: the resource is everything after the first
     * '/'; the local part is what precedes the first '@' before it. */
    const char *slash = memchr(s, '/', len);
    size_t head_len = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', head_len);
    const char *dom = at ? at + 1 : s;
    size_t dom_len = head_len - (size_t)(dom - s);

    if (at && jid_prep(JID_NODE, s, (size_t)(at - s), lbuf, &llen) < 0)
        return -KN_EINVAL;
    if (dom_len == 0 || dom_len > KN_JID_PART_RAW_MAX)
        return -KN_EINVAL;
    if (dom[0] == '[') {
        if (jid_ipv6_literal(dom, dom_len, dbuf, &dlen) < 0)
            return -KN_EINVAL;
    } else {
        if (jid_prep(JID_NAME, dom, dom_len, dbuf, &dlen) < 0)
            return -KN_EINVAL;
        if (jid_domain_check(dbuf, &dlen) < 0)
            return -KN_EINVAL;
    }
    if (slash &&
        jid_prep(JID_RESOURCE, slash + 1, len - head_len - 1, rbuf, &rlen) < 0)
        return -KN_EINVAL;

    size_t total = llen + (at ? 1 : 0) + dlen + (slash ? 1 + rlen : 0);
    char *p = kn_malloc(total + 1);
    size_t off = 0;
    if (at) {
        memcpy(p, lbuf, llen);
        p[llen] = '@';
        off = llen + 1;
    }
    out->local_len = llen;
    out->domain_off = off;
    out->domain_len = dlen;
    memcpy(p + off, dbuf, dlen);
    off += dlen;
    if (slash) {
        p[off++] = '/';
        out->resource_off = off;
        out->resource_len = rlen;
        memcpy(p + off, rbuf, rlen);
        off += rlen;
    } else {
        out->resource_off = off;
        out->resource_len = 0;
    }
    p[off] = '\0';
    KN_ASSERT(off == total);
    out->str = p;
    out->len = total;
    return 0;
}

int kn_jid_prepare_str(const char *s, size_t len, kn_buf_t *out)
{
    kn_jid_t j;
    KN_ASSERT(out != NULL);
    int rc = kn_jid_parse(&j, s, len);
    if (rc < 0)
        return rc;
    kn_buf_append(out, j.str, j.len);
    kn_jid_free(&j);
    return 0;
}

void kn_jid_free(kn_jid_t *j)
{
    if (j == NULL)
        return;
    free(j->str);
    *j = (kn_jid_t)KN_JID_INIT;
}

void kn_jid_dup(kn_jid_t *out, const kn_jid_t *in)
{
    KN_ASSERT(out != NULL && in != NULL && in->str != NULL);
    *out = *in;
    out->str = kn_memdup(in->str, in->len + 1);
}

void kn_jid_bare(kn_jid_t *out, const kn_jid_t *in)
{
    KN_ASSERT(out != NULL && in != NULL && in->str != NULL);
    size_t n = kn_jid_bare_len(in);
    *out = *in;
    out->str = kn_strndup(in->str, n);
    out->len = n;
    out->resource_off = n;
    out->resource_len = 0;
}

bool kn_jid_eq(const kn_jid_t *a, const kn_jid_t *b)
{
    KN_ASSERT(a != NULL && b != NULL && a->str != NULL && b->str != NULL);
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

bool kn_jid_eq_bare(const kn_jid_t *a, const kn_jid_t *b)
{
    KN_ASSERT(a != NULL && b != NULL && a->str != NULL && b->str != NULL);
    size_t na = kn_jid_bare_len(a);
    return na == kn_jid_bare_len(b) && memcmp(a->str, b->str, na) == 0;
}

bool kn_jid_is_bare(const kn_jid_t *j)
{
    KN_ASSERT(j != NULL && j->str != NULL);
    return j->resource_len == 0;
}

const char *kn_jid_str(const kn_jid_t *j)
{
    KN_ASSERT(j != NULL && j->str != NULL);
    return j->str;
}

size_t kn_jid_len(const kn_jid_t *j)
{
    KN_ASSERT(j != NULL && j->str != NULL);
    return j->len;
}

size_t kn_jid_bare_len(const kn_jid_t *j)
{
    KN_ASSERT(j != NULL && j->str != NULL);
    return j->domain_off + j->domain_len;
}

const char *kn_jid_local(const kn_jid_t *j, size_t *len)
{
    KN_ASSERT(j != NULL && j->str != NULL && len != NULL);
    *len = j->local_len;
    return j->local_len ? j->str : NULL;
}

const char *kn_jid_domain(const kn_jid_t *j, size_t *len)
{
    KN_ASSERT(j != NULL && j->str != NULL && len != NULL);
    *len = j->domain_len;
    return j->str + j->domain_off;
}

const char *kn_jid_resource(const kn_jid_t *j, size_t *len)
{
    KN_ASSERT(j != NULL && j->str != NULL && len != NULL);
    *len = j->resource_len;
    return j->resource_len ? j->str + j->resource_off : NULL;
}
