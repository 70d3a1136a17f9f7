"""09 idle: the idle policy (R-DROP-4) and its unavailable (R-DROP-2).

Runs on c2s-c, a third c2s node with idle_timeout = 6 that is not part of
the cluster's start order: this module starts it and stops it again. A
silent bound client gets the server ping at 3 s and <connection-timeout/>
at 6 s; its contacts then see it unavailable; whitespace keepalives keep
a client connected; an unauthenticated connection is closed at 6 s with
no ping.
"""

import re
import socket
import time

import pytest

from test_01_stream import HDR, Raw, login as raw_login
from test_05_roster import roster_row

PW = "pw-c9"
T = 6.0  # c2s-c's idle_timeout (deploy/dev/kiln.conf.in)
PING = "<ping xmlns='urn:xmpp:ping'/></iq>"
TIMEOUT = ("<stream:error><connection-timeout "
           "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")


@pytest.fixture(scope="module")
def node_c(cluster):
    if not cluster.ports["c2s-c"]["tls"]:
        pytest.fail("KILN_C2S_C_TLS is not set (deploy/dev/stack env)")
    cluster.ensure()
    cluster.start("c2s-c")
    try:
        yield cluster
    finally:
        cluster.stop("c2s-c")


@pytest.fixture
def users(live, node_c, make_user):
    make_user("c9silent", PW)
    make_user("c9friend", PW)
    make_user("c9chatty", PW)
    return live


def wait_for(r, pattern, deadline):
    """Read from the Raw client r until pattern matches what it got."""
    while not pattern.search(r.buf.decode("utf-8", "replace")):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timeout waiting for %s; got %r"
                                 % (pattern.pattern, r.buf[-2000:]))
        r.sock.settimeout(left)
        try:
            chunk = r.sock.recv(65536)
        except socket.timeout:
            continue
        assert chunk, "closed; got %r" % r.buf[-2000:]
        r.buf += chunk


def test_silent_client_pinged_then_timed_out_R_DROP_4(users):
    r = raw_login(users, "c2s-c", "c9silent", PW, "quiet")
    t0 = time.monotonic()  # <presence/> was its last byte
    try:
        out = r.expect(PING, timeout=T)
        t_ping = time.monotonic() - t0
        assert T / 2 - 1 <= t_ping <= T / 2 + 1, t_ping
        assert "type='get'" in out and "id='kiln-ping-" in out, out
        assert "from='localhost'" in out, out
        assert "to='%s'" % r.jid in out, out
        out = r.closed(timeout=T)
        t_close = time.monotonic() - t0
        assert T - 1 <= t_close <= T + 1, t_close
        assert TIMEOUT in out, out
        assert out.rstrip().endswith("</stream:stream>"), out
        assert "kiln-ping" not in out, "pinged twice: %s" % out
    finally:
        r.close()


def test_contact_sees_idle_user_unavailable_R_DROP_4_R_DROP_2(users):
    roster_row("c9silent", "c9friend", "both")
    roster_row("c9friend", "c9silent", "both")
    f = raw_login(users, "c2s-a", "c9friend", PW, "watch")
    s = None
    try:
        s = raw_login(users, "c2s-c", "c9silent", PW, "gone")
        t0 = time.monotonic()
        unavailable = re.compile(r"<presence(?=[^>]*from='%s')"
                                 r"(?=[^>]*type='unavailable')[^>]*>"
                                 % re.escape(s.jid))
        wait_for(f, unavailable, t0 + T + 1)
        took = time.monotonic() - t0
        assert took <= T + 1, took
        assert took >= T - 1, "unavailable before the idle timeout: %s" % took
    finally:
        f.close()
        if s is not None:
            s.close()


def test_whitespace_keepalive_stays_connected_R_DROP_4(users):
    r = raw_login(users, "c2s-c", "c9chatty", PW, "alive")
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15:
            time.sleep(2)
            r.send(" ")
        out = r.ask("<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/>"
                    "</iq>", "id='still'", timeout=5)
        assert "kiln-ping" not in out, "pinged despite keepalives: %s" % out
        assert "connection-timeout" not in out, out
    finally:
        r.close()


def test_unauthenticated_closed_without_ping_R_DROP_4(users):
    r = Raw(users.ports["c2s-c"]["starttls"])
    try:
        r.ask(HDR % "localhost", "</stream:features>")
        t0 = time.monotonic()
        out = r.closed(timeout=T + 3)
        took = time.monotonic() - t0
        assert T - 1 <= took <= T + 1, took
        assert TIMEOUT in out, out
        assert "kiln-ping" not in out and "urn:xmpp:ping" not in out, out
    finally:
        r.close()
