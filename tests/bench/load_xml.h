/*
 * load_xml.h - the client side's view of an XMPP stream: a resumable scan
 * that finds complete top-level elements in a growing buffer, plus a few
 * lookups inside one element. It is not an XML parser: it tracks only
 * what decides where an element ends (tags, quoted attribute values,
 * comments, CDATA, processing instructions), which is enough for a load
 * generator reading a server it trusts, and it is exact about input
 * split at any byte.
 */
#ifndef LOAD_XML_H
#define LOAD_XML_H

#include <stddef.h>

enum load_xml_event {
    LOAD_XML_MORE = 0,    /* need more input */
    LOAD_XML_OPEN = 1,    /* the <stream:stream> start tag */
    LOAD_XML_ELEMENT = 2, /* one complete top-level element */
    LOAD_XML_CLOSE = 3,   /* </stream:stream> */
    LOAD_XML_ERROR = -1,  /* DTD, or an element over the size cap */
};

typedef struct load_xml {
    size_t pos;        /* next byte to look at */
    size_t tag_start;  /* '<' of the tag being scanned */
    size_t elem_start; /* '<' of the current top-level element */
    size_t max_elem;   /* size cap of one element */
    int depth;         /* 0 outside the stream, 1 inside */
    int state;
    char quote; /* open quote inside a tag, or 0 */
    char last;  /* previous significant byte inside a tag */
    char last2; /* the one before (comment and CDATA ends) */
} load_xml_t;

/* Start a new stream (after connect and after each stream restart). */
void load_xml_reset(load_xml_t *x, size_t max_elem);

/* Scan buf[0..len) from where the last call stopped. On OPEN, ELEMENT and
 * CLOSE, *start and *end delimit the tag or element inside buf. The
 * caller may drop a consumed prefix of buf, then must call
 * load_xml_shift() with its length. */
int load_xml_next(load_xml_t *x, const char *buf, size_t len, size_t *start,
                  size_t *end);
/* Adjust offsets after the caller dropped n bytes (n <= the last end). */
void load_xml_shift(load_xml_t *x, size_t n);

/* Element name (up to whitespace, '/' or '>') equals name. */
int load_xml_is(const char *el, size_t len, const char *name);
/* Value of attribute name in the element's start tag, not unescaped;
 * NULL when absent. *vlen receives its length. */
const char *load_xml_attr(const char *el, size_t len, const char *name,
                          size_t *vlen);
/* Text of the first descendant <name ...>text</name>; NULL when absent
 * or empty-element. */
const char *load_xml_child_text(const char *el, size_t len, const char *name,
                                size_t *tlen);
/* memmem over the element. */
int load_xml_has(const char *el, size_t len, const char *needle);

#endif
