/*
 * kn_scram.h - SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), with
 * the -PLUS channel-binding variants (tls-exporter, tls-server-end-point).
 *
 * Two parts:
 *   - key derivation: SaltedPassword = Hi(password, salt, i), ClientKey,
 *     StoredKey, ServerKey. kilnctl stores only salt, i, StoredKey and
 *     ServerKey; the server never needs the password.
 *   - the server side of one exchange as a state machine that takes the
 *     client's messages as bytes and writes its answers into a kn_buf_t.
 *     It never touches a socket, a database or the event loop, so c2s can
 *     look credentials up asynchronously between the steps and a unit test
 *     can drive it with canned messages.
 *
 * Message payloads are the decoded SASL data (what sits inside the base64
 * of <auth/>, <response/>), not the base64 itself.
 */
#ifndef KN_SCRAM_H
#define KN_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"

typedef enum kn_scram_hash {
    KN_SCRAM_SHA1 = 0,
    KN_SCRAM_SHA256 = 1,
} kn_scram_hash_t;

/* Largest digest of any supported hash (SHA-256). */
#define KN_SCRAM_MAX_HASH_LEN 32
/* Largest salt kn_scram_creds_t can hold; kilnctl writes 16 bytes. */
#define KN_SCRAM_MAX_SALT_LEN       64
#define KN_SCRAM_SALT_LEN           16
#define KN_SCRAM_DEFAULT_ITERATIONS 4096
/* Iteration counts outside [MIN, MAX] are refused as a config/DB error. */
#define KN_SCRAM_MIN_ITERATIONS 1
#define KN_SCRAM_MAX_ITERATIONS 10000000

/* Channel-binding type a client asked for with gs2 "p=<name>". */
typedef enum kn_scram_cb {
    KN_SCRAM_CB_NONE = 0,
    KN_SCRAM_CB_TLS_EXPORTER,         /* RFC 9266 */
    KN_SCRAM_CB_TLS_SERVER_END_POINT, /* RFC 5929 */
} kn_scram_cb_t;

/*
 * Stored credentials of one user for one hash (one users row's columns).
 * A plain value: copy it freely.
 */
typedef struct kn_scram_creds {
    kn_scram_hash_t hash;
    unsigned iterations;
    size_t salt_len;
    uint8_t salt[KN_SCRAM_MAX_SALT_LEN];
    uint8_t stored_key[KN_SCRAM_MAX_HASH_LEN];
    uint8_t server_key[KN_SCRAM_MAX_HASH_LEN];
} kn_scram_creds_t;

/* Digest length of hash in bytes: 20 or 32. */
size_t kn_scram_hash_len(kn_scram_hash_t hash);

/* SASL mechanism name: "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", ... Never
 * NULL; static storage. */
const char *kn_scram_mech_name(kn_scram_hash_t hash, int plus);

/* Parse a SASL mechanism name (case-sensitive, as RFC 4422 requires).
 * Returns 0 and sets *hash and *plus, or -KN_ENOENT if it is not a SCRAM
 * mechanism we implement. */
int kn_scram_mech_parse(const char *name, kn_scram_hash_t *hash, int *plus);

/*
 * SaltedPassword := Hi(password, salt, iterations) (PBKDF2-HMAC). The
 * password must already be SASLprepped (kn_scram_saslprep). Writes
 * kn_scram_hash_len(hash) bytes to out. Returns 0, or -KN_EINVAL for an
 * iteration count out of range or an OpenSSL failure.
 */
int kn_scram_hi(kn_scram_hash_t hash, const char *password, size_t pwlen,
                const uint8_t *salt, size_t salt_len, unsigned iterations,
                uint8_t *out);

/* ClientKey := HMAC(SaltedPassword, "Client Key"). Writes hash_len bytes
 * to out. Returns 0 or -KN_EINVAL. */
int kn_scram_client_key(kn_scram_hash_t hash, const uint8_t *salted,
                        uint8_t *out);

/* StoredKey := H(ClientKey). Writes hash_len bytes. Returns 0 or
 * -KN_EINVAL. */
