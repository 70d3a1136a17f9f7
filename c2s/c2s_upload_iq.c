/*
 * c2s_upload_iq.c - the XMPP side of XEP-0363: IQs a client sends to
 * upload.<domain> are answered by its own c2s node (c2s_stanza.c hands
 * them here before routing): disco#info with the max-file-size form,
 * empty disco#items, and slot requests. See c2s_upload.h.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c2s_sm.h"
#include "c2s_stream.h"
#include "c2s_upload.h"
#include "kn_stanza.h"

#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_STANZAS     "urn:ietf:params:xml:ns:xmpp-stanzas"

static void iq_open(c2s_stream_t *s, const kn_stanza_t *st, const char *type)
{
    const c2s_upload_conf_t *uc = s->cf->upload;
    kn_buf_printf(s->out, "<iq type='%s' from='", type);
    kn_buf_append_xml_escaped(s->out, uc->service, strlen(uc->service));
    kn_buf_append_str(s->out, "' to='");
    kn_buf_append_xml_escaped(s->out, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(s->out, "'");
    const char *id = kn_stanza_id(st);
    if (id != NULL) {
        kn_buf_append_str(s->out, " id='");
        kn_buf_append_xml_escaped(s->out, id, strlen(id));
        kn_buf_append_str(s->out, "'");
    }
    kn_buf_append_str(s->out, ">");
}

static void iq_error(c2s_stream_t *s, const kn_stanza_t *st, const char *etype,
                     const char *cond, const char *text, const char *app)
{
    iq_open(s, st, "error");
    kn_buf_printf(s->out, "<error type='%s'><%s xmlns='" NS_STANZAS "'/>",
                  etype, cond);
    if (text != NULL) {
        kn_buf_append_str(s->out, "<text xmlns='" NS_STANZAS "'>");
        kn_buf_append_xml_escaped(s->out, text, strlen(text));
        kn_buf_append_str(s->out, "</text>");
    }
    if (app != NULL)
        kn_buf_append_str(s->out, app);
    kn_buf_append_str(s->out, "</error></iq>");
}

static void iq_disco_info(c2s_stream_t *s, const kn_stanza_t *st)
{
    const c2s_upload_conf_t *uc = s->cf->upload;
    iq_open(s, st, "result");
    kn_buf_printf(s->out,
                  "<query xmlns='" NS_DISCO_INFO "'>"
                  "<identity category='store' type='file' name='HTTP File "
                  "Upload'/>"
                  "<feature var='" NS_DISCO_INFO "'/>"
                  "<feature var='" C2S_NS_UPLOAD "'/>"
                  "<x xmlns='jabber:x:data' type='result'>"
                  "<field var='FORM_TYPE' type='hidden'><value>" C2S_NS_UPLOAD
                  "</value></field>"
                  "<field var='max-file-size'><value>%" PRIu64
                  "</value></field></x></query></iq>",
                  uc->max_bytes);
}

static void iq_slot(c2s_stream_t *s, const kn_stanza_t *st, int q)
{
    const c2s_upload_conf_t *uc = s->cf->upload;
    const char *name = kn_stanza_attr(st, q, "filename", NULL);
    const char *size = kn_stanza_attr(st, q, "size", NULL);
    const char *type = kn_stanza_attr(st, q, "content-type", NULL);
    char *end = NULL;
    unsigned long long n = size != NULL ? strtoull(size, &end, 10) : 0;
    if (name == NULL || *name == '\0' || size == NULL || *size == '\0' ||
        *size == '-' || end == NULL || *end != '\0') {
        iq_error(s, st, "modify", "bad-request",
                 "filename and size are required", NULL);
        return;
    }
    if (type == NULL || *type == '\0')
        type = "application/octet-stream";
    /* the owner is the account: the bare JID */
    kn_buf_t bare = KN_BUF_INIT, put = KN_BUF_INIT, get = KN_BUF_INIT;
    kn_buf_append(&bare, kn_jid_str(&s->jid), kn_jid_bare_len(&s->jid));
    kn_buf_append_byte(&bare, 0);
    c2s_upload_rc_t rc = c2s_upload_slot(uc, bare.data, name, (uint64_t)n, type,
                                         time(NULL), &put, &get);
    kn_buf_t app = KN_BUF_INIT;
    switch (rc) {
    case C2S_UPLOAD_OK:
        iq_open(s, st, "result");
        kn_buf_append_str(s->out, "<slot xmlns='" C2S_NS_UPLOAD "'><put url='");
        kn_buf_append_xml_escaped(s->out, put.data, put.len);
        kn_buf_append_str(s->out, "'/><get url='");
        kn_buf_append_xml_escaped(s->out, get.data, get.len);
        kn_buf_append_str(s->out, "'/></slot></iq>");
        break;
    case C2S_UPLOAD_TOO_LARGE:
        kn_buf_printf(&app,
                      "<file-too-large xmlns='" C2S_NS_UPLOAD
                      "'><max-file-size>%" PRIu64
                      "</max-file-size></file-too-large>",
                      uc->max_bytes);
        iq_error(s, st, "modify", "not-acceptable", "File too large", app.data);
        break;
    case C2S_UPLOAD_TYPE:
        iq_error(s, st, "modify", "not-acceptable",
                 "This content-type is not allowed", NULL);
        break;
    case C2S_UPLOAD_QUOTA:
        iq_error(s, st, "wait", "resource-constraint", "Upload quota reached",
                 NULL);
        break;
    case C2S_UPLOAD_BAD_REQUEST:
        iq_error(s, st, "modify", "bad-request", "Bad content-type", NULL);
        break;
    default:
        iq_error(s, st, "wait", "internal-server-error", NULL, NULL);
        break;
    }
    kn_buf_free(&app);
    kn_buf_free(&bare);
    kn_buf_free(&put);
    kn_buf_free(&get);
}

bool c2s_upload_iq(c2s_stream_t *s, const kn_stanza_t *st, const char *to,
                   bool get, int q)
{
    const c2s_upload_conf_t *uc = s->cf->upload;
    if (uc == NULL || to == NULL || strcmp(to, uc->service) != 0)
        return false;
    const char *ns = q >= 0 ? kn_stanza_ns(st, q) : "";
    const char *el = q >= 0 ? kn_stanza_name(st, q) : "";
    size_t off = s->out->len; /* one stanza for XEP-0198's count */
    if (get && strcmp(ns, NS_DISCO_INFO) == 0 && strcmp(el, "query") == 0 &&
        kn_stanza_attr(st, q, "node", NULL) == NULL)
        iq_disco_info(s, st);
    else if (get && strcmp(ns, NS_DISCO_ITEMS) == 0 &&
             strcmp(el, "query") == 0) {
        iq_open(s, st, "result");
        kn_buf_append_str(s->out, "<query xmlns='" NS_DISCO_ITEMS "'/></iq>");
    } else if (get && strcmp(ns, C2S_NS_UPLOAD) == 0 &&
               strcmp(el, "request") == 0)
        iq_slot(s, st, q);
    else
        iq_error(s, st, "cancel", "service-unavailable", NULL, NULL);
    c2s_sm_sent(s, off, NULL);
    return true;
}
