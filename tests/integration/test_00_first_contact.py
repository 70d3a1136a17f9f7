"""00 first contact: what a newcomer's first commands do (issue 10).

- The build works with Debian 12's older expat (2.5.0-1+deb12u1 has no
  XML_SetReparseDeferralEnabled): deploy/features.sh probes it, and
  common/kn_xml.c builds against a header without the function.
- deploy/deps.sh's feature check passes on this machine.
- `make run` (deploy/dev/run.sh) on a fresh var folder prints no shell
  errors, lists only ports that really listen, and `deploy/dev/stack
  status` reports the stack it started.

The make-run case starts its own private stack (PostgreSQL, Redis and
every Kiln process) in a folder under KILN_VAR, on ports apart from the
test cluster's, and stops it again.
"""

import os
import re
import shutil
import socket
import subprocess

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FEATURES = os.path.join(TOP, "deploy", "features.sh")
STACK = os.path.join(TOP, "deploy", "dev", "stack")
RUN = os.path.join(TOP, "deploy", "dev", "run.sh")


def old_expat_include(tmp_path):
    """An include folder whose expat.h is the installed one without
    XML_SetReparseDeferralEnabled, as in libexpat1-dev 2.5.0-1+deb12u1."""
    inc = tmp_path / "old-expat"
    inc.mkdir()
    text = open("/usr/include/expat.h").read()
    text = re.sub(r"XMLPARSEAPI\(XML_Bool\)\s*XML_SetReparseDeferralEnabled\([^;]*;",
                  "", text)
    assert "XML_SetReparseDeferralEnabled" not in text
    (inc / "expat.h").write_text(text)
    return inc


def test_features_probe_old_expat_builds_kn_xml(tmp_path):
    inc = old_expat_include(tmp_path)
    gen = tmp_path / "gen"
    out = gen / "kn_features.h"
    cc = "gcc -I%s" % inc
    r = subprocess.run([FEATURES, "header", str(out)], env=dict(os.environ, CC=cc),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    header = out.read_text()
    assert "#define KN_HAVE_XML_REPARSE_DEFERRAL" not in header, header
    cflags = subprocess.run(["pkg-config", "--cflags", "expat", "openssl"],
                            capture_output=True, text=True).stdout.split()
    r = subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                        "-Werror", "-I%s" % inc, "-I%s" % gen,
                        "-I%s" % os.path.join(TOP, "common"), *cflags,
                        "-fsyntax-only", os.path.join(TOP, "common", "kn_xml.c")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # And the check that deps.sh runs says what is missing, as optional.
    r = subprocess.run([FEATURES, "check"], env=dict(os.environ, CC=cc),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "libexpat1-dev lacks KN_HAVE_XML_REPARSE_DEFERRAL" in r.stdout


def test_features_check_fails_on_missing_required(tmp_path):
    """A -dev package whose header lacks a function the build needs is
    named for upgrade (here: libpq without pipeline mode)."""
    inc = tmp_path / "old-pq"
    inc.mkdir()
    pq_inc = subprocess.run(["pkg-config", "--variable=includedir", "libpq"],
                            capture_output=True, text=True).stdout.strip()
    text = open(os.path.join(pq_inc, "libpq-fe.h")).read()
    text = re.sub(r"extern int\s+PQenterPipelineMode\([^;]*;", "", text)
    (inc / "libpq-fe.h").write_text(text)
    r = subprocess.run([FEATURES, "check"], env=dict(os.environ, CC="gcc -I%s" % inc),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    assert re.search(r"^upgrade: .*libpq-dev", r.stdout, re.M), r.stdout


def test_features_check_passes_here():
    r = subprocess.run([FEATURES, "check"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stack_default_is_the_make_run_stack():
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env["PATH"] = os.environ["PATH"]
    r = subprocess.run([STACK, "env"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "export KILN_VAR='%s'" % os.path.join(TOP, "var", "dev") in r.stdout


def listening(port):
    s = socket.socket()
    try:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def test_make_run_fresh_var_prints_only_what_runs():
    var = os.path.join(os.environ["KILN_VAR"], "first-contact")
    shutil.rmtree(var, ignore_errors=True)
    off = int(os.environ.get("KILN_PORT_OFFSET", "20000")) + 500
    pg = int(os.environ.get("KILN_PG_PORT", "15433")) + 100
    env = dict(os.environ, KILN_VAR=var, KILN_PORT_OFFSET=str(off),
               KILN_PG_PORT=str(pg))
    build = os.path.dirname(os.environ["KILN_BIN"])
    try:
        r = subprocess.run([RUN, build], env=env, capture_output=True,
                           text=True, timeout=180)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "No such file" not in out, out
        assert "line " not in r.stderr, r.stderr  # bash's own error lines
        node_a = [l for l in r.stdout.splitlines() if "c2s node A" in l]
        assert node_a, out
        a_starttls, a_http = 5222 + off, 5280 + off
        assert listening(a_starttls)
        assert str(a_starttls) in node_a[0]
        # An HTTP port is printed exactly when something listens on it.
        assert (str(a_http) in node_a[0]) == listening(a_http), (node_a, out)
        # Components: printed only when the listener is there.
        comp = 5275 + off
        assert (("components   %d" % comp) in r.stdout) == listening(comp), out

        st = subprocess.run([STACK, "status"], env=env, capture_output=True,
                            text=True, timeout=30)
        assert st.returncode == 0, st.stdout + st.stderr
        assert var in st.stdout
        for line in ("PostgreSQL: running", "Redis: running",
                     "router: running", "c2s-a: running", "c2s-b: running"):
            assert line in st.stdout, st.stdout
    finally:
        subprocess.run([RUN, "--stop", build], env=env, capture_output=True,
                       text=True, timeout=120)
        subprocess.run([STACK, "down", "--purge"], env=env,
                       capture_output=True, text=True, timeout=60)
        shutil.rmtree(var, ignore_errors=True)
