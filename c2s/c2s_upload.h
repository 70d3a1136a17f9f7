/*
 * c2s_upload.h - XEP-0363 HTTP file upload, answered by every c2s node.
 *
 * The service `upload.<domain>` is answered by the c2s node of the
 * requesting client (its IQs never reach the router), so the HMAC secret
 * and the limits stay in one config section. Each node registers the
 * domain with the router so the server's disco#items lists it.
 *
 * Storage: one directory that every c2s host shares (c2s.upload_dir; a
 * local directory when the nodes share a host, NFS or the like across
 * hosts). Layout: <dir>/<owner>/<token> the file, <token>.type its
 * Content-Type, .<token>.part while it arrives; <owner> is a keyed hash
 * of the uploader's bare JID (the quota is the sum of that directory).
 *
 * URLs (base: c2s.upload_url, else derived from the node's HTTP ports):
 *   PUT
 * <base>/upload/<owner>/<token>/<name>?e=<expiry>&n=<size>&t=<type>&s=<hmac>
 *   GET <base>/upload/<owner>/<token>/<name>?s=<hmac>
 * HMAC-SHA256 with c2s.upload_secret over the method, the path after
 * /upload/ and (PUT) size, type and expiry; hex.
 */
#ifndef C2S_UPLOAD_H
#define C2S_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kn_buf.h"

#define C2S_NS_UPLOAD "urn:xmpp:http:upload:0"

typedef struct c2s_upload_conf {
    const char *service; /* "upload.<domain>"; NULL: no upload service */
    const char *dir;
    const char *secret;
    const char *url;   /* base URL, no trailing slash */
    const char *types; /* "" any, else a comma list (type/star allowed) */
    uint64_t max_bytes;
    uint64_t quota_bytes; /* 0: none */
    long slot_ttl;        /* seconds a PUT URL is valid */
} c2s_upload_conf_t;

typedef struct c2s_upload_req c2s_upload_req_t;

/* ---- pure helpers (unit tested) ---- */

/* HMAC-SHA256 of msg with secret, as 64 hex digits + NUL into out. */
void c2s_upload_hmac(const char *secret, const char *msg, size_t len,
                     char out[65]);
/* A file name safe in a URL path and a header: the last path segment,
 * bytes outside [A-Za-z0-9._-] as '_', no leading dot, at most 100
 * bytes; "file" when nothing is left. */
void c2s_upload_safe_name(const char *name, kn_buf_t *out);
/* Whether a Content-Type is a plain type/subtype token. */
bool c2s_upload_type_ok(const char *t);
/* Whether type t is allowed by list ("" any; "a/b" exact; "a/" and a
 * star: any a/ type). Parameters ignored. */
bool c2s_upload_type_allowed(const char *list, const char *t);
/* A Range header against a file of size bytes. Returns 1 with
 * [*first, *last] for one satisfiable range, 0 to send it all (absent,
 * several ranges or not understood), -1 when unsatisfiable (416). */
int c2s_upload_range(const char *hdr, uint64_t size, uint64_t *first,
                     uint64_t *last);

/* ---- the slot (XMPP side) ---- */

typedef enum {
    C2S_UPLOAD_OK = 0,
    C2S_UPLOAD_BAD_REQUEST,
    C2S_UPLOAD_TOO_LARGE,
    C2S_UPLOAD_TYPE,
    C2S_UPLOAD_QUOTA,
    C2S_UPLOAD_INTERNAL,
} c2s_upload_rc_t;

/* Grant a slot to bare for (name, size, type) at now: the URLs into put
 * and get. Reads the owner's directory for the quota. */
c2s_upload_rc_t c2s_upload_slot(const c2s_upload_conf_t *uc, const char *bare,
                                const char *name, uint64_t size,
                                const char *type, time_t now, kn_buf_t *put,
                                kn_buf_t *get);

/* ---- the HTTP side (called from c2s_http_proto.c) ---- */

struct c2s_http_proto;
/* A PUT's head is complete: path/query are the URL's (path after
 * "/upload/"). Returns 0 (the body goes to c2s_upload_put_body) or an
 * HTTP status with *why. */
int c2s_upload_put_begin(struct c2s_http_proto *h, const char *path,
                         size_t plen, const char *query, size_t qlen,
                         const char **why);
int c2s_upload_put_body(c2s_upload_req_t *r, const char *at, size_t n);
/* The PUT's body is complete: store the file, answer. */
void c2s_upload_put_end(struct c2s_http_proto *h);
/* GET or HEAD of path (after "/upload/"): answer; a body to stream is
 * left in h->up for c2s_upload_pull. */
void c2s_upload_get(struct c2s_http_proto *h, const char *path, size_t plen,
                    const char *query, size_t qlen);
/* Append up to max bytes of the file being sent to out; true when done. */
bool c2s_upload_pull(c2s_upload_req_t *r, kn_buf_t *out, size_t max);
void c2s_upload_req_free(c2s_upload_req_t **r);

#endif
