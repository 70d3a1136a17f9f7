/*
 * test_scram.c - SCRAM key derivation and the server exchange: the RFC 5802
 * and RFC 7677 test vectors byte for byte, a small client written here on
 * top of OpenSSL to produce valid and invalid proofs (wrong password,
 * channel binding, extensions), gs2 policy (y/n/p against -PLUS and what
 * was offered), every truncation of valid messages, malformed names,
 * unknown users, and SASLprep.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kn_err.h"
#include "kn_mem.h"
#include "kn_scram.h"

/* ---- helpers: a minimal SCRAM client for tests --------------------- */

static size_t b64_decode(const char *s, size_t n, uint8_t *out)
{
    int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    ck_assert_int_ge(r, 0);
    size_t len = (size_t)r;
    while (n > 0 && s[n - 1] == '=') {
        n--;
        len--;
    }
    return len;
}

static char *b64_encode(const uint8_t *p, size_t n)
{
    char *out = kn_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* A copy of s[0..n) in a block of exactly n bytes, so ASan sees any read
 * past the end. */
static char *exact(const char *s, size_t n)
{
    char *p = kn_malloc(n ? n : 1);
    memcpy(p, s, n);
    return p;
}

/*
 * The client-final-message a client with password would send after
 * client-first-message-bare first_bare and server_first, with gs2 header
 * gs2 and channel-binding data cb[0..cblen), and optional extension ext
 * ("x=y" or NULL) before the proof. Caller frees.
 */
static char *client_final(kn_scram_hash_t h, const char *password,
                          const char *gs2, const uint8_t *cb, size_t cblen,
                          const char *first_bare, const char *server_first,
                          const char *ext)
{
    const char *r = strstr(server_first, "r=") + 2;
    const char *sp = strstr(server_first, ",s=") + 3;
    const char *ip = strstr(server_first, ",i=") + 3;
    uint8_t salt[128];
    size_t salt_len = b64_decode(sp, (size_t)(ip - 3 - sp), salt);
    unsigned iter = (unsigned)strtoul(ip, NULL, 10);
    size_t hl = kn_scram_hash_len(h);

    size_t gl = strlen(gs2);
    uint8_t *cbind = kn_malloc(gl + cblen + 1);
    memcpy(cbind, gs2, gl);
    if (cblen)
        memcpy(cbind + gl, cb, cblen);
    char *c = b64_encode(cbind, gl + cblen);
    free(cbind);

    kn_buf_t wp = KN_BUF_INIT;
    kn_buf_printf(&wp, "c=%s,r=%.*s", c, (int)(sp - 3 - r), r);
    if (ext)
        kn_buf_printf(&wp, ",%s", ext);
    free(c);

    kn_buf_t am = KN_BUF_INIT;
    kn_buf_printf(&am, "%s,%s,%s", first_bare, server_first, wp.data);

    uint8_t salted[32], ckey[32], skey[32], sig[32], proof[32];
    unsigned int l;
    ck_assert_int_eq(kn_scram_hi(h, password, strlen(password), salt, salt_len,
                                 iter, salted),
                     0);
    ck_assert_int_eq(kn_scram_client_key(h, salted, ckey), 0);
    ck_assert_int_eq(kn_scram_stored_key(h, ckey, skey), 0);
    HMAC(h == KN_SCRAM_SHA256 ? EVP_sha256() : EVP_sha1(), skey, (int)hl,
         (const unsigned char *)am.data, am.len, sig, &l);
    for (size_t i = 0; i < hl; i++)
        proof[i] = ckey[i] ^ sig[i];
    char *p = b64_encode(proof, hl);
    kn_buf_printf(&wp, ",p=%s", p);
    free(p);
    kn_buf_free(&am);
    return kn_buf_release(&wp, NULL);
}

static kn_scram_creds_t creds_for(kn_scram_hash_t h, const char *password,
                                  const char *salt_b64)
{
    kn_scram_creds_t cr;
    uint8_t salt[128];
    size_t n = b64_decode(salt_b64, strlen(salt_b64), salt);
    ck_assert_int_eq(kn_scram_creds_derive(&cr, h, password, salt, n, 4096), 0);
    return cr;
}

static int feed_first(kn_scram_server_t *s, const char *m)
{
    char *p = exact(m, strlen(m));
    int rc = kn_scram_server_client_first(s, p, strlen(m));
    free(p);
    return rc;
}

static int feed_final(kn_scram_server_t *s, const char *m, const uint8_t *cb,
                      size_t cblen, kn_buf_t *out)
{
    char *p = exact(m, strlen(m));
    int rc = kn_scram_server_client_final(s, p, strlen(m), cb, cblen, out);
    free(p);
    return rc;
}

/* ---- RFC vectors ---------------------------------------------------- */

static void run_vector(kn_scram_hash_t h, const char *cfirst,
                       const char *snonce, const char *salt_b64,
                       const char *sfirst, const char *cfinal,
                       const char *sfinal)
{
    kn_scram_creds_t cr = creds_for(h, "pencil", salt_b64);
    kn_scram_server_t *s = kn_scram_server_new(h, 0);
    kn_buf_t out = KN_BUF_INIT;

    ck_assert_int_eq(feed_first(s, cfirst), 0);
    ck_assert_str_eq(kn_scram_server_username(s), "user");
    ck_assert_ptr_null(kn_scram_server_authzid(s));
    ck_assert_int_eq(kn_scram_server_cb_type(s), KN_SCRAM_CB_NONE);
    ck_assert_int_eq(kn_scram_server_first(s, &cr, snonce, &out), 0);
    ck_assert_str_eq(out.data, sfirst);
    kn_buf_reset(&out);
    ck_assert_int_eq(feed_final(s, cfinal, NULL, 0, &out), 0);
    ck_assert_str_eq(out.data, sfinal);
    ck_assert(kn_scram_server_is_done(s));
    ck_assert_ptr_null(kn_scram_server_error(s));
    kn_buf_free(&out);
    kn_scram_server_free(&s);
    ck_assert_ptr_null(s);
    kn_scram_server_free(&s);
}

START_TEST(rfc5802_sha1_vector)
{
    run_vector(KN_SCRAM_SHA1, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
               "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92",
               "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
               "s=QSXCR+Q6sek8bf92,i=4096",
               "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
               "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
               "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}
END_TEST

START_TEST(rfc7677_sha256_vector)
{
    run_vector(KN_SCRAM_SHA256, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
               "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==",
               "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
               "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
               "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}
END_TEST

START_TEST(key_derivation_matches_rfc)
{
    /* RFC 5802 SHA-1: StoredKey and ServerKey as other implementations
     * (and the integration test's Python) compute them. */
    kn_scram_creds_t cr =
        creds_for(KN_SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92");
    char *sk = b64_encode(cr.stored_key, 20);
    char *vk = b64_encode(cr.server_key, 20);
    ck_assert_str_eq(sk, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
    ck_assert_str_eq(vk, "D+CSWLOshSulAsxiupA+qs2/fTE=");
    free(sk);
    free(vk);
    ck_assert_uint_eq(kn_scram_hash_len(KN_SCRAM_SHA1), 20);
    ck_assert_uint_eq(kn_scram_hash_len(KN_SCRAM_SHA256), 32);
    uint8_t salt[4] = {1, 2, 3, 4}, o[32];
    ck_assert_int_eq(kn_scram_hi(KN_SCRAM_SHA1, "x", 1, salt, 4, 0, o),
                     -KN_EINVAL);
    ck_assert_int_eq(
        kn_scram_creds_derive(&cr, KN_SCRAM_SHA1, "x", salt, 0, 4096),
        -KN_EINVAL);
}
END_TEST

START_TEST(mech_names)
{
    kn_scram_hash_t h;
    int plus;
    ck_assert_str_eq(kn_scram_mech_name(KN_SCRAM_SHA256, 1),
                     "SCRAM-SHA-256-PLUS");
    ck_assert_str_eq(kn_scram_mech_name(KN_SCRAM_SHA1, 0), "SCRAM-SHA-1");
    ck_assert_int_eq(kn_scram_mech_parse("SCRAM-SHA-1-PLUS", &h, &plus), 0);
    ck_assert_int_eq(h, KN_SCRAM_SHA1);
    ck_assert_int_eq(plus, 1);
    ck_assert_int_eq(kn_scram_mech_parse("SCRAM-SHA-256", &h, &plus), 0);
    ck_assert_int_eq(h, KN_SCRAM_SHA256);
    ck_assert_int_eq(plus, 0);
    ck_assert_int_eq(kn_scram_mech_parse("scram-sha-1", &h, &plus), -KN_ENOENT);
    ck_assert_int_eq(kn_scram_mech_parse("PLAIN", &h, &plus), -KN_ENOENT);
}
END_TEST

/* ---- failures of the final step ------------------------------------ */

#define CF1 "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
#define CFIN1                                                                  \
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"                     \
    "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

static kn_scram_server_t *sha1_at_final(kn_buf_t *sfirst)
{
    kn_scram_creds_t cr =
        creds_for(KN_SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92");
    kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, CF1), 0);
    ck_assert_int_eq(
        kn_scram_server_first(s, &cr, "3rfcNHYJY1ZVvWVs7j", sfirst), 0);
    return s;
}

START_TEST(wrong_password_fails)
{
    kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
    kn_scram_server_t *s = sha1_at_final(&sf);
    char *fin =
        client_final(KN_SCRAM_SHA1, "pencil2", "n,,", NULL, 0,
                     "n=user,r=fyko+d2lbbFgONRv9qkxdawL", sf.data, NULL);
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), -KN_EAUTH);
    ck_assert_str_eq(out.data, "e=invalid-proof");
    ck_assert_str_eq(kn_scram_server_error(s), "invalid-proof");
    ck_assert(!kn_scram_server_is_done(s));
    /* The failed exchange stays failed. */
    kn_buf_reset(&out);
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), -KN_EPROTO);
    free(fin);
    kn_scram_server_free(&s);

    /* The same client with the right password, built by the same helper,
     * passes: the helper is not what fails above. */
    kn_buf_reset(&sf);
    kn_buf_reset(&out);
    s = sha1_at_final(&sf);
    fin = client_final(KN_SCRAM_SHA1, "pencil", "n,,", NULL, 0,
                       "n=user,r=fyko+d2lbbFgONRv9qkxdawL", sf.data, NULL);
    ck_assert_str_eq(fin, CFIN1);
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), 0);
    free(fin);
    kn_scram_server_free(&s);
    kn_buf_free(&sf);
    kn_buf_free(&out);
}
END_TEST

