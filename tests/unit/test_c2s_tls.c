/*
 * test_c2s_tls.c - c2s's own TLS 1.3 record layer (tls.own_record_layer,
 * issue 15): an OpenSSL client on one end of a socketpair, c2s_tls on the
 * other. After the handshake the server's SSL object is gone and every
 * record is ours: data both ways in several records, KeyUpdate asked by
 * the client (and answered), a park in the middle, close_notify both
 * ways, a forged record refused, and TLS 1.2 left to OpenSSL; and
 * OpenSSL's read ahead (c2s_tls_read_ahead) holding a record the
 * socket no longer signals.
 */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_tls.h"
#include "c2s_transport.h"
#include "kn_err.h"

static char cert_path[64], key_path[64];

static void make_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
    snprintf(cert_path, sizeof(cert_path), "/tmp/kn-tls-cert-%d.pem",
             (int)getpid());
    snprintf(key_path, sizeof(key_path), "/tmp/kn-tls-key-%d.pem",
             (int)getpid());
    FILE *f = fopen(cert_path, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

typedef struct pair {
    int fd[2];
    SSL_CTX *cctx;
    SSL *cli;
    c2s_tls_ctx_t *sctx;
    c2s_tls_t *srv;
} pair_t;

/* Both ends up, handshake done (bounded rounds, no clock). */
static void pair_up(pair_t *p, bool own, int max_version)
{
    make_cert();
    char err[256];
    p->sctx = c2s_tls_ctx_new(&(c2s_tls_opts_t){cert_path, key_path}, err,
                              sizeof(err));
    ck_assert_msg(p->sctx != NULL, "%s", err);
    c2s_tls_ctx_set_own_records(p->sctx, own);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    for (int i = 0; i < 2; i++)
        fcntl(p->fd[i], F_SETFL, fcntl(p->fd[i], F_GETFL) | O_NONBLOCK);
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (max_version)
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
    p->cli = SSL_new(p->cctx);
    SSL_set_fd(p->cli, p->fd[0]);
    SSL_set_connect_state(p->cli);
    p->srv = c2s_tls_new(p->sctx, p->fd[1]);
    ck_assert_ptr_nonnull(p->srv);
    int cdone = 0, sdone = 0;
    for (int round = 0; round < 200 && !(cdone && sdone); round++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->cli) == 1;
        int want = 0;
        if (!sdone)
            sdone = c2s_tls_handshake(p->srv, &want) == 0;
    }
    ck_assert(cdone && sdone);
    ERR_clear_error();
}

static void pair_down(pair_t *p)
{
    c2s_tls_free(&p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->cctx);
    c2s_tls_ctx_free(&p->sctx);
    close(p->fd[0]);
    close(p->fd[1]);
    unlink(cert_path);
    unlink(key_path);
}

/* Client sends len bytes, the server reads them all back (interleaved,
 * so a full socket buffer does not block either side). */
static void client_to_server(pair_t *p, const uint8_t *data, size_t len)
{
    uint8_t *got = malloc(len);
    size_t sent = 0, recvd = 0;
    for (int round = 0; round < 100000 && recvd < len; round++) {
        if (sent < len) {
            int n = SSL_write(p->cli, data + sent, (int)(len - sent));
            if (n > 0)
                sent += (size_t)n;
            else
                ck_assert_int_eq(SSL_get_error(p->cli, n),
                                 SSL_ERROR_WANT_WRITE);
        }
        char buf[16896];
        int want = 0;
        ssize_t r = c2s_tls_read(p->srv, buf, sizeof(buf), &want);
        if (r == -KN_EAGAIN)
            continue;
        ck_assert_int_gt(r, 0);
        ck_assert_uint_le(recvd + (size_t)r, len);
        memcpy(got + recvd, buf, (size_t)r);
        recvd += (size_t)r;
    }
    ck_assert_uint_eq(recvd, len);
    ck_assert(memcmp(got, data, len) == 0);
    free(got);
}

/* The server writes len bytes (offering the unwritten rest again after
 * -KN_EAGAIN, as c2s_conn does), the client reads them. */
static void server_to_client(pair_t *p, const uint8_t *data, size_t len)
{
    uint8_t *got = malloc(len);
    size_t sent = 0, recvd = 0;
    for (int round = 0; round < 100000 && recvd < len; round++) {
        if (sent < len) {
            int want = 0;
            ssize_t n = c2s_tls_write(p->srv, data + sent, len - sent, &want);
            if (n > 0)
                sent += (size_t)n;
            else
                ck_assert_int_eq(n, -KN_EAGAIN);
        }
        uint8_t buf[16384];
        int n = SSL_read(p->cli, buf, sizeof(buf));
        if (n > 0) {
            ck_assert_uint_le(recvd + (size_t)n, len);
            memcpy(got + recvd, buf, (size_t)n);
            recvd += (size_t)n;
        } else {
            ck_assert_int_eq(SSL_get_error(p->cli, n), SSL_ERROR_WANT_READ);
        }
    }
    ck_assert_uint_eq(recvd, len);
    ck_assert(memcmp(got, data, len) == 0);
    free(got);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *d = malloc(len);
    for (size_t i = 0; i < len; i++)
        d[i] = (uint8_t)(i * 31 + seed);
    return d;
}