int kn_scram_stored_key(kn_scram_hash_t hash, const uint8_t *client_key,
                        uint8_t *out);

/* ServerKey := HMAC(SaltedPassword, "Server Key"). Writes hash_len bytes.
 * Returns 0 or -KN_EINVAL. */
int kn_scram_server_key(kn_scram_hash_t hash, const uint8_t *salted,
                        uint8_t *out);

/*
 * Fill *out with everything the server stores for password (already
 * SASLprepped): hash, iterations, a copy of salt (salt_len must be 1 ..
 * KN_SCRAM_MAX_SALT_LEN), StoredKey, ServerKey. Intermediate secrets are
 * wiped. Returns 0 or -KN_EINVAL.
 */
int kn_scram_creds_derive(kn_scram_creds_t *out, kn_scram_hash_t hash,
                          const char *password, const uint8_t *salt,
                          size_t salt_len, unsigned iterations);

/*
 * SASLprep (RFC 4013) of a UTF-8 password, with the rules for stored
 * strings (unassigned code points are refused). On success returns 0 and
 * *out is a new string the caller frees with free(). Returns -KN_EINVAL if
 * the input is not UTF-8, holds prohibited characters, or prepares to the
 * empty string.
 */
int kn_scram_saslprep(const char *in, char **out);

/*
 * What a new password becomes in the users table: SASLprep (the stored-
 * string rules above), a fresh random salt per hash, then SHA-1 and
 * SHA-256 credentials with KN_SCRAM_DEFAULT_ITERATIONS. The one rule for
 * passwords, shared by kilnctl and in-band registration (XEP-0077).
 * Returns 0, -KN_EINVAL (refused by SASLprep: empty, not UTF-8,
 * prohibited characters) or -KN_EIO (no random bytes). Costs two PBKDF2
 * runs (a few milliseconds).
 */
int kn_scram_creds_from_password(const char *password, kn_scram_creds_t *sha1,
                                 kn_scram_creds_t *sha256);

/*
 * A users row's credential columns as libpq text parameters, for a
 * statement whose $1 is the user name: p[0] = iterations, p[1..6] = the
 * SHA-1 then SHA-256 salt, StoredKey, ServerKey as bytea hex ("\x..").
 * The strings live in *out; wipe it (explicit_bzero) after the query is
 * queued.
 */
typedef struct kn_scram_sql {
    char iter[16];
    char hex[6][2 +
                2 * (KN_SCRAM_MAX_SALT_LEN > KN_SCRAM_MAX_HASH_LEN
                         ? KN_SCRAM_MAX_SALT_LEN
                         : KN_SCRAM_MAX_HASH_LEN) +
                1];
    const char *p[7];
} kn_scram_sql_t;

void kn_scram_creds_sql(const kn_scram_creds_t *sha1,
                        const kn_scram_creds_t *sha256, kn_scram_sql_t *out);

/* The two statements that write a users row's credentials, with $1 the
 * username and $2..$8 the parameters of kn_scram_creds_sql() (kilnctl,
 * in-band registration, XEP-0077 and XEP-0133 password changes). INSERT
 * writes no row when the user exists; UPDATE none when it does not. */
#define KN_SQL_USER_INSERT                                                     \
    "insert into users (username, iterations, sha1_salt, sha1_stored_key,"     \
    " sha1_server_key, sha256_salt, sha256_stored_key, sha256_server_key)"     \
    " values ($1, $2, $3, $4, $5, $6, $7, $8)"                                 \
    " on conflict (username) do nothing"
#define KN_SQL_USER_SET_CREDS                                                  \
    "update users set iterations = $2, sha1_salt = $3, sha1_stored_key = $4,"  \
    " sha1_server_key = $5, sha256_salt = $6, sha256_stored_key = $7,"         \
    " sha256_server_key = $8 where username = $1"

