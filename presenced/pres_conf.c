/*
 * pres_conf.c - the `presenced` config section (nginx-style table).
 * Every key is optional; the defaults are Openfire's (R-ARCH-3, R-PERF-6).
 */
#include <stddef.h>
#include <string.h>

#include "kn_config.h"
#include "pres.h"
#include "pres_mam.h"

static const char *const offline_types[] = {"store_and_bounce",
                                            "store_and_drop", NULL};

static const kn_conf_def_t pres_conf_defs[] = {
    {"offline_type", KN_CONF_ENUM, offsetof(pres_conf_t, offline_type), 0, NULL,
     0, 0, offline_types,
     "message to an offline user over quota: bounce or drop"},
    {"offline_quota_bytes", KN_CONF_INT,
     offsetof(pres_conf_t, offline_quota_bytes), 102400, NULL, 0, 1LL << 40,
     NULL, "offline storage per user, bytes"},
    {"shared_poll_ms", KN_CONF_INT, offsetof(pres_conf_t, shared_poll_ms), 250,
     NULL, 10, 60000, NULL, "shared-group change poll period"},
    {"roster_presence", KN_CONF_BOOL, offsetof(pres_conf_t, roster_presence), 1,
     NULL, 0, 1, NULL, "roster-based presence fan-out (R-PERF-8)"},
    {"pep_max_items", KN_CONF_INT, offsetof(pres_conf_t, pep_max_items), 1000,
     NULL, 1, 100000, NULL,
     "PEP: most items a node keeps (what pubsub#max_items 'max' means)"},
    {"pep_max_nodes", KN_CONF_INT, offsetof(pres_conf_t, pep_max_nodes), 256,
     NULL, 1, 100000, NULL, "PEP: most nodes an account may have"},
    {"push_include_body", KN_CONF_BOOL,
     offsetof(pres_conf_t, push_include_body), 0, NULL, 0, 1, NULL,
     "XEP-0357: put the message body in push notifications"},
    {"push_max_registrations", KN_CONF_INT,
     offsetof(pres_conf_t, push_max_registrations), 16, NULL, 1, 1000, NULL,
     "XEP-0357: most app-server registrations per user"},
    {"mam_enabled", KN_CONF_BOOL, offsetof(pres_conf_t, mam_enabled), 1, NULL,
     0, 1, NULL,
     "XEP-0313: archive one-to-one messages (false: no archive copies)"},
    {"mam_default", KN_CONF_ENUM, offsetof(pres_conf_t, mam_default), 0, NULL,
     0, 0, mam_pref_names,
     "XEP-0313: archive preference of users who set none"},
    {"mam_retention_days", KN_CONF_INT,
     offsetof(pres_conf_t, mam_retention_days), 0, NULL, 0, 36500, NULL,
     "XEP-0313: days a message stays archived (0: forever)"},
    {"mam_expire_interval_ms", KN_CONF_INT,
     offsetof(pres_conf_t, mam_expire_interval_ms), 3600000, NULL, 100,
     86400000, NULL, "XEP-0313: how often expired rows are removed"},
    {"admins", KN_CONF_STR, offsetof(pres_conf_t, admins), 0, "", 0, 0, NULL,
     "XEP-0133: bare JIDs of the server's administrators (commas)"},
    {"roster_max_items", KN_CONF_INT, offsetof(pres_conf_t, roster_max_items),
     1000, NULL, 0, 1000000, NULL,
     "roster items one user may have, pending subscription requests "
     "included (shared-group members are not counted); 0: no limit"},
    {"private_max_bytes", KN_CONF_INT, offsetof(pres_conf_t, private_max_bytes),
     32768, NULL, 256, 16 * 1024 * 1024, NULL,
     "XEP-0049: largest element stored in private XML storage"},
    {"vcard_max_bytes", KN_CONF_INT, offsetof(pres_conf_t, vcard_max_bytes),
     32768, NULL, 256, 16 * 1024 * 1024, NULL,
     "XEP-0054: largest vCard (its avatar included)"},
    {"pep_item_max_bytes", KN_CONF_INT,
     offsetof(pres_conf_t, pep_item_max_bytes), 65536, NULL, 256,
     16 * 1024 * 1024, NULL, "XEP-0163: largest payload of one PEP item"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

int pres_conf_load(const struct kn_conf *cf, pres_conf_t *out, char *err,
                   size_t errlen)
{
    /* kn_conf_apply frees a string field before it sets its default (a
     * reload into a loaded table): out may be an uninitialised stack
     * struct (main.c), whose garbage must not reach free(). */
    memset(out, 0, sizeof(*out));
    return kn_conf_apply(cf, "presenced", pres_conf_defs, out, err, errlen);
}

void pres_conf_free(pres_conf_t *c)
{
    kn_conf_free_fields(pres_conf_defs, c);
}
