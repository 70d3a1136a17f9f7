/*
 * kn_buf.h - a growable byte buffer.
 *
 * Invariant: data[0..len) is content; data[len] is always '\0' when cap > 0,
 * so a buffer of text can be handed to C string functions. The buffer owns
 * data; kn_buf_release() hands ownership to the caller.
 */
#ifndef KN_BUF_H
#define KN_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kn_buf {
    char *data;
    size_t len;
    size_t cap;
} kn_buf_t;

#define KN_BUF_INIT                                                            \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

/* Make room for at least n more bytes. */
void kn_buf_reserve(kn_buf_t *b, size_t n);
void kn_buf_append(kn_buf_t *b, const void *p, size_t n);
void kn_buf_append_str(kn_buf_t *b, const char *s);
void kn_buf_append_byte(kn_buf_t *b, uint8_t c);
/* printf-style append. */
void kn_buf_printf(kn_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s[0..n) escaped for XML character data and attribute values
 * (&, <, >, ', " are escaped). */
void kn_buf_append_xml_escaped(kn_buf_t *b, const char *s, size_t n);
/* Drop the first n bytes (n <= len). */
void kn_buf_consume(kn_buf_t *b, size_t n);
void kn_buf_reset(kn_buf_t *b);
/* Free the storage; the buffer is empty and reusable afterwards. */
void kn_buf_free(kn_buf_t *b);
/* Return the data (caller frees) and leave the buffer empty. */
char *kn_buf_release(kn_buf_t *b, size_t *len);

#endif