START_TEST(tampered_final_fails)
{
    static const char *const bad[] = {
        /* server part of the nonce changed */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7k,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        /* client part of the nonce changed */
        "c=biws,r=Fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        /* nonce truncated */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        /* one proof bit flipped */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tw=",
        /* gs2 header in c= claims "y" */
        "c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    };
    static const char *const err[] = {
        "other-error",
        "other-error",
        "other-error",
        "invalid-proof",
        "channel-bindings-dont-match",
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(bad); i++) {
        kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
        kn_scram_server_t *s = sha1_at_final(&sf);
        ck_assert_int_eq(feed_final(s, bad[i], NULL, 0, &out), -KN_EAUTH);
        ck_assert_str_eq(kn_scram_server_error(s), err[i]);
        ck_assert_int_eq(strncmp(out.data, "e=", 2), 0);
        kn_scram_server_free(&s);
        kn_buf_free(&sf);
        kn_buf_free(&out);
    }
}
END_TEST

START_TEST(malformed_final_fails)
{
    static const char *const bad[] = {
        "",
        "c=biws",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,c=biws,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,x=1",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4T==",
        /* non-zero bits under the padding: not canonical base64 */
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tt=",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=v0X8",
        "c=bi ws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "m=x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(bad); i++) {
        kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
        kn_scram_server_t *s = sha1_at_final(&sf);
        int rc = feed_final(s, bad[i], NULL, 0, &out);
        ck_assert_msg(rc == -KN_EPROTO, "case %zu: rc %d", i, rc);
        ck_assert_int_eq(strncmp(out.data, "e=", 2), 0);
        kn_scram_server_free(&s);
        kn_buf_free(&sf);
        kn_buf_free(&out);
    }
}
END_TEST

START_TEST(final_extension_accepted)
{
    kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
    kn_scram_server_t *s = sha1_at_final(&sf);
    char *fin = client_final(KN_SCRAM_SHA1, "pencil", "n,,", NULL, 0,
                             "n=user,r=fyko+d2lbbFgONRv9qkxdawL", sf.data,
                             "x=some,value");
    /* ext "x=some,value" is two attributes: x=some and "value" - broken */
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), -KN_EPROTO);
    free(fin);
    kn_scram_server_free(&s);
    kn_buf_reset(&sf);
    kn_buf_reset(&out);
    s = sha1_at_final(&sf);
    fin = client_final(KN_SCRAM_SHA1, "pencil", "n,,", NULL, 0,
                       "n=user,r=fyko+d2lbbFgONRv9qkxdawL", sf.data,
                       "x=some=value");
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), 0);
    ck_assert_int_eq(strncmp(out.data, "v=", 2), 0);
    free(fin);
    kn_scram_server_free(&s);
    kn_buf_free(&sf);
    kn_buf_free(&out);
}
END_TEST

