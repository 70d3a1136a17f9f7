/*
 * c2s_stream.h - one client stream's protocol state machine (RFC 6120):
 * bytes in, bytes and actions out. No sockets, no loop, no database: the
 * owner (c2s_conn.c in the server, a unit test with canned bytes) feeds
 * what it read, sends what appears in the output buffer, and provides a
 * small interface (c2s_stream_ops_t) for everything outside the stream:
 * the router, the credentials lookup, the switch to TLS, channel-binding
 * data and the per-address failure delay.
 *
 * States: HEADER (waiting for the client's stream header) -> FEATURES
 * (pre-auth stream: STARTTLS and SASL) -> after SASL success and the
 * restart, BIND (authenticated, not bound) -> SESSION (bound: stanzas are
 * stamped and routed). CLOSED once a stream error or the close tag was
 * written: the owner flushes the output and closes the connection.
 *
 * Asynchronous steps pause the stream: while a credentials lookup, a
 * delayed SASL failure or a TLS handshake is pending, no further input is
 * parsed (bytes fed meanwhile stay queued in the XML parser, which keeps
 * the exact stream restart semantics of kn_xml.h). The owner resumes it
 * with c2s_stream_creds_done(), c2s_stream_resume() or
 * c2s_stream_tls_done(); each returns the next action like
 * c2s_stream_input().
 */
#ifndef C2S_STREAM_H
#define C2S_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_jid.h"
#include "kn_scram.h"
#include "kn_xml.h"
#include "kn_xmpp_err.h"

#define C2S_NS_TLS              "urn:ietf:params:xml:ns:xmpp-tls"
#define C2S_NS_SASL             "urn:ietf:params:xml:ns:xmpp-sasl"
#define C2S_NS_BIND             "urn:ietf:params:xml:ns:xmpp-bind"
#define C2S_NS_SESSION          "urn:ietf:params:xml:ns:xmpp-session"
#define C2S_NS_ROSTERVER        "urn:xmpp:features:rosterver"
#define C2S_NS_PING             "urn:xmpp:ping"
#define C2S_NS_SASL_CB          "urn:xmpp:sasl-cb:0"
#define C2S_NS_REGISTER         "jabber:iq:register"
#define C2S_NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"
#define C2S_NS_EXTDISCO         "urn:xmpp:extdisco:2"
#define C2S_NS_SM               "urn:xmpp:sm:3"

/* Channel-binding types the transport can provide (bit per type). */
#define C2S_CB_EXPORTER  (1u << KN_SCRAM_CB_TLS_EXPORTER)
#define C2S_CB_END_POINT (1u << KN_SCRAM_CB_TLS_SERVER_END_POINT)
#define C2S_CB_DATA_MAX  64

typedef enum c2s_state {
    C2S_ST_HEADER = 0, /* waiting for a stream header */
    C2S_ST_FEATURES,   /* pre-auth: STARTTLS, SASL */
    C2S_ST_SASL,       /* SASL exchange in progress */
    C2S_ST_BIND,       /* authenticated, no resource yet */
    C2S_ST_SESSION,    /* bound: stanzas are routed */
    C2S_ST_CLOSED,     /* error or close tag written; flush and close */
} c2s_state_t;

/* What the owner must do after a call into the stream. */
typedef enum c2s_act {
    C2S_ACT_MORE = 0, /* all input consumed: read more */
    C2S_ACT_PAUSED,   /* waiting for creds / a delay / TLS: do not feed */
    C2S_ACT_CLOSE,    /* flush the output, then close (c2s_stream_reason) */
} c2s_act_t;

typedef enum c2s_pause {
    C2S_PAUSE_NONE = 0,
    C2S_PAUSE_CREDS,    /* creds_lookup() pending */
    C2S_PAUSE_FAIL,     /* SASL failure held back by auth_failed()'s delay */
    C2S_PAUSE_TLS,      /* <proceed/> written; TLS handshake pending */
    C2S_PAUSE_REGISTER, /* register_user() pending (XEP-0077) */
    C2S_PAUSE_RESUME,   /* XEP-0198 <resume/> asked of the router (c2s_sm.c) */
    C2S_PAUSE_LOCK,     /* lock_check() pending (SASL lock-out) */
    C2S_PAUSE_BIND,     /* session_count() pending (max_sessions) */
} c2s_pause_t;

