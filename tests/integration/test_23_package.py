"""Issue 14, install and package: `make install` and `make deb`.

- make install with PREFIX and DESTDIR: the layout, units pointing at the
  installed binaries, and kilnctl finding the installed sql/ on its own.
- make deb: lintian leaves no tag that is not overridden with a reason
  (deploy/deb/lintian-overrides); the package installs into a fresh root
  (a copy-on-write overlay of this machine's /, chrooted, in a private
  mount namespace: nothing reaches the host) where its postinst creates
  the kiln system user and a certificate, every binary answers
  --check-config on the installed config, kilnctl db migrate finds
  /usr/share/kiln/sql, the units pass `systemd-analyze verify` and score
  under 2.0 in `systemd-analyze security --offline=true`; a purge removes
  what the postinst generated.
"""

import os
import re
import subprocess
import tempfile

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINS = ("kiln-c2s", "kiln-router", "kiln-presenced", "kiln-mucd", "kilnctl")
UNITS = ("kiln-router.service", "kiln-presenced.service", "kiln-mucd.service",
         "kiln-c2s@.service")
SQL = sorted(f for f in os.listdir(os.path.join(TOP, "sql")) if f.endswith(".sql"))
PG_PORT = os.environ["KILN_PG_PORT"]


def run(argv, **kw):
    kw.setdefault("timeout", 600)
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    return r


def psql(db, sql):
    r = run(["psql", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "kiln", "-d", db,
             "-tAc", sql])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def fresh_db():
    """An empty database in the test PostgreSQL (TCP, trust), dropped after."""
    name = "kiln_pkg_%d" % os.getpid()
    psql("postgres", "DROP DATABASE IF EXISTS %s" % name)
    psql("postgres", "CREATE DATABASE %s OWNER kiln" % name)
    yield name
    psql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def migrate_conf(path, db):
    with open(path, "w") as f:
        f.write('db = { conninfo = "host=127.0.0.1 port=%s user=kiln dbname=%s"; };\n'
                % (PG_PORT, db))


@pytest.fixture(scope="module")
def deb():
    r = run([os.path.join(TOP, "deploy", "deb", "build.sh")], cwd=TOP)
    assert r.returncode == 0, r.stderr[-3000:]
    path = os.path.join(TOP, r.stdout.strip().splitlines()[-1])
    assert os.path.isfile(path), r.stdout
    return path


def test_make_install_prefix_destdir(fresh_db):
    with tempfile.TemporaryDirectory(dir=os.path.join(TOP, "var")) as d:
        r = run(["make", "--no-print-directory", "install", "DESTDIR=" + d,
                 "PREFIX=/opt/kiln", "SYSCONFDIR=/opt/kiln/etc"], cwd=TOP)
        assert r.returncode == 0, r.stderr
        root = d + "/opt/kiln"
        for b in BINS:
            assert os.access("%s/bin/%s" % (root, b), os.X_OK), b
        assert sorted(os.listdir(root + "/share/kiln/sql")) == SQL
        for u in UNITS:
            text = open("%s/lib/systemd/system/%s" % (root, u)).read()
            m = re.search(r"^ExecStart=(\S+) -c (\S+)", text, re.M)
            assert m and m.group(1).startswith("/opt/kiln/bin/kiln-"), text
            assert m.group(2) == "/opt/kiln/etc/kiln/kiln.conf"
        conf = root + "/etc/kiln/kiln.conf"
        assert open(conf).read() == open(TOP + "/deploy/kiln.conf.example").read()
        assert os.stat(conf).st_mode & 0o777 == 0o640
        # kilnctl finds <bin>/../share/kiln/sql (no --dir, no $KILN_SQL_DIR,
        # a cwd without sql/).
        migrate_conf(d + "/m.conf", fresh_db)
        env = {k: v for k, v in os.environ.items() if k != "KILN_SQL_DIR"}
        r = run([root + "/bin/kilnctl", "-c", d + "/m.conf", "db", "migrate"],
                cwd="/", env=env)
        assert r.returncode == 0, r.stderr
        applied = psql(fresh_db, "SELECT count(*) FROM schema_migrations")
        assert int(applied) == len(SQL), applied


def test_lintian_clean(deb):
    r = run(["lintian", "-I", deb])
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIX]: ", l)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr
    # What is overridden carries a reason.
    r = run(["lintian", "-I", "--show-overrides", deb])
    assert "O: kiln: package-supports-alternative-init-but-no-init.d-script" in r.stdout
    assert "N: Kiln runs only under systemd" in r.stdout


# Runs in a private mount namespace: a tmpfs holds the upper layer of an
# overlay of /, which becomes the root of a chroot. Root only (CI is root).
FRESH_ROOT = r"""
set -eu
t=$1; deb=$2; script=$3
mount -t tmpfs tmpfs "$t"
mkdir "$t/u" "$t/w" "$t/m"
mount -t overlay overlay -o lowerdir=/,upperdir="$t/u",workdir="$t/w" "$t/m"
mount -t proc proc "$t/m/proc"
mount --rbind /dev "$t/m/dev"
mount -t tmpfs tmpfs "$t/m/run"
cp "$deb" "$t/m/tmp/kiln.deb"
cp "$script" "$t/m/tmp/check.sh"
# A clean environment: no KILN_CONF or KILN_SQL_DIR from the test run.
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$t/m" sh /tmp/check.sh
"""