START_TEST(every_truncated_final_fails)
{
    size_t n = strlen(CFIN1);
    for (size_t l = 0; l < n; l++) {
        kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
        kn_scram_server_t *s = sha1_at_final(&sf);
        char *p = exact(CFIN1, l);
        int rc = kn_scram_server_client_final(s, p, l, NULL, 0, &out);
        ck_assert_msg(rc == -KN_EPROTO || rc == -KN_EAUTH, "len %zu: %d", l,
                      rc);
        ck_assert_int_eq(strncmp(out.data, "e=", 2), 0);
        free(p);
        kn_scram_server_free(&s);
        kn_buf_free(&sf);
        kn_buf_free(&out);
    }
}
END_TEST

/* ---- channel binding ----------------------------------------------- */

static const uint8_t cb_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff};
static const uint8_t cb_b[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xfe};

/* One -PLUS exchange: client binds to ccb, server supplies scb. */
static int plus_exchange(kn_scram_hash_t h, const char *cbname,
                         kn_scram_cb_t want, const uint8_t *ccb,
                         const uint8_t *scb, kn_buf_t *out)
{
    kn_scram_creds_t cr = creds_for(h, "pencil", "QSXCR+Q6sek8bf92");
    kn_scram_server_t *s =
        kn_scram_server_new(h, KN_SCRAM_F_PLUS | KN_SCRAM_F_CB_OFFERED);
    kn_buf_t sf = KN_BUF_INIT, cf = KN_BUF_INIT;
    kn_buf_printf(&cf, "p=%s,a=juliet@example.com,n=juliet,r=abcdef", cbname);
    ck_assert_int_eq(feed_first(s, cf.data), 0);
    ck_assert_int_eq(kn_scram_server_cb_type(s), want);
    ck_assert_str_eq(kn_scram_server_authzid(s), "juliet@example.com");
    ck_assert_int_eq(kn_scram_server_first(s, &cr, NULL, &sf), 0);
    /* generated server nonce: 18 random bytes in base64 after ours */
    ck_assert_int_eq(strncmp(sf.data, "r=abcdef", 8), 0);
    ck_assert_ptr_eq(strstr(sf.data, ",s="), sf.data + 8 + 24);

    kn_buf_t gs2 = KN_BUF_INIT;
    kn_buf_printf(&gs2, "p=%s,a=juliet@example.com,", cbname);
    char *fin =
        client_final(h, "pencil", gs2.data, ccb, 32,
                     strchr(strchr(cf.data, ',') + 1, ',') + 1, sf.data, NULL);
    int rc = feed_final(s, fin, scb, 32, out);
    free(fin);
    kn_buf_free(&gs2);
    kn_buf_free(&sf);
    kn_buf_free(&cf);
    kn_scram_server_free(&s);
    return rc;
}