/* The stored credentials of one user, both hashes (a users row). */
typedef struct c2s_creds {
    kn_scram_creds_t sha1;
    kn_scram_creds_t sha256;
} c2s_creds_t;

/* XEP-0215 settings (c2s_extdisco.c): borrowed from c2s_conf_t. */
typedef struct c2s_extdisco_conf {
    const char *host; /* "" or NULL: none configured */
    long long stun_port, turn_port;
    const char *secret; /* TURN REST shared secret; "": no TURN */
    long long ttl;      /* seconds */
} c2s_extdisco_conf_t;

/* Settings shared by every stream of a node (borrowed; outlives them). */
typedef struct c2s_stream_conf {
    const char *domain;     /* prepared domain we serve */
    kn_xml_limits_t limits; /* stanza size, depth, attributes */
    size_t hold_max;   /* bytes held until the block list is known (0: 1 MiB) */
    bool registration; /* XEP-0077: anyone may create an account */
    const c2s_extdisco_conf_t *extdisco; /* XEP-0215; NULL: none */
    /* XEP-0198 (c2s_sm.c): unacked stanzas before the stream ends, how
     * many unacked before we send <r/>, seconds a dropped resumable
     * session waits (0: no resumption offered). */
    size_t sm_max_unacked;
    size_t sm_request_after;
    unsigned sm_resume_timeout;
    const struct c2s_upload_conf *upload; /* XEP-0363, NULL: none */
    size_t csi_max_stanzas;               /* XEP-0352 hold limit (0: CSI off) */
    size_t csi_max_bytes; /* XEP-0352 hold limit in bytes (0: none) */
    /* Verified PLAIN passwords of this process (c2s_plaincache.h); NULL:
     * every PLAIN login derives PBKDF2. */
    struct c2s_plaincache *plaincache;
    bool lockout;        /* ask ops->lock_check before each credentials
                          * lookup (c2s_lockout.c) */
    size_t max_sessions; /* resources per account (0: no limit) */
} c2s_stream_conf_t;

typedef struct c2s_stream_ops {
    /* Send one envelope (and payload, may be NULL/0) to the router.
     * Returns 0 or -KN_E* (logged by the stream; the stanza is lost). */
    int (*route)(void *ud, const kn_env_t *env, const void *payload,
                 size_t len);
    /* Start looking up the credentials of username (nodeprepped). The
     * answer comes through c2s_stream_creds_done(), never from inside
     * this call. */
    void (*creds_lookup)(void *ud, const char *username);
    /* An authentication failed: how many ms to hold the <failure/> back
     * (0: at once). When non-zero the owner calls c2s_stream_resume()
     * after that delay. May be NULL (no delay). */
    unsigned (*auth_failed)(void *ud);
    /* Authentication succeeded (reset per-address failure counts). May
     * be NULL. */
    void (*auth_ok)(void *ud);
    /* <proceed/> is in the output: flush it, then start the TLS
     * handshake and call c2s_stream_tls_done() when it completes. */
    void (*starttls)(void *ud);
    /* Channel-binding data of the TLS connection for type, into
     * out[0..cap). Returns its length, or -KN_ENOENT. May be NULL. */
    int (*cb_data)(void *ud, kn_scram_cb_t type, uint8_t *out, size_t cap);
    /* The cluster-wide connection id of this stream's connection. */
    uint64_t (*conn_id)(void *ud);
    /* The session was bound and announced; its XEP-0191 block list is
     * expected from presenced (c2s_block.c). If it has not come when the
     * owner's wait is over, the owner reads it itself and calls
     * c2s_stream_block_loaded(). May be NULL (no fallback). */
    void (*block_wait)(void *ud);
    /* A delivery carrying KN_F_ACK_WANTED (a stored offline message,
     * R-PRES-5) is now in the output, or was refused (XEP-0191): mark
     * ack_id at the current end of the output, so the ACK goes out once
     * the socket took everything before it. May be NULL. */
    void (*ack_mark)(void *ud, uint64_t ack_id);
    /* In-band registration (XEP-0077): count one account creation for
     * the client's address; false when its hourly allowance is used up.
     * May be NULL (no limit). */
    bool (*register_allowed)(void *ud);
    /* Create the account username (nodeprepped) with creds. The answer
     * comes through c2s_stream_register_done(), never from inside this
     * call. May be NULL (registration then fails). */
    void (*register_user)(void *ud, const char *username,
                          const c2s_creds_t *creds);
    /* A stored offline message (ack id) was acknowledged by the client's
     * XEP-0198 <a/>: its row can go. May be NULL. */
    void (*ack_done)(void *ud, uint64_t ack_id);
    /* Before the credentials of username (nodeprepped; NULL when the
     * name did not prepare) are looked up with mech: is the account or
     * the client's address locked out after too many failures? The
     * answer comes through c2s_stream_lock_done(), never from inside this
     * call. Asked only when cf->lockout; may be NULL (no lock-out). */
    void (*lock_check)(void *ud, const char *username, const char *mech);
    /* Before a bind of full (a full JID of bare) is answered: how many
     * other resources of bare are bound in the cluster? The answer comes
     * through c2s_stream_bind_done(), never from inside this call. Asked
     * only when cf->max_sessions > 0; may be NULL (no limit). */
    void (*session_count)(void *ud, const char *bare, const char *full);
} c2s_stream_ops_t;