START_TEST(own_records_carry_a_tls13_session)
{
    pair_t p;
    pair_up(&p, true, 0);
    ck_assert(c2s_tls_own_records(p.srv));
    ck_assert_str_eq(c2s_tls_version(p.srv), "TLSv1.3");
    /* tls-exporter (RFC 9266) as the client computes it. */
    uint8_t mine[32], theirs[32];
    static const char label[] = "EXPORTER-Channel-Binding";
    ck_assert_int_eq(
        c2s_tls_cb_data(p.srv, KN_SCRAM_CB_TLS_EXPORTER, mine, sizeof(mine)),
        32);
    ck_assert_int_eq(SSL_export_keying_material(p.cli, theirs, 32, label,
                                                sizeof(label) - 1, NULL, 0, 0),
                     1);
    ck_assert(memcmp(mine, theirs, 32) == 0);

    client_to_server(&p, (const uint8_t *)"<presence/>", 11);
    uint8_t *big = pattern(100000, 7); /* several records, a full socket */
    client_to_server(&p, big, 100000);
    server_to_client(&p, big, 100000);
    server_to_client(&p, (const uint8_t *)"<r/>", 4);

    /* KeyUpdate asked by the client: the server reads with the new keys
     * and answers with its own; the client reads the server's next data
     * under those. */
    ck_assert_int_eq(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
    client_to_server(&p, (const uint8_t *)"after-ku", 8);
    server_to_client(&p, big, 40000);
    ck_assert_int_eq(SSL_key_update(p.cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    client_to_server(&p, big, 30000);

    /* Parked (cipher contexts freed), then on as before. */
    c2s_transport_tls.park(p.srv);
    client_to_server(&p, (const uint8_t *)"awake", 5);
    server_to_client(&p, (const uint8_t *)"hello", 5);

    /* The client's close_notify reads as a clean end (0). */
    ck_assert_int_ge(SSL_shutdown(p.cli), 0);
    char buf[64];
    int want = 0;
    ck_assert_int_eq(c2s_tls_read(p.srv, buf, sizeof(buf), &want), 0);
    /* Ours reaches the client as a close_notify. */
    c2s_tls_free(&p.srv);
    ck_assert_int_le(SSL_read(p.cli, buf, sizeof(buf)), 0);
    ck_assert_int_ne(SSL_get_shutdown(p.cli) & SSL_RECEIVED_SHUTDOWN, 0);
    free(big);
    pair_down(&p);
}
END_TEST

START_TEST(forged_record_is_refused)
{
    pair_t p;
    pair_up(&p, true, 0);
    ck_assert(c2s_tls_own_records(p.srv));
    uint8_t rec[5 + 32] = {23, 3, 3, 0, 32};
    memset(rec + 5, 0x5a, 32);
    ck_assert_int_eq(write(p.fd[0], rec, sizeof(rec)), (ssize_t)sizeof(rec));
    char buf[64];
    int want = 0;
    ck_assert_int_eq(c2s_tls_read(p.srv, buf, sizeof(buf), &want), -KN_EIO);
    pair_down(&p);
}
END_TEST

START_TEST(bad_record_header_is_refused)
{
    pair_t p;
    pair_up(&p, true, 0);
    /* A plaintext handshake record after the handshake. */
    uint8_t rec[5 + 4] = {22, 3, 3, 0, 4, 1, 0, 0, 0};
    ck_assert_int_eq(write(p.fd[0], rec, sizeof(rec)), (ssize_t)sizeof(rec));
    char buf[64];
    int want = 0;
    ck_assert_int_eq(c2s_tls_read(p.srv, buf, sizeof(buf), &want), -KN_EIO);
    pair_down(&p);
}
END_TEST

START_TEST(tls12_and_off_keep_openssl)
{
    pair_t p;
    pair_up(&p, true, TLS1_2_VERSION);
    ck_assert(!c2s_tls_own_records(p.srv));
    ck_assert_str_eq(c2s_tls_version(p.srv), "TLSv1.2");
    client_to_server(&p, (const uint8_t *)"twelve", 6);
    server_to_client(&p, (const uint8_t *)"ok", 2);
    pair_down(&p);

    pair_up(&p, false, 0);
    ck_assert(!c2s_tls_own_records(p.srv));
    client_to_server(&p, (const uint8_t *)"thirteen", 8);
    server_to_client(&p, (const uint8_t *)"ok", 2);
    pair_down(&p);
}
END_TEST

START_TEST(chacha_suite)
{
    pair_t p;
    make_cert();
    /* The client offers only ChaCha20-Poly1305. */
    char err[256];
    p.sctx = c2s_tls_ctx_new(&(c2s_tls_opts_t){cert_path, key_path}, err,
                             sizeof(err));
    ck_assert_ptr_nonnull(p.sctx);
    c2s_tls_ctx_set_own_records(p.sctx, true);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p.fd), 0);
    for (int i = 0; i < 2; i++)
        fcntl(p.fd[i], F_SETFL, fcntl(p.fd[i], F_GETFL) | O_NONBLOCK);
    p.cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_ciphersuites(p.cctx, "TLS_CHACHA20_POLY1305_SHA256");
    p.cli = SSL_new(p.cctx);
    SSL_set_fd(p.cli, p.fd[0]);
    SSL_set_connect_state(p.cli);
    p.srv = c2s_tls_new(p.sctx, p.fd[1]);
    int cdone = 0, sdone = 0;
    for (int round = 0; round < 200 && !(cdone && sdone); round++) {
        if (!cdone)
            cdone = SSL_do_handshake(p.cli) == 1;
        int want = 0;
        if (!sdone)
            sdone = c2s_tls_handshake(p.srv, &want) == 0;
    }
    ck_assert(cdone && sdone);
    ck_assert(c2s_tls_own_records(p.srv));
    ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(p.cli)),
                     "TLS_CHACHA20_POLY1305_SHA256");
    uint8_t *d = pattern(50000, 3);
    client_to_server(&p, d, 50000);
    server_to_client(&p, d, 50000);
    free(d);
    pair_down(&p);
}
END_TEST

