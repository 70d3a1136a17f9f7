/*
 * c2s_stream.c - the stream state machine: headers, features, restarts,
 * dispatch of top-level elements to c2s_sasl.c (pre-auth), c2s_bind.c
 * (authenticated, unbound) and c2s_stanza.c (bound), and the one way a
 * stream ends (c2s_stream_close / c2s_stream_fail, then c2s_stream_end
 * from the owner's close path).
 *
 * Invariants: every byte for the client is appended to *s->out and
 * nothing else is written; once state is CLOSED nothing more is parsed or
 * written; session_up is true exactly while the router holds a route for
 * this connection that we owe a SESSION_DOWN for.
 */
#include "c2s_csi.h"
#include "c2s_stream.h"

#include "c2s_sm.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "c2s_metrics.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

static void random_fill(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r <= 0)
            continue; /* EINTR; the pool is initialised after boot */
        p += r;
        n -= (size_t)r;
    }
}

/* Bytes from the kernel's generator, RANDOM_POOL at a time: a login took
 * seven getrandom() calls for 12 to 16 bytes each (stream ids, the bound
 * resource). A byte is handed out once and wiped as it goes; kiln-c2s
 * never forks, so no two processes share the pool. */
#define RANDOM_POOL 4096
static unsigned char random_pool[RANDOM_POOL];
static size_t random_left;

void c2s_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    if (n > RANDOM_POOL / 4) {
        random_fill(p, n);
        return;
    }
    while (n > 0) {
        if (random_left == 0) {
            random_fill(random_pool, RANDOM_POOL);
            random_left = RANDOM_POOL;
        }
        size_t k = n < random_left ? n : random_left;
        unsigned char *src = random_pool + RANDOM_POOL - random_left;
        memcpy(p, src, k);
        memset(src, 0, k);
        random_left -= k;
        p += k;
        n -= k;
    }
}

c2s_stream_t *c2s_stream_new(const c2s_stream_conf_t *cf,
                             const c2s_stream_ops_t *ops, void *ud,
                             kn_buf_t *out, unsigned flags)
{
    KN_ASSERT(cf != NULL && ops != NULL && out != NULL);
    c2s_stream_t *s = kn_calloc(1, sizeof(*s));
    s->cf = cf;
    s->ops = ops;
    s->ud = ud;
    s->out = out;
    s->xml = kn_xml_new(&cf->limits, KN_NS_CLIENT);
    s->can_starttls = (flags & C2S_STREAM_F_STARTTLS) != 0;
    s->tls = (flags & C2S_STREAM_F_TLS) != 0;
    s->framed = (flags & C2S_STREAM_F_FRAMED) != 0;
    s->jid = (kn_jid_t)KN_JID_INIT;
    s->bind_jid = (kn_jid_t)KN_JID_INIT;
    return s;
}

void c2s_stream_free(c2s_stream_t **sp)
{
    c2s_stream_t *s = *sp;
    if (s == NULL)
        return;
    kn_xml_free(&s->xml);
    c2s_sasl_free(&s->sasl);
    c2s_register_free(s);
    kn_stanza_unref(&s->bind_iq);
    kn_jid_free(&s->bind_jid);
    kn_free(&s->user);
    c2s_block_end(s);
    c2s_sm_free(s);
    c2s_csi_end(s);
    kn_jid_free(&s->jid);
    free(s);
    *sp = NULL;
}

void c2s_stream_set_tls(c2s_stream_t *s, unsigned cb_types)
{
    s->tls = true;
    s->cb_types = (uint8_t)cb_types;
}

/* The close tag of our stream: </stream:stream>, or <close/> (RFC 7395). */
static void stream_write_close(c2s_stream_t *s)
{
    kn_buf_append_str(s->out, s->framed ? "<close xmlns='" C2S_NS_FRAMING "'/>"
                                        : "</stream:stream>");
}

static void stream_write_header(c2s_stream_t *s)
{
    unsigned char rnd[12];
    c2s_random(rnd, sizeof(rnd));
    if (s->framed)
        kn_buf_append_str(s->out, "<open xmlns='" C2S_NS_FRAMING "' id='");
    else
        kn_buf_append_str(s->out, "<?xml version='1.0'?><stream:stream "
                                  "xmlns='" KN_NS_CLIENT
                                  "' xmlns:stream='" KN_NS_STREAMS "' id='");
    for (size_t i = 0; i < sizeof(rnd); i++)
        kn_buf_printf(s->out, "%02x", rnd[i]);
    kn_buf_append_str(s->out, "' from='");
    kn_buf_append_xml_escaped(s->out, s->cf->domain, strlen(s->cf->domain));
    kn_buf_append_str(s->out, s->framed ? "' version='1.0' xml:lang='en'/>"
                                        : "' version='1.0' xml:lang='en'>");
    s->header_sent = true;
}

c2s_act_t c2s_stream_fail(c2s_stream_t *s, kn_stream_err_t err,
                          const char *text)
{
    if (s->state == C2S_ST_CLOSED)
        return C2S_ACT_CLOSE;
    kn_log_debug("c2s: stream error %s%s%s", kn_stream_err_name(err),
                 text ? ": " : "", text ? text : "");
    c2s_stream_close(s, err, KN_ENV_REASON_DROPPED);
    return C2S_ACT_CLOSE;
}