/* Stream flags for c2s_stream_new. */
#define C2S_STREAM_F_STARTTLS 1u /* plain socket; STARTTLS can be offered */
#define C2S_STREAM_F_TLS      2u /* already encrypted (direct TLS) */
/* RFC 7395 framing (WebSocket, c2s_ws.c): our stream header is an
 * <open/> element and the close tag a <close/> element, so the output is
 * a sequence of complete top-level elements the transport can frame. */
#define C2S_STREAM_F_FRAMED 4u
#define C2S_NS_FRAMING      "urn:ietf:params:xml:ns:xmpp-framing"

typedef struct c2s_sasl c2s_sasl_t;
typedef struct c2s_sm c2s_sm_t;
struct kn_blocklist;

typedef struct c2s_stream {
    const c2s_stream_conf_t *cf;
    const c2s_stream_ops_t *ops;
    void *ud;
    kn_buf_t *out; /* where bytes for the client go; borrowed */
    kn_xml_t *xml;
    c2s_sasl_t *sasl; /* only during authentication */
    char *user;       /* authenticated local part (nodeprepped) */
    kn_jid_t jid;     /* bound full JID (SESSION state) */
    c2s_state_t state;
    c2s_pause_t pause;
    kn_env_reason_t reason; /* why it closed (CLOSED state) */
    uint32_t ping_id;       /* our outstanding ping (c2s_idle.c), 0: none */
    uint32_t stanzas_in;    /* top-level elements parsed (rate limits) */
    struct kn_blocklist *blocked; /* XEP-0191 list of the user; NULL: none */
    kn_buf_t *held;       /* deliveries held until the block list is known */
    kn_stanza_t *reg_iq;  /* the registration IQ being answered */
    kn_stanza_t *bind_iq; /* the bind IQ waiting for session_count() */
    kn_jid_t bind_jid;    /* and the full JID it asks for */
    c2s_sm_t *sm;         /* XEP-0198 state (c2s_sm.h); NULL: not enabled */
    struct c2s_csi *csi;  /* XEP-0352 held deliveries (c2s_csi.c); NULL: none */
    int16_t priority;
    uint8_t cb_types; /* C2S_CB_* the transport provides */
    bool tls : 1;
    bool can_starttls : 1;
    bool header_sent : 1; /* our header of the current stream is out */
    bool available : 1;   /* sent available presence */
    bool session_up : 1;  /* SESSION_UP sent, SESSION_DOWN owed */
    bool block_ready : 1; /* the block list is known (c2s_block.c) */
    bool framed : 1;      /* C2S_STREAM_F_FRAMED */
    bool carbons : 1;     /* XEP-0280 enabled (the router's answer said so) */
    bool inactive : 1;    /* XEP-0352: the client said <inactive/> */
} c2s_stream_t;

