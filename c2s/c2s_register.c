/*
 * c2s_register.c - in-band registration of new accounts (XEP-0077 §3.1),
 * the one stanza a client may send before authenticating.
 *
 * Off unless c2s.registration is set: then the stream feature is not
 * offered and a registration IQ gets <service-unavailable/> (the stream
 * stays open, so the client can still log in). When on, only over TLS
 * (the password travels in the clear inside the stream), at most
 * registration_per_hour accounts per address (register_allowed(), then
 * <resource-constraint/> to wait), with kilnctl's password rule
 * (kn_scram_creds_from_password: SASLprep, the stored-string rules). The
 * username is nodeprepped like a login name; an account that exists
 * gets <conflict/>. Only the SCRAM keys leave this file: the owner's
 * register_user() inserts them, and the stream waits (PAUSE_REGISTER)
 * for c2s_stream_register_done(), so a client that pipelines its <auth/>
 * after the IQ is answered in order.
 *
 * Changing a password or removing an account needs a login: presenced
 * answers those (pres_register.c).
 */
#include <stdlib.h>
#include <string.h>

#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_stanza.h"

static void reg_reply(c2s_stream_t *s, const kn_stanza_t *iq,
                      kn_stanza_err_t cond)
{
    kn_stanza_t *r = kn_stanza_error_reply(iq, cond, NULL);
    if (r != NULL) {
        c2s_stream_write_stanza(s, r);
        kn_stanza_unref(&r);
    }
}

static void reg_result(c2s_stream_t *s, const kn_stanza_t *iq, bool form)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_iq_result(b, iq);
    if (form) {
        kn_stanza_builder_start(b, "query", C2S_NS_REGISTER);
        static const char ins[] = "Choose a username and password.";
        kn_stanza_builder_start(b, "instructions", NULL);
        kn_stanza_builder_text(b, ins, sizeof(ins) - 1);
        kn_stanza_builder_end(b);
        kn_stanza_builder_start(b, "username", NULL);
        kn_stanza_builder_end(b);
        kn_stanza_builder_start(b, "password", NULL);
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *r = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    c2s_stream_write_stanza(s, r);
    kn_stanza_unref(&r);
}

/* Text of child name of query q, or NULL when absent. */
static char *reg_field(const kn_stanza_t *st, int q, const char *name)
{
    int c = kn_stanza_child(st, q, name, C2S_NS_REGISTER);
    if (c < 0)
        return NULL;
    size_t len = 0;
    const char *t = kn_stanza_cdata(st, c, &len);
    return kn_strndup(t ? t : "", t ? len : 0);
}

/* The nodeprepped form of name as a local part of our domain, or NULL. */
static char *reg_prep_user(const c2s_stream_t *s, const char *name)
{
    if (*name == '\0' || strpbrk(name, "@/") != NULL)
        return NULL;
    kn_buf_t text = KN_BUF_INIT;
    kn_buf_printf(&text, "%s@%s", name, s->cf->domain);
    kn_jid_t j = KN_JID_INIT;
    char *out = NULL;
    size_t llen;
    if (kn_jid_parse(&j, text.data, text.len) == 0 &&
        kn_jid_local(&j, &llen) != NULL)
        out = kn_strndup(kn_jid_local(&j, &llen), llen);
    kn_jid_free(&j);
    kn_buf_free(&text);
    return out;
}

c2s_act_t c2s_register_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    bool get = type != NULL && strcmp(type, "get") == 0;
    bool set = type != NULL && strcmp(type, "set") == 0;
    if (!get && !set)
        return C2S_ACT_MORE; /* results and errors: nothing to answer */
    if (!s->cf->registration) {
        reg_reply(s, st, KN_STE_SERVICE_UNAVAILABLE);
        return C2S_ACT_MORE;
    }
    if (!s->tls) {
        /* RFC 6120 5.3.1 / XEP-0077 §10: not before STARTTLS */
        reg_reply(s, st, KN_STE_NOT_AUTHORIZED);
        return C2S_ACT_MORE;
    }
    if (get) {
        reg_result(s, st, true);
        return C2S_ACT_MORE;
    }
    int q = kn_stanza_child(st, 0, "query", C2S_NS_REGISTER);
    if (kn_stanza_child(st, q, "remove", C2S_NS_REGISTER) >= 0) {
        /* removing an account needs a login (presenced answers it) */
        reg_reply(s, st, KN_STE_NOT_AUTHORIZED);
        return C2S_ACT_MORE;
    }
    char *name = reg_field(st, q, "username");
    char *pw = reg_field(st, q, "password");
    char *user = name ? reg_prep_user(s, name) : NULL;
    c2s_creds_t cr;
    memset(&cr, 0, sizeof(cr));
    int rc = 0;
    if (name == NULL || pw == NULL) {
        reg_reply(s, st, KN_STE_NOT_ACCEPTABLE); /* §3.1: fields missing */
    } else if (user == NULL) {
        reg_reply(s, st, KN_STE_JID_MALFORMED);
    } else if (s->ops->register_allowed != NULL &&
               !s->ops->register_allowed(s->ud)) {
        /* before the key derivation: refused attempts cost no PBKDF2 */
        kn_stanza_t *r = kn_stanza_error_reply_ext(
            st, KN_STE_RESOURCE_CONSTRAINT, "wait", NULL, NULL, NULL);
        if (r != NULL) {
            c2s_stream_write_stanza(s, r);
            kn_stanza_unref(&r);
        }
    } else if ((rc = kn_scram_creds_from_password(pw, &cr.sha1, &cr.sha256)) <
               0) {
        reg_reply(s, st,
                  rc == -KN_EINVAL ? KN_STE_NOT_ACCEPTABLE
                                   : KN_STE_INTERNAL_SERVER_ERROR);
    } else if (s->ops->register_user == NULL) {
        reg_reply(s, st, KN_STE_SERVICE_UNAVAILABLE);
    } else {
        s->reg_iq = kn_stanza_ref((kn_stanza_t *)st);
        s->pause = C2S_PAUSE_REGISTER;
        s->ops->register_user(s->ud, user, &cr);
    }
    explicit_bzero(&cr, sizeof(cr));
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    free(name);
    free(user);
    return s->pause == C2S_PAUSE_REGISTER ? C2S_ACT_PAUSED : C2S_ACT_MORE;
}

void c2s_register_done(c2s_stream_t *s, int rc)
{
    kn_stanza_t *iq = s->reg_iq;
    s->reg_iq = NULL;
    if (iq == NULL)
        return;
    if (rc == 0)
        reg_result(s, iq, false);
    else
        reg_reply(s, iq,
                  rc == -KN_EEXIST ? KN_STE_CONFLICT
                                   : KN_STE_INTERNAL_SERVER_ERROR);
    kn_stanza_unref(&iq);
}

void c2s_register_free(c2s_stream_t *s)
{
    kn_stanza_unref(&s->reg_iq);
}
