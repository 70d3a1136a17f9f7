/*
 * bench_c2s_tlsmem.c - the floor under c2s's memory per idle TLS session:
 * what OpenSSL alone keeps per server connection once the handshake is
 * done and the buffers are released, measured with the settings c2s uses
 * (SSL_MODE_RELEASE_BUFFERS, no session cache, no tickets).
 *
 *   build/bin/bench_c2s_tlsmem CERT.pem KEY.pem [SESSIONS] [tls1.2]
 *
 * Runs SESSIONS (2,000) handshakes in memory (client and server SSL
 * objects joined by memory BIOs, one application byte each way), then
 * detaches the server's BIOs (c2s uses the socket directly) and frees the
 * clients. Heap growth per session comes from mallinfo2(). Prints one
 * RESULT line. Compare with c2s/mem_per_session.py, which measures the
 * whole c2s process per session.
 */
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pump(BIO *from, BIO *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
        BIO_write(to, buf, n);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: bench_c2s_tlsmem CERT KEY [SESSIONS] [tls1.2]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    int tls12 = argc > 4 && strcmp(argv[4], "tls1.2") == 0;
    if (n <= 0)
        return 2;
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (sctx == NULL || cctx == NULL ||
        SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    if (tls12)
        SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);

    SSL **srv = calloc((size_t)n, sizeof(*srv));
    SSL **cli = calloc((size_t)n, sizeof(*cli));
    if (srv == NULL || cli == NULL)
        return 1;
    size_t base = mallinfo2().uordblks;
    for (int i = 0; i < n; i++) {
        SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
        BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
        BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
        SSL_set_bio(s, s_in, s_out);
        SSL_set_bio(c, c_in, c_out);
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);
        for (int k = 0;
             k < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c));
             k++) {
            SSL_do_handshake(c);
            pump(c_out, s_in);
            SSL_do_handshake(s);
            pump(s_out, c_in);
        }
        char b[4];
        if (!SSL_is_init_finished(s) || SSL_write(c, "x", 1) != 1) {
            fprintf(stderr, "bench_c2s_tlsmem: handshake %d failed\n", i);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        pump(c_out, s_in);
        if (SSL_read(s, b, sizeof(b)) != 1 || SSL_write(s, "y", 1) != 1)
            return 1;
        pump(s_out, c_in);
        SSL_read(c, b, sizeof(b));
        SSL_set_bio(s, NULL, NULL); /* c2s reads the socket, no BIO buffers */
        srv[i] = s;
        cli[i] = c;
    }
    for (int i = 0; i < n; i++)
        SSL_free(cli[i]);
    size_t used = mallinfo2().uordblks - base;
    printf("RESULT bench=c2s_tlsmem sessions=%d protocol=%s "
           "server_ssl_bytes_per_session=%zu kib=%.1f\n",
           n, tls12 ? "TLSv1.2" : "TLSv1.3", used / (size_t)n,
           (double)used / n / 1024.0);
    for (int i = 0; i < n; i++)
        SSL_free(srv[i]);
    free(srv);
    free(cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
