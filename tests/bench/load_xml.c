/*
 * load_xml.c - resumable scan for top-level XMPP elements (load_xml.h).
 *
 * The scan is a byte-at-a-time state machine whose whole state lives in
 * load_xml_t, so a read that stops anywhere (inside a tag name, an
 * attribute value holding '>', a comment) resumes exactly there. Depth
 * counts open elements including the stream element: an element is
 * complete when an end tag brings depth back to 1, or when a
 * self-closing tag is seen at depth 1.
 */
#include "load_xml.h"

#include <string.h>

enum {
    XS_TEXT = 0, /* character data */
    XS_LT,       /* just after '<' */
    XS_START,    /* inside a start tag */
    XS_END,      /* inside an end tag */
    XS_PI,       /* inside <? ... ?> */
    XS_BANG,     /* just after "<!" */
    XS_COMMENT,  /* inside <!-- ... --> */
    XS_CDATA,    /* inside <![CDATA[ ... ]]> */
};

void load_xml_reset(load_xml_t *x, size_t max_elem)
{
    memset(x, 0, sizeof(*x));
    x->max_elem = max_elem;
}

void load_xml_shift(load_xml_t *x, size_t n)
{
    x->pos -= n;
    x->tag_start = x->tag_start >= n ? x->tag_start - n : 0;
    x->elem_start = x->elem_start >= n ? x->elem_start - n : 0;
}

int load_xml_next(load_xml_t *x, const char *buf, size_t len, size_t *start,
                  size_t *end)
{
    while (x->pos < len) {
        char c = buf[x->pos++];
        switch (x->state) {
        case XS_TEXT:
            if (c == '<') {
                x->state = XS_LT;
                x->tag_start = x->pos - 1;
            }
            break;
        case XS_LT:
            x->last = x->last2 = 0;
            x->quote = 0;
            if (c == '/') {
                x->state = XS_END;
            } else if (c == '?') {
                x->state = XS_PI;
            } else if (c == '!') {
                x->state = XS_BANG;
            } else {
                x->state = XS_START;
                if (x->depth == 1)
                    x->elem_start = x->tag_start;
                x->last = c;
            }
            break;
        case XS_START:
            if (x->quote) {
                if (c == x->quote)
                    x->quote = 0;
                break;
            }
            if (c == '"' || c == '\'') {
                x->quote = c;
                x->last = c;
                break;
            }
            if (c != '>') {
                x->last = c;
                break;
            }
            x->state = XS_TEXT;
            if (x->depth == 0) {
                x->depth = 1;
                *start = x->tag_start;
                *end = x->pos;
                return LOAD_XML_OPEN;
            }
            if (x->last == '/') {
                if (x->depth == 1) {
                    *start = x->elem_start;
                    *end = x->pos;
                    return LOAD_XML_ELEMENT;
                }
            } else {
                x->depth++;
            }
            break;
        case XS_END:
            if (c != '>')
                break;
            x->state = XS_TEXT;
            x->depth--;
            if (x->depth == 1) {
                *start = x->elem_start;
                *end = x->pos;
                return LOAD_XML_ELEMENT;
            }
            if (x->depth <= 0) {
                x->depth = 0;
                *start = x->tag_start;
                *end = x->pos;
                return LOAD_XML_CLOSE;
            }
            break;
        case XS_PI:
            if (c == '>' && x->last == '?')
                x->state = XS_TEXT;
            x->last = c;
            break;
        case XS_BANG:
            if (c == '-')
                x->state = XS_COMMENT;
            else if (c == '[')
                x->state = XS_CDATA;
            else
                return LOAD_XML_ERROR; /* DOCTYPE and friends */
            break;
        case XS_COMMENT:
            /* "<!--" leaves one '-' to read here, so "<!--->" cannot end
             * early: the ring starts empty. */
            if (c == '>' && x->last == '-' && x->last2 == '-')
                x->state = XS_TEXT;
            x->last2 = x->last;
            x->last = c;
            break;
        case XS_CDATA:
            if (c == '>' && x->last == ']' && x->last2 == ']')
                x->state = XS_TEXT;
            x->last2 = x->last;
            x->last = c;
            break;
        }
    }
    if (x->depth >= 1 && x->max_elem && x->state != XS_TEXT &&
        x->pos - x->tag_start > x->max_elem)
        return LOAD_XML_ERROR;
    if (x->depth > 1 && x->max_elem && x->pos - x->elem_start > x->max_elem)
        return LOAD_XML_ERROR;
    return LOAD_XML_MORE;
}

static size_t xml_name_len(const char *el, size_t len)
{
    size_t i = 1;
    while (i < len && el[i] != ' ' && el[i] != '\t' && el[i] != '\r' &&
           el[i] != '\n' && el[i] != '/' && el[i] != '>')
        i++;
    return i - 1;
}

int load_xml_is(const char *el, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && el[0] == '<' && xml_name_len(el, len) == n &&
           memcmp(el + 1, name, n) == 0;
}

static int xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *load_xml_attr(const char *el, size_t len, const char *name,
                          size_t *vlen)
{
    size_t n = strlen(name);
    size_t i = 1 + xml_name_len(el, len);
    while (i < len) {
        while (i < len && xml_space(el[i]))
            i++;
        if (i >= len || el[i] == '>' || el[i] == '/')
            return NULL;
        size_t an = i;
        while (i < len && el[i] != '=' && !xml_space(el[i]))
            i++;
        size_t alen = i - an;
        while (i < len && (xml_space(el[i]) || el[i] == '='))
            i++;
        if (i >= len || (el[i] != '"' && el[i] != '\''))
            return NULL;
        char q = el[i++];
        size_t v = i;
        while (i < len && el[i] != q)
            i++;
        if (i >= len)
            return NULL;
        if (alen == n && memcmp(el + an, name, n) == 0) {
            *vlen = i - v;
            return el + v;
        }
        i++;
    }
    return NULL;
}

const char *load_xml_child_text(const char *el, size_t len, const char *name,
                                size_t *tlen)
{
    size_t n = strlen(name);
    const char *end = el + len;
    const char *p = el + 1;
    while ((p = memmem(p, (size_t)(end - p), name, n)) != NULL) {
        const char *q = p + n;
        if (p[-1] == '<' && q < end && (*q == '>' || xml_space(*q))) {
            const char *gt = memchr(q, '>', (size_t)(end - q));
            if (gt == NULL || gt[-1] == '/')
                return NULL;
            const char *lt = memchr(gt + 1, '<', (size_t)(end - gt - 1));
            if (lt == NULL || lt == gt + 1)
                return NULL;
            *tlen = (size_t)(lt - gt - 1);
            return gt + 1;
        }
        p = q;
    }
    return NULL;
}

int load_xml_has(const char *el, size_t len, const char *needle)
{
    return memmem(el, len, needle, strlen(needle)) != NULL;
}
