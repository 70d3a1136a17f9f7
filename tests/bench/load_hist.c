/*
 * load_hist.c - log-linear histogram (see load_hist.h).
 *
 * Bucket index of v: below 2^B (B = LOAD_HIST_SUB_BITS) it is v itself.
 * Above, let s = msb(v) - B: v >> s lies in [2^B, 2^(B+1)), and the index
 * is (s + 1) * 2^B + (v >> s) - 2^B, which continues the linear range
 * without a gap. Bucket i covers [low(i), low(i) + 2^s).
 */
#include "load_hist.h"

#include <string.h>

#define SUB (1u << LOAD_HIST_SUB_BITS)

static unsigned hist_index(uint64_t v)
{
    if (v >= (1ull << LOAD_HIST_MAX_BITS))
        v = (1ull << LOAD_HIST_MAX_BITS) - 1;
    if (v < SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned s = msb - LOAD_HIST_SUB_BITS;
    return ((s + 1) << LOAD_HIST_SUB_BITS) + (unsigned)(v >> s) - SUB;
}

/* Highest value that falls into bucket i. */
static uint64_t hist_high(unsigned i)
{
    if (i < SUB)
        return i;
    unsigned s = (i >> LOAD_HIST_SUB_BITS) - 1;
    uint64_t low = ((uint64_t)(i & (SUB - 1)) + SUB) << s;
    return low + (1ull << s) - 1;
}

void load_hist_reset(load_hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

void load_hist_record(load_hist_t *h, uint64_t ns)
{
    if (h->total == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->total++;
    h->counts[hist_index(ns)]++;
}

void load_hist_merge(load_hist_t *dst, const load_hist_t *src)
{
    if (src->total == 0)
        return;
    if (dst->total == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->total += src->total;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
}

uint64_t load_hist_percentile(const load_hist_t *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->total + 0.999999);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t v = hist_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
