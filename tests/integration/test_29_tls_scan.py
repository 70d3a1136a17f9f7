"""TLS on the client ports, checked from outside (issue 16, R-BASE-1).

- Debian's testssl.sh scans c2s-a's STARTTLS port (--starttls xmpp) and
  its direct TLS port (XEP-0368) with the narrowest set of checks that
  still answers the questions: protocols (-p), cipher categories (-s),
  forward secrecy (-f), renegotiation (-R), compression/CRIME (-C) and
  every offered cipher (-e; --fast lets the local openssl do that part).
  Asserted from its JSON: no SSLv2/SSLv3/TLS 1.0/TLS 1.1, TLS 1.2 and 1.3
  offered, no NULL/anonymous/export/LOW/3DES/IDEA/AVERAGE (RC4, obsolete
  CBC) cipher, no client-initiated renegotiation and RFC 5746 secure
  renegotiation (so no insecure one), no TLS compression, forward secrecy
  offered and every offered cipher with an (EC)DHE key exchange. The
  JSON is kept in $KILN_VAR/testssl/, the summary lines go to the log.
- tls.ciphers / ciphersuites / groups / min_version: a config offering a
  cipher without forward secrecy, an unknown group or an unknown version
  is refused at --check-config; a SIGHUP with TLS 1.3 only, one suite and
  one group is served to new connections (a TLS 1.2 client and a client
  offering only X25519 are refused) while a session made before keeps
  working; the old config back, TLS 1.2 is accepted again.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import xmpp_client as xc

BIN = os.environ["KILN_BIN"]
VAR = os.environ["KILN_VAR"]
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

# testssl.sh ids that must read "not offered"
NOT_OFFERED = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL",
               "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
               "cipherlist_3DES_IDEA", "cipherlist_AVERAGE")


def run_testssl(live, kind, capsys):
    """Run testssl.sh against c2s-a's kind port; {id: finding}."""
    assert TESTSSL, "testssl.sh is not installed (make deps)"
    port = live.ports["c2s-a"][kind]
    outdir = os.path.join(VAR, "testssl")
    os.makedirs(outdir, exist_ok=True)
    jpath = os.path.join(outdir, "c2s-a-%s.json" % kind)
    if os.path.exists(jpath):
        os.unlink(jpath)
    argv = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off",
            "--fast", "-p", "-s", "-f", "-R", "-C", "-e",
            "--jsonfile", jpath]
    if kind == "starttls":
        argv += ["--starttls", "xmpp", "--xmpphost", live.domain]
    argv.append("127.0.0.1:%d" % port)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       cwd=outdir)
    took = time.monotonic() - t0
    with open(os.path.join(outdir, "c2s-a-%s.txt" % kind), "w") as f:
        f.write(r.stdout + r.stderr)
    assert os.path.exists(jpath), r.stdout[-3000:] + r.stderr[-3000:]
    with open(jpath) as f:
        items = json.load(f)
    found = {}
    for it in items:
        found.setdefault(it["id"], []).append(it["finding"])
    # The summary, in the test log (pytest.log) whether it passes or not.
    with capsys.disabled():
        print("\n---- testssl.sh %s port %d (%.0f s, JSON %s)"
              % (kind, port, took, jpath))
        for it in items:
            if it["id"].startswith("cipher_") or it["id"] in (
                    "scanTime", "pre_128cipher", "service"):
                continue
            print("  %-22s %-6s %s" % (it["id"], it["severity"],
                                       it["finding"]))
        print("  offered ciphers: " + ", ".join(
            f[0].split()[1] for k, f in found.items()
            if k.startswith("cipher_")))
    return {k: " / ".join(v) for k, v in found.items()}


def check_scan(f):
    bad = [k for k in NOT_OFFERED if k not in f or
           not f[k].startswith("not offered")]
    assert not bad, {k: f.get(k) for k in bad}
    assert f["TLS1_2"] == "offered", f["TLS1_2"]
    assert f["TLS1_3"].startswith("offered"), f["TLS1_3"]
    assert f["secure_renego"] == "supported", f["secure_renego"]
    assert f["secure_client_renego"] == "not vulnerable", \
        f["secure_client_renego"]
    assert f["CRIME_TLS"].startswith("not vulnerable"), f["CRIME_TLS"]
    assert f["PFS"] == "offered", f["PFS"]
    # Every offered cipher (-e): its key exchange column is ECDH or DH.
    ciphers = {k: v for k, v in f.items() if k.startswith("cipher_")}
    assert ciphers, f
    no_fs = {k: v for k, v in ciphers.items()
             if v.split()[2] not in ("ECDH", "DH")}
    assert not no_fs, no_fs
    pfs = set(f["PFS_ciphers"].split())
    names = {v.split()[1] for v in ciphers.values()}
    assert names <= pfs, names - pfs
    assert "X25519" in f["PFS_ECDHE_curves"], f["PFS_ECDHE_curves"]


def test_testssl_starttls_port(live, capsys):
    check_scan(run_testssl(live, "starttls", capsys))