/* Read ahead (OpenSSL's record layer): two records the client sent
 * together are read from the socket at once, and the second is still
 * handed out by c2s_tls_read although the socket is empty (the case
 * c2s_conn.c feeds its watcher for). Without read ahead the second stays
 * in the socket. */
static void two_records(bool ahead, bool *socket_empty_between)
{
    pair_t p;
    make_cert();
    char err[256];
    p.sctx = c2s_tls_ctx_new(&(c2s_tls_opts_t){cert_path, key_path}, err,
                             sizeof(err));
    ck_assert_ptr_nonnull(p.sctx);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p.fd), 0);
    for (int i = 0; i < 2; i++)
        fcntl(p.fd[i], F_SETFL, fcntl(p.fd[i], F_GETFL) | O_NONBLOCK);
    p.cctx = SSL_CTX_new(TLS_client_method());
    p.cli = SSL_new(p.cctx);
    SSL_set_fd(p.cli, p.fd[0]);
    SSL_set_connect_state(p.cli);
    p.srv = c2s_tls_new(p.sctx, p.fd[1]);
    if (ahead)
        c2s_tls_read_ahead(p.srv);
    int cdone = 0, sdone = 0;
    for (int round = 0; round < 200 && !(cdone && sdone); round++) {
        if (!cdone)
            cdone = SSL_do_handshake(p.cli) == 1;
        int want = 0;
        if (!sdone)
            sdone = c2s_tls_handshake(p.srv, &want) == 0;
    }
    ck_assert(cdone && sdone);
    ck_assert_int_eq(SSL_write(p.cli, "first", 5), 5);
    ck_assert_int_eq(SSL_write(p.cli, "second", 6), 6);
    char buf[64];
    int want = 0;
    ssize_t n;
    /* the client's session tickets may come first: none are sent by
     * the server (num_tickets 0), so the first read is "first" */
    n = c2s_tls_read(p.srv, buf, sizeof(buf), &want);
    ck_assert_int_eq(n, 5);
    ck_assert(memcmp(buf, "first", 5) == 0);
    char peek;
    *socket_empty_between = recv(p.fd[1], &peek, 1, MSG_PEEK) < 0 &&
                            (errno == EAGAIN || errno == EWOULDBLOCK);
    n = c2s_tls_read(p.srv, buf, sizeof(buf), &want);
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(buf, "second", 6) == 0);
    ck_assert_int_eq(c2s_tls_read(p.srv, buf, sizeof(buf), &want), -KN_EAGAIN);
    ERR_clear_error();
    pair_down(&p);
}

START_TEST(read_ahead_holds_the_next_record)
{
    bool empty;
    two_records(true, &empty);
    ck_assert(empty);
    two_records(false, &empty);
    ck_assert(!empty);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("c2s_tls");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, own_records_carry_a_tls13_session);
    tcase_add_test(tc, forged_record_is_refused);
    tcase_add_test(tc, bad_record_header_is_refused);
    tcase_add_test(tc, tls12_and_off_keep_openssl);
    tcase_add_test(tc, chacha_suite);
    tcase_add_test(tc, read_ahead_holds_the_next_record);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
