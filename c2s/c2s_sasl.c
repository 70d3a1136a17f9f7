/*
 * c2s_sasl.c - STARTTLS and SASL on a pre-auth stream (RFC 6120 5, 6):
 * SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants (kn_scram), and
 * PLAIN, all only over TLS.
 *
 * One exchange at a time lives in s->sasl: the mechanism, the SCRAM
 * server state or the prepared PLAIN password, and the step. Credentials
 * come from the owner asynchronously (ops->creds_lookup): the stream is
 * paused meanwhile. A PLAIN password already verified against the same
 * stored credentials is accepted from the process's cache without PBKDF2
 * (c2s_plaincache.h, s->cf->plaincache). An unknown user goes through the
 * same steps as a known one (SCRAM offers a random salt and fails at the
 * proof; PLAIN fails at the comparison), so user names cannot be probed,
 * and both get the per-address delay (ops->auth_failed) before
 * <not-authorized/>.
 *
 * Channel binding: -PLUS is offered when the TLS transport can provide
 * tls-exporter (TLS 1.3) or tls-server-end-point; XEP-0440 lists which.
 * A client that asks for a type we cannot provide (slixmpp 1.8 only knows
 * tls-unique) gets an immediate failure, without the failure delay, and
 * then usually retries without -PLUS, saying "y". We accept that "y"
 * (kn_scram's KN_SCRAM_F_CB_OFFERED is not set): such clients exist, and
 * the TLS certificate check is what stops a man in the middle here.
 */
#include <stdio.h>
#include <string.h>

#include "kn_b64.h"
#include "c2s_metrics.h"
#include "c2s_plaincache.h"
#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

/* The largest SASL payload we accept (decoded). */
#define SASL_MAX_BYTES 4096

typedef enum sasl_step {
    SASL_WAIT_INITIAL = 0, /* sent an empty challenge for the first msg */
    SASL_WAIT_CREDS,
    SASL_WAIT_FINAL, /* SCRAM: sent server-first */
    SASL_FAILED,     /* failure held back by the delay */
} sasl_step_t;

typedef enum sasl_mech {
    SASL_PLAIN = 0,
    SASL_SCRAM,
} sasl_mech_t;

struct c2s_sasl {
    sasl_mech_t mech;
    sasl_step_t step;
    kn_scram_hash_t hash;
    int plus;
    kn_scram_server_t *scram;
    char *username;   /* nodeprepped, NULL if it did not prepare */
    char *password;   /* PLAIN: SASLprepped; wiped on free */
    const char *held; /* failure condition held back */
};

void c2s_sasl_free(c2s_sasl_t **sp)
{
    c2s_sasl_t *x = *sp;
    if (x == NULL)
        return;
    kn_scram_server_free(&x->scram);
    if (x->password != NULL) {
        volatile char *p = x->password;
        while (*p)
            *p++ = 0;
    }
    kn_free(&x->password);
    kn_free(&x->username);
    free(x);
    *sp = NULL;
}

void c2s_sasl_features(const c2s_stream_t *s, kn_buf_t *out)
{
    if (!s->tls)
        return; /* no mechanism before TLS (R-BASE-1) */
    kn_buf_append_str(out, "<mechanisms xmlns='" C2S_NS_SASL "'>");
    if (s->cb_types != 0)
        kn_buf_append_str(out, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                               "<mechanism>SCRAM-SHA-1-PLUS</mechanism>");
    kn_buf_append_str(out, "<mechanism>SCRAM-SHA-256</mechanism>"
                           "<mechanism>SCRAM-SHA-1</mechanism>"
                           "<mechanism>PLAIN</mechanism></mechanisms>");
    if (s->cb_types != 0) {
        kn_buf_append_str(out,
                          "<sasl-channel-binding xmlns='" C2S_NS_SASL_CB "'>");
        if (s->cb_types & C2S_CB_EXPORTER)
            kn_buf_append_str(out, "<channel-binding type='tls-exporter'/>");
        if (s->cb_types & C2S_CB_END_POINT)
            kn_buf_append_str(out,
                              "<channel-binding type='tls-server-end-point'/>");
        kn_buf_append_str(out, "</sasl-channel-binding>");
    }
}

static void sasl_write(c2s_stream_t *s, const char *el, const void *data,
                       size_t len, bool empty_is_eq)
{
    kn_buf_printf(s->out, "<%s xmlns='" C2S_NS_SASL "'>", el);
    if (len > 0)
        kn_b64_encode(data, len, s->out);
    else if (empty_is_eq)
        kn_buf_append_str(s->out, "=");
    kn_buf_printf(s->out, "</%s>", el);
}