/* Create a stream writing to out (borrowed, must outlive the stream).
 * cf, ops and ud are borrowed too. flags: C2S_STREAM_F_*. Never NULL. */
c2s_stream_t *c2s_stream_new(const c2s_stream_conf_t *cf,
                             const c2s_stream_ops_t *ops, void *ud,
                             kn_buf_t *out, unsigned flags);

/* Free *sp and set it to NULL; idempotent. Sends nothing: call
 * c2s_stream_end() first. */
void c2s_stream_free(c2s_stream_t **sp);

/* Feed bytes read from the client and process every complete event.
 * Returns what the owner must do next. While paused, bytes are queued
 * (the owner should stop reading). */
c2s_act_t c2s_stream_input(c2s_stream_t *s, const void *data, size_t len);

/* Continue processing queued input (after a pause ended). */
c2s_act_t c2s_stream_process(c2s_stream_t *s);

/* The credentials lookup answered: rc 0 with creds, -KN_ENOENT for an
 * unknown user, or another -KN_E* (database trouble: the client gets
 * <temporary-auth-failure/>). creds borrowed for the call. */
c2s_act_t c2s_stream_creds_done(c2s_stream_t *s, int rc,
                                const c2s_creds_t *creds);

/* register_user() answered: rc 0 created, -KN_EEXIST taken, another
 * -KN_E* (database trouble). */
c2s_act_t c2s_stream_register_done(c2s_stream_t *s, int rc);

/* lock_check() answered: remaining_s > 0 means locked for that many more
 * seconds (the client gets <temporary-auth-failure/> with a text, its
 * password unchecked); 0 goes on with the credentials lookup. */
c2s_act_t c2s_stream_lock_done(c2s_stream_t *s, unsigned remaining_s);

/* session_count() answered: others resources of the account are bound
 * (< 0: unknown, e.g. Redis down: the bind goes through). At
 * max_sessions or more the bind gets <resource-constraint/>. */
c2s_act_t c2s_stream_bind_done(c2s_stream_t *s, long others);

/* During a SASL exchange: its user name (nodeprepped, NULL when none or
 * it did not prepare) and mechanism name; NULL outside an exchange. For
 * the owner's auth_failed() (failure log and lock-out counters). */
const char *c2s_stream_sasl_user(const c2s_stream_t *s);
const char *c2s_stream_sasl_mech(const c2s_stream_t *s);

/* The failure delay is over: send the held <failure/> and go on. */
c2s_act_t c2s_stream_resume(c2s_stream_t *s);

/* The TLS handshake after <proceed/> completed; cb_types: C2S_CB_* the
 * TLS connection offers. */
c2s_act_t c2s_stream_tls_done(c2s_stream_t *s, unsigned cb_types);

/* Set what a direct-TLS connection provides (before any input). */
void c2s_stream_set_tls(c2s_stream_t *s, unsigned cb_types);

/* End the stream from outside (KICK, shutdown, slow consumer, read
 * error): write err (KN_SE_NONE: nothing) and the close tag unless
 * closed already, and remember reason. Idempotent. */
void c2s_stream_close(c2s_stream_t *s, kn_stream_err_t err,
                      kn_env_reason_t reason);

/* The session is over: send SESSION_DOWN with the stream's reason if a
 * SESSION_UP was sent. Call exactly once, from the close path. */
void c2s_stream_end(c2s_stream_t *s);

/* Write a stream error (after our header if none was sent) and the
 * close tag; state CLOSED with reason DROPPED. For the protocol modules. */
c2s_act_t c2s_stream_fail(c2s_stream_t *s, kn_stream_err_t err,
                          const char *text);