START_TEST(channel_binding)
{
    kn_buf_t out = KN_BUF_INIT;
    ck_assert_int_eq(plus_exchange(KN_SCRAM_SHA256, "tls-exporter",
                                   KN_SCRAM_CB_TLS_EXPORTER, cb_a, cb_a, &out),
                     0);
    ck_assert_int_eq(strncmp(out.data, "v=", 2), 0);
    kn_buf_reset(&out);
    ck_assert_int_eq(plus_exchange(KN_SCRAM_SHA1, "tls-server-end-point",
                                   KN_SCRAM_CB_TLS_SERVER_END_POINT, cb_a, cb_a,
                                   &out),
                     0);
    kn_buf_reset(&out);
    /* The client saw other TLS data than ours: a man in the middle. */
    ck_assert_int_eq(plus_exchange(KN_SCRAM_SHA256, "tls-exporter",
                                   KN_SCRAM_CB_TLS_EXPORTER, cb_a, cb_b, &out),
                     -KN_EAUTH);
    ck_assert_str_eq(out.data, "e=channel-bindings-dont-match");
    kn_buf_free(&out);
}
END_TEST

START_TEST(gs2_policy)
{
    struct {
        unsigned flags;
        const char *msg;
        int rc;
        const char *err;
    } cases[] = {
        {0, "y,,n=u,r=x", 0, NULL},
        {KN_SCRAM_F_CB_OFFERED, "y,,n=u,r=x", -KN_EAUTH,
         "server-does-support-channel-binding"},
        {KN_SCRAM_F_CB_OFFERED, "n,,n=u,r=x", 0, NULL},
        {0, "p=tls-exporter,,n=u,r=x", -KN_EAUTH,
         "channel-binding-not-supported"},
        {KN_SCRAM_F_PLUS, "n,,n=u,r=x", -KN_EAUTH,
         "channel-binding-not-supported"},
        {KN_SCRAM_F_PLUS, "y,,n=u,r=x", -KN_EAUTH,
         "channel-binding-not-supported"},
        {KN_SCRAM_F_PLUS, "p=tls-unique,,n=u,r=x", -KN_EAUTH,
         "unsupported-channel-binding-type"},
        {KN_SCRAM_F_PLUS, "p=tls exporter,,n=u,r=x", -KN_EPROTO,
         "invalid-encoding"},
        {KN_SCRAM_F_PLUS, "p=,,n=u,r=x", -KN_EPROTO, "invalid-encoding"},
        {KN_SCRAM_F_PLUS, "p=tls-server-end-point,,n=u,r=x", 0, NULL},
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(cases); i++) {
        kn_scram_server_t *s =
            kn_scram_server_new(KN_SCRAM_SHA256, cases[i].flags);
        int rc = feed_first(s, cases[i].msg);
        ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d", i, rc);
        if (cases[i].err)
            ck_assert_str_eq(kn_scram_server_error(s), cases[i].err);
        kn_scram_server_free(&s);
    }
}
END_TEST

