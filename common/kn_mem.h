/*
 * kn_mem.h - allocation wrappers. Out of memory is not an error a caller
 * can handle: every wrapper aborts with a message instead of returning NULL
 * (Redis zmalloc, czmq). Limits keep remote peers from getting us there.
 */
#ifndef KN_MEM_H
#define KN_MEM_H

#include <stddef.h>

void *kn_malloc(size_t n);
void *kn_calloc(size_t nmemb, size_t size);
void *kn_realloc(void *p, size_t n);
char *kn_strdup(const char *s);
char *kn_strndup(const char *s, size_t n);
void *kn_memdup(const void *p, size_t n);
/* free(*pp) and set *pp = NULL; idempotent. */
#define kn_free(pp)                                                            \
    do {                                                                       \
        free(*(pp));                                                           \
        *(pp) = NULL;                                                          \
    } while (0)

#include <stdlib.h>

#endif
