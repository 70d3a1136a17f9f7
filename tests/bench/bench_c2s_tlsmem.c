/*
 * bench_c2s_tlsmem.c - the TLS part of c2s's memory per idle session:
 * what stays per server connection once the handshake is done and the
 * buffers are released.
 *
 *   build/bin/bench_c2s_tlsmem CERT.pem KEY.pem [SESSIONS] [MODE]
 *
 * MODE:
 *   openssl  (default) OpenSSL alone with c2s's settings
 *            (SSL_MODE_RELEASE_BUFFERS, no session cache, no tickets),
 *            TLS 1.3, client and server SSL joined by memory BIOs; the
 *            server's BIOs detached (c2s reads the socket directly)
 *   tls1.2   the same, TLS 1.2
 *   c2s      c2s_tls itself (c2s_tls_new on one end of a socketpair, an
 *            OpenSSL client on the other), tls.own_record_layer off
 *   own      the same with tls.own_record_layer on: after the handshake
 *            the SSL object is freed and c2s keeps the record keys
 *
 * Runs SESSIONS (2,000) handshakes, one application byte each way, frees
 * the clients, then reports per session: the heap growth from
 * mallinfo2() (what glibc hands out, its chunk headers included), the
 * bytes and allocations OpenSSL holds (counted through
 * CRYPTO_set_mem_functions), and with -v the live OpenSSL allocations
 * by size and allocating source line. One RESULT line.
 */
#include <ev.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_tls.h"
#include "c2s_transport.h"

/* ---- OpenSSL's heap, counted ------------------------------------------- */

#define SIZES 8192
static long live_bytes, live_allocs;
static long by_size[SIZES];
static const char *site_file[SIZES];
static int site_line[SIZES];

typedef struct {
    size_t n;
    size_t pad;
} hdr_t;

static void *cnt_malloc(size_t n, const char *file, int line)
{
    hdr_t *h = malloc(sizeof(*h) + n);
    if (h == NULL)
        return NULL;
    h->n = n;
    live_bytes += (long)n;
    live_allocs++;
    if (n < SIZES) {
        by_size[n]++;
        site_file[n] = file;
        site_line[n] = line;
    }
    return h + 1;
}

static void cnt_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL)
        return;
    hdr_t *h = (hdr_t *)p - 1;
    live_bytes -= (long)h->n;
    live_allocs--;
    if (h->n < SIZES)
        by_size[h->n]--;
    free(h);
}

static void *cnt_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL)
        return cnt_malloc(n, file, line);
    hdr_t *h = (hdr_t *)p - 1;
    size_t old = h->n;
    hdr_t *nh = realloc(h, sizeof(*h) + n);
    if (nh == NULL)
        return NULL;
    live_bytes += (long)n - (long)old;
    if (old < SIZES)
        by_size[old]--;
    if (n < SIZES) {
        by_size[n]++;
        site_file[n] = file;
        site_line[n] = line;
    }
    nh->n = n;
    return nh + 1;
}

/* ---- handshakes ------------------------------------------------------- */

static void pump(BIO *from, BIO *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
        BIO_write(to, buf, n);
}

/* OpenSSL alone, memory BIOs: the server SSL stays in *out. */
static int one_openssl(SSL_CTX *sctx, SSL_CTX *cctx, void **out)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(s, s_in, s_out);
    SSL_set_bio(c, c_in, c_out);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int k = 0;
         k < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); k++) {
        SSL_do_handshake(c);
        pump(c_out, s_in);
        SSL_do_handshake(s);
        pump(s_out, c_in);
    }
    char b[4];
    if (!SSL_is_init_finished(s) || SSL_write(c, "x", 1) != 1)
        return -1;
    pump(c_out, s_in);
    if (SSL_read(s, b, sizeof(b)) != 1 || SSL_write(s, "y", 1) != 1)
        return -1;
    pump(s_out, c_in);
    SSL_read(c, b, sizeof(b));
    SSL_set_bio(s, NULL, NULL); /* c2s reads the socket, no BIO buffers */
    SSL_free(c);
    *out = s;
    return 0;
}

/* c2s_tls on a socketpair: the server session stays in *out, its fd in
 * *fd_out (the client's end is closed). */
