/*
 * kn_config.c - directive tables over libconfig (see kn_config.h).
 *
 * A note on applying a table. kn_conf_apply() runs in three passes over
 * one libconfig group: (1) every field gets its default, (2) every key the
 * table names and the file sets is type- and range-checked and stored,
 * (3) every key the file sets is looked up in the table, so a misspelt key
 * is reported instead of silently ignored. Dotted table names ("tls.cert")
 * are paths into nested groups; a nested group is known when some table
 * name starts with "<group>.". At the top level of the file, groups that
 * no table name mentions are other processes' sections and are skipped.
 */
#include "kn_config.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

struct kn_conf {
    config_t cfg;
};

static int conf_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -KN_EINVAL;
}

static int conf_open_common(kn_conf_t **cfp, const char *path, const char *text,
                            char *err, size_t errlen)
{
    kn_conf_t *cf = kn_calloc(1, sizeof(*cf));
    config_init(&cf->cfg);
    int ok = path != NULL ? config_read_file(&cf->cfg, path)
                          : config_read_string(&cf->cfg, text);
    if (ok != CONFIG_TRUE) {
        const char *file = config_error_file(&cf->cfg);
        if (config_error_type(&cf->cfg) == CONFIG_ERR_FILE_IO)
            conf_fail(err, errlen, "%s: cannot read file",
                      path ? path : "(string)");
        else
            conf_fail(err, errlen, "%s:%d: %s",
                      file ? file : (path ? path : "(string)"),
                      config_error_line(&cf->cfg), config_error_text(&cf->cfg));
        config_destroy(&cf->cfg);
        free(cf);
        return -KN_EINVAL;
    }
    *cfp = cf;
    return 0;
}

int kn_conf_open(kn_conf_t **cfp, const char *path, char *err, size_t errlen)
{
    KN_ASSERT(cfp != NULL && path != NULL);
    return conf_open_common(cfp, path, NULL, err, errlen);
}

int kn_conf_open_string(kn_conf_t **cfp, const char *text, char *err,
                        size_t errlen)
{
    KN_ASSERT(cfp != NULL && text != NULL);
    return conf_open_common(cfp, NULL, text, err, errlen);
}

void kn_conf_close(kn_conf_t **cfp)
{
    if (cfp == NULL || *cfp == NULL)
        return;
    config_destroy(&(*cfp)->cfg);
    free(*cfp);
    *cfp = NULL;
}

static void conf_defaults(const kn_conf_def_t *defs, void *out)
{
    for (const kn_conf_def_t *d = defs; d->type != KN_CONF_END; d++) {
        char *field = (char *)out + d->offset;
        switch (d->type) {
        case KN_CONF_INT:
            *(long long *)field = d->def_int;
            break;
        case KN_CONF_BOOL:
        case KN_CONF_ENUM:
            *(int *)field = (int)d->def_int;
            break;
        case KN_CONF_STR: {
            char **sp = (char **)field;
            free(*sp);
            *sp = d->def_str ? kn_strdup(d->def_str) : NULL;
            break;
        }
        case KN_CONF_END:
            break;
        }
    }
}

/* Store one setting into its field after checking type and range. where
 * names the section for messages. */