/*
 * The server side of one exchange.
 *
 * Flags for kn_scram_server_new:
 *   KN_SCRAM_F_PLUS        the client chose the -PLUS mechanism: it must
 *                          send gs2 "p=<type>";
 *   KN_SCRAM_F_CB_OFFERED  this server advertised -PLUS mechanisms on this
 *                          stream, so a client saying "y" (it supports
 *                          channel binding but thinks we do not) is a
 *                          downgrade and fails.
 *
 * Use:
 *   s = kn_scram_server_new(hash, flags);
 *   kn_scram_server_client_first(s, msg, len)   -> username, cb type known
 *   ... look the user up (asynchronously) ...
 *   kn_scram_server_first(s, &creds or NULL, NULL, &out)  -> send out
 *   kn_scram_server_client_final(s, msg, len, cb, cblen, &out) -> send out
 *   kn_scram_server_free(&s);
 * Any step that fails moves the exchange to a failed state where every
 * further step returns -KN_EPROTO. kn_scram_server_error() names the
 * reason with an RFC 5802 server-error-value.
 */
typedef struct kn_scram_server kn_scram_server_t;

#define KN_SCRAM_F_PLUS       1u
#define KN_SCRAM_F_CB_OFFERED 2u

/* New exchange (never NULL; the caller owns it). */
kn_scram_server_t *kn_scram_server_new(kn_scram_hash_t hash, unsigned flags);

/* Free *sp (secrets wiped) and set it to NULL. Idempotent. */
void kn_scram_server_free(kn_scram_server_t **sp);

/*
 * Parse client-first-message msg[0..len) (borrowed for the call). Returns
 * 0; -KN_EPROTO if malformed (bad gs2 header, missing n= or r=, bad =XX
 * escape in the user name, a mandatory m= extension, a NUL byte); or
 * -KN_EAUTH if well formed but not acceptable (channel-binding flag does
 * not fit the mechanism, unknown channel-binding type, "y" while -PLUS
 * was offered).
 */
int kn_scram_server_client_first(kn_scram_server_t *s, const char *msg,
                                 size_t len);

/* After a successful client_first: the decoded user name (UTF-8, "=2C"
 * and "=3D" undone), the authorization identity (NULL if none) and the
 * channel-binding type. Strings are owned by s and live as long as it. */
const char *kn_scram_server_username(const kn_scram_server_t *s);
const char *kn_scram_server_authzid(const kn_scram_server_t *s);
kn_scram_cb_t kn_scram_server_cb_type(const kn_scram_server_t *s);

/*
 * Append server-first-message to out. creds (borrowed; copied) are the
 * stored credentials for the user and the exchange's hash; pass NULL for
 * an unknown user: a random salt and the default iteration count are
 * offered and the exchange then fails at the proof like a wrong password
 * would, so user names cannot be probed. server_nonce (printable ASCII
 * without ',', borrowed) is for tests; NULL generates 18 random bytes in
 * base64. Returns 0, -KN_EINVAL (creds of another hash, bad nonce), or
 * -KN_EPROTO if called out of order.
 */
int kn_scram_server_first(kn_scram_server_t *s, const kn_scram_creds_t *creds,
                          const char *server_nonce, kn_buf_t *out);

/*
 * Verify client-final-message msg[0..len). cb_data[0..cb_len) is the
 * channel-binding data of the TLS connection for the type the client
 * chose (kn_scram_server_cb_type); ignored when it is KN_SCRAM_CB_NONE.
 * On success appends server-final-message "v=<ServerSignature>" to out
 * and returns 0. On failure appends "e=<error>" and returns -KN_EAUTH
 * (wrong proof, nonce or channel binding) or -KN_EPROTO (malformed or out
 * of order). The caller sends out either way.
 */
int kn_scram_server_client_final(kn_scram_server_t *s, const char *msg,
                                 size_t len, const uint8_t *cb_data,
                                 size_t cb_len, kn_buf_t *out);

/* The RFC 5802 server-error-value of the last failure ("invalid-proof",
 * "channel-bindings-dont-match", ...), or NULL if none. Static storage. */
const char *kn_scram_server_error(const kn_scram_server_t *s);

/* Non-zero once client_final has succeeded. */
int kn_scram_server_is_done(const kn_scram_server_t *s);

#endif