/* ---- client-first parsing ------------------------------------------ */

START_TEST(client_first_names)
{
    kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(
        feed_first(s, "n,a=ad=3Dmin=2Cx,n=a=2Cb=3Dc\xc3\xa9,r=n,x=1,y=2"), 0);
    ck_assert_str_eq(kn_scram_server_username(s), "a,b=c\xc3\xa9");
    ck_assert_str_eq(kn_scram_server_authzid(s), "ad=min,x");
    kn_scram_server_free(&s);

    static const char *const bad[] = {
        "",
        "x,,n=user,r=abc",
        "n,n=user,r=abc",
        "n,,r=abc,n=user",
        "n,,n=,r=abc",
        "n,,n=user,r=",
        "n,,n=user",
        "n,,n=us=2cer,r=abc", /* escapes are upper case */
        "n,,n=us=er,r=abc",
        "n,,n=user=,r=abc",
        "n,,n=user=2,r=abc",
        "n,,n=us\xff"
        "er,r=abc",                /* not UTF-8 */
        "n,,n=us\xc0\xafr,r=abc",  /* overlong */
        "n,,n=\xed\xa0\x80,r=abc", /* surrogate */
        "n,,n=user,r=ab c",
        "n,,n=user,r=abc,",
        "n,,n=user,r=abc,x",
        "n,,n=user,r=abc,x=",
        "n,,n=user,r=abc,m=1",
        "n,,m=ext,n=user,r=abc",
        "n,a=,n=user,r=abc",
        "n,a=x=,n=user,r=abc",
        "n,,,n=user,r=abc",
        "nn,,n=user,r=abc",
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(bad); i++) {
        s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
        int rc = feed_first(s, bad[i]);
        ck_assert_msg(rc == -KN_EPROTO, "case %zu (%s): rc %d", i, bad[i], rc);
        ck_assert_ptr_nonnull(kn_scram_server_error(s));
        /* nothing further moves */
        kn_buf_t out = KN_BUF_INIT;
        ck_assert_int_eq(kn_scram_server_first(s, NULL, NULL, &out),
                         -KN_EPROTO);
        ck_assert_uint_eq(out.len, 0);
        kn_buf_free(&out);
        kn_scram_server_free(&s);
    }

    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, "n,,m=ext,n=user,r=abc"), -KN_EPROTO);
    ck_assert_str_eq(kn_scram_server_error(s), "extensions-not-supported");
    kn_scram_server_free(&s);

    /* an embedded NUL */
    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(kn_scram_server_client_first(s, "n,,n=us\0r,r=abc", 15),
                     -KN_EPROTO);
    kn_scram_server_free(&s);
}
END_TEST

