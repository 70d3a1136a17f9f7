/*
 * kn_config.h - one libconfig file, per-process sections, nginx-style
 * directive tables.
 *
 * A process describes its settings as a table of kn_conf_def_t (name, type,
 * offset into its own struct, default, bounds, one line of doc) and asks
 * kn_conf_apply() to fill the struct from one section of the file. Every
 * key in the section must be known to the table: a typo is an error, not a
 * silently ignored setting. Defaults are applied first, so a struct is
 * always complete.
 *
 * Several nodes of one kind (c2s-a, c2s-b) may share one file: a section
 * may hold a list `nodes = ( { name = "c2s-a"; ... }, ... )`, and
 * kn_conf_apply_node() applies the section's own keys, then the keys of the
 * node entry with the given name on top. One file per host works the same
 * way with a single node entry, or none.
 *
 * Strings are copied (kn_strdup) into `char *` fields; release them with
 * kn_conf_free_fields(). Nothing here is called from an event loop.
 */
#ifndef KN_CONFIG_H
#define KN_CONFIG_H

#include <stddef.h>

typedef enum kn_conf_type {
    KN_CONF_END = 0, /* terminates a table */
    KN_CONF_INT,     /* long long field, checked against [min, max] */
    KN_CONF_BOOL,    /* int field, 0 or 1 */
    KN_CONF_STR,     /* char * field, owned by the struct */
    KN_CONF_ENUM,    /* int field, index into enum_names */
} kn_conf_type_t;

typedef struct kn_conf_def {
    const char *name; /* key inside the section; may be dotted: "tls.cert" */
    kn_conf_type_t type;
    size_t offset;                 /* offsetof(your_struct, field) */
    long long def_int;             /* default for INT, BOOL, ENUM (index) */
    const char *def_str;           /* default for STR (may be NULL) */
    long long min, max;            /* bounds for INT */
    const char *const *enum_names; /* NULL-terminated, for ENUM */
    const char *doc;               /* one line: what it does */
} kn_conf_def_t;

typedef struct kn_conf kn_conf_t;

/*
 * Parse the file at path. On failure returns -KN_EINVAL and writes
 * "file:line: message" to err. *cfp is owned by the caller
 * (kn_conf_close).
 */
int kn_conf_open(kn_conf_t **cfp, const char *path, char *err, size_t errlen);
/* Parse a config held in a string (tests). Same contract as kn_conf_open. */
int kn_conf_open_string(kn_conf_t **cfp, const char *text, char *err,
                        size_t errlen);
void kn_conf_close(kn_conf_t **cfp);

/*
 * Fill out from section (a top-level group name such as "router"; NULL or
 * "" for the top level) using defs. A missing section means "all defaults".
 * Returns 0, or -KN_EINVAL with a message naming the key (wrong type, out
 * of range, unknown key, unknown enum value).
 */
int kn_conf_apply(const kn_conf_t *cf, const char *section,
                  const kn_conf_def_t *defs, void *out, char *err,
                  size_t errlen);

/*
 * As kn_conf_apply, then apply the entry of section.nodes whose name is
 * node. The key "name" is implied in node entries. If node is not found,
 * returns -KN_ENOENT with a message. If node is NULL the section's list
 * must hold exactly one entry, which is used; with no list at all only the
 * section's own keys apply.
 */
int kn_conf_apply_node(const kn_conf_t *cf, const char *section,
                       const char *node, const kn_conf_def_t *defs, void *out,
                       char *err, size_t errlen);

/* The entries of a top-level list of groups (`components = ( { ... },
 * ... )`): how many (0 when absent; -KN_EINVAL with a message when it is
 * not a list of groups), and kn_conf_apply_elem() fills out from entry i
 * with defs (defaults first, unknown keys are errors). */
int kn_conf_list_len(const kn_conf_t *cf, const char *list, char *err,
                     size_t errlen);
int kn_conf_apply_elem(const kn_conf_t *cf, const char *list, size_t i,
                       const kn_conf_def_t *defs, void *out, char *err,
                       size_t errlen);
/* The string at path ("mucd.service") in another process's section, for
 * the few settings two processes must agree on; NULL when absent or not
 * a string. Borrowed: valid until kn_conf_close. */
const char *kn_conf_peek_str(const kn_conf_t *cf, const char *path);

/* The MUC service domain every process must agree on: mucd.service when
 * set and not empty, else "conference.<domain>". A new string. */
char *kn_conf_muc_service(const kn_conf_t *cf, const char *domain);

/* Free every KN_CONF_STR field of out that defs names. Idempotent. */
void kn_conf_free_fields(const kn_conf_def_t *defs, void *out);

/*
 * Settings every process reads: the top-level keys and the db, redis and
 * router groups. Every address comes from here; nothing assumes one host.
 */
typedef struct kn_common_conf {
    char *domain;      /* XMPP domain served, e.g. "localhost" */
    int log_level;     /* KN_LOG_* index */
    char *db_conninfo; /* libpq conninfo */
    long long db_pool_min;
    long long db_pool_max;
    long long db_checkout_timeout_ms;
    char *redis_address;       /* "unix:/path" or "tcp:host:port" */
    char *router_endpoint;     /* ZeroMQ endpoint the DEALERs connect to */
    char *router_bind;         /* ZeroMQ endpoint the router binds */
    long long heartbeat_ms;    /* heartbeat period, both ways */
    long long node_timeout_ms; /* a node silent this long is lost */
    /* Hot standby (router only): > 0 = the router must hold the Redis
     * lease router:lease (this long, renewed every third) to route; 0 =
     * one router, always active, as before. */
    long long lease_ms;
    char *router_name; /* router only: its name in the lease ("" = boot) */
    /* On SIGTERM, how long a process may go on finishing what it accepted
     * (queued PostgreSQL/Redis writes) before it exits anyway. */
    long long shutdown_drain_ms;
} kn_common_conf_t;

/* Load kn_common_conf_t from cf (top level and the db/redis/router
 * groups). Same errors as kn_conf_apply. */
int kn_common_conf_load(const kn_conf_t *cf, kn_common_conf_t *out, char *err,
                        size_t errlen);
void kn_common_conf_free(kn_common_conf_t *c);

#endif
