/*
 * load_hist.h - a log-linear latency histogram in the manner of HDR
 * Histogram: values below 2^LOAD_HIST_SUB_BITS nanoseconds get a bucket
 * each, every octave above is split into 2^LOAD_HIST_SUB_BITS equal
 * buckets, so any recorded value is known within 1/128 (0.8 %). Values are
 * nanoseconds, capped at 2^LOAD_HIST_MAX_BITS (about 18 minutes). The
 * struct is plain data: it can be copied through a pipe and merged by
 * adding counts.
 */
#ifndef LOAD_HIST_H
#define LOAD_HIST_H

#include <stdint.h>

#define LOAD_HIST_SUB_BITS 7
#define LOAD_HIST_MAX_BITS 40
#define LOAD_HIST_BUCKETS                                                      \
    ((LOAD_HIST_MAX_BITS - LOAD_HIST_SUB_BITS + 1) << LOAD_HIST_SUB_BITS)

typedef struct load_hist {
    uint64_t total;
    uint64_t min;
    uint64_t max;
    uint64_t counts[LOAD_HIST_BUCKETS];
} load_hist_t;

void load_hist_reset(load_hist_t *h);
void load_hist_record(load_hist_t *h, uint64_t ns);
/* Add every count of src to dst. */
void load_hist_merge(load_hist_t *dst, const load_hist_t *src);
/* Value at percentile p (0 < p <= 100): the highest value equivalent to
 * the bucket holding it, the exact maximum for p = 100; 0 when empty. */
uint64_t load_hist_percentile(const load_hist_t *h, double p);

#endif
