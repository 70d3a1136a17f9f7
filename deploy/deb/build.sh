#!/usr/bin/env bash
# deploy/deb/build.sh - `make deb`: build/kiln_<version>_<arch>.deb with
# dpkg-deb (no debian/ source package: the tree is the source).
#
# 1. A release build in build/deb with Debian's hardening flags
#    (dpkg-buildflags, hardening=+all: PIE, relro, bindnow, fortify).
# 2. `make install DESTDIR=... PREFIX=/usr UNITDIR=/lib/systemd/system`.
# 3. Stripped binaries, docs, copyright, changelog, control (Depends from
#    dpkg-shlibdeps), conffiles, maintainer scripts, lintian overrides.
# Prints the .deb's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${KILN_DEB_VERSION:-0.1.0}
arch=$(dpkg --print-architecture)
out=build/kiln_${version}_${arch}.deb
stage=build/deb/root
bdir=build/deb

export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
ldflags=$(dpkg-buildflags --get LDFLAGS)
make --no-print-directory -j"$(nproc)" BUILD=$bdir CFLAGS="$cflags" \
    LDFLAGS="$ldflags" bins >&2

rm -rf "$stage"
make --no-print-directory BUILD=$bdir DESTDIR="$stage" PREFIX=/usr \
    UNITDIR=/lib/systemd/system install >/dev/null

# Strip like dh_strip (no debug package).
for b in "$stage"/usr/bin/*; do
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$b"
done

man=$stage/usr/share/man/man8
gzip -9n "$man/kiln.8" "$man/kilnctl.8"
for d in c2s router presenced mucd; do
    rm "$man/kiln-$d.8"
    ln -s kiln.8.gz "$man/kiln-$d.8.gz"
done
doc=$stage/usr/share/doc/kiln
gzip -9n "$doc/ARCHITECTURE.md" "$doc/DEPLOY.md" "$doc/SECURITY.md"
cp deploy/deb/copyright "$doc/copyright"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
cat >"$doc/changelog.gz.tmp" <<CL
kiln ($version) unstable; urgency=medium

  * Package built from the Kiln tree by \`make deb\` (deploy/deb/build.sh).

 -- Kiln maintainers <maintainers@kiln.invalid>  $date
CL
gzip -9n -c "$doc/changelog.gz.tmp" >"$doc/changelog.gz"
rm "$doc/changelog.gz.tmp"
install -d "$stage/usr/share/lintian/overrides"
install -m 0644 deploy/deb/lintian-overrides "$stage/usr/share/lintian/overrides/kiln"

# Depends: what the binaries link (dpkg-shlibdeps wants a debian/control).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debian"
printf 'Source: kiln\n\nPackage: kiln\nArchitecture: any\n' >"$tmp/debian/control"
bins=$(realpath "$stage"/usr/bin/*)
shlibs=$(cd "$tmp" && dpkg-shlibdeps -O $bins 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CTL
Package: kiln
Version: $version
Architecture: $arch
Maintainer: Kiln maintainers <maintainers@kiln.invalid>
Installed-Size: $size
Depends: $shlibs, adduser, openssl
Recommends: postgresql, redis-server
Section: net
Priority: optional
Homepage: https://kiln.invalid/
Description: clustered XMPP server
 Kiln is an XMPP server split into processes that scale apart:
 kiln-c2s (client connections; run one or more per host), kiln-router,
 kiln-presenced (rosters, presence, offline storage, PEP) and kiln-mucd
 (group chat), joined by ZeroMQ, with PostgreSQL for durable data and
 Redis for the session cache. Includes kilnctl (schema migrations, users,
 groups) and hardened systemd units.
CTL
echo /etc/kiln/kiln.conf >"$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    sed '/^#DEBHELPER#$/d' "deploy/deb/$s" >"$stage/DEBIAN/$s"
    chmod 0755 "$stage/DEBIAN/$s"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
    sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"
# Only the package's own directories carry modes other than 0755.
find "$stage" -type d -exec chmod 0755 {} +
chmod 0644 "$stage/etc/kiln/kiln.conf"
rm -f "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >&2
echo "$out"
