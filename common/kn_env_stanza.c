/*
 * kn_env_stanza.c - stanza -> envelope routing fields (see the header).
 */
#include "kn_env_stanza.h"

#include <string.h>

#include "kn_err.h"

int kn_env_from_stanza(kn_env_t *e, const kn_stanza_t *st)
{
    e->stanza = kn_env_stanza_from_name(kn_stanza_name(st, 0));
    if (e->stanza == KN_ENV_ST_NONE)
        return -KN_EPROTO;
    if (kn_env_type_from_str(e->stanza, kn_stanza_type(st), &e->type) < 0)
        e->type = e->stanza == KN_ENV_ST_IQ         ? KN_ENV_TYPE_RESULT
                  : e->stanza == KN_ENV_ST_PRESENCE ? KN_ENV_TYPE_AVAILABLE
                                                    : KN_ENV_TYPE_NORMAL;
    const char *from = kn_stanza_from(st);
    e->from = from;
    e->from_len = from ? strlen(from) : 0;
    const char *to = kn_stanza_to(st);
    e->to = to;
    e->to_len = to ? strlen(to) : 0;
    if (e->stanza == KN_ENV_ST_IQ) {
        int c = kn_stanza_first_child(st, 0);
        if (c >= 0) {
            e->node = kn_stanza_ns(st, c);
            e->node_len = strlen(e->node);
        }
    }
    return 0;
}
