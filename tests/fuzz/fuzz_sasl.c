/*
 * fuzz_sasl.c - libFuzzer entry point for SASL messages: SCRAM
 * client-first and client-final through the kn_scram server API, and
 * PLAIN and SCRAM as c2s receives them (base64 in <auth/> and
 * <response/>, c2s_sasl.c).
 *
 * Input: byte 0 chooses the path and the setting (bits below); the rest
 * is the first message, then after a 0xFF byte the second one.
 *
 * On the direct SCRAM path with M_HONEST the harness plays an honest
 * client for password "secret": it answers the server-first-message
 * itself with a correct proof, with the fuzzer's second message put in
 * as an extension. The server must then accept whenever it accepted
 * the first message, the user is known and there is no extension, and
 * its server signature must be the one the client computes; it may only
 * refuse a malformed extension.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "c2s_stream.h"
#include "kn_b64.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_proto.h"
#include "kn_scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define M_SHA256  0x01u /* else SHA-1 */
#define M_PLUS    0x02u /* -PLUS mechanism */
#define M_OFFERED 0x04u /* the server offered -PLUS */
#define M_UNKNOWN 0x08u /* unknown user */
#define M_HONEST  0x10u /* direct path: the harness computes client-final */
#define M_PATH                                                                 \
    0x60u             /* 0x00, 0x60: kn_scram; 0x20: c2s PLAIN; 0x40: c2s      \
                       * SCRAM */
#define M_NO_CB 0x80u /* the TLS connection offers no channel binding */

#define FZ_NONCE "fuzzservernonce"

static c2s_creds_t fz_creds;
static const uint8_t fz_cb_data[32] = "channel-binding-data-0123456789";
static const uint8_t fz_salt[16] = "fuzzsaltfuzzsalt";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kn_log_init("fuzz", KN_LOG_ERR);
    if (kn_scram_creds_derive(&fz_creds.sha1, KN_SCRAM_SHA1, "secret", fz_salt,
                              16, 1) != 0 ||
        kn_scram_creds_derive(&fz_creds.sha256, KN_SCRAM_SHA256, "secret",
                              fz_salt, 16, 1) != 0)
        abort();
    return 0;
}

/* ---- the honest client ------------------------------------------------ */