/* <failure/> with cond and, when text is not NULL, a <text/> (RFC 6120
 * 6.5: text is ours, plain ASCII, nothing to escape). */
static void sasl_write_failure_text(c2s_stream_t *s, const char *cond,
                                    const char *text)
{
    kn_buf_printf(s->out, "<failure xmlns='" C2S_NS_SASL "'><%s/>", cond);
    if (text != NULL)
        kn_buf_printf(s->out, "<text xml:lang='en'>%s</text>", text);
    kn_buf_append_str(s->out, "</failure>");
    kn_metric_inc(c2s_metrics.login_failures);
    c2s_sasl_free(&s->sasl);
    s->state = C2S_ST_FEATURES;
}

static void sasl_write_failure(c2s_stream_t *s, const char *cond)
{
    sasl_write_failure_text(s, cond, NULL);
}

const char *c2s_stream_sasl_user(const c2s_stream_t *s)
{
    return s->sasl != NULL ? s->sasl->username : NULL;
}

const char *c2s_stream_sasl_mech(const c2s_stream_t *s)
{
    const c2s_sasl_t *x = s->sasl;
    if (x == NULL)
        return NULL;
    return x->mech == SASL_PLAIN ? "PLAIN"
                                 : kn_scram_mech_name(x->hash, x->plus);
}

/* Fail the exchange; delayed ones (wrong credentials) go through the
 * owner's per-address delay. */
static c2s_act_t sasl_fail(c2s_stream_t *s, const char *cond, bool delayed)
{
    unsigned ms = 0;
    if (delayed && s->ops->auth_failed != NULL)
        ms = s->ops->auth_failed(s->ud);
    if (ms > 0 && s->sasl != NULL) {
        s->sasl->step = SASL_FAILED;
        s->sasl->held = cond;
        s->pause = C2S_PAUSE_FAIL;
        return C2S_ACT_PAUSED;
    }
    sasl_write_failure(s, cond);
    return C2S_ACT_MORE;
}

c2s_act_t c2s_sasl_send_held_failure(c2s_stream_t *s)
{
    if (s->sasl == NULL || s->sasl->step != SASL_FAILED)
        return C2S_ACT_MORE;
    sasl_write_failure(s, s->sasl->held);
    return C2S_ACT_MORE;
}

static c2s_act_t sasl_success(c2s_stream_t *s, const void *extra, size_t len)
{
    c2s_sasl_t *x = s->sasl;
    sasl_write(s, "success", extra, len, false);
    kn_metric_inc(c2s_metrics.logins);
    kn_log_info("c2s: %s@%s authenticated (%s)", x->username, s->cf->domain,
                x->mech == SASL_PLAIN ? "PLAIN"
                                      : kn_scram_mech_name(x->hash, x->plus));
    s->user = x->username;
    x->username = NULL;
    c2s_sasl_free(&s->sasl);
    if (s->ops->auth_ok != NULL)
        s->ops->auth_ok(s->ud);
    /* RFC 6120 6.4.6: a new stream; bytes the client already pipelined
     * after its last SASL element belong to it. */
    kn_xml_reset(s->xml, true);
    s->state = C2S_ST_HEADER;
    s->header_sent = false;
    return C2S_ACT_MORE;
}

/* The nodeprepped form of a SASL user name, or NULL. */
static char *sasl_prep_user(const c2s_stream_t *s, const char *name)
{
    if (name == NULL || *name == '\0' || strchr(name, '@') || strchr(name, '/'))
        return NULL;
    kn_buf_t raw = KN_BUF_INIT;
    kn_buf_printf(&raw, "%s@%s", name, s->cf->domain);
    kn_jid_t j = KN_JID_INIT;
    char *out = NULL;
    size_t llen = 0;
    if (kn_jid_parse(&j, raw.data, raw.len) == 0 &&
        kn_jid_local(&j, &llen) != NULL)
        out = kn_strndup(kn_jid_local(&j, &llen), llen);
    kn_jid_free(&j);
    kn_buf_free(&raw);
    return out;
}

/* An authorization identity must be the user's own bare JID. */
static bool sasl_authzid_ok(const c2s_stream_t *s, const char *user,
                            const char *authzid)
{
    if (authzid == NULL || *authzid == '\0')
        return true;
    if (user == NULL)
        return false;
    kn_jid_t j = KN_JID_INIT;
    bool ok = false;
    if (kn_jid_parse(&j, authzid, strlen(authzid)) == 0) {
        size_t ll = 0, dl = 0;
        const char *l = kn_jid_local(&j, &ll);
        const char *d = kn_jid_domain(&j, &dl);
        ok = kn_jid_is_bare(&j) && l && ll == strlen(user) &&
             memcmp(l, user, ll) == 0 && dl == strlen(s->cf->domain) &&
             memcmp(d, s->cf->domain, dl) == 0;
    }
    kn_jid_free(&j);
    return ok;
}

