/*
 * c2s_conf.h - the `c2s` config section (directive table in c2s_conf.c;
 * every key documented in c2s/CONFIG.md). Node entries (`nodes = ( {
 * name = "c2s-a"; ... } )`) override the section's keys for one node.
 */
#ifndef C2S_CONF_H
#define C2S_CONF_H

#include <stddef.h>

#include "kn_config.h"

/* One external component (XEP-0114): an entry of the top-level
 * `components` list. */
typedef struct c2s_comp_def {
    char *domain; /* prepared on load */
    char *secret;
    char *name; /* disco#items name (R-GW-2) */
} c2s_comp_def_t;

typedef struct c2s_conf {
    char *tls_cert;
    char *tls_key;
    int tls_own_records; /* tls.own_record_layer (c2s_tls.h) */
    char *tls_ciphers;   /* "" for these four: c2s_tls.h's defaults */
    char *tls_ciphersuites;
    char *tls_groups;
    char *tls_min_version;
    long long max_stanza_bytes;
    long long max_depth;
    long long max_attrs;
    long long rate_bytes_per_s; /* 0: off */
    long long rate_burst_bytes;
    long long rate_stanzas_per_s; /* 0: off */
    long long rate_burst_stanzas;
    long long rate_close_after; /* s over the rate, then policy-violation */
    long long comp_rate_bytes_per_s;   /* components (XEP-0114); 0: off */
    long long comp_rate_stanzas_per_s; /* 0: off */
    /* connection floods (c2s_flood.h); 0: off */
    long long accept_addr_rate;
    long long accept_addr_burst;
    long long accept_node_rate;
    long long accept_node_burst;
    long long accept_addr_unauth;
    long long accept_node_unauth;
    /* pre-auth deadlines, seconds (0: off) */
    long long preauth_header_timeout;
    long long preauth_tls_timeout;
    long long preauth_auth_timeout;
    long long max_connections;
    long long auth_fail_delay_ms;
    long long auth_fail_delay_max_ms;
    long long auth_lockout_window;        /* seconds; 0: no lock-out */
    long long auth_lockout_user_failures; /* per account; 0: none */
    long long auth_lockout_addr_failures; /* per address; 0: none */
    long long max_sessions;               /* per account, cluster-wide */
    long long out_buffer_max;
    long long idle_timeout; /* -1: off (idle policy, R-DROP-4: c2s_idle.c) */
    int idle_ping;          /* ping a silent bound session at idle/2 */
    int malloc_trim;        /* malloc_trim(0) after a sweep parked */
    long long blocklist_wait_ms; /* then c2s reads the block list itself */
    long long plain_cache_size;  /* verified PLAIN passwords kept (0: off) */
    long long creds_cache_ttl;   /* users rows cached in Redis, s (0: off) */
    int registration;            /* XEP-0077 new accounts in-band */
    long long registration_per_hour; /* accounts one address may create */
    long long csi_max_stanzas; /* XEP-0352 held per session (0: CSI off) */
    long long csi_max_bytes;   /* XEP-0352 held bytes per session */
    char *bind;
    long long starttls_port; /* 0: no listener */
    long long tls_port;
    long long http_port;  /* HTTP: WebSocket, host-meta, /chat/ (c2s_http.c) */
    long long https_port; /* the same over TLS */
    long long http_max_header;
    long long http_max_body;
    long long http_idle_s;
    int http_plain_auth; /* SASL on plain HTTP from non-loopback peers */
    char *ws_origins;    /* comma separated; "": same host; "*": any */
    char *ws_url;        /* XEP-0156 links ("": from the Host header) */
    char *bosh_url;
    char *web_root;            /* served under /chat/ ("": none) */
    long long bosh_inactivity; /* BOSH, XEP-0124 (c2s_bosh.c) */
    long long bosh_polling;
    long long bosh_requests;
    long long bosh_wait_max;
    long long component_port;   /* XEP-0114 listener, 0: none */
    c2s_comp_def_t *components; /* the top-level `components` list */
    size_t ncomponents;
    /* XEP-0215 (c2s_extdisco.c): STUN/TURN host, ports, shared secret */
    char *extdisco_host;
    long long extdisco_stun_port;
    long long extdisco_turn_port;
    char *extdisco_secret;
    long long extdisco_ttl;
    long long sm_resume_timeout; /* XEP-0198 (c2s_sm.c); 0: no resumption */
    long long sm_max_unacked;
    long long sm_request_after;
    char *upload_dir; /* XEP-0363 (c2s_upload.c); "": no upload service */
    char *upload_secret;
    char *upload_url; /* "": http(s)://bind:port of the node */
    char *upload_types;
    long long upload_max_bytes;
    long long upload_quota_bytes;
    long long upload_slot_ttl;
} c2s_conf_t;

extern const kn_conf_def_t c2s_conf_defs[];

/* Fill *out from the c2s section and node's entry, then check what the
 * table cannot (a port to listen on, the bind address, burst >= max
 * stanza). Returns 0 or -KN_EINVAL/-KN_ENOENT with a message in err. */
int c2s_conf_load(const kn_conf_t *cf, const char *node, c2s_conf_t *out,
                  char *err, size_t errlen);
void c2s_conf_free(c2s_conf_t *c);

#endif