static int conf_store(const kn_conf_def_t *d, const config_setting_t *s,
                      void *out, const char *where, char *err, size_t errlen)
{
    char *field = (char *)out + d->offset;
    int t = config_setting_type(s);
    int line = config_setting_source_line(s);
    switch (d->type) {
    case KN_CONF_INT: {
        long long v;
        if (t == CONFIG_TYPE_INT)
            v = config_setting_get_int(s);
        else if (t == CONFIG_TYPE_INT64)
            v = config_setting_get_int64(s);
        else
            return conf_fail(err, errlen,
                             "line %d: %s%s%s: expected an integer", line,
                             where, *where ? "." : "", d->name);
        if (v < d->min || v > d->max)
            return conf_fail(
                err, errlen, "line %d: %s%s%s: %lld out of range [%lld, %lld]",
                line, where, *where ? "." : "", d->name, v, d->min, d->max);
        *(long long *)field = v;
        return 0;
    }
    case KN_CONF_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return conf_fail(err, errlen,
                             "line %d: %s%s%s: expected true or false", line,
                             where, *where ? "." : "", d->name);
        *(int *)field = config_setting_get_bool(s);
        return 0;
    case KN_CONF_STR: {
        if (t != CONFIG_TYPE_STRING)
            return conf_fail(err, errlen, "line %d: %s%s%s: expected a string",
                             line, where, *where ? "." : "", d->name);
        char **sp = (char **)field;
        free(*sp);
        *sp = kn_strdup(config_setting_get_string(s));
        return 0;
    }
    case KN_CONF_ENUM: {
        const char *v =
            t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        for (int i = 0; v != NULL && d->enum_names[i] != NULL; i++) {
            if (strcmp(v, d->enum_names[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        char allowed[256] = "";
        for (int i = 0; d->enum_names[i] != NULL; i++) {
            size_t l = strlen(allowed);
            snprintf(allowed + l, sizeof(allowed) - l, "%s\"%s\"",
                     i ? ", " : "", d->enum_names[i]);
        }
        return conf_fail(err, errlen, "line %d: %s%s%s: expected one of %s",
                         line, where, *where ? "." : "", d->name, allowed);
    }
    case KN_CONF_END:
        break;
    }
    return 0;
}

/* Is name (a dotted path) a known key, or a group that holds known keys? */
static int conf_known(const kn_conf_def_t *defs, const char *name,
                      int *is_group)
{
    size_t n = strlen(name);
    *is_group = 0;
    for (const kn_conf_def_t *d = defs; d->type != KN_CONF_END; d++) {
        if (strcmp(d->name, name) == 0)
            return 1;
        if (strncmp(d->name, name, n) == 0 && d->name[n] == '.')
            *is_group = 1;
    }
    return *is_group;
}

/* Pass 3: report any key in group g (whose dotted prefix is prefix) that
 * the table does not know. skip names one key allowed at this level
 * ("nodes" or "name"); top says unknown groups are other sections. */
static int conf_check_unknown(const config_setting_t *g, const char *prefix,
                              const kn_conf_def_t *defs, const char *skip,
                              int top, const char *where, char *err,
                              size_t errlen)
{
    int count = config_setting_length(g);
    for (int i = 0; i < count; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(s);
        if (key == NULL)
            continue;
        if (skip != NULL && *prefix == '\0' && strcmp(key, skip) == 0)
            continue;
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key);
        int is_group;
        int known = conf_known(defs, path, &is_group);
        int t = config_setting_type(s);
        if (!known) {
            if (top && *prefix == '\0' &&
                (t == CONFIG_TYPE_GROUP || t == CONFIG_TYPE_LIST))
                continue;
            return conf_fail(err, errlen, "line %d: unknown setting %s%s%s",
                             config_setting_source_line(s), where,
                             *where ? "." : "", path);
        }
        if (is_group && t == CONFIG_TYPE_GROUP) {
            int rc =
                conf_check_unknown(s, path, defs, NULL, 0, where, err, errlen);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Passes 2 and 3 over one group. */
static int conf_apply_group(const config_setting_t *g,
                            const kn_conf_def_t *defs, void *out,
                            const char *skip, int top, const char *where,
                            char *err, size_t errlen)
{
    for (const kn_conf_def_t *d = defs; d->type != KN_CONF_END; d++) {
        const config_setting_t *s =
            config_setting_lookup((config_setting_t *)g, d->name);
        if (s == NULL)
            continue;
        int rc = conf_store(d, s, out, where, err, errlen);
        if (rc < 0)
            return rc;
    }
    return conf_check_unknown(g, "", defs, skip, top, where, err, errlen);
}

static const config_setting_t *conf_section(const kn_conf_t *cf,
                                            const char *section)
{
    if (section == NULL || *section == '\0')
        return config_root_setting(&cf->cfg);
    return config_lookup(&cf->cfg, section);
}

int kn_conf_apply(const kn_conf_t *cf, const char *section,
                  const kn_conf_def_t *defs, void *out, char *err,
                  size_t errlen)
{
    KN_ASSERT(cf != NULL && defs != NULL && out != NULL);
    conf_defaults(defs, out);
    const config_setting_t *g = conf_section(cf, section);
    if (g == NULL)
        return 0;
    int top = section == NULL || *section == '\0';
    const char *where = top ? "" : section;
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return conf_fail(err, errlen, "line %d: %s: expected a group { ... }",
                         config_setting_source_line(g), where);
    return conf_apply_group(g, defs, out, top ? NULL : "nodes", top, where, err,
                            errlen);
}

int kn_conf_apply_node(const kn_conf_t *cf, const char *section,
                       const char *node, const kn_conf_def_t *defs, void *out,
                       char *err, size_t errlen)
{
    KN_ASSERT(section != NULL && *section != '\0');
    int rc = kn_conf_apply(cf, section, defs, out, err, errlen);
    if (rc < 0)
        return rc;
    const config_setting_t *g = conf_section(cf, section);
    const config_setting_t *list =
        g ? config_setting_get_member(g, "nodes") : NULL;
    if (list == NULL) {
        if (node != NULL)
            return rc; /* a single-node file: the section is the node */
        return 0;
    }
    if (config_setting_type(list) != CONFIG_TYPE_LIST)
        return conf_fail(err, errlen,
                         "line %d: %s.nodes: expected a list ( ... )",
                         config_setting_source_line(list), section);
    int count = config_setting_length(list);
    const config_setting_t *pick = NULL;
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        const char *name = NULL;
        if (config_setting_type(e) != CONFIG_TYPE_GROUP ||
            !config_setting_lookup_string(e, "name", &name))
            return conf_fail(
                err, errlen,
                "line %d: %s.nodes: each entry needs name = \"...\"",
                config_setting_source_line(e), section);
        if (node == NULL ? count == 1 : strcmp(name, node) == 0)
            pick = e;
    }
    if (pick == NULL) {
        if (node == NULL)
            return conf_fail(err, errlen,
                             "%s.nodes lists %d nodes: choose one with --node",
                             section, count);
        conf_fail(err, errlen, "%s.nodes: no node named \"%s\"", section, node);
        return -KN_ENOENT;
    }
    char where[128];
    snprintf(where, sizeof(where), "%s.nodes[%s]", section, node ? node : "0");
    return conf_apply_group(pick, defs, out, "name", 0, where, err, errlen);
}

int kn_conf_list_len(const kn_conf_t *cf, const char *list, char *err,
                     size_t errlen)
{
    KN_ASSERT(cf != NULL && list != NULL);
    const config_setting_t *l = config_lookup(&cf->cfg, list);
    if (l == NULL)
        return 0;
    if (config_setting_type(l) != CONFIG_TYPE_LIST)
        return conf_fail(err, errlen, "line %d: %s: expected a list ( ... )",
                         config_setting_source_line(l), list);
    int count = config_setting_length(l);
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP)
            return conf_fail(err, errlen,
                             "line %d: %s: each entry must be a group { ... }",
                             config_setting_source_line(e), list);
    }
    return count;
}

int kn_conf_apply_elem(const kn_conf_t *cf, const char *list, size_t i,
                       const kn_conf_def_t *defs, void *out, char *err,
                       size_t errlen)
{
    KN_ASSERT(cf != NULL && list != NULL && defs != NULL && out != NULL);
    conf_defaults(defs, out);
    const config_setting_t *l = config_lookup(&cf->cfg, list);
    const config_setting_t *e =
        l != NULL && config_setting_type(l) == CONFIG_TYPE_LIST
            ? config_setting_get_elem(l, (unsigned)i)
            : NULL;
    if (e == NULL || config_setting_type(e) != CONFIG_TYPE_GROUP)
        return conf_fail(err, errlen, "%s: no entry %zu", list, i);
    char where[128];
    snprintf(where, sizeof(where), "%s[%zu]", list, i);
    return conf_apply_group(e, defs, out, NULL, 0, where, err, errlen);
}

const char *kn_conf_peek_str(const kn_conf_t *cf, const char *path)
{
    KN_ASSERT(cf != NULL && path != NULL);
    const char *v = NULL;
    if (config_lookup_string(&cf->cfg, path, &v) != CONFIG_TRUE)
        return NULL;
    return v;
}

char *kn_conf_muc_service(const kn_conf_t *cf, const char *domain)
{
    const char *svc = kn_conf_peek_str(cf, "mucd.service");
    if (svc != NULL && *svc != '\0')
        return kn_strdup(svc);
    size_t n = strlen("conference.") + strlen(domain) + 1;
    char *out = kn_malloc(n);
    snprintf(out, n, "conference.%s", domain);
    return out;
}

void kn_conf_free_fields(const kn_conf_def_t *defs, void *out)
{
    for (const kn_conf_def_t *d = defs; d->type != KN_CONF_END; d++) {
        if (d->type == KN_CONF_STR) {
            char **sp = (char **)((char *)out + d->offset);
            free(*sp);
            *sp = NULL;
        }
    }
}

#define CC_OFF(f) offsetof(kn_common_conf_t, f)
static const kn_conf_def_t common_defs[] = {
    {"domain", KN_CONF_STR, CC_OFF(domain), 0, "localhost", 0, 0, NULL,
     "XMPP domain this cluster serves"},
    {"log_level", KN_CONF_ENUM, CC_OFF(log_level), KN_LOG_INFO, NULL, 0, 0,
     kn_log_level_names, "error, warning, info or debug"},
    {"db.conninfo", KN_CONF_STR, CC_OFF(db_conninfo), 0,
     "host=/run/postgresql dbname=kiln", 0, 0, NULL,
     "libpq connection string of the shared PostgreSQL"},
    {"db.pool_min", KN_CONF_INT, CC_OFF(db_pool_min), 5, NULL, 1, 1000, NULL,
     "connections each daemon opens at start"},
    {"db.pool_max", KN_CONF_INT, CC_OFF(db_pool_max), 25, NULL, 1, 1000, NULL,
     "most connections each daemon opens"},
    {"db.checkout_timeout_ms", KN_CONF_INT, CC_OFF(db_checkout_timeout_ms),
     1000, NULL, 1, 600000, NULL,
     "a query waiting this long for a connection fails"},
    {"redis.address", KN_CONF_STR, CC_OFF(redis_address), 0,
     "unix:/run/kiln/redis.sock", 0, 0, NULL,
     "\"unix:/path\" or \"tcp:host:port\""},
    {"router.endpoint", KN_CONF_STR, CC_OFF(router_endpoint), 0,
     "tcp://127.0.0.1:5270", 0, 0, NULL,
     "ZeroMQ endpoint every process connects to; with a hot standby "
     "router, both endpoints separated by a comma"},
    {"router.bind", KN_CONF_STR, CC_OFF(router_bind), 0, "tcp://127.0.0.1:5270",
     0, 0, NULL, "ZeroMQ endpoint the router binds"},
    {"router.heartbeat_ms", KN_CONF_INT, CC_OFF(heartbeat_ms), 5000, NULL, 100,
     600000, NULL, "heartbeat period between router and nodes"},
    {"router.node_timeout_ms", KN_CONF_INT, CC_OFF(node_timeout_ms), 15000,
     NULL, 300, 3600000, NULL, "a node silent this long is declared lost"},
    {"router.lease_ms", KN_CONF_INT, CC_OFF(lease_ms), 0, NULL, 0, 600000, NULL,
     "router: 0 = the only router; > 0 = hold the Redis lease this long "
     "to be the active one of two (hot standby)"},
    {"router.name", KN_CONF_STR, CC_OFF(router_name), 0, "", 0, 0, NULL,
     "router: its name in the lease (default: its boot id)"},
    {"shutdown_drain_ms", KN_CONF_INT, CC_OFF(shutdown_drain_ms), 10000, NULL,
     0, 600000, NULL,
     "on SIGTERM, longest wait for accepted work (queued writes) to finish"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

static int common_conf_load(const kn_conf_t *cf, kn_common_conf_t *out,
                            char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    /* Only the top level's scalars and the db/redis groups are checked for
     * unknown keys here; "router" also holds the router's own settings,
     * which the router's table checks. */
    conf_defaults(common_defs, out);
    const config_setting_t *root = config_root_setting(&cf->cfg);
    for (const kn_conf_def_t *d = common_defs; d->type != KN_CONF_END; d++) {
        const config_setting_t *s =
            config_setting_lookup((config_setting_t *)root, d->name);
        if (s == NULL)
            continue;
        int rc = conf_store(d, s, out, "", err, errlen);
        if (rc < 0)
            return rc;
    }
    int count = config_setting_length(root);
    for (int i = 0; i < count; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *key = config_setting_name(s);
        int t = config_setting_type(s);
        if (t == CONFIG_TYPE_GROUP &&
            (strcmp(key, "db") == 0 || strcmp(key, "redis") == 0)) {
            int rc = conf_check_unknown(s, key, common_defs, NULL, 0, "", err,
                                        errlen);
            if (rc < 0)
                return rc;
        } else if (t != CONFIG_TYPE_GROUP && t != CONFIG_TYPE_LIST) {
            int is_group;
            if (!conf_known(common_defs, key, &is_group) || is_group)
                return conf_fail(err, errlen, "line %d: unknown setting %s",
                                 config_setting_source_line(s), key);
        }
    }
    if (out->db_pool_min > out->db_pool_max)
        return conf_fail(err, errlen, "db.pool_min (%lld) > db.pool_max (%lld)",
                         out->db_pool_min, out->db_pool_max);
    return 0;
}

/* On failure nothing stays allocated (a SIGHUP reload keeps running). */
int kn_common_conf_load(const kn_conf_t *cf, kn_common_conf_t *out, char *err,
                        size_t errlen)
{
    int rc = common_conf_load(cf, out, err, errlen);
    if (rc < 0)
        kn_common_conf_free(out);
    return rc;
}

void kn_common_conf_free(kn_common_conf_t *c)
{
    kn_conf_free_fields(common_defs, c);
}
