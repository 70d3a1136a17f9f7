#!/usr/bin/env bash
# deploy/systemd-test/rootfs.sh - build (once) the Debian 12 tree that
# `make systemd-test` boots with systemd-nspawn.
#
#   rootfs.sh DIR    debootstrap into DIR unless DIR/.kiln-rootfs-ok exists
#
# The mirror is the one apt on this host uses (first deb.debian.org-like
# URI in /etc/apt/sources.list*), else $KILN_DEBIAN_MIRROR, else
# http://deb.debian.org/debian. The tree holds systemd, dbus, PostgreSQL,
# Redis and the shared libraries the kiln .deb depends on, so installing
# the package there needs no network. Root only.
set -euo pipefail

dir=${1:?usage: rootfs.sh DIR}

# The container shares the host's network: its PostgreSQL and Redis listen
# on Unix sockets only, so several trees (and the host's own) never clash
# on 5432/6379. Idempotent; applied to a cached tree too.
configure() {
    local d=$1
    echo "listen_addresses = ''" >"$d/etc/postgresql/15/main/conf.d/kiln-test.conf"
    sed -i -e 's/^port 6379$/port 0/' \
        -e 's|^# unixsocket /run/redis/redis-server.sock$|unixsocket /run/redis/redis-server.sock|' \
        -e 's/^# unixsocketperm 700$/unixsocketperm 777/' "$d/etc/redis/redis.conf"
}

inc=systemd,systemd-sysv,dbus,postgresql,redis-server,procps,iproute2
# Runtime libraries of the kiln binaries (what dpkg-shlibdeps finds).
inc=$inc,libev4,libexpat1,libzmq5,libpq5,libhiredis0.14,libssl3,libidn12
inc=$inc,libconfig9,libsystemd0,libhttp-parser2.9,libwslay1
inc=$inc,adduser,ca-certificates,openssl

# The stamp holds the package list: a tree made for another list (a new
# runtime library of the package) is made again.
if [ -f "$dir/.kiln-rootfs-ok" ] && [ "$(cat "$dir/.kiln-rootfs-ok")" = "$inc" ]; then
    configure "$dir"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "rootfs: debootstrap needs root" >&2
    exit 1
fi

mirror=${KILN_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$( (cat /etc/apt/sources.list 2>/dev/null; cat /etc/apt/sources.list.d/* 2>/dev/null) |
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }
             /^deb / { print $2 }' |
        grep -E '/debian/?$' | head -1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rm -rf "$dir.tmp"
mkdir -p "$(dirname "$dir")"
echo "rootfs: debootstrap bookworm from $mirror into $dir (once per machine)"
debootstrap --variant=minbase --include="$inc" bookworm "$dir.tmp" "$mirror"
# A machine id and no getty on the console: nspawn --boot runs quietly.
rm -f "$dir.tmp/etc/machine-id"
systemd-machine-id-setup --root="$dir.tmp" >/dev/null
ln -sf /dev/null "$dir.tmp/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$dir.tmp/etc/systemd/system/getty@tty1.service"
configure "$dir.tmp"
printf '%s' "$inc" >"$dir.tmp/.kiln-rootfs-ok"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "rootfs: ready: $dir"