void c2s_stream_close(c2s_stream_t *s, kn_stream_err_t err,
                      kn_env_reason_t reason)
{
    if (s->state == C2S_ST_CLOSED)
        return;
    if (err != KN_SE_NONE) {
        if (!s->header_sent)
            stream_write_header(s);
        kn_stream_err_write(s->out, err, NULL);
    }
    if (s->header_sent)
        stream_write_close(s);
    s->state = C2S_ST_CLOSED;
    s->reason = reason;
    s->pause = C2S_PAUSE_NONE;
}

int c2s_stream_route(c2s_stream_t *s, const kn_env_t *env, const void *payload,
                     size_t len)
{
    int rc = s->ops->route(s->ud, env, payload, len);
    if (rc < 0)
        kn_log_warn("c2s: %s for %s not sent to the router: %s",
                    kn_env_kind_name(env->kind), s->jid.str ? s->jid.str : "?",
                    kn_strerror(rc));
    return rc;
}

void c2s_stream_end(c2s_stream_t *s)
{
    if (!s->session_up)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_DOWN;
    e.reason =
        s->reason != KN_ENV_REASON_NONE ? s->reason : KN_ENV_REASON_DROPPED;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    c2s_stream_route(s, &e, NULL, 0);
    s->session_up = false;
    c2s_block_end(s); /* after SESSION_DOWN: held stanzas are rerouted */
    c2s_sm_end(s);    /* and so are the unacked ones (XEP-0198) */
}

void c2s_stream_reannounce(c2s_stream_t *s)
{
    if (!s->session_up)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    e.priority = s->priority;
    e.flags = KN_F_REANNOUNCE | (s->available ? KN_F_AVAILABLE : 0) |
              (s->carbons ? KN_F_CARBONS : 0);
    c2s_stream_route(s, &e, NULL, 0);
    c2s_sm_reannounce(s);
}

void c2s_stream_write_stanza(c2s_stream_t *s, const kn_stanza_t *st)
{
    size_t off = s->out->len;
    kn_stanza_serialize(st, s->out, KN_NS_CLIENT);
    c2s_sm_sent(s, off, NULL);
}

/* The features of the stream that just opened. */
static void stream_features(c2s_stream_t *s)
{
    kn_buf_append_str(s->out, "<stream:features>");
    if (s->user == NULL) {
        if (!s->tls && s->can_starttls)
            kn_buf_append_str(s->out, "<starttls xmlns='" C2S_NS_TLS
                                      "'><required/></starttls>");
        c2s_sasl_features(s, s->out);
        /* XEP-0077 §8: only where it is allowed, and only over TLS */
        if (s->cf->registration && s->tls)
            kn_buf_append_str(
                s->out, "<register xmlns='" C2S_NS_REGISTER_FEATURE "'/>");
        s->state = C2S_ST_FEATURES;
    } else {
        /* XEP-0237 / RFC 6121 2.6.1: presenced answers roster gets with
         * a version; say so once authenticated. */
        kn_buf_append_str(s->out, "<bind xmlns='" C2S_NS_BIND "'/>"
                                  "<session xmlns='" C2S_NS_SESSION
                                  "'><optional/></session>"
                                  "<ver xmlns='" C2S_NS_ROSTERVER "'/>");
        c2s_sm_features(s, s->out);
        if (s->cf->csi_max_stanzas > 0) /* XEP-0352 */
            kn_buf_append_str(s->out, "<csi xmlns='" C2S_NS_CSI "'/>");
        s->state = C2S_ST_BIND;
    }
    kn_buf_append_str(s->out, "</stream:features>");
}

/* RFC 6120 4.7: version, to; the namespaces were checked by kn_xml. */
static c2s_act_t stream_on_header(c2s_stream_t *s, const kn_stanza_t *h)
{
    stream_write_header(s);
    const char *ver = kn_stanza_attr(h, 0, "version", NULL);
    unsigned major = 0, minor = 0;
    if (ver == NULL || sscanf(ver, "%u.%u", &major, &minor) != 2 || major != 1)
        return c2s_stream_fail(s, KN_SE_UNSUPPORTED_VERSION, ver);
    size_t tolen = 0;
    const char *to = kn_stanza_attr(h, 0, "to", &tolen);
    if (to != NULL) {
        kn_buf_t d = KN_BUF_INIT;
        bool ok = memchr(to, '@', tolen) == NULL &&
                  memchr(to, '/', tolen) == NULL &&
                  kn_jid_prepare_str(to, tolen, &d) == 0 &&
                  strcmp(d.data, s->cf->domain) == 0;
        kn_buf_free(&d);
        if (!ok)
            return c2s_stream_fail(s, KN_SE_HOST_UNKNOWN, to);
    }
    stream_features(s);
    return C2S_ACT_MORE;
}

