/*
 * bench_c2s_trim.c - what glibc's malloc_trim(0) costs on a heap shaped
 * like a c2s node's after a login burst (issue 15): per session 15 small
 * long-lived blocks (the sizes OpenSSL and c2s keep) and 4 large
 * transient ones (TLS buffers, the expat parser) freed in between.
 *
 *   build/bin/bench_c2s_trim [SESSIONS]
 *
 * Prints the time of a first malloc_trim (pages to give back) and of a
 * second one (nothing left): the loop stall the idle sweep used to pay.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 17000;
    static const size_t keep_sizes[] = {56,  72,   112, 152, 184, 216, 536, 928,
                                        960, 7608, 240, 176, 216, 32,  64};
    static const size_t tmp_sizes[] = {17000, 13000, 4096, 16384};
    size_t nk = sizeof(keep_sizes) / sizeof(keep_sizes[0]);
    size_t nt = sizeof(tmp_sizes) / sizeof(tmp_sizes[0]);
    if (n <= 0 || n > 1000000)
        return 2;
    void **keep = calloc((size_t)n * nk, sizeof(void *));
    void **tmp = calloc((size_t)n * nt, sizeof(void *));
    if (keep == NULL || tmp == NULL)
        return 1;
    for (size_t i = 0; i < (size_t)n; i++) {
        for (size_t j = 0; j < nk; j++)
            keep[i * nk + j] = malloc(keep_sizes[j]);
        for (size_t j = 0; j < nt; j++)
            tmp[i * nt + j] = malloc(tmp_sizes[j]);
    }
    for (size_t i = 0; i < (size_t)n * nt; i++)
        free(tmp[i]);
    double a = now_s();
    malloc_trim(0);
    double b = now_s();
    malloc_trim(0);
    double c = now_s();
    printf("RESULT bench=c2s_trim sessions=%d first_ms=%.1f again_ms=%.1f\n", n,
           (b - a) * 1000, (c - b) * 1000);
    for (size_t i = 0; i < (size_t)n * nk; i++)
        free(keep[i]);
    free(keep);
    free(tmp);
    return 0;
}
