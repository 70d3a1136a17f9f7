/*
 * c2s_conf.c - the c2s directive table and the checks a table cannot
 * express. Defaults follow the issue (and Openfire where it has one).
 */
#include "c2s_conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_mem.h"

#define F(x) offsetof(c2s_conf_t, x)

const kn_conf_def_t c2s_conf_defs[] = {
    {"tls.cert", KN_CONF_STR, F(tls_cert), 0, "", 0, 0, NULL,
     "PEM certificate chain for STARTTLS and direct TLS"},
    {"tls.key", KN_CONF_STR, F(tls_key), 0, "", 0, 0, NULL,
     "PEM private key of tls.cert"},
    {"tls.own_record_layer", KN_CONF_BOOL, F(tls_own_records), 0, NULL, 0, 1,
     NULL,
     "after a TLS 1.3 handshake, free OpenSSL's session and protect records "
     "in c2s (about 13 KB less per idle session)"},
    {"tls.ciphers", KN_CONF_STR, F(tls_ciphers), 0, "", 0, 0, NULL,
     "TLS 1.2 cipher list, OpenSSL syntax (empty: ECDHE with AES-GCM or "
     "ChaCha20-Poly1305); ciphers without forward secrecy are refused"},
    {"tls.ciphersuites", KN_CONF_STR, F(tls_ciphersuites), 0, "", 0, 0, NULL,
     "TLS 1.3 cipher suites (empty: AES-128-GCM, AES-256-GCM, "
     "ChaCha20-Poly1305)"},
    {"tls.groups", KN_CONF_STR, F(tls_groups), 0, "", 0, 0, NULL,
     "key exchange groups in order of preference (empty: "
     "X25519:P-256:P-384)"},
    {"tls.min_version", KN_CONF_STR, F(tls_min_version), 0, "", 0, 0, NULL,
     "lowest protocol version, TLSv1.2 or TLSv1.3 (empty: TLSv1.2)"},
    {"max_stanza_bytes", KN_CONF_INT, F(max_stanza_bytes), 65536, NULL, 1024,
     16 * 1024 * 1024, NULL, "largest top-level element a client may send"},
    {"max_depth", KN_CONF_INT, F(max_depth), 32, NULL, 2, 1000, NULL,
     "deepest element nesting inside a stanza"},
    {"max_attrs", KN_CONF_INT, F(max_attrs), 64, NULL, 4, 10000, NULL,
     "most attributes (xmlns included) on one element"},
    {"rate_bytes_per_s", KN_CONF_INT, F(rate_bytes_per_s), 100000, NULL, 0,
     1LL << 40, NULL, "per-connection input rate limit, bytes/s (0: off)"},
    {"rate_burst_bytes", KN_CONF_INT, F(rate_burst_bytes), 0, NULL, 0,
     1LL << 40, NULL,
     "token bucket size (0: max(2 * rate, 2 * max_stanza_bytes))"},
    {"rate_stanzas_per_s", KN_CONF_INT, F(rate_stanzas_per_s), 50, NULL, 0,
     1000000, NULL,
     "per-session input rate limit, top-level elements/s (0: off)"},
    {"rate_burst_stanzas", KN_CONF_INT, F(rate_burst_stanzas), 0, NULL, 0,
     100000000, NULL, "its bucket size (0: max(4 * rate, 100))"},
    {"rate_close_after", KN_CONF_INT, F(rate_close_after), 30, NULL, 0, 86400,
     NULL,
     "seconds a session may stay over its rate (its reading paused) "
     "before it is closed with policy-violation (0: never)"},
    {"component_rate_bytes_per_s", KN_CONF_INT, F(comp_rate_bytes_per_s), 0,
     NULL, 0, 1LL << 40, NULL,
     "input rate limit of an XEP-0114 component, bytes/s (0: off)"},
    {"component_rate_stanzas_per_s", KN_CONF_INT, F(comp_rate_stanzas_per_s), 0,
     NULL, 0, 100000000, NULL, "the same in stanzas/s (0: off)"},
    {"accept.addr_rate", KN_CONF_INT, F(accept_addr_rate), 10, NULL, 0, 1000000,
     NULL,
     "new client connections per second from one address (IPv4, IPv6 "
     "/64), a token bucket (0: no limit)"},
    {"accept.addr_burst", KN_CONF_INT, F(accept_addr_burst), 50, NULL, 1,
     100000000, NULL, "its bucket size"},
    {"accept.node_rate", KN_CONF_INT, F(accept_node_rate), 500, NULL, 0,
     10000000, NULL,
     "new client connections per second on the node (0: no "
     "limit)"},
    {"accept.node_burst", KN_CONF_INT, F(accept_node_burst), 2000, NULL, 1,
     100000000, NULL, "its bucket size"},
    {"accept.addr_unauth", KN_CONF_INT, F(accept_addr_unauth), 100, NULL, 0,
     16 * 1024 * 1024, NULL,
     "unauthenticated connections one address may hold at once (0: no "
     "limit)"},
    {"accept.node_unauth", KN_CONF_INT, F(accept_node_unauth), 5000, NULL, 0,
     16 * 1024 * 1024, NULL,
     "unauthenticated connections the node holds at once (0: no limit)"},
    {"preauth.header_timeout", KN_CONF_INT, F(preauth_header_timeout), 10, NULL,
     0, 3600, NULL,
     "seconds for a stream header (or an HTTP request) to arrive complete "
     "after accept, STARTTLS or SASL success (0: no limit)"},
    {"preauth.tls_timeout", KN_CONF_INT, F(preauth_tls_timeout), 10, NULL, 0,
     3600, NULL, "seconds for a TLS handshake to finish (0: no limit)"},
    {"preauth.auth_timeout", KN_CONF_INT, F(preauth_auth_timeout), 60, NULL, 0,
     86400, NULL, "seconds from accept until SASL succeeded (0: no limit)"},
    {"max_connections", KN_CONF_INT, F(max_connections), 10000, NULL, 1,
     16 * 1024 * 1024 - 1, NULL, "client connections per node"},
    {"auth_fail_delay_ms", KN_CONF_INT, F(auth_fail_delay_ms), 500, NULL, 0,
     60000, NULL, "delay before the first SASL failure from one address"},
    {"auth_fail_delay_max_ms", KN_CONF_INT, F(auth_fail_delay_max_ms), 8000,
     NULL, 0, 600000, NULL, "cap of the delay, which doubles per failure"},
    {"auth_lockout_window", KN_CONF_INT, F(auth_lockout_window), 300, NULL, 0,
     86400, NULL,
     "seconds in which auth_lockout_*_failures SASL failures lock an "
     "account or address out, and how long the lock-out lasts (0: none)"},
    {"auth_lockout_user_failures", KN_CONF_INT, F(auth_lockout_user_failures),
     10, NULL, 0, 1000000, NULL,
     "SASL failures of one account, from anywhere in the cluster, that lock "
     "it out for auth_lockout_window (0: no per-account lock-out)"},
    {"auth_lockout_addr_failures", KN_CONF_INT, F(auth_lockout_addr_failures),
     30, NULL, 0, 1000000, NULL,
     "SASL failures from one address (IPv4, IPv6 /64), any account, that "
     "lock it out for auth_lockout_window (0: no per-address lock-out)"},
    {"max_sessions", KN_CONF_INT, F(max_sessions), 10, NULL, 0, 100000, NULL,
     "resources one account may have bound at once, cluster-wide; a bind "
     "beyond it gets <resource-constraint/> (0: no limit)"},
    {"out_buffer_max", KN_CONF_INT, F(out_buffer_max), 1024 * 1024, NULL, 65536,
     1LL << 32, NULL, "output a client has not read before it is disconnected"},
    {"idle_timeout", KN_CONF_INT, F(idle_timeout), 360, NULL, -1, 86400, NULL,
     "seconds without traffic before a session is closed (-1: never)"},
    {"malloc_trim", KN_CONF_BOOL, F(malloc_trim), 0, NULL, 0, 1, NULL,
     "give freed heap pages back to the kernel (glibc malloc_trim) after an "
     "idle sweep parked sessions, at most once a minute: lower RSS after a "
     "login burst, but the loop stalls for it (about 100 ms per 2,000 "
     "sessions' heap)"},
    {"idle_ping", KN_CONF_BOOL, F(idle_ping), 1, NULL, 0, 1, NULL,
     "ping a silent bound client after idle_timeout / 2"},
    {"blocklist_wait_ms", KN_CONF_INT, F(blocklist_wait_ms), 3000, NULL, 50,
     600000, NULL,
     "how long a new session waits for its XEP-0191 block list from "
     "presenced before reading it from PostgreSQL"},
    {"plain_cache_size", KN_CONF_INT, F(plain_cache_size), 100000, NULL, 0,
     100000000, NULL,
     "users whose verified SASL PLAIN password this node remembers as a "
     "keyed hash, so their next PLAIN login skips PBKDF2 (0: off)"},
    {"creds_cache_ttl", KN_CONF_INT, F(creds_cache_ttl), 300, NULL, 0, 86400,
     NULL,
     "seconds a users row's credentials stay cached in Redis for logins "
     "(0: every login reads PostgreSQL)"},
    {"registration", KN_CONF_BOOL, F(registration), 0, NULL, 0, 1, NULL,
     "let anyone create an account in-band before logging in (XEP-0077)"},
    {"registration_per_hour", KN_CONF_INT, F(registration_per_hour), 5, NULL, 1,
     1000000, NULL,
     "accounts one address (IPv4, IPv6 /64) may create in an hour"},
    {"csi_max_stanzas", KN_CONF_INT, F(csi_max_stanzas), 1000, NULL, 0, 1000000,
     NULL,
     "XEP-0352: presences and chat states held for an inactive client "
     "before a flush (0: CSI not offered)"},
    {"csi_max_bytes", KN_CONF_INT, F(csi_max_bytes), 256 * 1024, NULL, 4096,
     1LL << 30, NULL,
     "XEP-0352: bytes held for an inactive client before a flush (at most "
     "half of out_buffer_max is used)"},
    {"bind", KN_CONF_STR, F(bind), 0, "127.0.0.1", 0, 0, NULL,
     "address the listeners bind (numeric IPv4 or IPv6)"},
    {"starttls_port", KN_CONF_INT, F(starttls_port), 5222, NULL, 0, 65535, NULL,
     "port for STARTTLS streams (0: none)"},
    {"tls_port", KN_CONF_INT, F(tls_port), 5223, NULL, 0, 65535, NULL,
     "port for direct TLS streams, XEP-0368 (0: none)"},
    {"http_port", KN_CONF_INT, F(http_port), 0, NULL, 0, 65535, NULL,
     "plain HTTP port: WebSocket, BOSH, host-meta, /chat/ (0: none)"},
    {"https_port", KN_CONF_INT, F(https_port), 0, NULL, 0, 65535, NULL,
     "HTTPS port (WSS), with tls.cert (0: none)"},
    {"http_max_header", KN_CONF_INT, F(http_max_header), 8192, NULL, 1024,
     1024 * 1024, NULL, "bytes of an HTTP request line and headers"},
    {"http_max_body", KN_CONF_INT, F(http_max_body), 0, NULL, 0,
     64 * 1024 * 1024, NULL,
     "bytes of an HTTP request body (0: max_stanza_bytes + 4096)"},
    {"http_idle_s", KN_CONF_INT, F(http_idle_s), 30, NULL, 1, 3600, NULL,
     "seconds an HTTP connection may wait for (the rest of) a request"},
    {"http_plain_auth", KN_CONF_BOOL, F(http_plain_auth), 0, NULL, 0, 1, NULL,
     "offer SASL on plain-HTTP WebSocket from non-loopback peers (a "
     "TLS-terminating proxy on another host)"},
    {"ws_origins", KN_CONF_STR, F(ws_origins), 0, "", 0, 0, NULL,
     "allowed WebSocket/CORS origins, comma separated (empty: same host "
     "only; *: any)"},
    {"ws_url", KN_CONF_STR, F(ws_url), 0, "", 0, 0, NULL,
     "WebSocket URL published by XEP-0156 (empty: from the Host header)"},
    {"bosh_url", KN_CONF_STR, F(bosh_url), 0, "", 0, 0, NULL,
     "BOSH URL published by XEP-0156 (empty: from the Host header)"},
    {"bosh_inactivity", KN_CONF_INT, F(bosh_inactivity), 30, NULL, 2, 3600,
     NULL, "BOSH: seconds with no request held before the session ends"},
    {"bosh_polling", KN_CONF_INT, F(bosh_polling), 5, NULL, 0, 3600, NULL,
     "BOSH: shortest interval between empty polls (announced)"},
    {"bosh_requests", KN_CONF_INT, F(bosh_requests), 2, NULL, 2, 8, NULL,
     "BOSH: most simultaneous requests of a session (hold <= requests - 1)"},
    {"bosh_wait_max", KN_CONF_INT, F(bosh_wait_max), 60, NULL, 1, 3600, NULL,
     "BOSH: longest time a request is held"},
    {"web_root", KN_CONF_STR, F(web_root), 0, "", 0, 0, NULL,
     "directory served under /chat/ (empty: none)"},
    {"component_port", KN_CONF_INT, F(component_port), 0, NULL, 0, 65535, NULL,
     "port for external components, XEP-0114 (0: none); bound on `bind`"},
    {"extdisco.host", KN_CONF_STR, F(extdisco_host), 0, "", 0, 0, NULL,
     "STUN/TURN server announced by XEP-0215 (empty: service-unavailable)"},
    {"extdisco.stun_port", KN_CONF_INT, F(extdisco_stun_port), 3478, NULL, 0,
     65535, NULL, "its STUN port (0: no STUN entry)"},
    {"extdisco.turn_port", KN_CONF_INT, F(extdisco_turn_port), 3478, NULL, 0,
     65535, NULL, "its TURN port (0: no TURN entries)"},
    {"extdisco.secret", KN_CONF_STR, F(extdisco_secret), 0, "", 0, 0, NULL,
     "TURN REST shared secret (coturn static-auth-secret); empty: no TURN"},
    {"extdisco.ttl", KN_CONF_INT, F(extdisco_ttl), 86400, NULL, 60, 31 * 86400,
     NULL, "lifetime of TURN credentials, seconds"},
    {"sm.resume_timeout", KN_CONF_INT, F(sm_resume_timeout), 300, NULL, 0,
     86400, NULL,
     "seconds a dropped XEP-0198 session waits for <resume/> (0: "
     "resumption not offered)"},
    {"sm.max_unacked", KN_CONF_INT, F(sm_max_unacked), 1000, NULL, 10, 100000,
     NULL,
     "stanzas a client may leave unacknowledged before its session ends "
     "(unacked ones are rerouted: offline storage or bounce)"},
    {"sm.request_after", KN_CONF_INT, F(sm_request_after), 5, NULL, 1, 100000,
     NULL, "the server sends <r/> after this many unacked stanzas"},
    {"upload_dir", KN_CONF_STR, F(upload_dir), 0, "", 0, 0, NULL,
     "XEP-0363 file upload: the directory every c2s node shares for the "
     "files (empty: no upload service)"},
    {"upload_secret", KN_CONF_STR, F(upload_secret), 0, "", 0, 0, NULL,
     "key of the HMAC that signs upload URLs (the same on every node, at "
     "least 16 characters)"},
    {"upload_url", KN_CONF_STR, F(upload_url), 0, "", 0, 0, NULL,
     "base of the upload URLs handed out (empty: https://bind:https_port, "
     "else http://bind:http_port of the node)"},
    {"upload_types", KN_CONF_STR, F(upload_types), 0, "", 0, 0, NULL,
     "allowed Content-Types, comma separated, type/* allowed (empty: any)"},
    {"upload_max_bytes", KN_CONF_INT, F(upload_max_bytes), 10 * 1024 * 1024,
     NULL, 1, 1LL << 40, NULL, "largest file one upload slot may carry"},
    {"upload_quota_bytes", KN_CONF_INT, F(upload_quota_bytes),
     100 * 1024 * 1024, NULL, 0, 1LL << 50, NULL,
     "bytes one account may have stored (0: no quota)"},
    {"upload_slot_ttl", KN_CONF_INT, F(upload_slot_ttl), 300, NULL, 1, 86400,
     NULL, "seconds an upload slot's PUT URL stays valid"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

#define CF(x) offsetof(c2s_comp_def_t, x)
static const kn_conf_def_t comp_defs[] = {
    {"domain", KN_CONF_STR, CF(domain), 0, "", 0, 0, NULL,
     "the component's domain (e.g. irc.example.org)"},
    {"secret", KN_CONF_STR, CF(secret), 0, "", 0, 0, NULL,
     "shared secret of the XEP-0114 handshake"},
    {"name", KN_CONF_STR, CF(name), 0, "", 0, 0, NULL,
     "name listed in the server's disco#items"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* The top-level `components` list (XEP-0114). */
static int conf_components(const kn_conf_t *cf, c2s_conf_t *out, char *err,
                           size_t errlen)
{
    int n = kn_conf_list_len(cf, "components", err, errlen);
    if (n <= 0)
        return n;
    out->components = kn_calloc((size_t)n, sizeof(*out->components));
    for (size_t i = 0; i < (size_t)n; i++) {
        c2s_comp_def_t *d = &out->components[i];
        out->ncomponents = i + 1;
        int rc =
            kn_conf_apply_elem(cf, "components", i, comp_defs, d, err, errlen);
        if (rc < 0)
            return rc;
        kn_buf_t p = KN_BUF_INIT;
        if (kn_jid_prepare_str(d->domain, strlen(d->domain), &p) < 0 ||
            strchr(p.data, '@') != NULL || strchr(p.data, '/') != NULL ||
            *d->secret == '\0') {
            kn_buf_free(&p);
            snprintf(err, errlen,
                     "components[%zu]: needs a domain (no @ or /) and a "
                     "secret",
                     i);
            return -KN_EINVAL;
        }
        free(d->domain);
        d->domain = kn_buf_release(&p, NULL);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->components[j].domain, d->domain) == 0) {
                snprintf(err, errlen, "components: %s listed twice", d->domain);
                return -KN_EINVAL;
            }
    }
    return 0;
}

int c2s_conf_load(const kn_conf_t *cf, const char *node, c2s_conf_t *out,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc =
        kn_conf_apply_node(cf, "c2s", node, c2s_conf_defs, out, err, errlen);
    if (rc < 0)
        return rc;
    rc = conf_components(cf, out, err, errlen);
    if (rc < 0)
        return rc;
    if (out->starttls_port == 0 && out->tls_port == 0) {
        snprintf(err, errlen, "c2s: starttls_port and tls_port are both 0");
        return -KN_EINVAL;
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, out->bind, a) != 1 &&
        inet_pton(AF_INET6, out->bind, a) != 1) {
        snprintf(err, errlen, "c2s: bind '%s' is not a numeric address",
                 out->bind);
        return -KN_EINVAL;
    }
    if (*out->upload_dir != '\0' && strlen(out->upload_secret) < 16) {
        snprintf(err, errlen,
                 "c2s: upload_dir is set: upload_secret needs at least 16 "
                 "characters");
        return -KN_EINVAL;
    }
    if (out->http_max_body == 0)
        out->http_max_body = out->max_stanza_bytes + 4096;
    if (out->rate_burst_bytes == 0) {
        long long a2 = 2 * out->rate_bytes_per_s;
        long long b2 = 2 * out->max_stanza_bytes;
        out->rate_burst_bytes = a2 > b2 ? a2 : b2;
    }
    if (out->rate_burst_stanzas == 0) {
        long long r4 = 4 * out->rate_stanzas_per_s;
        out->rate_burst_stanzas = r4 > 100 ? r4 : 100;
    }
    if (out->rate_bytes_per_s > 0 &&
        out->rate_burst_bytes < out->max_stanza_bytes) {
        snprintf(err, errlen,
                 "c2s: rate_burst_bytes (%lld) is below max_stanza_bytes "
                 "(%lld): a largest stanza could never pass",
                 out->rate_burst_bytes, out->max_stanza_bytes);
        return -KN_EINVAL;
    }
    return 0;
}

void c2s_conf_free(c2s_conf_t *c)
{
    for (size_t i = 0; i < c->ncomponents; i++)
        kn_conf_free_fields(comp_defs, &c->components[i]);
    free(c->components);
    c->components = NULL;
    c->ncomponents = 0;
    kn_conf_free_fields(c2s_conf_defs, c);
}
