/*
 * muc_service.c - from envelope to handler (see muc_service.h).
 *
 * Addressing comes from the envelope (c2s prepared both JIDs and stamped
 * from; the router never rewrites them); the stanza's own attributes are
 * the fallback when the envelope has none. The target must be the
 * service domain or a room of it (room@service[/nick]). A stanza for a
 * room this node does not hold may wait for PostgreSQL first
 * (muc_lookup.c).
 */
#include "muc_service.h"

#include <string.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "muc_iq.h"
#include "muc_lookup.h"
#include "muc_message.h"
#include "muc_occupant.h"
#include "muc_out.h"
#include "muc_room.h"

static int svc_jid(kn_jid_t *j, const char *env_s, size_t env_len,
                   const char *attr)
{
    if (env_len > 0)
        return kn_jid_parse(j, env_s, env_len);
    if (attr != NULL)
        return kn_jid_parse(j, attr, strlen(attr));
    return -KN_EINVAL;
}

void muc_service_dispatch(muc_t *m, const muc_in_t *in)
{
    const kn_stanza_t *st = in->st;
    if (in->room != NULL && in->lookup == MUC_LOOKUP_NONE &&
        muc_lookup_defer(m, in))
        return;
    switch (kn_stanza_kind(st)) {
    case KN_STANZA_PRESENCE:
        if (in->room != NULL)
            muc_presence_in(m, in);
        break;
    case KN_STANZA_MESSAGE:
        if (in->room != NULL)
            muc_message_in(m, in);
        else if (kn_stanza_type(st) == NULL ||
                 strcmp(kn_stanza_type(st), "error") != 0)
            muc_send_error(m, st, KN_STE_SERVICE_UNAVAILABLE, NULL);
        break;
    case KN_STANZA_IQ:
        muc_iq_in(m, in);
        break;
    default:
        break;
    }
}

static void svc_stanza(muc_t *m, const kn_env_t *env, const void *payload,
                       size_t len)
{
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(payload, len, NULL, &st) < 0) {
        kn_log_debug("mucd: unparsable stanza from %.*s dropped",
                     (int)env->from_len, env->from);
        return;
    }
    kn_jid_t from = KN_JID_INIT, to = KN_JID_INIT;
    char *bare = NULL, *room = NULL, *nick = NULL;
    if (svc_jid(&from, env->from, env->from_len, kn_stanza_from(st)) < 0 ||
        svc_jid(&to, env->to, env->to_len, kn_stanza_to(st)) < 0)
        goto out;
    /* The stanza as we reply to it carries the prepared addresses. */
    if (kn_stanza_from(st) == NULL ||
        strcmp(kn_stanza_from(st), kn_jid_str(&from)) != 0) {
        kn_stanza_t *t = kn_stanza_with_attr(st, 0, "from", kn_jid_str(&from));
        kn_stanza_unref(&st);
        st = t;
    }
    if (kn_stanza_to(st) == NULL ||
        strcmp(kn_stanza_to(st), kn_jid_str(&to)) != 0) {
        kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", kn_jid_str(&to));
        kn_stanza_unref(&st);
        st = t;
    }
    size_t dlen;
    const char *dom = kn_jid_domain(&to, &dlen);
    if (dlen != strlen(m->set.service) ||
        memcmp(dom, m->set.service, dlen) != 0) {
        muc_send_error(m, st, KN_STE_ITEM_NOT_FOUND, NULL);
        goto out;
    }
    bare = kn_strndup(kn_jid_str(&from), kn_jid_bare_len(&from));
    size_t llen, rlen;
    if (kn_jid_local(&to, &llen) != NULL)
        room = kn_strndup(kn_jid_str(&to), kn_jid_bare_len(&to));
    const char *res = kn_jid_resource(&to, &rlen);
    if (res != NULL)
        nick = kn_strndup(res, rlen);
    muc_in_t in = {st,   env->conn_id, kn_jid_str(&from), bare,
                   room, nick,         MUC_LOOKUP_NONE,   NULL};
    muc_service_dispatch(m, &in);
out:
    free(bare);
    free(room);
    free(nick);
    kn_jid_free(&from);
    kn_jid_free(&to);
    kn_stanza_unref(&st);
}

void muc_service_handle(muc_t *m, const kn_env_t *env, const void *payload,
                        size_t len)
{
    switch (env->kind) {
    case KN_ENV_STANZA:
        if (payload != NULL && len > 0)
            svc_stanza(m, env, payload, len);
        return;
    case KN_ENV_SESSION_UP: {
        if (!(env->flags & KN_F_MOVED))
            return;
        /* XEP-0198 resumption: the occupant's session has a new
         * connection; room traffic follows it. */
        char *full = kn_strndup(env->from, env->from_len);
        for (muc_seat_t *s = muc_user_seats(m, full); s != NULL;
             s = s->next_user)
            s->conn = env->conn_id;
        free(full);
        return;
    }
    case KN_ENV_SESSION_DOWN: {
        char *full = kn_strndup(env->from, env->from_len);
        muc_lookup_session_down(m, full);
        muc_session_down(m, full);
        free(full);
        return;
    }
    case KN_ENV_BOUNCE:
        kn_log_debug("mucd: %s to %.*s bounced (%s)",
                     kn_env_stanza_name(env->stanza), (int)env->to_len, env->to,
                     env->seq < KN_STE_COUNT_
                         ? kn_stanza_err_name((kn_stanza_err_t)env->seq)
                         : "?");
        return;
    default:
        return;
    }
}
