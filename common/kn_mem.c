/*
 * kn_mem.c - aborting allocation wrappers (see kn_mem.h).
 */
#include "kn_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mem_oom(size_t n)
{
    fprintf(stderr, "<2>kiln: out of memory allocating %zu bytes\n", n);
    abort();
}

void *kn_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        mem_oom(n);
    return p;
}

void *kn_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        mem_oom(nmemb * size);
    return p;
}

void *kn_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        mem_oom(n);
    return q;
}

char *kn_strndup(const char *s, size_t n)
{
    char *d = kn_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *kn_strdup(const char *s)
{
    return kn_strndup(s, strlen(s));
}

void *kn_memdup(const void *p, size_t n)
{
    void *d = kn_malloc(n);
    if (n)
        memcpy(d, p, n);
    return d;
}
