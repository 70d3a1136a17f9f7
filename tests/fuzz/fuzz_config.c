/*
 * fuzz_config.c - libFuzzer entry point for the config parser: libconfig
 * through kn_conf_open_string(), then every loader that reads the
 * result (kn_common_conf_load, c2s_conf_load with and without a node
 * name, a table with every kind of directive, kn_conf_peek_str,
 * kn_conf_muc_service).
 *
 * The config file is written by the operator, not by a peer, but a typo
 * must give a clear error, never a crash. Checked: a failed load leaves
 * a message; a successful one leaves every INT directive within its
 * bounds, every BOOL 0 or 1, every ENUM a valid index.
 *
 * libconfig 1.5 (Debian 12) itself leaks the string buffer of a file
 * that fails to parse after a string token (the input `""` is enough);
 * a failed parse ends the process, so leaks allocated inside libconfig
 * are suppressed here and only Kiln's own are reported.
 *
 * Inputs naming @include are skipped: libconfig would read the named
 * file, which is the filesystem, not the parser, under test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_conf.h"
#include "kn_config.h"
#include "kn_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

typedef struct fz_conf {
    long long n;
    int b;
    char *s;
    char *dotted;
    int e;
} fz_conf_t;

static const char *const fz_enum[] = {"error", "warning", "info", NULL};

#define F(x) offsetof(fz_conf_t, x)
static const kn_conf_def_t fz_defs[] = {
    {"n", KN_CONF_INT, F(n), 5, NULL, -3, 1000, NULL, "int"},
    {"b", KN_CONF_BOOL, F(b), 0, NULL, 0, 1, NULL, "bool"},
    {"s", KN_CONF_STR, F(s), 0, NULL, 0, 0, NULL, "string, no default"},
    {"a.b.c", KN_CONF_STR, F(dotted), 0, "x", 0, 0, NULL, "dotted"},
    {"e", KN_CONF_ENUM, F(e), 1, NULL, 0, 0, fz_enum, "enum"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};
#undef F

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kn_log_init("fuzz", KN_LOG_ERR);
    return 0;
}

/* After a successful apply: every value as its table allows. */
static void fz_check(const kn_conf_def_t *defs, const void *out)
{
    const char *base = out;
    for (const kn_conf_def_t *d = defs; d->type != KN_CONF_END; d++) {
        const void *field = base + d->offset;
        /* derived by c2s_conf_load when 0: 2 * rate may pass its max */
        if (defs == c2s_conf_defs &&
            d->offset == offsetof(c2s_conf_t, rate_burst_bytes))
            continue;
        if (d->type == KN_CONF_INT) {
            long long v;
            memcpy(&v, field, sizeof(v));
            if (v < d->min || v > d->max)
                abort();
        } else if (d->type == KN_CONF_BOOL) {
            int v;
            memcpy(&v, field, sizeof(v));
            if (v != 0 && v != 1)
                abort();
        } else if (d->type == KN_CONF_ENUM) {
            int v;
            memcpy(&v, field, sizeof(v));
            int n = 0;
            while (d->enum_names[n] != NULL)
                n++;
            if (v < 0 || v >= n)
                abort();
        } else if (d->type == KN_CONF_STR && d->def_str != NULL) {
            char *v;
            memcpy(&v, field, sizeof(v));
            if (v == NULL)
                abort();
        }
    }
}

static void fz_err_set(int rc, const char *err)
{
    if (rc != 0 && err[0] == '\0')
        abort(); /* a failure must say why */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    if (strstr(text, "@include") != NULL) {
        free(text);
        return 0;
    }
    char err[256] = "";
    kn_conf_t *cf = NULL;
    int rc = kn_conf_open_string(&cf, text, err, sizeof(err));
    free(text);
    fz_err_set(rc, err);
    if (rc != 0)
        return 0;

    kn_common_conf_t common = {0};
    err[0] = '\0';
    rc = kn_common_conf_load(cf, &common, err, sizeof(err));
    fz_err_set(rc, err);
    kn_common_conf_free(&common);

    static const char *const nodes[] = {NULL, "c2s-a"};
    for (size_t i = 0; i < 2; i++) {
        c2s_conf_t c = {0};
        err[0] = '\0';
        rc = c2s_conf_load(cf, nodes[i], &c, err, sizeof(err));
        fz_err_set(rc, err);
        if (rc == 0)
            fz_check(c2s_conf_defs, &c);
        c2s_conf_free(&c);
    }

    static const char *const sections[] = {NULL, "fz"};
    for (size_t i = 0; i < 2; i++) {
        fz_conf_t f = {0};
        err[0] = '\0';
        rc = sections[i] == NULL
                 ? kn_conf_apply(cf, NULL, fz_defs, &f, err, sizeof(err))
                 : kn_conf_apply_node(cf, sections[i], "n1", fz_defs, &f, err,
                                      sizeof(err));
        fz_err_set(rc, err);
        if (rc == 0)
            fz_check(fz_defs, &f);
        kn_conf_free_fields(fz_defs, &f);
    }

    (void)kn_conf_peek_str(cf, "mucd.service");
    (void)kn_conf_peek_str(cf, "c2s.nodes");
    free(kn_conf_muc_service(cf, "localhost"));
    kn_conf_close(&cf);
    return 0;
}