static int one_c2s(c2s_tls_ctx_t *sctx, SSL_CTX *cctx, void **out, int *fd_out)
{
    int fd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        fcntl(fd[i], F_SETFL, fcntl(fd[i], F_GETFL) | O_NONBLOCK);
    SSL *c = SSL_new(cctx);
    SSL_set_fd(c, fd[0]);
    SSL_set_connect_state(c);
    c2s_tls_t *s = c2s_tls_new(sctx, fd[1]);
    int cdone = 0, sdone = 0;
    for (int k = 0; k < 50 && !(cdone && sdone); k++) {
        if (!cdone)
            cdone = SSL_do_handshake(c) == 1;
        int want = 0;
        if (!sdone)
            sdone = c2s_tls_handshake(s, &want) == 0;
    }
    char b[4];
    int want = 0;
    if (!cdone || !sdone || SSL_write(c, "x", 1) != 1 ||
        c2s_tls_read(s, b, sizeof(b), &want) != 1 ||
        c2s_tls_write(s, "y", 1, &want) != 1 || SSL_read(c, b, 4) != 1)
        return -1;
    c2s_transport_tls.park(s); /* as the idle sweep does */
    SSL_free(c);
    close(fd[0]);
    *out = s;
    *fd_out = fd[1];
    return 0;
}

int main(int argc, char **argv)
{
    CRYPTO_set_mem_functions(cnt_malloc, cnt_realloc, cnt_free);
    signal(SIGPIPE, SIG_IGN); /* close_notify to closed clients */
    bool verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    if (verbose) {
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: bench_c2s_tlsmem [-v] CERT KEY [SESSIONS] "
                        "[openssl|tls1.2|c2s|own]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    const char *mode = argc > 4 ? argv[4] : "openssl";
    bool tls12 = strcmp(mode, "tls1.2") == 0;
    bool via_c2s = strcmp(mode, "c2s") == 0 || strcmp(mode, "own") == 0;
    if (n <= 1 || n > 8000)
        return 2;
    SSL_CTX *sctx = NULL;
    c2s_tls_ctx_t *c2s_ctx = NULL;
    if (via_c2s) {
        char err[256];
        c2s_ctx = c2s_tls_ctx_new(&(c2s_tls_opts_t){argv[1], argv[2]}, err,
                                  sizeof(err));
        if (c2s_ctx == NULL) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        c2s_tls_ctx_set_own_records(c2s_ctx, strcmp(mode, "own") == 0);
    } else {
        sctx = SSL_CTX_new(TLS_server_method());
        if (sctx == NULL ||
            SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
            SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(sctx, 0);
        if (tls12)
            SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
    }
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    void **srv = calloc((size_t)n, sizeof(*srv));
    int *fds = calloc((size_t)n, sizeof(*fds));
    static long size0[SIZES];
    size_t heap0 = 0;
    long bytes0 = 0, allocs0 = 0;
    for (int i = 0; i < n; i++) {
        if (i == 1) { /* after one warm-up session: lazily made state */
            heap0 = mallinfo2().uordblks;
            bytes0 = live_bytes;
            allocs0 = live_allocs;
            memcpy(size0, by_size, sizeof(size0));
        }
        int rc = via_c2s ? one_c2s(c2s_ctx, cctx, &srv[i], &fds[i])
                         : one_openssl(sctx, cctx, &srv[i]);
        if (rc < 0) {
            fprintf(stderr, "bench_c2s_tlsmem: handshake %d failed\n", i);
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }
    long k = n - 1;
    size_t heap = mallinfo2().uordblks - heap0;
    long bytes = live_bytes - bytes0, allocs = live_allocs - allocs0;
    if (verbose)
        for (int s = 0; s < SIZES; s++) {
            long d = by_size[s] - size0[s];
            if (d >= k / 2)
                printf("  %5d B x %.2f = %6.0f B  %s:%d\n", s, (double)d / k,
                       (double)d * s / k, site_file[s] ? site_file[s] : "?",
                       site_line[s]);
        }
    printf("RESULT bench=c2s_tlsmem sessions=%d mode=%s "
           "heap_bytes_per_session=%ld openssl_bytes_per_session=%ld "
           "openssl_allocs_per_session=%.1f kib=%.1f\n",
           n, mode, (long)heap / k, bytes / k, (double)allocs / k,
           (double)heap / k / 1024.0);
    for (int i = 0; i < n; i++) {
        if (via_c2s) {
            c2s_tls_t *t = srv[i];
            c2s_tls_free(&t);
            close(fds[i]);
        } else {
            SSL_free(srv[i]);
        }
    }
    free(srv);
    free(fds);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    c2s_tls_ctx_free(&c2s_ctx);
    return 0;
}
