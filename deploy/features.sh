#!/usr/bin/env bash
# deploy/features.sh - probe what the installed -dev packages provide.
#
#   features.sh check        probe every feature the build uses; print one
#                            line per missing one; exit 1 when a required
#                            feature is missing (the packages to upgrade
#                            are listed on the last line, "upgrade: ...")
#   features.sh header OUT   write OUT (a C header) with a KN_HAVE_* macro
#                            for each optional feature present; OUT is only
#                            rewritten when its text changes, so make
#                            rebuilds only what depends on it
#
# Probes compile and link a few lines against the package, as autoconf
# would: features, not version strings (Debian backports security fixes
# into old upstream versions, so a version number says little). Debian 12
# shipped libexpat1-dev 2.5.0-1+deb12u1 without XML_SetReparseDeferralEnabled
# (later updates of the same 2.5.0 added it): that is why the check exists.
set -uo pipefail

CC=${CC:-gcc}

# package | pkg-config module (- for none) | extra libs | need | macro | headers | body
# need: required (the build cannot work without it) or optional (the code
# has a fallback; the macro tells it the feature is there).
FEATURES=$(
    cat <<'EOF'
libexpat1-dev|expat||required|-|expat.h|XML_Parser p = XML_ParserCreate_MM("UTF-8", 0, 0); XML_SetReturnNSTriplet(p, XML_TRUE); XML_StopParser(p, XML_TRUE); XML_ParserFree(p);
libexpat1-dev|expat||optional|KN_HAVE_XML_REPARSE_DEFERRAL|expat.h|XML_Parser p = XML_ParserCreate(0); XML_SetReparseDeferralEnabled(p, XML_FALSE); XML_ParserFree(p);
libpq-dev|libpq||required|-|libpq-fe.h|PGconn *c = 0; PQenterPipelineMode(c); PQpipelineSync(c); PQsendQueryPrepared(c, "", 0, 0, 0, 0, 0);
libssl-dev|openssl||required|-|openssl/ssl.h openssl/evp.h openssl/hmac.h|EVP_MD_fetch(0, "SHA256", 0); SSL_CTX_set_num_tickets(0, 0); SSL_get_finished(0, 0, 0); PKCS5_PBKDF2_HMAC(0, 0, 0, 0, 0, EVP_sha256(), 0, 0);
libhiredis-dev|hiredis|-lev|required|-|hiredis/hiredis.h hiredis/async.h hiredis/adapters/libev.h|redisAsyncContext *c = redisAsyncConnectUnix("x"); redisLibevAttach(EV_DEFAULT, c); redisAsyncSetConnectCallback(c, 0);
libzmq3-dev|libzmq||required|-|zmq.h|void *x = zmq_ctx_new(); int one = 1; zmq_setsockopt(x, ZMQ_ROUTER_MANDATORY, &one, sizeof one); zmq_msg_t m; zmq_msg_init(&m);
libconfig-dev|libconfig||required|-|libconfig.h|config_t c; long long v; config_init(&c); config_lookup_int64(&c, "x", &v); config_set_options(&c, CONFIG_OPTION_AUTOCONVERT);
libidn-dev|libidn||required|-|stringprep.h|char b[8] = "a"; stringprep_xmpp_nodeprep(b, sizeof b); stringprep_nameprep(b, sizeof b);
libsystemd-dev|libsystemd||required|-|systemd/sd-daemon.h|sd_notify(0, "READY=1"); sd_watchdog_enabled(0, 0);
libev-dev|-|-lev|required|-|ev.h|struct ev_loop *l = ev_default_loop(0); ev_prepare w; ev_prepare_init(&w, 0); ev_prepare_start(l, &w); ev_now_update(l);
check|check||required|-|stdint.h check.h|SRunner *r = srunner_create(suite_create("x")); srunner_set_fork_status(r, CK_NOFORK); srunner_free(r);
libhttp-parser-dev|-|-lhttp_parser|required|-|http_parser.h|http_parser p; http_parser_settings s; http_parser_settings_init(&s); http_parser_init(&p, HTTP_REQUEST); http_parser_execute(&p, &s, "", 0); http_parser_pause(&p, 1); struct http_parser_url u; http_parser_url_init(&u);
libwslay-dev|-|-lwslay|required|-|stddef.h sys/types.h stdint.h wslay/wslay.h|wslay_event_context_ptr c; struct wslay_event_callbacks cb = {0}; wslay_event_context_server_init(&c, &cb, 0); wslay_event_config_set_max_recv_msg_length(c, 1); wslay_event_get_close_received(c); wslay_event_context_free(c);
uthash-dev|-||required|-|uthash.h|struct h { int k; UT_hash_handle hh; } *t = 0, *f = 0; int k = 1; HASH_FIND_INT(t, &k, f); (void)f;
EOF
)

probe() { # module extra headers body
    local mod=$1 extra=$2 headers=$3 body=$4 flags="" src h
    if [ "$mod" != - ]; then
        flags=$(pkg-config --cflags --libs "$mod" 2>/dev/null) || return 1
    fi
    src=""
    for h in $headers; do src+="#include <$h>"$'\n'; done
    src+="int main(void) { $body return 0; }"
    # -Werror=implicit-function-declaration: an old header without the
    # function must fail here, not warn and link against nothing.
    printf '%s\n' "$src" | $CC -x c - -o /dev/null \
        -Werror=implicit-function-declaration $flags $extra >"${KN_FEATURES_LOG:-/dev/null}" 2>&1
}

cmd=${1:-check}
case $cmd in
check)
    upgrade=() rc=0
    while IFS='|' read -r pkg mod extra need macro headers body; do
        [ -n "$pkg" ] || continue
        if probe "$mod" "$extra" "$headers" "$body"; then
            continue
        fi
        if [ "$need" = required ]; then
            echo "features: $pkg does not provide what the build needs: $body"
            [[ " ${upgrade[*]} " == *" $pkg "* ]] || upgrade+=("$pkg")
            rc=1
        else
            echo "features: $pkg lacks $macro (optional: built without it)"
        fi
    done <<<"$FEATURES"
    [ $rc = 0 ] || echo "upgrade: ${upgrade[*]}"
    exit $rc
    ;;
header)
    out=${2:?usage: features.sh header OUT}
    text="/* Generated by deploy/features.sh: optional features of the installed
 * -dev packages. KN_FEATURES_NONE turns them all off (make test compiles
 * the fallbacks that way too, whatever this machine has). */
#ifndef KN_FEATURES_H
#define KN_FEATURES_H
#ifndef KN_FEATURES_NONE"
    while IFS='|' read -r pkg mod extra need macro headers body; do
        [ "$need" = optional ] || continue
        if probe "$mod" "$extra" "$headers" "$body"; then
            text+=$'\n'"#define $macro 1"
        else
            text+=$'\n'"/* $macro: not provided by the installed $pkg */"
        fi
    done <<<"$FEATURES"
    text+=$'\n#endif\n#endif'
    mkdir -p "$(dirname "$out")"
    if [ ! -f "$out" ] || [ "$(cat "$out")" != "$text" ]; then
        printf '%s\n' "$text" >"$out"
    fi
    ;;
*)
    echo "usage: features.sh check | header OUT" >&2
    exit 2
    ;;
esac
