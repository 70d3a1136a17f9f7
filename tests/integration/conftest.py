"""Shared fixtures for Kiln's integration tests.

tests/run-all.sh brings up the private PostgreSQL and Redis and exports
KILN_* variables (see `deploy/dev/stack env`); these fixtures start the
real Kiln processes against them:

- `cluster` (session): kiln-router, kiln-presenced, kiln-mucd and two c2s nodes (c2s-a, c2s-b)
  from $KILN_BIN with the generated $KILN_CONF, each waited for by its
  "ready" log line (never a sleep on a port). Methods: start(name),
  stop(name), kill9(name), restart(name), log(name), wait_log(name,
  text); attributes: domain, ports, conf, cert.
- `make_user(name, password)`: kilnctl user add (unique names are the
  caller's business).
- `redis(*args)`: redis-cli on the private socket, returns stdout.

At the end of the session every process is stopped, and any
AddressSanitizer or UndefinedBehaviorSanitizer report in a log fails the
run, with each report's text in the output. Set KILN_TEST_KEEP=1 to keep
var/test/ (logs included); run-all.sh keeps it anyway when tests failed.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

ENV = ("KILN_CONF", "KILN_BIN", "KILN_VAR", "KILN_REDIS_SOCK", "KILN_PG")
_missing = [v for v in ENV if not os.environ.get(v)]
if _missing:
    raise pytest.UsageError(
        "run the integration tests through `make test` (tests/run-all.sh): "
        "missing " + ", ".join(_missing))

BIN = os.environ["KILN_BIN"]
CONF = os.environ["KILN_CONF"]
VAR = os.environ["KILN_VAR"]
LOGDIR = os.path.join(VAR, "log")

SAN_PATTERNS = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                          r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


# Start order; stopped in reverse.
ORDER = ("router", "presenced", "mucd", "c2s-a", "c2s-b")


class Proc:
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.popen = None
        self.logpath = os.path.join(LOGDIR, name + ".log")
        self.log_offset = 0

    def start(self, timeout=30):
        os.makedirs(LOGDIR, exist_ok=True)
        log = open(self.logpath, "ab")
        self.log_offset = log.tell()
        self.popen = subprocess.Popen(self.argv, stdout=log,
                                      stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        log.close()
        self.wait_log("ready:", timeout=timeout, since_start=True)

    def mark(self):
        """The current end of the log: pass it to wait_log(since=...)."""
        try:
            return os.path.getsize(self.logpath)
        except FileNotFoundError:
            return 0

    def text(self, since_start=False, since=None):
        try:
            with open(self.logpath, "rb") as f:
                if since is not None:
                    f.seek(since)
                elif since_start:
                    f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=30, since_start=True, since=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text(since_start, since):
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError("%s exited (%s) before logging %r:\n%s"
                                     % (self.name, self.popen.returncode,
                                        needle, self.text(True)[-3000:]))
            time.sleep(0.05)
        raise AssertionError("%s did not log %r within %ss:\n%s"
                             % (self.name, needle, timeout,
                                self.text(True)[-3000:]))

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=20):
        if not self.alive():
            return None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError("%s did not stop on SIGTERM" % self.name)

    def kill9(self):
        if self.alive():
            self.popen.kill()
            self.popen.wait()


class Cluster:
    domain = "localhost"

    def __init__(self):
        e = os.environ
        self.conf = CONF
        self.cert = e.get("KILN_TLS_CERT")
        self.ports = {
            "c2s-a": {"starttls": int(e["KILN_C2S_A_STARTTLS"]),
                      "tls": int(e["KILN_C2S_A_TLS"]),
                      "http": int(e["KILN_C2S_A_HTTP"]),
                      "https": int(e.get("KILN_C2S_A_HTTPS", 0))},
            "c2s-b": {"starttls": int(e["KILN_C2S_B_STARTTLS"]),
                      "tls": int(e["KILN_C2S_B_TLS"]),
                      "http": int(e["KILN_C2S_B_HTTP"]),
                      "https": int(e.get("KILN_C2S_B_HTTPS", 0))},
            # c2s-c (idle_timeout = 6) is not in ORDER: tests start it.
            "c2s-c": {"starttls": int(e.get("KILN_C2S_C_STARTTLS", 0)),
                      "tls": int(e.get("KILN_C2S_C_TLS", 0)),
                      "http": int(e.get("KILN_C2S_C_HTTP", 0))},
        }
        self.router_port = int(e["KILN_ROUTER_PORT"])
        self.procs = {
            "router": Proc("router", [os.path.join(BIN, "kiln-router"),
                                      "-c", CONF]),
            "presenced": Proc("presenced", [os.path.join(BIN, "kiln-presenced"),
                                            "-c", CONF]),
            "mucd": Proc("mucd", [os.path.join(BIN, "kiln-mucd"), "-c", CONF]),
            "c2s-a": Proc("c2s-a", [os.path.join(BIN, "kiln-c2s"), "-c", CONF,
                                    "--node", "c2s-a"]),
            "c2s-b": Proc("c2s-b", [os.path.join(BIN, "kiln-c2s"), "-c", CONF,
                                    "--node", "c2s-b"]),
            "c2s-c": Proc("c2s-c", [os.path.join(BIN, "kiln-c2s"), "-c", CONF,
                                    "--node", "c2s-c"]),
        }

    def start(self, name):
        self.procs[name].start()

    def stop(self, name):
        return self.procs[name].stop()

    def kill9(self, name):
        self.procs[name].kill9()

    def restart(self, name):
        self.procs[name].stop()
        self.procs[name].start()

    def log(self, name):
        return self.procs[name].text()

    def log_mark(self, name):
        return self.procs[name].mark()

    def wait_log(self, name, needle, timeout=30, since=None):
        """Wait for needle in name's log, written since the process started
        or, better, since a log_mark() taken before the action."""
        self.procs[name].wait_log(needle, timeout=timeout, since_start=True,
                                  since=since)

    def ensure(self):
        """Start whatever a previous test stopped or killed."""
        for name in ORDER:
            if not self.procs[name].alive():
                self.procs[name].start()

    def sanitizer_reports(self):
        """{process name: [report text, ...]} for every log with a
        sanitizer report (every run of the process: logs are appended)."""
        bad = {}
        for p in self.procs.values():
            reports = sanitizer_blocks(p.text())
            if reports:
                bad[p.name] = reports
        return bad


def sanitizer_blocks(text, max_lines=200):
    """The sanitizer reports in a log: each from its first line (the
    "ERROR: AddressSanitizer/LeakSanitizer" line, or UBSan's "runtime
    error:" line) to its "SUMMARY:" line, at most max_lines lines."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        if not SAN_PATTERNS.search(lines[i]):
            i += 1
            continue
        j = i
        while j < len(lines) and j - i < max_lines:
            if lines[j].startswith("SUMMARY:") or "SUMMARY: " in lines[j]:
                break
            j += 1
        block = lines[i:j + 1]
        if j - i >= max_lines:
            block.append("... (cut at %d lines)" % max_lines)
        out.append("\n".join(block))
        i = j + 1
    return out


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    for name in ORDER:
        if not os.access(c.procs[name].argv[0], os.X_OK):
            pytest.fail("%s is not built" % c.procs[name].argv[0])
    try:
        c.ensure()
        yield c
    finally:
        for name in reversed(ORDER):
            try:
                c.procs[name].stop()
            except AssertionError:
                pass
    bad = c.sanitizer_reports()
    if bad:
        text = "\n\n".join("---- %s (%s):\n%s" % (
            name, c.procs[name].logpath, "\n\n".join(reports))
            for name, reports in bad.items())
        # Printed too: the report must reach the test output even when the
        # logs are gone (run-all.sh keeps var/test after a failed run).
        print("\n==== sanitizer reports\n" + text, file=sys.stderr)
        pytest.fail("sanitizer reports in the logs of: %s (see %s)\n%s" % (
            ", ".join(bad), LOGDIR, text), pytrace=False)


@pytest.fixture
def live(cluster):
    """The cluster with every process running (restarts what a previous
    test killed)."""
    cluster.ensure()
    return cluster


def _kilnctl(*args, stdin=None):
    return subprocess.run([os.path.join(BIN, "kilnctl"), "-c", CONF, *args],
                          input=stdin, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="session")
def make_user():
    made = set()

    def make(name, password):
        if name in made:
            return name
        r = _kilnctl("user", "add", name, password)
        assert r.returncode == 0, r.stderr
        made.add(name)
        return name

    return make


@pytest.fixture(scope="session")
def redis():
    sock = os.environ["KILN_REDIS_SOCK"]

    def run(*args):
        r = subprocess.run(["redis-cli", "-s", sock, *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout

    return run


# KILN_FUZZ_CAPTURE=DIR: record every client's bytes as fuzz seeds
# (tests/fuzz/capture.py, driven by tests/fuzz/make_seeds.py).
if os.environ.get("KILN_FUZZ_CAPTURE"):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fuzz"))
    import capture  # noqa: E402,F401