static const EVP_MD *fz_md(kn_scram_hash_t h)
{
    return h == KN_SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

static void fz_hmac(kn_scram_hash_t h, const uint8_t *key, const void *msg,
                    size_t len, uint8_t *out)
{
    unsigned olen = 0;
    if (HMAC(fz_md(h), key, (int)kn_scram_hash_len(h), msg, len, out, &olen) ==
        NULL)
        abort();
}

/* The value of attribute "<a>=" in a SCRAM message (up to ','). */
static const char *fz_attr(const char *msg, char a, size_t *len)
{
    for (const char *p = msg; p && *p; p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        if (p[0] == a && p[1] == '=') {
            *len = strcspn(p + 2, ",");
            return p + 2;
        }
    }
    return NULL;
}

/* Answer server_first for client_first[0..len) (accepted by s) with a
 * correct proof; ext (may be empty) is put in as an extension. The
 * expected server signature goes to *v (base64). */
static void fz_client_final(const kn_scram_server_t *s, kn_scram_hash_t h,
                            const char *first, size_t first_len,
                            const char *server_first, const uint8_t *ext,
                            size_t ext_len, kn_buf_t *out, kn_buf_t *v)
{
    size_t gs2 = 0, commas = 0;
    while (gs2 < first_len && commas < 2)
        if (first[gs2++] == ',')
            commas++;
    kn_buf_t cb = KN_BUF_INIT;
    kn_buf_append(&cb, first, gs2);
    if (kn_scram_server_cb_type(s) != KN_SCRAM_CB_NONE)
        kn_buf_append(&cb, fz_cb_data, sizeof(fz_cb_data));
    size_t rlen = 0;
    const char *r = fz_attr(server_first, 'r', &rlen);
    if (r == NULL)
        abort();
    kn_buf_append_str(out, "c=");
    kn_b64_encode(cb.data, cb.len, out);
    kn_buf_append_str(out, ",r=");
    kn_buf_append(out, r, rlen);
    if (ext_len > 0) {
        kn_buf_append_byte(out, ',');
        kn_buf_append(out, ext, ext_len);
    }
    /* AuthMessage := client-first-bare, server-first, final-without-proof */
    kn_buf_t am = KN_BUF_INIT;
    kn_buf_append(&am, first + gs2, first_len - gs2);
    kn_buf_append_byte(&am, ',');
    kn_buf_append_str(&am, server_first);
    kn_buf_append_byte(&am, ',');
    kn_buf_append(&am, out->data, out->len);
    size_t hl = kn_scram_hash_len(h);
    uint8_t salted[KN_SCRAM_MAX_HASH_LEN], ckey[KN_SCRAM_MAX_HASH_LEN];
    uint8_t stored[KN_SCRAM_MAX_HASH_LEN], sig[KN_SCRAM_MAX_HASH_LEN];
    uint8_t skey[KN_SCRAM_MAX_HASH_LEN];
    if (kn_scram_hi(h, "secret", 6, fz_salt, 16, 1, salted) != 0 ||
        kn_scram_client_key(h, salted, ckey) != 0 ||
        kn_scram_stored_key(h, ckey, stored) != 0 ||
        kn_scram_server_key(h, salted, skey) != 0)
        abort();
    fz_hmac(h, stored, am.data, am.len, sig);
    for (size_t i = 0; i < hl; i++)
        ckey[i] ^= sig[i];
    kn_buf_append_str(out, ",p=");
    kn_b64_encode(ckey, hl, out);
    fz_hmac(h, skey, am.data, am.len, sig);
    kn_buf_append_str(v, "v=");
    kn_b64_encode(sig, hl, v);
    kn_buf_free(&am);
    kn_buf_free(&cb);
}

/* ---- kn_scram directly ------------------------------------------------ */

static void fz_scram(unsigned mode, const uint8_t *m1, size_t l1,
                     const uint8_t *m2, size_t l2)
{
    kn_scram_hash_t h = (mode & M_SHA256) ? KN_SCRAM_SHA256 : KN_SCRAM_SHA1;
    unsigned flags = ((mode & M_PLUS) ? KN_SCRAM_F_PLUS : 0) |
                     ((mode & M_OFFERED) ? KN_SCRAM_F_CB_OFFERED : 0);
    kn_scram_server_t *s = kn_scram_server_new(h, flags);
    kn_buf_t out = KN_BUF_INIT, fin = KN_BUF_INIT, v = KN_BUF_INIT;
    const kn_scram_creds_t *c = (mode & M_UNKNOWN)   ? NULL
                                : h == KN_SCRAM_SHA1 ? &fz_creds.sha1
                                                     : &fz_creds.sha256;
    int rc = kn_scram_server_client_first(s, (const char *)m1, l1);
    if (rc == 0) {
        if (kn_scram_server_username(s) == NULL)
            abort();
        if (kn_scram_server_first(s, c, FZ_NONCE, &out) != 0)
            abort();
        const uint8_t *cb = (mode & M_NO_CB) ? NULL : fz_cb_data;
        size_t cblen = cb ? sizeof(fz_cb_data) : 0;
        if (mode & M_HONEST) {
            fz_client_final(s, h, (const char *)m1, l1, out.data, m2, l2, &fin,
                            &v);
            kn_buf_reset(&out);
            rc = kn_scram_server_client_final(s, fin.data, fin.len, fz_cb_data,
                                              sizeof(fz_cb_data), &out);
            if (rc == 0 && (c == NULL || out.len != v.len ||
                            memcmp(out.data, v.data, v.len) != 0))
                abort(); /* accepted the wrong thing, or signed wrong */
            if (rc != 0 && c != NULL && l2 == 0)
                abort(); /* refused an honest client */
            if (rc != 0 && c != NULL && rc != -KN_EPROTO)
                abort(); /* only a malformed extension may fail it */
        } else {
            kn_buf_reset(&out);
            rc = kn_scram_server_client_final(s, (const char *)m2, l2, cb,
                                              cblen, &out);
            if ((rc == 0) != (kn_scram_server_is_done(s) != 0))
                abort();
        }
        if (rc != 0 && kn_scram_server_error(s) == NULL)
            abort();
        /* out of order from now on */
        kn_buf_reset(&out);
        if (kn_scram_server_client_final(s, "c=biws", 6, NULL, 0, &out) == 0)
            abort();
    } else if (rc != -KN_EPROTO && rc != -KN_EAUTH) {
        abort();
    }
    kn_buf_free(&out);
    kn_buf_free(&fin);
    kn_buf_free(&v);
    kn_scram_server_free(&s);
}

/* ---- through c2s ------------------------------------------------------ */

static int fz_route(void *ud, const kn_env_t *e, const void *pl, size_t len)
{
    (void)ud;
    (void)e;
    (void)pl;
    (void)len;
    return 0;
}

static void fz_lookup(void *ud, const char *user)
{
    (void)ud;
    (void)user;
}

static void fz_starttls(void *ud)
{
    (void)ud;
}

static int fz_cb(void *ud, kn_scram_cb_t type, uint8_t *out, size_t cap)
{
    (void)ud;
    if (type != KN_SCRAM_CB_TLS_EXPORTER || cap < sizeof(fz_cb_data))
        return -KN_ENOENT;
    memcpy(out, fz_cb_data, sizeof(fz_cb_data));
    return (int)sizeof(fz_cb_data);
}

static uint64_t fz_conn(void *ud)
{
    (void)ud;
    return kn_conn_make(1, 1);
}

static const c2s_stream_ops_t fz_ops = {fz_route,    fz_lookup, NULL,    NULL,
                                        fz_starttls, fz_cb,     fz_conn, NULL,
                                        NULL,        NULL,      NULL};

static c2s_act_t fz_send(c2s_stream_t *s, const char *el, const char *mech,
                         const uint8_t *m, size_t l, unsigned mode)
{
    kn_buf_t x = KN_BUF_INIT;
    kn_buf_printf(&x, "<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'", el);
    if (mech != NULL)
        kn_buf_printf(&x, " mechanism='%s'", mech);
    kn_buf_append_byte(&x, '>');
    if (l > 0)
        kn_b64_encode(m, l, &x);
    else
        kn_buf_append_byte(&x, '=');
    kn_buf_printf(&x, "</%s>", el);
    c2s_act_t act = c2s_stream_input(s, x.data, x.len);
    kn_buf_free(&x);
    if (act == C2S_ACT_PAUSED && s->pause == C2S_PAUSE_CREDS) {
        int rc = (mode & M_UNKNOWN) ? -KN_ENOENT : 0;
        act = c2s_stream_creds_done(s, rc, rc == 0 ? &fz_creds : NULL);
    }
    if (act == C2S_ACT_PAUSED)
        abort();
    return act;
}

static void fz_c2s(unsigned mode, const uint8_t *m1, size_t l1,
                   const uint8_t *m2, size_t l2)
{
    static const c2s_stream_conf_t cf = {"localhost", KN_XML_LIMITS_DEFAULT, 0,
                                         false};
    kn_buf_t out = KN_BUF_INIT;
    c2s_stream_t *s =
        c2s_stream_new(&cf, &fz_ops, NULL, &out, C2S_STREAM_F_TLS);
    c2s_stream_set_tls(s, (mode & M_NO_CB) ? 0 : C2S_CB_EXPORTER);
    static const char hdr[] =
        "<stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
    const char *mech = "PLAIN";
    if ((mode & M_PATH) == 0x40)
        mech = kn_scram_mech_name((mode & M_SHA256) ? KN_SCRAM_SHA256
                                                    : KN_SCRAM_SHA1,
                                  (mode & M_PLUS) != 0);
    if (c2s_stream_input(s, hdr, strlen(hdr)) == C2S_ACT_MORE &&
        fz_send(s, "auth", mech, m1, l1, mode) == C2S_ACT_MORE &&
        s->state == C2S_ST_SASL)
        fz_send(s, "response", NULL, m2, l2, mode);
    c2s_stream_close(s, KN_SE_NONE, KN_ENV_REASON_DROPPED);
    c2s_stream_end(s);
    c2s_stream_free(&s);
    kn_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    unsigned mode = data[0];
    const uint8_t *m1 = data + 1, *m2 = NULL;
    size_t l1 = size - 1, l2 = 0;
    const uint8_t *cut = memchr(m1, 0xff, l1);
    if (cut != NULL) {
        m2 = cut + 1;
        l2 = l1 - (size_t)(m2 - m1);
        l1 = (size_t)(cut - m1);
    }
    if ((mode & M_PATH) == 0x20 || (mode & M_PATH) == 0x40)
        fz_c2s(mode, m1, l1, m2, l2);
    else
        fz_scram(mode, m1, l1, m2, l2);
    return 0;
}