def test_testssl_direct_tls_port(live, capsys):
    check_scan(run_testssl(live, "tls", capsys))


def conf_with_tls(text, lines):
    """The config with lines added to the c2s tls group."""
    assert text.count("  tls = {\n") == 1
    return text.replace("  tls = {\n", "  tls = {\n" + "".join(
        "    %s\n" % ln for ln in lines))


def test_tls_config_refused_at_check(live, tmp_path):
    base = open(live.conf).read()
    for line, why in (
            ('ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA";',
             'tls.ciphers: AES128-SHA: no forward secrecy'),
            ('ciphers = "ADH-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256";',
             'tls.ciphers: ADH-AES128-GCM-SHA256: anonymous'),
            ('groups = "X25519:nonesuch";', 'tls.groups "X25519:nonesuch"'),
            ('ciphersuites = "TLS_NONESUCH";', 'tls.ciphersuites'),
            ('min_version = "TLSv1.1";', 'tls.min_version: "TLSv1.1"')):
        p = tmp_path / "k.conf"
        p.write_text(conf_with_tls(base, [line]))
        r = subprocess.run([os.path.join(BIN, "kiln-c2s"), "-c", str(p),
                            "--node", "c2s-a", "--check-config"],
                           capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode != 0, (line, out)
        assert why in out, (line, out)
    # The defaults written out are accepted.
    p = tmp_path / "k.conf"
    p.write_text(conf_with_tls(base, [
        'ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";',
        'ciphersuites = "TLS_AES_128_GCM_SHA256";',
        'groups = "X25519:P-256";', 'min_version = "TLSv1.2";']))
    r = subprocess.run([os.path.join(BIN, "kiln-c2s"), "-c", str(p),
                        "--node", "c2s-a", "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def tls_connect(port, maxv=None):
    """(version, cipher name) of a direct TLS handshake, or the SSLError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maxv is not None:
        ctx.maximum_version = maxv
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.version(), t.cipher()[0]
        except (ssl.SSLError, ConnectionResetError) as e:
            return e


def s_client(port, groups):
    """True when openssl s_client completes a TLS 1.3 handshake offering
    only groups (STARTTLS xmpp)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
         "-starttls", "xmpp", "-xmpphost", "localhost", "-tls1_3",
         "-groups", groups, "-brief"],
        input="", capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    return "Protocol version: TLSv1.3" in out, out


def test_tls_config_reload_R_BASE_1(live, make_user):
    make_user("tlscf_alice", "pw-alice")
    make_user("tlscf_bob", "pw-bob")
    c2s = live.procs["c2s-a"]
    port = live.ports["c2s-a"]["tls"]
    stls = live.ports["c2s-a"]["starttls"]
    old_conf = open(live.conf).read()
    new_conf = conf_with_tls(old_conf, [
        'min_version = "TLSv1.3";',
        'ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";',
        'groups = "P-384";'])
    # Before: TLS 1.2 accepted, X25519 accepted.
    v = tls_connect(port, ssl.TLSVersion.TLSv1_2)
    assert v[0] == "TLSv1.2" and v[1].startswith("ECDHE-"), v
    ok, out = s_client(stls, "X25519")
    assert ok, out

    async def scenario():
        alice = await xc.login(live, "tlscf_alice", "pw-alice", node="c2s-a")
        bob = await xc.login(live, "tlscf_bob", "pw-bob", node="c2s-b")
        try:
            with open(live.conf, "w") as f:
                f.write(new_conf)
            mark = live.log_mark("c2s-a")
            c2s.popen.send_signal(signal.SIGHUP)
            live.wait_log("c2s-a", "reload: TLS certificate", since=mark)
            e = tls_connect(port, ssl.TLSVersion.TLSv1_2)
            assert isinstance(e, Exception), e
            assert tls_connect(port) == ("TLSv1.3",
                                         "TLS_CHACHA20_POLY1305_SHA256")
            ok, out = s_client(stls, "X25519")
            assert not ok, out
            ok, out = s_client(stls, "P-384")
            assert ok, out
            assert "TLS_CHACHA20_POLY1305_SHA256" in out, out
            # The session from before the reload still delivers both ways.
            bob.send_message(mto=alice.boundjid.full, mbody="one", mtype="chat")
            assert await alice.next_message(body_only=True) == "one"
            alice.send_message(mto=bob.boundjid.full, mbody="two", mtype="chat")
            assert await bob.next_message(body_only=True) == "two"
            assert not alice.stream_errors
        finally:
            with open(live.conf, "w") as f:
                f.write(old_conf)
            mark = live.log_mark("c2s-a")
            c2s.popen.send_signal(signal.SIGHUP)
            live.wait_log("c2s-a", "reload: TLS certificate", since=mark)
        v = tls_connect(port, ssl.TLSVersion.TLSv1_2)
        assert v[0] == "TLSv1.2", v
        for c in (alice, bob):
            await c.stop()

    xc.run(scenario(), timeout=90)
