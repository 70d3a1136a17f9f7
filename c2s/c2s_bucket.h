/*
 * c2s_bucket.h - a token bucket without a clock (the caller passes now):
 * the shape of every rate limit in c2s, the per-address and node-wide
 * connection rates (c2s_flood.c) and the per-session byte and stanza
 * rates of clients and components (c2s_conn.c, c2s_component.c).
 *
 * A bucket holds up to burst tokens and gains rate tokens per second.
 * Taking n tokens always succeeds in the sense that the tokens go (the
 * bytes were read already): the level may go negative, and the deficit
 * says how long the owner stops reading (c2s_bucket_wait) before the
 * bucket is back at zero. Pure: no allocation, no I/O.
 */
#ifndef C2S_BUCKET_H
#define C2S_BUCKET_H

#include <stdbool.h>

typedef struct c2s_bucket {
    double tokens; /* may be negative: a debt */
    double at;     /* when tokens was last brought up to date */
} c2s_bucket_t;

/* A full bucket at now. */
void c2s_bucket_init(c2s_bucket_t *b, double burst, double now);

/* Bring the bucket up to now (rate tokens per second, at most burst). A
 * clock going backwards adds nothing. */
void c2s_bucket_refill(c2s_bucket_t *b, double rate, double burst, double now);

/* Refill, then take n tokens. true when the level is still >= 0 (the
 * taker stayed within its rate), false when it is now in debt. */
bool c2s_bucket_take(c2s_bucket_t *b, double rate, double burst, double n,
                     double now);

/* Refill, then take one token only if one is there (an admission
 * decision: a refused taker takes nothing). */
bool c2s_bucket_admit(c2s_bucket_t *b, double rate, double burst, double now);

/* Seconds from b->at until the level is back at zero (0: not in debt;
 * rate <= 0: 0). */
double c2s_bucket_wait(const c2s_bucket_t *b, double rate);

/* true when the bucket, brought up to now, would be full (its state is
 * then the same as a fresh one: an owner may forget it). */
bool c2s_bucket_is_full(const c2s_bucket_t *b, double rate, double burst,
                        double now);

#endif
