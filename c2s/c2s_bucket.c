/*
 * c2s_bucket.c - the token bucket (c2s_bucket.h). The level is kept as a
 * double with the time of its last update, so a bucket costs 16 bytes
 * and no timer: every use brings it up to date first.
 */
#include "c2s_bucket.h"

void c2s_bucket_init(c2s_bucket_t *b, double burst, double now)
{
    b->tokens = burst;
    b->at = now;
}

void c2s_bucket_refill(c2s_bucket_t *b, double rate, double burst, double now)
{
    if (now > b->at && rate > 0)
        b->tokens += (now - b->at) * rate;
    if (now > b->at)
        b->at = now;
    if (b->tokens > burst)
        b->tokens = burst;
}

bool c2s_bucket_take(c2s_bucket_t *b, double rate, double burst, double n,
                     double now)
{
    c2s_bucket_refill(b, rate, burst, now);
    b->tokens -= n;
    return b->tokens >= 0;
}

bool c2s_bucket_admit(c2s_bucket_t *b, double rate, double burst, double now)
{
    c2s_bucket_refill(b, rate, burst, now);
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

double c2s_bucket_wait(const c2s_bucket_t *b, double rate)
{
    if (b->tokens >= 0 || rate <= 0)
        return 0;
    return -b->tokens / rate;
}

bool c2s_bucket_is_full(const c2s_bucket_t *b, double rate, double burst,
                        double now)
{
    double t = b->tokens;
    if (now > b->at && rate > 0)
        t += (now - b->at) * rate;
    return t >= burst;
}