CHECK = r"""
set -eu
# A root that never saw kiln: no user, no package.
if getent passwd kiln >/dev/null; then userdel kiln; fi
if getent group kiln >/dev/null; then groupdel kiln; fi
dpkg -i /tmp/kiln.deb >/tmp/dpkg.out 2>&1 || { cat /tmp/dpkg.out; exit 1; }
echo "passwd=$(getent passwd kiln)"
echo "group=$(getent group kiln)"
echo "conffiles=$(dpkg-query -W -f='${Conffiles}' kiln | awk '{print $1}' | tr '\n' ' ')"
echo "conf=$(stat -c %U:%G:%a /etc/kiln/kiln.conf)"
echo "key=$(stat -c %U:%G:%a /etc/kiln/tls/kiln.key)"
echo "cert_cn=$(openssl x509 -noout -subject -in /etc/kiln/tls/kiln.pem)"
dpkg -L kiln | sed 's/^/file=/'
for b in kiln-router kiln-presenced kiln-mucd kilnctl; do
    if runuser -u kiln -- $b --check-config >/tmp/cc 2>&1; then
        echo "check $b ok"; else echo "check $b FAILED: $(cat /tmp/cc)"; fi
done
if runuser -u kiln -- kiln-c2s --check-config --node c2s-a >/tmp/cc 2>&1; then
    echo "check kiln-c2s ok"; else echo "check kiln-c2s FAILED: $(cat /tmp/cc)"; fi
cd /
runuser -u kiln -- kilnctl -c /tmp/m.conf db migrate >/tmp/mig 2>&1 && echo "migrate ok" || { echo "migrate FAILED"; cat /tmp/mig; }
cd /lib/systemd/system
cp kiln-c2s@.service /tmp/kiln-c2s@c2s-a.service
if systemd-analyze verify kiln-router.service kiln-presenced.service \
        kiln-mucd.service /tmp/kiln-c2s@c2s-a.service >/tmp/v 2>&1 && [ ! -s /tmp/v ]; then
    echo "verify ok"; else echo "verify FAILED: $(cat /tmp/v)"; fi
for u in kiln-router.service kiln-presenced.service kiln-mucd.service /tmp/kiln-c2s@c2s-a.service; do
    systemd-analyze security --offline=true --no-pager "$u" 2>&1 | tail -n 1 | sed 's/^/security=/'
done
# The postinst again (an upgrade to the same version) changes nothing.
dpkg -i /tmp/kiln.deb >/tmp/dpkg.out 2>&1 || { cat /tmp/dpkg.out; exit 1; }
echo "users_named_kiln=$(getent passwd | grep -c '^kiln:')"
dpkg --purge kiln >/tmp/dpkg.out 2>&1 || { cat /tmp/dpkg.out; exit 1; }
echo "after_purge_key=$(test -e /etc/kiln/tls/kiln.key && echo present || echo gone)"
echo "after_purge_bin=$(test -e /usr/bin/kiln-c2s && echo present || echo gone)"
"""


def test_package_in_fresh_root(deb, fresh_db):
    assert os.geteuid() == 0, "installing into a fresh root needs root (CI is)"
    with tempfile.TemporaryDirectory(dir="/dev/shm") as t, \
            tempfile.TemporaryDirectory(dir=os.path.join(TOP, "var")) as d:
        with open(d + "/check.sh", "w") as f:
            f.write(CHECK)
        migrate_conf(d + "/m.conf", fresh_db)
        with open(d + "/outer.sh", "w") as f:
            f.write(FRESH_ROOT.replace('cp "$script" "$t/m/tmp/check.sh"',
                                       'cp "$script" "$t/m/tmp/check.sh"\n'
                                       'cp "%s/m.conf" "$t/m/tmp/m.conf"\n'
                                       'chmod 0644 "$t/m/tmp/m.conf"' % d))
        r = run(["unshare", "--mount", "--propagation", "private", "sh",
                 d + "/outer.sh", t, deb, d + "/check.sh"])
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    kv = {}
    files = set()
    for line in out.splitlines():
        if line.startswith("file="):
            files.add(line[5:])
        elif "=" in line and not line.startswith("security="):
            k, v = line.split("=", 1)
            kv[k] = v
    # The user: a system account with its own group, no login.
    pw = kv["passwd"].split(":")
    assert pw[0] == "kiln" and int(pw[2]) < 1000, kv["passwd"]
    assert pw[5] == "/var/lib/kiln" and pw[6] == "/usr/sbin/nologin", pw
    assert kv["group"].startswith("kiln:"), kv["group"]
    assert kv["users_named_kiln"] == "1"
    # Layout.
    for b in BINS:
        assert "/usr/bin/" + b in files, b
    for s in SQL:
        assert "/usr/share/kiln/sql/" + s in files, s
    for u in UNITS:
        assert "/lib/systemd/system/" + u in files, u
    for p in ("/etc/kiln/kiln.conf", "/usr/share/doc/kiln/copyright",
              "/usr/share/man/man8/kiln.8.gz", "/usr/share/man/man8/kilnctl.8.gz",
              "/usr/share/man/man8/kiln-c2s.8.gz"):
        assert p in files, p
    assert kv["conffiles"].split() == ["/etc/kiln/kiln.conf"]
    assert kv["conf"] == "root:kiln:640" and kv["key"] == "root:kiln:640"
    assert "CN = localhost" in kv["cert_cn"], kv["cert_cn"]
    # Every binary accepts the installed config.
    for b in BINS:
        assert "check %s ok" % b in out, out
    assert "migrate ok" in out, out
    assert int(psql(fresh_db, "SELECT count(*) FROM schema_migrations")) == len(SQL)
    # Units: systemd-analyze verify is silent; the sandbox scores.
    assert "verify ok" in out, out
    scores = re.findall(r"security=.*exposure level for (\S+): ([\d.]+)", out)
    assert len(scores) == 4, out
    print("systemd-analyze security:", ", ".join("%s %s" % s for s in scores))
    for unit, score in scores:
        assert float(score) < 2.0, (unit, score)
    assert kv["after_purge_key"] == "gone" and kv["after_purge_bin"] == "gone"