START_TEST(every_truncated_first_fails_cleanly)
{
    /* A prefix is well formed only once the nonce has a character; every
     * shorter prefix must fail, every longer one must parse. */
    const char *full = "p=tls-exporter,a=admin,n=user,r=fyko+d2lbbFgONRv9qk";
    size_t n = strlen(full);
    size_t min_ok = (size_t)(strstr(full, ",r=") - full) + 4;
    for (size_t l = 0; l <= n; l++) {
        kn_scram_server_t *s =
            kn_scram_server_new(KN_SCRAM_SHA1, KN_SCRAM_F_PLUS);
        char *p = exact(full, l);
        int rc = kn_scram_server_client_first(s, p, l);
        if (l < min_ok)
            ck_assert_msg(rc == -KN_EPROTO, "len %zu: rc %d", l, rc);
        else
            ck_assert_msg(rc == 0, "len %zu: rc %d", l, rc);
        free(p);
        kn_scram_server_free(&s);
    }
    /* The RFC 5802 message likewise. */
    n = strlen(CF1);
    min_ok = (size_t)(strstr(CF1, ",r=") - CF1) + 4;
    for (size_t l = 0; l < min_ok; l++) {
        kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
        char *p = exact(CF1, l);
        ck_assert_int_eq(kn_scram_server_client_first(s, p, l), -KN_EPROTO);
        free(p);
        kn_scram_server_free(&s);
    }
}
END_TEST

START_TEST(out_of_order)
{
    kn_buf_t out = KN_BUF_INIT;
    kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(kn_scram_server_first(s, NULL, NULL, &out), -KN_EPROTO);
    kn_scram_server_free(&s);

    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, CF1), 0);
    ck_assert_int_eq(feed_final(s, CFIN1, NULL, 0, &out), -KN_EPROTO);
    ck_assert_str_eq(out.data, "e=other-error");
    kn_scram_server_free(&s);

    /* credentials of the wrong hash are refused */
    kn_scram_creds_t cr = creds_for(KN_SCRAM_SHA256, "pencil", "QSXCR+Q6");
    kn_buf_reset(&out);
    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, CF1), 0);
    ck_assert_int_eq(kn_scram_server_first(s, &cr, NULL, &out), -KN_EINVAL);
    kn_scram_server_free(&s);

    /* a server nonce with a comma is refused */
    cr = creds_for(KN_SCRAM_SHA1, "pencil", "QSXCR+Q6");
    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, CF1), 0);
    ck_assert_int_eq(kn_scram_server_first(s, &cr, "a,b", &out), -KN_EINVAL);
    kn_scram_server_free(&s);
    kn_buf_free(&out);
}
END_TEST

/* The contract allows msg NULL with len 0 (an empty SASL element): a
 * clean -KN_EPROTO, not NULL + 0 (undefined behaviour; found by
 * tests/fuzz/fuzz_sasl.c). */
