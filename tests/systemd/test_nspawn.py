"""Kiln under a real systemd: Debian 12 booted with systemd-nspawn.

`make systemd-test` (deploy/systemd-test/run.sh) builds the package and
the cached tree (var/systemd-root, debootstrap once per machine), then runs
this file as root. The container boots with a throw-away overlay
(--volatile=overlay: the cache stays pristine) and shares the host's
network, so the clients here on the host reach its c2s nodes on
127.0.0.1 (ports from KILN_PORT_OFFSET + 700); its PostgreSQL and Redis
listen on Unix sockets only.

In order: the package installs (kiln user, certificate, units), a
single-host cluster (router, presenced, mucd, c2s-a, c2s-b) starts from the
units, two users log in with slixmpp and talk, `systemctl kill -s KILL`
on c2s-a is followed by systemd's restart, a SIGSTOPped daemon is
restarted by the watchdog, `systemctl reload` changes the log level with
sessions up, and `systemctl stop` ends everything cleanly.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import xmpp_client as xc  # noqa: E402

ROOT = os.environ.get("KILN_SYSTEMD_ROOT", os.path.join(TOP, "var", "systemd-root"))
DEB = os.environ.get("KILN_DEB") or sorted(glob.glob(os.path.join(TOP, "build", "kiln_*.deb")))[-1]
OFF = int(os.environ.get("KILN_PORT_OFFSET", "20000")) + 700
PORTS = {"router": OFF + 5270,
         "c2s-a": (OFF + 5222, OFF + 5223, OFF + 5280),
         "c2s-b": (OFF + 5232, OFF + 5233, OFF + 5290)}
DAEMONS = ["kiln-router", "kiln-presenced", "kiln-mucd",
           "kiln-c2s@c2s-a", "kiln-c2s@c2s-b"]

CONF = """domain = "localhost";
log_level = "%(level)s";
db = { conninfo = "host=/run/postgresql dbname=kiln"; pool_min = 1; pool_max = 4; };
redis = { address = "unix:/run/redis/redis-server.sock"; };
router = {
  endpoint = "tcp://127.0.0.1:%(router)d";
  bind = "tcp://127.0.0.1:%(router)d";
  heartbeat_ms = 1000;
  node_timeout_ms = 5000;
};
c2s = {
  tls = { cert = "/etc/kiln/tls/kiln.pem"; key = "/etc/kiln/tls/kiln.key"; };
  nodes = (
    { name = "c2s-a"; starttls_port = %(a0)d; tls_port = %(a1)d; http_port = %(a2)d; },
    { name = "c2s-b"; starttls_port = %(b0)d; tls_port = %(b1)d; http_port = %(b2)d; }
  );
};
"""


def conf_text(level):
    a, b = PORTS["c2s-a"], PORTS["c2s-b"]
    return CONF % {"level": level, "router": PORTS["router"], "a0": a[0],
                   "a1": a[1], "a2": a[2], "b0": b[0], "b1": b[1], "b2": b[2]}


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out (%ss) waiting for %s" % (timeout, what))


class Container:
    def __init__(self):
        self.name = "kiln-test-%d" % os.getpid()
        self.log = open(os.path.join(TOP, "var", "nspawn.log"), "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", ROOT, "--volatile=overlay", "--boot",
             "--register=no", "--keep-unit", "--machine=" + self.name,
             "--console=passive",
             "--bind-ro=%s:/mnt/kiln" % os.path.dirname(os.path.abspath(DEB))],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = wait_for(self._init_pid, 30, "the container's PID 1")

    def _init_pid(self):
        if self.nspawn.poll() is not None:
            raise AssertionError("systemd-nspawn exited: see var/nspawn.log")
        # nspawn's first child is a helper; then the container's systemd.
        r = subprocess.run(["ps", "--ppid", str(self.nspawn.pid), "-o",
                            "pid=,comm="], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            pid, comm = line.split(None, 1)
            if comm.strip() == "systemd":
                return int(pid)
        return None

    def sh(self, cmd, check=True, timeout=120):
        # A clean environment: nothing of the host's (KILN_CONF...) inside.
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "env", "-i",
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                            "sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, "%s: rc %d\n%s%s" % (cmd, r.returncode,
                                                          r.stdout, r.stderr)
        return r

    def show(self, unit, prop):
        return self.sh("systemctl show -p %s --value %s" % (prop, unit)).stdout.strip()

    def path(self, p):
        return "/proc/%d/root%s" % (self.pid, p)

    def poweroff(self):
        if self.nspawn.poll() is None:
            self.sh("systemctl poweroff", check=False)
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                self.nspawn.send_signal(signal.SIGKILL)
                self.nspawn.wait()
        self.log.close()


@pytest.fixture(scope="module")
def box():
    assert os.geteuid() == 0, "systemd-nspawn needs root"
    c = Container()
    try:
        # Until its manager socket exists, systemctl cannot connect.
        wait_for(lambda: c.sh("systemctl is-system-running", check=False)
                 .stdout.strip(), 60, "systemd's manager socket")
        r = c.sh("systemctl is-system-running --wait", check=False, timeout=120)
        assert r.stdout.strip() == "running", (
            r.stdout + c.sh("systemctl --failed --no-pager", check=False).stdout)
        yield c
    finally:
        c.poweroff()


def test_install_package(box, tmp_path):
    box.sh("dpkg -i /mnt/kiln/%s" % os.path.basename(DEB))
    pw = box.sh("getent passwd kiln").stdout.split(":")
    assert int(pw[2]) < 1000 and pw[5] == "/var/lib/kiln", pw
    assert pw[6].strip() in ("/usr/sbin/nologin", "/bin/false"), pw
    assert box.sh("stat -c %U:%G:%a /etc/kiln/kiln.conf").stdout.strip() == "root:kiln:640"
    assert box.sh("stat -c %U:%G:%a /etc/kiln/tls/kiln.key").stdout.strip() == "root:kiln:640"
    for u in ("kiln-router", "kiln-presenced", "kiln-mucd", "kiln-c2s@"):
        assert "WatchdogSec=" in box.sh("systemctl cat %s.service" % u).stdout
    # The shipped config passes every binary's check as the kiln user.
    for b in ("kiln-router", "kiln-presenced", "kiln-mucd", "kilnctl"):
        box.sh("runuser -u kiln -- %s --check-config" % b)
    box.sh("runuser -u kiln -- kiln-c2s --check-config --node c2s-a")


def test_database_and_config(box):
    box.sh("runuser -u postgres -- createuser kiln")
    box.sh("runuser -u postgres -- createdb -O kiln kiln")
    # kilnctl finds the installed sql/ (cwd / has none).
    out = box.sh("cd / && runuser -u kiln -- kilnctl db migrate").stdout
    assert box.sh("runuser -u kiln -- psql -tAc 'select count(*) from users' kiln").stdout.strip() == "0", out
    with open(box.path("/etc/kiln/kiln.conf"), "w") as f:
        f.write(conf_text("info"))
    for u, p in (("alice", "wonderland"), ("bob", "builder")):
        box.sh("runuser -u kiln -- kilnctl user add %s %s" % (u, p))
    shutil.copy(box.path("/etc/kiln/tls/kiln.pem"), os.path.join(TOP, "var", "nspawn-ca.pem"))


def test_units_start(box):
    box.sh("systemctl enable --now " + " ".join(d + ".service" for d in DAEMONS))
    for d in DAEMONS:
        assert box.show(d, "ActiveState") == "active", d
        assert box.show(d, "Type") == "notify"
        assert box.show(d, "WatchdogUSec") == "10s"


class Cl:
    domain = "localhost"
    cert = os.path.join(TOP, "var", "nspawn-ca.pem")
    ports = {n: {"starttls": PORTS[n][0]} for n in ("c2s-a", "c2s-b")}


async def chat(sender, receiver, body):
    sender.send_message(mto=receiver.boundjid.full, mbody=body, mtype="chat")
    got = await receiver.next_message(timeout=10, body_only=True)
    assert got == body


def test_login_kill_restart_reload_stop(box):
    async def scenario():
        alice = await xc.login(Cl, "alice", "wonderland", node="c2s-a")
        bob = await xc.login(Cl, "bob", "builder", node="c2s-b")
        await chat(alice, bob, "hello from c2s-a")

        # kill -9 of c2s-a: systemd restarts it (Restart=on-failure).
        pid0 = box.show("kiln-c2s@c2s-a", "MainPID")
        box.sh("systemctl kill -s KILL kiln-c2s@c2s-a")
        wait_for(lambda: box.show("kiln-c2s@c2s-a", "MainPID") not in ("0", pid0)
                 and box.show("kiln-c2s@c2s-a", "ActiveState") == "active",
                 30, "systemd to restart kiln-c2s@c2s-a")
        assert int(box.show("kiln-c2s@c2s-a", "NRestarts")) >= 1
        await alice.stop()
        alice = await xc.login(Cl, "alice", "wonderland", node="c2s-a")
        await chat(alice, bob, "back after the restart")

        # reload with sessions up: the new log level is in effect, the
        # process and bob's session are the same.
        pid_b = box.show("kiln-c2s@c2s-b", "MainPID")
        with open(box.path("/etc/kiln/kiln.conf"), "w") as f:
            f.write(conf_text("debug"))
        box.sh("systemctl reload kiln-c2s@c2s-b kiln-router kiln-presenced kiln-mucd")
        for d in DAEMONS[:3] + ["kiln-c2s@c2s-b"]:
            wait_for(lambda: "reloaded: log_level debug" in box.sh(
                "journalctl -q -o cat -u %s" % d).stdout, 10, d + " reload")
        assert box.show("kiln-c2s@c2s-b", "MainPID") == pid_b
        await chat(alice, bob, "still here after the reload")
        assert not bob.stream_errors
        await alice.stop()
        await bob.stop()

    xc.run(scenario(), timeout=120)

    # A blocked loop stops the WATCHDOG=1 pings: systemd aborts and
    # restarts the daemon (short watchdog in a drop-in to keep this quick).
    box.sh("mkdir -p /run/systemd/system/kiln-mucd.service.d && printf "
           "'[Service]\\nWatchdogSec=2s\\nTimeoutAbortSec=2s\\n' > "
           "/run/systemd/system/kiln-mucd.service.d/wd.conf && "
           "systemctl daemon-reload && systemctl restart kiln-mucd")
    pid0 = box.show("kiln-mucd", "MainPID")
    n0 = int(box.show("kiln-mucd", "NRestarts"))
    box.sh("kill -STOP %s" % pid0)
    wait_for(lambda: box.show("kiln-mucd", "MainPID") not in ("0", pid0)
             and box.show("kiln-mucd", "ActiveState") == "active",
             30, "the watchdog restart of kiln-mucd")
    assert int(box.show("kiln-mucd", "NRestarts")) == n0 + 1
    j = box.sh("journalctl -q -o cat -u kiln-mucd").stdout
    assert "Watchdog timeout" in j, j[-2000:]

    # Stop everything: clean exits (SIGTERM handled), nothing failed.
    box.sh("systemctl stop " + " ".join(d + ".service" for d in reversed(DAEMONS)))
    for d in DAEMONS:
        assert box.show(d, "ActiveState") == "inactive", d
        assert box.show(d, "Result") == "success", d
    assert "signal 15: stopping" in box.sh("journalctl -q -o cat -u kiln-c2s@c2s-b").stdout