/* Send one envelope to the router, logging a failure. */
int c2s_stream_route(c2s_stream_t *s, const kn_env_t *env, const void *payload,
                     size_t len);

/* Re-send SESSION_UP (with KN_F_REANNOUNCE) after a router restart. */
void c2s_stream_reannounce(c2s_stream_t *s);

/* Write a stanza to the client (serialised in jabber:client). */
void c2s_stream_write_stanza(c2s_stream_t *s, const kn_stanza_t *st);

/* ---- modules (c2s_sasl.c, c2s_bind.c, c2s_stanza.c) -------------------- */

/* SASL and STARTTLS elements on a pre-auth stream. */
c2s_act_t c2s_sasl_handle(c2s_stream_t *s, const kn_stanza_t *st);
/* Append the <mechanisms/> (and XEP-0440) features for this stream. */
void c2s_sasl_features(const c2s_stream_t *s, kn_buf_t *out);
/* Free the exchange state. */
void c2s_sasl_free(c2s_sasl_t **sp);
/* Creds arrived / delay over (called by c2s_stream_*). */
c2s_act_t c2s_sasl_creds(c2s_stream_t *s, int rc, const c2s_creds_t *creds);
c2s_act_t c2s_sasl_send_held_failure(c2s_stream_t *s);
c2s_act_t c2s_sasl_lock_done(c2s_stream_t *s, unsigned remaining_s);

/* In-band registration (XEP-0077) on a pre-auth stream (c2s_register.c):
 * an IQ in jabber:iq:register; the answer to register_user(); the
 * pending IQ freed with the stream. */
c2s_act_t c2s_register_handle(c2s_stream_t *s, const kn_stanza_t *st);
void c2s_register_done(c2s_stream_t *s, int rc);
void c2s_register_free(c2s_stream_t *s);

/* A stanza on an authenticated, unbound stream (resource binding). */
c2s_act_t c2s_bind_handle(c2s_stream_t *s, const kn_stanza_t *st);
/* session_count() answered (c2s_stream_bind_done). */
void c2s_bind_done(c2s_stream_t *s, long others);

/* A stanza on a bound stream: stamp, check, answer locally or route. */
c2s_act_t c2s_stanza_handle(c2s_stream_t *s, const kn_stanza_t *st);
/* XEP-0363 (c2s_upload_iq.c): answer an IQ request (get: type get) to
 * the upload service, payload element q. false: not for the service. */
bool c2s_upload_iq(c2s_stream_t *s, const kn_stanza_t *st, const char *to,
                   bool get, int q);

/* Write a payload the router delivered for this connection, as is; when
 * its root has no 'to' (a MULTICAST from mucd) the stream's full JID is
 * spliced in as to='...' without parsing the stanza. */
void c2s_stanza_deliver(c2s_stream_t *s, const void *payload, size_t len);

/* ---- blocking, XEP-0191 (c2s_block.c) ----------------------------------- */

#define C2S_NS_BLOCKING        "urn:xmpp:blocking"
#define C2S_NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/* A delivery from the router for this bound session (a STANZA, or a
 * MULTICAST naming it; env and payload borrowed). Block-list data from
 * presenced (KN_F_BLOCKLIST) updates the session's list; until the list
 * is known everything is held, in order; then a stanza from a JID the
 * user blocked is refused (message, iq get/set: <service-unavailable/>
 * to the sender) or dropped, and the rest is written as
 * c2s_stanza_deliver() does. Returns C2S_ACT_CLOSE when the held bytes
 * passed hold_max (the stream is closed with <resource-constraint/>;
 * the owner runs its close path), else C2S_ACT_MORE. */
/* A delivery that could not be written (its connection vanished, or it
 * was held when the session ended): whether it goes back to the router,
 * and then *out is the envelope to send (KN_F_REROUTE; conn id kept only
 * for a stored offline message). What nobody answers (presence, results,
 * groupchat, headline), block-list data, a second reroute and the extra
 * copies of a message to a bare JID (its first copy went elsewhere) do
 * not go back. */