START_TEST(null_empty_messages)
{
    kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
    kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(kn_scram_server_client_first(s, NULL, 0), -KN_EPROTO);
    kn_scram_server_free(&s);
    s = kn_scram_server_new(KN_SCRAM_SHA1, 0);
    ck_assert_int_eq(feed_first(s, CF1), 0);
    ck_assert_int_eq(kn_scram_server_first(s, NULL, "def", &sf), 0);
    ck_assert_int_eq(kn_scram_server_client_final(s, NULL, 0, NULL, 0, &out),
                     -KN_EPROTO);
    ck_assert_str_eq(out.data, "e=invalid-encoding");
    kn_scram_server_free(&s);
    kn_buf_free(&sf);
    kn_buf_free(&out);
}
END_TEST

START_TEST(unknown_user_fails_like_wrong_password)
{
    kn_buf_t sf = KN_BUF_INIT, out = KN_BUF_INIT;
    kn_scram_server_t *s = kn_scram_server_new(KN_SCRAM_SHA256, 0);
    ck_assert_int_eq(feed_first(s, "n,,n=nobody,r=abc"), 0);
    ck_assert_int_eq(kn_scram_server_first(s, NULL, "def", &sf), 0);
    ck_assert_int_eq(strncmp(sf.data, "r=abcdef,s=", 11), 0);
    ck_assert_ptr_nonnull(strstr(sf.data, ",i=4096"));
    char *fin = client_final(KN_SCRAM_SHA256, "pencil", "n,,", NULL, 0,
                             "n=nobody,r=abc", sf.data, NULL);
    ck_assert_int_eq(feed_final(s, fin, NULL, 0, &out), -KN_EAUTH);
    ck_assert_str_eq(out.data, "e=invalid-proof");
    free(fin);
    kn_scram_server_free(&s);
    kn_buf_free(&sf);
    kn_buf_free(&out);
}
END_TEST

/* ---- SASLprep --------------------------------------------------------- */

START_TEST(saslprep)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"pencil", "pencil"},
        {"I\xc2\xad"
         "X",
         "IX"}, /* soft hyphen mapped to nothing */
        {"user", "user"},
        {"USER", "USER"},       /* no case folding */
        {"\xc2\xaa", "a"},      /* U+00AA, NFKC */
        {"\xe2\x85\xa8", "IX"}, /* U+2168 ROMAN NUMERAL NINE */
        {"a\xc2\xa0"
         "b",
         "a b"}, /* no-break space -> space */
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(ok); i++) {
        char *o = NULL;
        ck_assert_int_eq(kn_scram_saslprep(ok[i].in, &o), 0);
        ck_assert_str_eq(o, ok[i].out);
        free(o);
    }
    static const char *const bad[] = {
        "",
        "\x07", /* control character */
        "\xd8\xa7"
        "1",        /* bidi: starts RandALCat, ends in a digit */
        "\xff\xfe", /* not UTF-8 */
        "\xc2\xad", /* maps to the empty string */
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(bad); i++) {
        char *o = (char *)1;
        ck_assert_msg(kn_scram_saslprep(bad[i], &o) == -KN_EINVAL, "case %zu",
                      i);
        ck_assert_ptr_null(o);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scram");
    TCase *tc = tcase_create("scram");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rfc5802_sha1_vector);
    tcase_add_test(tc, rfc7677_sha256_vector);
    tcase_add_test(tc, key_derivation_matches_rfc);
    tcase_add_test(tc, mech_names);
    tcase_add_test(tc, wrong_password_fails);
    tcase_add_test(tc, tampered_final_fails);
    tcase_add_test(tc, malformed_final_fails);
    tcase_add_test(tc, final_extension_accepted);
    tcase_add_test(tc, every_truncated_final_fails);
    tcase_add_test(tc, channel_binding);
    tcase_add_test(tc, gs2_policy);
    tcase_add_test(tc, client_first_names);
    tcase_add_test(tc, every_truncated_first_fails_cleanly);
    tcase_add_test(tc, out_of_order);
    tcase_add_test(tc, null_empty_messages);
    tcase_add_test(tc, unknown_user_fails_like_wrong_password);
    tcase_add_test(tc, saslprep);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
