/*
 * load_sasl.h - the client half of SASL SCRAM-SHA-1 (RFC 5802) and PLAIN
 * (RFC 4616), as pure functions over strings: no socket, no XML. Inputs
 * and outputs are the base64 payloads carried in <auth/>, <challenge/>,
 * <response/> and <success/>.
 *
 * PBKDF2 is the cost of SCRAM on the client, so the salted password's
 * derived keys are cached per user (load_scram_cache_t, one slot per
 * user of the worker): a user logging in again against the same salt and
 * iteration count costs two HMACs and a hash.
 */
#ifndef LOAD_SASL_H
#define LOAD_SASL_H

#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"

#define LOAD_SHA1_LEN 20

typedef struct load_scram_keys {
    uint8_t salt[64];
    size_t salt_len; /* 0: slot empty */
    unsigned iterations;
    uint8_t client_key[LOAD_SHA1_LEN];
    uint8_t stored_key[LOAD_SHA1_LEN];
    uint8_t server_key[LOAD_SHA1_LEN];
} load_scram_keys_t;

typedef struct load_scram {
    char *user;
    char *password;
    char *client_first_bare; /* n=USER,r=CNONCE */
    char *auth_message;
    uint8_t server_signature[LOAD_SHA1_LEN];
    load_scram_keys_t *cache; /* borrowed slot, may be NULL */
    int stage;                /* 0 started, 1 proof sent, 2 verified */
} load_scram_t;

/* Begin: store copies of user and password, set *out to the base64
 * client-first message. cache (borrowed, may be NULL) is this user's
 * slot. cnonce may be NULL (random). */
void load_scram_start(load_scram_t *s, const char *user, const char *password,
                      load_scram_keys_t *cache, const char *cnonce,
                      kn_buf_t *out);
/* Answer the server-first message (base64 in b64/len): set *out to the
 * base64 client-final message. Returns 0 or -KN_EPROTO. */
int load_scram_step(load_scram_t *s, const char *b64, size_t len,
                    kn_buf_t *out);
/* Check the server-final message "v=..." (base64). 0 or -KN_EAUTH. */
int load_scram_verify(load_scram_t *s, const char *b64, size_t len);
void load_scram_clear(load_scram_t *s);

/* Base64 PLAIN message "\0user\0password" into out. */
void load_sasl_plain(const char *user, const char *password, kn_buf_t *out);

/* Base64 helpers; decode returns the length or -1. */
void load_b64_encode(const uint8_t *in, size_t n, kn_buf_t *out);
long load_b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz);

#endif