static c2s_act_t sasl_creds_lookup(c2s_stream_t *s)
{
    c2s_sasl_t *x = s->sasl;
    if (x->username == NULL)
        return c2s_sasl_creds(s, -KN_ENOENT, NULL);
    s->pause = C2S_PAUSE_CREDS;
    s->ops->creds_lookup(s->ud, x->username);
    return C2S_ACT_PAUSED;
}

/* The user name is known: first the lock-out check (c2s_lockout.c), which
 * needs no password, then the credentials. */
static c2s_act_t sasl_lookup(c2s_stream_t *s)
{
    c2s_sasl_t *x = s->sasl;
    x->step = SASL_WAIT_CREDS;
    s->state = C2S_ST_SASL;
    if (s->cf->lockout && s->ops->lock_check != NULL) {
        s->pause = C2S_PAUSE_LOCK;
        s->ops->lock_check(s->ud, x->username, c2s_stream_sasl_mech(s));
        return C2S_ACT_PAUSED;
    }
    return sasl_creds_lookup(s);
}

c2s_act_t c2s_sasl_lock_done(c2s_stream_t *s, unsigned remaining_s)
{
    KN_ASSERT(s->sasl != NULL && s->sasl->step == SASL_WAIT_CREDS);
    if (remaining_s == 0)
        return sasl_creds_lookup(s);
    /* Locked: answered at once, without the failure delay and without
     * counting as a failure (the lock-out would never end otherwise). */
    char text[128];
    snprintf(text, sizeof(text),
             "Too many failed authentication attempts; try again in %u s",
             remaining_s);
    sasl_write_failure_text(s, "temporary-auth-failure", text);
    return C2S_ACT_MORE;
}

/* PLAIN message: [authzid] NUL authcid NUL passwd (RFC 4616). */
static c2s_act_t sasl_plain_first(c2s_stream_t *s, const char *msg, size_t len)
{
    c2s_sasl_t *x = s->sasl;
    const char *n1 = memchr(msg, '\0', len);
    const char *n2 =
        n1 ? memchr(n1 + 1, '\0', len - (size_t)(n1 + 1 - msg)) : NULL;
    if (n1 == NULL || n2 == NULL || n2 == n1 + 1 ||
        memchr(n2 + 1, '\0', len - (size_t)(n2 + 1 - msg)) != NULL)
        return sasl_fail(s, "malformed-request", false);
    char *authzid = kn_strndup(msg, (size_t)(n1 - msg));
    char *authcid = kn_strndup(n1 + 1, (size_t)(n2 - n1 - 1));
    char *pw = kn_strndup(n2 + 1, len - (size_t)(n2 + 1 - msg));
    x->username = sasl_prep_user(s, authcid);
    bool authz_ok = sasl_authzid_ok(s, x->username, authzid);
    int prc = kn_scram_saslprep(pw, &x->password);
    volatile char *p = pw;
    while (*p)
        *p++ = 0;
    free(pw);
    free(authzid);
    free(authcid);
    if (!authz_ok)
        return sasl_fail(s, "invalid-authzid", false);
    if (prc < 0) {
        x->password = NULL;
        kn_free(&x->username); /* fails like a wrong password */
    }
    return sasl_lookup(s);
}

static c2s_act_t sasl_scram_first(c2s_stream_t *s, const char *msg, size_t len)
{
    c2s_sasl_t *x = s->sasl;
    x->scram = kn_scram_server_new(x->hash, x->plus ? KN_SCRAM_F_PLUS : 0);
    int rc = kn_scram_server_client_first(x->scram, msg, len);
    if (rc == -KN_EPROTO)
        return sasl_fail(s, "malformed-request", false);
    if (rc < 0)
        return sasl_fail(s, "not-authorized", false);
    kn_scram_cb_t cb = kn_scram_server_cb_type(x->scram);
    if (cb != KN_SCRAM_CB_NONE && !(s->cb_types & (1u << cb)))
        return sasl_fail(s, "not-authorized", false);
    x->username = sasl_prep_user(s, kn_scram_server_username(x->scram));
    if (!sasl_authzid_ok(s, x->username, kn_scram_server_authzid(x->scram)))
        return sasl_fail(s, "invalid-authzid", false);
    return sasl_lookup(s);
}

