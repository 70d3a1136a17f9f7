/*
 * c2s_ack.c - the marks of written offline messages (c2s_ack.h).
 *
 * The marks are a queue in one array: append at n, consume from head.
 * Consuming everything frees the array, so a connection that received
 * its offline messages goes back to holding nothing; a partial consume
 * leaves the array as is (it empties at the latest when the output
 * buffer drains, since every end is <= the buffer length then).
 */
#include "c2s_ack.h"

#include <stdlib.h>

#include "kn_err.h"
#include "kn_mem.h"

void c2s_acks_add(c2s_acks_t *a, uint64_t id, size_t end)
{
    KN_ASSERT(a->n == a->head || a->v[a->n - 1].end <= end);
    if (a->n == a->cap) {
        if (a->head > 0) {
            /* Slide the pending marks down before growing. */
            for (size_t i = a->head; i < a->n; i++)
                a->v[i - a->head] = a->v[i];
            a->n -= a->head;
            a->head = 0;
        }
        if (a->n == a->cap) {
            a->cap = a->cap ? 2 * a->cap : 8;
            a->v = kn_realloc(a->v, a->cap * sizeof(*a->v));
        }
    }
    a->v[a->n].id = id;
    a->v[a->n].end = end;
    a->n++;
}

static void acks_release(c2s_acks_t *a)
{
    free(a->v);
    a->v = NULL;
    a->head = a->n = a->cap = 0;
}

size_t c2s_acks_written(c2s_acks_t *a, size_t written, c2s_ack_ids_t *out)
{
    size_t moved = 0;
    while (a->head < a->n && a->v[a->head].end <= written) {
        c2s_ack_ids_push(out, a->v[a->head].id);
        a->head++;
        moved++;
    }
    if (a->head == a->n && a->v != NULL)
        acks_release(a);
    return moved;
}

size_t c2s_acks_pending(const c2s_acks_t *a)
{
    return a->n - a->head;
}

size_t c2s_acks_drop(c2s_acks_t *a)
{
    size_t n = a->n - a->head;
    acks_release(a);
    return n;
}

void c2s_ack_ids_push(c2s_ack_ids_t *out, uint64_t id)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 64;
        out->ids = kn_realloc(out->ids, out->cap * sizeof(*out->ids));
    }
    out->ids[out->n++] = id;
}

void c2s_ack_ids_free(c2s_ack_ids_t *out)
{
    free(out->ids);
    out->ids = NULL;
    out->n = out->cap = 0;
}
