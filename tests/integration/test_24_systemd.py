"""Issue 14, systemd: the notify protocol, the watchdog and reload.

Without systemd as PID 1 here, the tests play systemd's part: a datagram
socket in $NOTIFY_SOCKET receives what sd_notify sends (the boot under a
real systemd is `make systemd-test`, tests/systemd/test_nspawn.py).

- With WATCHDOG_USEC set, a daemon sends WATCHDOG=1 from its event loop at
  half that period; a stopped process stops sending (systemd then aborts
  and restarts it); SIGHUP is RELOADING=1 ... READY=1, SIGTERM STOPPING=1.
- SIGHUP to a c2s node with sessions up (systemctl reload): the new
  log_level is in effect, a new TLS certificate serves new connections,
  and the sessions are still there and still deliver.
"""

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import xmpp_client as xc

BIN = os.environ["KILN_BIN"]
VAR = os.environ["KILN_VAR"]


def recv_until(sock, want, timeout):
    """Datagrams received until one equals want (returned, in order)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg.split("\n"):
            return got
    raise AssertionError("no %r within %ss; got %r" % (want, timeout, got))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_watchdog_reload_stop_notifications(tmp_path):
    # A router of its own (own port; an unreachable Redis, which it
    # survives), so the shared cluster is untouched.
    conf = tmp_path / "wd.conf"
    port = free_port()
    conf.write_text('redis = { address = "tcp:127.0.0.1:1"; };\n'
                    'router = { bind = "tcp://127.0.0.1:%d"; endpoint = '
                    '"tcp://127.0.0.1:%d"; };\n' % (port, port))
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    log = open(tmp_path / "router.log", "wb")
    p = subprocess.Popen([os.path.join(BIN, "kiln-router"), "-c", str(conf)],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        got = recv_until(sock, "READY=1", 20)
        # Pings every 0.1 s: ten in a row arrive well within 5 s.
        t0 = time.monotonic()
        for _ in range(10):
            recv_until(sock, "WATCHDOG=1", 5)
        assert time.monotonic() - t0 < 5
        # A stopped process sends nothing: systemd's watchdog fires.
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.2)  # let a ping already in flight land
        sock.settimeout(0)
        try:
            while True:
                sock.recv(4096)
        except BlockingIOError:
            pass
        sock.settimeout(1.0)
        try:
            late = sock.recv(4096)
        except socket.timeout:
            late = None
        assert late is None, late
        p.send_signal(signal.SIGCONT)
        recv_until(sock, "WATCHDOG=1", 5)
        # Reload: RELOADING=1, then READY=1; the process stays.
        p.send_signal(signal.SIGHUP)
        got = recv_until(sock, "RELOADING=1", 5)
        got = recv_until(sock, "READY=1", 5)
        assert p.poll() is None
        # A config that no longer loads: logged, nothing changes, still up.
        good = conf.read_text()
        conf.write_text(good + "log_level = \"loud\";\n")
        p.send_signal(signal.SIGHUP)
        recv_until(sock, "RELOADING=1", 5)
        recv_until(sock, "READY=1", 5)
        assert p.poll() is None
        conf.write_text(good)
        recv_until(sock, "WATCHDOG=1", 5)
        p.send_signal(signal.SIGTERM)
        recv_until(sock, "STOPPING=1", 5)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
        log.close()
    text = (tmp_path / "router.log").read_text()
    assert "watchdog: WATCHDOG=1 every 0.100 s" in text, text
    assert "reloaded: log_level info" in text, text
    assert "(nothing changed)" in text, text


def cert_der(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def pem_der(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def test_sighup_reload_c2s_keeps_sessions(live, make_user):
    make_user("hup_alice", "pw-alice")
    make_user("hup_bob", "pw-bob")
    c2s = live.procs["c2s-a"]
    tls_port = live.ports["c2s-a"]["tls"]
    old_conf = open(live.conf).read()
    assert 'log_level = "info";' in old_conf
    assert cert_der(tls_port) == pem_der(live.cert)
    with tempfile.TemporaryDirectory(dir=VAR) as d:
        new_cert, new_key = d + "/new.pem", d + "/new.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", new_key, "-out", new_cert],
                       check=True, capture_output=True)
        old_tls = old_conf[old_conf.index("tls = {"):].split("};", 1)[0]
        new_conf = old_conf.replace('log_level = "info";', 'log_level = "debug";')
        new_conf = new_conf.replace(
            old_tls, 'tls = {\n    cert = "%s";\n    key = "%s";\n  ' % (new_cert, new_key))

        async def scenario():
            # Sessions: one on the node being reloaded, one on the other.
            alice = await xc.login(live, "hup_alice", "pw-alice", node="c2s-a")
            alice2 = await xc.login(live, "hup_alice", "pw-alice", node="c2s-a",
                                    resource="second")
            bob = await xc.login(live, "hup_bob", "pw-bob", node="c2s-b")
            pid = c2s.popen.pid
            try:
                with open(live.conf, "w") as f:
                    f.write(new_conf)
                mark = live.log_mark("c2s-a")
                c2s.popen.send_signal(signal.SIGHUP)
                live.wait_log("c2s-a", "reloaded: log_level debug", since=mark)
                assert "reload: TLS certificate " + new_cert in c2s.text(since=mark)
                assert c2s.alive() and c2s.popen.pid == pid
                # New connections get the new certificate...
                assert cert_der(tls_port) == pem_der(new_cert)
                # ...and debug lines are written (the TLS handshake above).
                live.wait_log("c2s-a", "<7>", since=mark)
                # The sessions made before the reload are still up.
                for body, to in (("one", alice), ("two", alice2)):
                    bob.send_message(mto=to.boundjid.full, mbody=body, mtype="chat")
                    assert await to.next_message(body_only=True) == body
                alice.send_message(mto=bob.boundjid.full, mbody="three", mtype="chat")
                assert await bob.next_message(body_only=True) == "three"
                assert not alice.stream_errors and not alice2.stream_errors
            finally:
                with open(live.conf, "w") as f:
                    f.write(old_conf)
                mark = live.log_mark("c2s-a")
                c2s.popen.send_signal(signal.SIGHUP)
                live.wait_log("c2s-a", "reloaded: log_level info", since=mark)
            assert cert_der(tls_port) == pem_der(live.cert)
            # A session that lived through both reloads still delivers.
            bob.send_message(mto=alice.boundjid.full, mbody="four", mtype="chat")
            assert await alice.next_message(body_only=True) == "four"
            for c in (alice, alice2, bob):
                await c.stop()

        xc.run(scenario(), timeout=90)