static c2s_act_t stream_on_stanza(c2s_stream_t *s, const kn_stanza_t *st)
{
    if (strcmp(kn_stanza_ns(st, 0), C2S_NS_SM) == 0)
        return c2s_sm_handle(s, st); /* XEP-0198: not a stanza */
    if (s->state == C2S_ST_SESSION &&
        strcmp(kn_stanza_ns(st, 0), C2S_NS_CSI) == 0)
        return c2s_csi_handle(s, st); /* XEP-0352: a nonza, not counted */
    if (s->sm != NULL && s->state == C2S_ST_SESSION)
        c2s_sm_counted(s);
    switch (s->state) {
    case C2S_ST_FEATURES:
    case C2S_ST_SASL:
        return c2s_sasl_handle(s, st);
    case C2S_ST_BIND:
        return c2s_bind_handle(s, st);
    case C2S_ST_SESSION:
        kn_metric_inc(c2s_metrics.stanzas_in);
        return c2s_stanza_handle(s, st);
    default:
        return c2s_stream_fail(s, KN_SE_INTERNAL_SERVER_ERROR, "state");
    }
}

static c2s_act_t stream_status(const c2s_stream_t *s)
{
    if (s->state == C2S_ST_CLOSED)
        return C2S_ACT_CLOSE;
    return s->pause != C2S_PAUSE_NONE ? C2S_ACT_PAUSED : C2S_ACT_MORE;
}

c2s_act_t c2s_stream_process(c2s_stream_t *s)
{
    while (s->state != C2S_ST_CLOSED && s->pause == C2S_PAUSE_NONE) {
        kn_xml_event_t ev = {0};
        int rc = kn_xml_next(s->xml, &ev);
        if (rc == 0)
            return C2S_ACT_MORE;
        if (rc < 0) {
            const char *detail = NULL;
            kn_stream_err_t err = kn_xml_error(s->xml, &detail);
            return c2s_stream_fail(s, err ? err : KN_SE_NOT_WELL_FORMED,
                                   detail);
        }
        switch (ev.type) {
        case KN_XML_HEADER:
            stream_on_header(s, ev.stanza);
            break;
        case KN_XML_STANZA:
            s->stanzas_in++;
            stream_on_stanza(s, ev.stanza);
            break;
        case KN_XML_CLOSE:
            if (s->header_sent)
                stream_write_close(s);
            s->state = C2S_ST_CLOSED;
            s->reason = KN_ENV_REASON_CLEAN;
            break;
        }
        kn_stanza_unref(&ev.stanza);
    }
    return stream_status(s);
}

c2s_act_t c2s_stream_input(c2s_stream_t *s, const void *data, size_t len)
{
    if (s->state == C2S_ST_CLOSED)
        return C2S_ACT_CLOSE;
    if (len > 0 && kn_xml_feed(s->xml, data, len) < 0)
        return c2s_stream_fail(s, kn_xml_error(s->xml, NULL), NULL);
    if (s->pause != C2S_PAUSE_NONE)
        return C2S_ACT_PAUSED;
    return c2s_stream_process(s);
}

/* An answer the stream waited for (pause p) came: false when the stream
 * closed meanwhile (the answer is moot), else it is no longer paused. */
static bool stream_unpause(c2s_stream_t *s, c2s_pause_t p)
{
    if (s->state == C2S_ST_CLOSED)
        return false;
    KN_ASSERT(s->pause == p);
    (void)p;
    s->pause = C2S_PAUSE_NONE;
    return true;
}

c2s_act_t c2s_stream_creds_done(c2s_stream_t *s, int rc,
                                const c2s_creds_t *creds)
{
    if (!stream_unpause(s, C2S_PAUSE_CREDS))
        return C2S_ACT_CLOSE;
    c2s_sasl_creds(s, rc, creds);
    return c2s_stream_process(s);
}

c2s_act_t c2s_stream_register_done(c2s_stream_t *s, int rc)
{
    if (!stream_unpause(s, C2S_PAUSE_REGISTER))
        return C2S_ACT_CLOSE;
    c2s_register_done(s, rc);
    return c2s_stream_process(s);
}

c2s_act_t c2s_stream_lock_done(c2s_stream_t *s, unsigned remaining_s)
{
    if (!stream_unpause(s, C2S_PAUSE_LOCK))
        return C2S_ACT_CLOSE;
    c2s_sasl_lock_done(s, remaining_s);
    return c2s_stream_process(s);
}

c2s_act_t c2s_stream_bind_done(c2s_stream_t *s, long others)
{
    if (!stream_unpause(s, C2S_PAUSE_BIND))
        return C2S_ACT_CLOSE;
    c2s_bind_done(s, others);
    return c2s_stream_process(s);
}

c2s_act_t c2s_stream_resume(c2s_stream_t *s)
{
    if (!stream_unpause(s, C2S_PAUSE_FAIL))
        return C2S_ACT_CLOSE;
    c2s_sasl_send_held_failure(s);
    return c2s_stream_process(s);
}

c2s_act_t c2s_stream_tls_done(c2s_stream_t *s, unsigned cb_types)
{
    if (!stream_unpause(s, C2S_PAUSE_TLS))
        return C2S_ACT_CLOSE;
    c2s_stream_set_tls(s, cb_types);
    return c2s_stream_process(s);
}
