/*
 * kn_digest.c - SHA-1 hex and HMAC-SHA1 on OpenSSL 3 (see kn_digest.h).
 */
#include "kn_digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "kn_b64.h"
#include "kn_err.h"

void kn_sha1_hex2(const void *a, size_t alen, const void *b, size_t blen,
                  char hex[KN_SHA1_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    KN_ASSERT(ctx != NULL);
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, alen) == 1 &&
             EVP_DigestUpdate(ctx, b, blen) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mlen) == 1;
    EVP_MD_CTX_free(ctx);
    KN_ASSERT(ok && mlen == 20);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < mlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[KN_SHA1_HEX_LEN] = '\0';
}

void kn_hmac_sha1_b64(const void *key, size_t klen, const void *msg,
                      size_t mlen, kn_buf_t *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    unsigned char *r = HMAC(EVP_sha1(), key, (int)klen, msg, mlen, md, &len);
    KN_ASSERT(r != NULL && len == 20);
    kn_b64_encode(md, len, out);
}

bool kn_digest_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}