static c2s_act_t sasl_first(c2s_stream_t *s, const char *msg, size_t len)
{
    if (s->sasl->mech == SASL_PLAIN)
        return sasl_plain_first(s, msg, len);
    return sasl_scram_first(s, msg, len);
}

/* Constant-time equality of two byte strings of length n. */
static bool sasl_ct_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

/* PLAIN: is password the one behind the stored credentials c? A
 * password verified earlier against the same credentials is known from
 * the process's cache (c2s_plaincache.h) without PBKDF2; otherwise derive
 * the StoredKey and compare, and remember a success. */
static bool sasl_plain_verify(c2s_stream_t *s, const char *user,
                              const char *password, const kn_scram_creds_t *c)
{
    if (c2s_plaincache_check(s->cf->plaincache, user, password, c))
        return true;
    kn_scram_creds_t d;
    bool ok = false;
    if (kn_scram_creds_derive(&d, c->hash, password, c->salt, c->salt_len,
                              c->iterations) == 0)
        ok =
            sasl_ct_eq(d.stored_key, c->stored_key, kn_scram_hash_len(c->hash));
    memset(&d, 0, sizeof(d));
    if (ok)
        c2s_plaincache_put(s->cf->plaincache, user, password, c);
    return ok;
}

c2s_act_t c2s_sasl_creds(c2s_stream_t *s, int rc, const c2s_creds_t *creds)
{
    c2s_sasl_t *x = s->sasl;
    KN_ASSERT(x != NULL && x->step == SASL_WAIT_CREDS);
    if (rc == -KN_EAUTH) {
        kn_log_info("c2s: %s is disabled", x->username);
        return sasl_fail(s, "account-disabled", false);
    }
    if (rc < 0 && rc != -KN_ENOENT) {
        kn_log_warn("c2s: credentials of %s not available: %s", x->username,
                    kn_strerror(rc));
        return sasl_fail(s, "temporary-auth-failure", false);
    }
    if (x->mech == SASL_PLAIN) {
        bool ok = false;
        if (rc == 0 && x->password != NULL)
            ok = sasl_plain_verify(s, x->username, x->password, &creds->sha256);
        if (!ok)
            return sasl_fail(s, "not-authorized", true);
        return sasl_success(s, NULL, 0);
    }
    const kn_scram_creds_t *c = NULL;
    if (rc == 0)
        c = x->hash == KN_SCRAM_SHA1 ? &creds->sha1 : &creds->sha256;
    kn_buf_t out = KN_BUF_INIT;
    if (kn_scram_server_first(x->scram, c, NULL, &out) < 0) {
        kn_buf_free(&out);
        return sasl_fail(s, "temporary-auth-failure", false);
    }
    sasl_write(s, "challenge", out.data, out.len, false);
    kn_buf_free(&out);
    x->step = SASL_WAIT_FINAL;
    return C2S_ACT_MORE;
}

static c2s_act_t sasl_scram_final(c2s_stream_t *s, const char *msg, size_t len)
{
    c2s_sasl_t *x = s->sasl;
    uint8_t cb[C2S_CB_DATA_MAX];
    size_t cblen = 0;
    kn_scram_cb_t type = kn_scram_server_cb_type(x->scram);
    if (type != KN_SCRAM_CB_NONE) {
        int n = s->ops->cb_data ? s->ops->cb_data(s->ud, type, cb, sizeof(cb))
                                : -KN_ENOENT;
        if (n < 0)
            return sasl_fail(s, "not-authorized", false);
        cblen = (size_t)n;
    }
    kn_buf_t out = KN_BUF_INIT;
    int rc = kn_scram_server_client_final(x->scram, msg, len, cb, cblen, &out);
    c2s_act_t act;
    if (rc == 0)
        act = sasl_success(s, out.data, out.len);
    else
        act = sasl_fail(
            s, rc == -KN_EPROTO ? "malformed-request" : "not-authorized",
            rc != -KN_EPROTO);
    kn_buf_free(&out);
    return act;
}

/* Decode the base64 text of a SASL element into out. */
static int sasl_decode(const kn_stanza_t *st, kn_buf_t *out)
{
    size_t len = 0;
    kn_buf_t txt = KN_BUF_INIT;
    kn_stanza_text(st, 0, &txt);
    len = txt.len;
    int rc = len > (SASL_MAX_BYTES / 3 + 1) * 4
                 ? -KN_ETOOBIG
                 : kn_b64_decode(txt.data ? txt.data : "", len, out);
    kn_buf_free(&txt);
    return rc;
}

