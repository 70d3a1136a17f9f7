#!/usr/bin/env bash
# deploy/dev/run.sh BUILD      - what `make run` does after building
# deploy/dev/run.sh --stop BUILD - what `make stop` does
#
# Brings the private stack up (var/), starts every Kiln process that is
# built (router, presenced, mucd, two c2s nodes), creates the demo user
# and prints how to connect. Processes that are not built yet are named as
# such: nothing pretends to run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
stop=0
if [ "${1:-}" = --stop ]; then stop=1; shift; fi
build=$(cd "${1:-build}" && pwd)
export KILN_BIN=$build/bin
export KILN_VAR=${KILN_VAR:-$top/var/dev}
stack=$top/deploy/dev/stack
LOG=$KILN_VAR/log
RUN=$KILN_VAR/run

# name binary node-arg
PROCS=(
    "router kiln-router"
    "presenced kiln-presenced"
    "mucd kiln-mucd"
    "c2s-a kiln-c2s --node c2s-a"
    "c2s-b kiln-c2s --node c2s-b"
)

stop_procs() {
    for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
        set -- ${PROCS[$i]}
        local pidf=$RUN/$1.pid
        if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
            kill "$(cat "$pidf")" && echo "run: stopped $1"
        fi
        rm -f "$pidf"
    done
}

if [ $stop = 1 ]; then
    [ -d "$KILN_VAR" ] && stop_procs
    "$stack" down
    exit 0
fi

"$stack" up
eval "$("$stack" env)"
mkdir -p "$LOG" "$RUN"

missing=()
for p in "${PROCS[@]}"; do
    set -- $p
    name=$1 bin=$2; shift 2
    pidf=$RUN/$name.pid
    if [ ! -x "$KILN_BIN/$bin" ]; then
        missing+=("$name ($bin)")
        continue
    fi
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
        echo "run: $name already running (pid $(cat "$pidf"))"
        continue
    fi
    touch "$LOG/$name.log"
    start_line=$(($(wc -l <"$LOG/$name.log") + 1))
    nohup "$KILN_BIN/$bin" -c "$KILN_CONF" "$@" >>"$LOG/$name.log" 2>&1 &
    pid=$!
    echo $pid >"$pidf"
    # Wait for its "ready:" line rather than guessing with a sleep.
    for _ in $(seq 200); do
        tail -n +"$start_line" "$LOG/$name.log" | grep -q 'ready:' && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    if tail -n +"$start_line" "$LOG/$name.log" | grep -q 'ready:'; then
        echo "run: started $name (pid $pid, log $LOG/$name.log)"
    else
        echo "run: $name did not become ready; last lines of $LOG/$name.log:" >&2
        tail -n 5 "$LOG/$name.log" >&2
        exit 1
    fi
done

users=$("$KILN_BIN/kilnctl" -c "$KILN_CONF" user list 2>/dev/null || true)
if grep -qxE 'demo(@localhost)?' <<<"$users"; then
    echo "run: demo user exists"
else
    "$KILN_BIN/kilnctl" -c "$KILN_CONF" user add demo demo >/dev/null
    echo "run: created user demo@localhost (password: demo)"
fi

# Print only what really listens (ss), so nothing is promised that the
# build does not serve.
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
node_line() { # label starttls tls http https
    local out=""
    listening "$2" && out+="$2 STARTTLS, "
    listening "$3" && out+="$3 direct TLS, "
    listening "$4" && out+="$4 HTTP, "
    listening "${5:-0}" && out+="$5 HTTPS, "
    if [ -n "$out" ]; then
        printf '  %-12s %s\n' "$1" "${out%, }"
    else
        printf '  %-12s %s\n' "$1" "not listening (see $LOG/)"
    fi
}

echo
echo "Kiln dev stack (config: $KILN_CONF; status: deploy/dev/stack status)"
echo "  PostgreSQL   $KILN_PG   (also 127.0.0.1:$KILN_PG_PORT)"
echo "  Redis        $KILN_REDIS_SOCK"
listening "$KILN_ROUTER_PORT" && echo "  router       tcp://127.0.0.1:$KILN_ROUTER_PORT (ZeroMQ)"
node_line "c2s node A" "$KILN_C2S_A_STARTTLS" "$KILN_C2S_A_TLS" "$KILN_C2S_A_HTTP" "${KILN_C2S_A_HTTPS:-}"
node_line "c2s node B" "$KILN_C2S_B_STARTTLS" "$KILN_C2S_B_TLS" "$KILN_C2S_B_HTTP" "${KILN_C2S_B_HTTPS:-}"
for n in A B; do
    hp=KILN_C2S_${n}_HTTP
    listening "${!hp}" || continue
    echo "  web ($n)      ws://localhost:${!hp}/xmpp-websocket  http://localhost:${!hp}/http-bind"
    if [ -f "$KILN_VAR/web/index.html" ]; then
        echo "  web chat ($n) http://localhost:${!hp}/chat/  (log in as demo / demo)"
    fi
done
listening "$KILN_COMPONENT_PORT" && echo "  components   $KILN_COMPONENT_PORT (XEP-0114)"
cat <<EOT
  domain       localhost       MUC service  conference.localhost
  login        demo@localhost / demo  (self-signed certificate: $KILN_TLS_CERT)
  admin        $KILN_BIN/kilnctl -c $KILN_CONF user add NAME PASSWORD
  stop         make stop
EOT
if [ ${#missing[@]} -gt 0 ]; then
    echo
    echo "Not built yet, so not running: ${missing[*]}."
    [ -x "$KILN_BIN/kiln-c2s" ] ||
        echo "Until kiln-c2s is built, nothing listens on the XMPP ports above."
fi