bool c2s_reroute_env(const kn_env_t *env, kn_env_t *out);

c2s_act_t c2s_stream_inbound(c2s_stream_t *s, const kn_env_t *env,
                             const void *payload, size_t len);

/* The owner read the block list itself (presenced did not send it in
 * time): jids[0..n) as stored. Ignored once the list is known. Releases
 * the held deliveries. */
void c2s_stream_block_loaded(c2s_stream_t *s, const char *const *jids,
                             const size_t *lens, size_t n);

/* An outbound stanza of the user to `to`: if the user blocked it, answer
 * <not-acceptable/><blocked/> (errors and iq results are dropped) and
 * return true: the stanza must not be routed. */
bool c2s_block_outbound(c2s_stream_t *s, const kn_stanza_t *st,
                        const kn_jid_t *to, kn_env_stanza_t est,
                        kn_env_type_t type);

/* The session ended (after SESSION_DOWN): held messages and iq get/set go
 * back to the router as for a vanished connection (KN_F_REROUTE), the
 * rest is dropped; the list is freed. Idempotent. */
void c2s_block_end(c2s_stream_t *s);

/* ---- client state indication, XEP-0352 (c2s_csi.c) ------------------- */

/* <inactive/> or <active/> (urn:xmpp:csi:0) on a bound stream; <active/>
 * flushes what was held. Anything else in that namespace, or CSI off
 * (csi_max_stanzas 0): <unsupported-stanza-type/>. */
c2s_act_t c2s_csi_handle(c2s_stream_t *s, const kn_stanza_t *st);
/* A delivery that passed the XEP-0191 filter, about to be written: true
 * when it was held (the caller must not write it); false when the caller
 * writes it now (anything held was flushed before it). */
bool c2s_csi_filter(c2s_stream_t *s, const kn_env_t *env, const void *pl,
                    size_t len);
/* The session is over: drop what is held (presence and chat states need
 * no reroute). Idempotent. */
void c2s_csi_end(c2s_stream_t *s);

/* ---- XEP-0215 external services (c2s_extdisco.c) ----------------------- */

/* An iq get to the server whose child q is in C2S_NS_EXTDISCO: answer
 * <services/> or <credentials/> (TURN credentials valid from now, unix
 * seconds) into the output and return true; false for other children. */
bool c2s_extdisco_handle(c2s_stream_t *s, const kn_stanza_t *st, int q,
                         long long now);

/* ---- idle policy, R-DROP-4 (c2s_idle.c) --------------------------------- */

#define C2S_PING_ID_PREFIX    "kiln-ping-"
#define C2S_IDLE_PERIOD_MAX_S 5.0 /* the sweep runs at least this often */

typedef enum c2s_idle_act {
    C2S_IDLE_NONE = 0, /* nothing due */
    C2S_IDLE_PING,     /* send the server ping (then set pinged) */
    C2S_IDLE_CLOSE,    /* <connection-timeout/>, close, reason idle */
} c2s_idle_act_t;

/* What a connection silent since last_in needs at now, for idle timeout
 * seconds (<= 0: off) with pings on or off; bound: a resource is bound;
 * pinged: a ping went out during this silence. *next gets the time of
 * its next step (HUGE_VAL: none). Pure: no clock, no I/O. */
c2s_idle_act_t c2s_idle_decide(double now, double last_in, bool bound,
                               bool pinged, double timeout, bool ping,
                               double *next);

/* The longest interval between idle sweeps: min(timeout / 4, 5 s). */
double c2s_idle_period(double timeout);

/* Write <iq type='get' id='kiln-ping-<seq>'><ping/></iq> to the bound
 * client and remember seq (non-zero) as the outstanding ping. */
void c2s_stream_ping(c2s_stream_t *s, uint32_t seq);

/* Whether id is that of our outstanding ping (its result or error is
 * swallowed, not routed). */
bool c2s_stream_is_ping_reply(const c2s_stream_t *s, const char *id);

/* Fill buf[0..n) with random bytes (getrandom). */
void c2s_random(void *buf, size_t n);

#endif