static c2s_act_t sasl_on_auth(c2s_stream_t *s, const kn_stanza_t *st)
{
    if (!s->tls)
        return sasl_write_failure(s, "encryption-required"), C2S_ACT_MORE;
    c2s_sasl_free(&s->sasl);
    const char *mech = kn_stanza_attr(st, 0, "mechanism", NULL);
    c2s_sasl_t *x = kn_calloc(1, sizeof(*x));
    s->sasl = x;
    kn_scram_hash_t hash;
    int plus = 0;
    if (mech != NULL && strcmp(mech, "PLAIN") == 0) {
        x->mech = SASL_PLAIN;
    } else if (mech != NULL && kn_scram_mech_parse(mech, &hash, &plus) == 0 &&
               (!plus || s->cb_types != 0)) {
        x->mech = SASL_SCRAM;
        x->hash = hash;
        x->plus = plus;
    } else {
        return sasl_fail(s, "invalid-mechanism", false);
    }
    s->state = C2S_ST_SASL;
    kn_buf_t msg = KN_BUF_INIT;
    if (sasl_decode(st, &msg) < 0) {
        kn_buf_free(&msg);
        return sasl_fail(s, "incorrect-encoding", false);
    }
    c2s_act_t act;
    if (msg.len == 0) {
        /* No initial response: ask for it with an empty challenge. */
        x->step = SASL_WAIT_INITIAL;
        sasl_write(s, "challenge", NULL, 0, false);
        act = C2S_ACT_MORE;
    } else {
        act = sasl_first(s, msg.data, msg.len);
    }
    kn_buf_free(&msg);
    return act;
}

static c2s_act_t sasl_on_response(c2s_stream_t *s, const kn_stanza_t *st)
{
    c2s_sasl_t *x = s->sasl;
    if (s->state != C2S_ST_SASL || x == NULL)
        return sasl_fail(s, "malformed-request", false);
    kn_buf_t msg = KN_BUF_INIT;
    c2s_act_t act;
    if (sasl_decode(st, &msg) < 0)
        act = sasl_fail(s, "incorrect-encoding", false);
    else if (x->step == SASL_WAIT_INITIAL)
        act = msg.len ? sasl_first(s, msg.data, msg.len)
                      : sasl_fail(s, "malformed-request", false);
    else if (x->step == SASL_WAIT_FINAL && x->mech == SASL_SCRAM)
        act = sasl_scram_final(s, msg.data ? msg.data : "", msg.len);
    else
        act = sasl_fail(s, "malformed-request", false);
    kn_buf_free(&msg);
    return act;
}

static c2s_act_t sasl_on_starttls(c2s_stream_t *s)
{
    if (s->tls || !s->can_starttls) {
        kn_buf_append_str(s->out, "<failure xmlns='" C2S_NS_TLS "'/>");
        return c2s_stream_fail(s, KN_SE_NONE, "starttls not possible");
    }
    kn_buf_append_str(s->out, "<proceed xmlns='" C2S_NS_TLS "'/>");
    /* RFC 6120 5.3.3: nothing sent before the handshake counts. */
    kn_xml_reset(s->xml, false);
    s->state = C2S_ST_HEADER;
    s->header_sent = false;
    s->can_starttls = false;
    s->pause = C2S_PAUSE_TLS;
    s->ops->starttls(s->ud);
    return C2S_ACT_PAUSED;
}

c2s_act_t c2s_sasl_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    const char *ns = kn_stanza_ns(st, 0);
    const char *name = kn_stanza_name(st, 0);
    if (strcmp(ns, C2S_NS_TLS) == 0 && strcmp(name, "starttls") == 0 &&
        s->state == C2S_ST_FEATURES)
        return sasl_on_starttls(s);
    if (strcmp(ns, C2S_NS_SASL) == 0) {
        if (strcmp(name, "auth") == 0)
            return sasl_on_auth(s, st);
        if (strcmp(name, "response") == 0)
            return sasl_on_response(s, st);
        if (strcmp(name, "abort") == 0) {
            sasl_write_failure(s, "aborted");
            return C2S_ACT_MORE;
        }
    }
    /* In-band registration (XEP-0077), the one stanza allowed before
     * authentication. */
    if (strcmp(name, "iq") == 0 && strcmp(ns, KN_NS_CLIENT) == 0 &&
        kn_stanza_child(st, 0, "query", C2S_NS_REGISTER) >= 0)
        return c2s_register_handle(s, st);
    /* Stanzas (or anything else) before authentication (RFC 6120 6.4.1,
     * R-BASE-1). */
    return c2s_stream_fail(s, KN_SE_NOT_AUTHORIZED, name);
}
