"""29 abuse at the socket level (issue 16, R-PERF-2): connection floods
from one address and from many, slow and stalled pre-auth clients, a
client that never reads, and sessions over their input rate, on TCP and
WebSocket.

Runs on c2s-c started here with small limits (node_conf below). Every
case also proves that ordinary logged-in sessions, one on the abused node
and one on c2s-a, keep exchanging messages during and after the abuse.
Events are waited for (log lines, stream errors, closes) with generous
timeouts; the only time asserted is a lower bound (a deadline cannot
pass early).
"""

import asyncio
import base64
import os
import re
import select
import socket
import ssl
import time
import uuid

import pytest

from conftest import BIN, Proc
from test_01_stream import HDR, Raw, login
from test_05_roster import roster_row
from web_client import WS
from xmpp_client import run
from xmpp_component import Component

PW = "abuse-pw"
NODE = "c2s-c-abuse"

# The limits of the abused node (seconds, per second, bytes).
ADDR_RATE, ADDR_BURST, ADDR_UNAUTH, NODE_UNAUTH = 5, 10, 8, 30
HEADER_T, TLS_T, AUTH_T = 3, 3, 12
STANZAS_PER_S, STANZA_BURST, CLOSE_AFTER = 10, 20, 3
OUT_MAX = 65536

LIMITS = ("accept = { addr_rate = %d; addr_burst = %d; addr_unauth = %d; "
          "node_rate = 1000; node_burst = 1000; node_unauth = %d; }; "
          "preauth = { header_timeout = %d; tls_timeout = %d; "
          "auth_timeout = %d; }; "
          "max_stanza_bytes = 16384; rate_bytes_per_s = 4000; "
          "rate_burst_bytes = 20000; rate_stanzas_per_s = %d; "
          "rate_burst_stanzas = %d; rate_close_after = %d; "
          "out_buffer_max = %d; "
          % (ADDR_RATE, ADDR_BURST, ADDR_UNAUTH, NODE_UNAUTH, HEADER_T, TLS_T,
             AUTH_T, STANZAS_PER_S, STANZA_BURST, CLOSE_AFTER, OUT_MAX))


def comp_port():
    """c2s-c's component port here (the stack's pattern: A 5275, B 5375)."""
    return int(os.environ["KILN_C2S_C_STARTTLS"]) + 53


def node_conf():
    """kiln.conf with small abuse limits on c2s-c only."""
    text = open(os.environ["KILN_CONF"]).read()
    limits = LIMITS + ("component_port = %d; component_rate_stanzas_per_s "
                       "= %d; " % (comp_port(), STANZAS_PER_S))
    text, n = re.subn(r'(\{\s*name\s*=\s*"c2s-c";)', r'\1 ' + limits, text)
    assert n == 1, "no c2s-c node entry in the test config"
    # c2s-c closes silent streams after 6 s (test_09): not here.
    text = re.sub(r'(name\s*=\s*"c2s-c";.*?)idle_timeout\s*=\s*6;',
                  r'\1idle_timeout = 300;', text, flags=re.S)
    path = os.path.join(os.environ["KILN_VAR"], "abuse.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def node(cluster):
    cluster.ensure()
    p = Proc(NODE, [os.path.join(BIN, "kiln-c2s"), "-c", node_conf(),
                    "--node", "c2s-c"])
    cluster.procs[NODE] = p  # teardown checks its log for sanitizer reports
    p.start()
    try:
        yield p
    finally:
        p.stop()


def ports(cluster):
    return cluster.ports["c2s-c"]


# ---- ordinary sessions ------------------------------------------------------


class Pair:
    """Two ordinary sessions, one on the abused node, one on c2s-a, that
    exchange messages (each must arrive)."""

    def __init__(self, cluster, make_user):
        tag = uuid.uuid4().hex[:6]
        self.ua, self.ub = "ab%sa" % tag, "ab%sb" % tag
        make_user(self.ua, PW)
        make_user(self.ub, PW)
        self.a = login_on(cluster, ports(cluster)["tls"], self.ua)
        self.b = login(cluster, "c2s-a", self.ub, PW, "r")
        self.n = 0

    def exchange(self, timeout=30):
        """One message each way; both must arrive."""
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            self.n += 1
            body = "ping-%d-%s" % (self.n, uuid.uuid4().hex[:6])
            src.send("<message to='%s' type='chat'><body>%s</body></message>"
                     % (dst.jid, body))
            dst.expect(body, timeout)

    def close(self):
        self.a.close()
        self.b.close()


def login_on(cluster, port, user, resource="r"):
    r = Raw(port, cluster.cert, direct_tls=True)
    r.open()
    r.jid = r.login_plain(user, PW, resource)
    r.send("<presence/>")
    return r


@pytest.fixture
def pair(node, live, make_user):
    p = Pair(live, make_user)
    p.exchange()
    yield p
    p.close()


# ---- raw connections --------------------------------------------------------


def connect(port, src="127.0.0.1", rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_until(s, needle, timeout):
    """Bytes read until needle, EOF or reset or timeout: (data, how)
    with how in 'found', 'eof', 'timeout'."""
    deadline = time.monotonic() + timeout
    buf = b""
    while needle is None or needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, "timeout"
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return buf, "eof"
        if not chunk:
            return buf, "eof"
        buf += chunk
    return buf, "found"


def open_stream(port, src):
    """A STARTTLS-port connection that sent its header: the socket when
    the node admitted it (features came), None when it was refused (closed
    at once, nothing written)."""
    s = connect(port, src)
    try:
        s.sendall((HDR % "localhost").encode())
    except OSError:
        s.close()
        return None
    data, how = read_until(s, b"</stream:features>", 20)
    if how == "found":
        return s
    s.close()
    assert data == b"", "refused connections get no bytes: %r" % data
    assert how == "eof", "neither features nor a close: %r" % data
    return None


def refused_silent(port, src, wait=1.5):
    """Connect and send nothing: True when the node closes at once (a
    refusal), False when the connection stays (admitted; it cannot be
    closed by a pre-auth deadline within wait < the deadlines)."""
    s = connect(port, src)
    try:
        data, how = read_until(s, None, wait)
        assert data == b"", data
        return how == "eof"
    finally:
        s.close()


def drain(port, src):
    """Connect and close until the node refuses src."""
    for _ in range(200):
        s = open_stream(port, src)
        if s is None:
            return
        s.close()
    raise AssertionError("%s never refused" % src)


def prune(held):
    """Drop the connections the node ended (a deadline wrote an error)."""
    keep = []
    for s in held:
        if select.select([s], [], [], 0)[0]:
            s.close()
        else:
            keep.append(s)
    held[:] = keep


def mark(node):
    return node.mark()


def logged(node, since, needle, timeout=30):
    node.wait_log(needle, timeout=timeout, since_start=False, since=since)


# ---- floods -----------------------------------------------------------------


def test_flood_one_address_unauth_cap_and_rate_R_PERF_2(node, live, pair):
    p = ports(live)
    m = mark(node)
    held = []
    try:
        # The per-address cap of unauthenticated connections: the first
        # ADDR_UNAUTH are admitted (within the burst), then refused.
        while len(held) < ADDR_UNAUTH:
            s = open_stream(p["starttls"], "127.0.0.1")
            assert s is not None, "refused after %d connections" % len(held)
            held.append(s)
        assert open_stream(p["starttls"], "127.0.0.1") is None
        logged(node, m, "refused connection from 127.0.0.1 (STARTTLS port): "
               "too many unauthenticated connections from the address")
        # Another address is not held back.
        other = open_stream(p["starttls"], "127.0.9.9")
        assert other is not None
        other.close()
        pair.exchange()
    finally:
        for s in held:
            s.close()
    # The rate: connect-and-close as fast as possible until a refusal for
    # the per-address rate; never more admitted than the bucket allows.
    m = mark(node)
    t0 = time.monotonic()
    admitted = 0
    refused = False
    for _ in range(500):
        s = open_stream(p["starttls"], "127.0.0.1")
        if s is None:
            if "per-address connection rate exceeded" in node.text(
                    since=m):
                refused = True
                break
            continue
        admitted += 1
        s.close()
    elapsed = time.monotonic() - t0
    assert refused, "no per-address rate refusal in 500 connections"
    assert admitted <= ADDR_BURST + ADDR_RATE * elapsed + 1, (admitted,
                                                             elapsed)
    pair.exchange()
    # The other listeners are under the same limits: right after the
    # address's bucket was drained, direct TLS and HTTP connections are
    # refused too.
    for kind, name in (("tls", "direct TLS"), ("http", "HTTP")):
        m = mark(node)
        for _ in range(100):
            drain(p["starttls"], "127.0.0.1")
            if refused_silent(p[kind], "127.0.0.1") and \
                    "(%s port)" % name in node.text(since=m):
                break
        else:
            raise AssertionError("no refusal on the %s port" % kind)
    pair.exchange()
    # After the flood the address logs in again (once its bucket refilled).
    deadline = time.monotonic() + 60
    while True:
        try:
            r = login_on(live, p["tls"], pair.ua, "after")
            break
        except (AssertionError, OSError, ssl.SSLError):
            assert time.monotonic() < deadline, "no login after the flood"
            time.sleep(0.2)
    r.close()
    pair.exchange()


def test_flood_many_addresses_node_unauth_cap_R_PERF_2(node, live, pair):
    p = ports(live)
    m = mark(node)
    held = []
    try:
        refused_at = None
        for i in range(NODE_UNAUTH * 3):
            src = "127.0.%d.%d" % (10 + i // 200, 1 + i % 200)
            s = open_stream(p["starttls"], src)
            if s is None:
                refused_at = i
                break
            held.append(s)
        assert refused_at is not None, "no refusal from many addresses"
        # Some of ours may have been closed meanwhile (auth_timeout), never
        # more than the cap were held at once.
        assert len(held) <= NODE_UNAUTH, len(held)
        logged(node, m, "too many unauthenticated connections on the node")
        pair.exchange()
        # While the node is full, new addresses are refused on every
        # listener (refilled when a deadline freed a place meanwhile).
        for kind in ("tls", "http", "starttls"):
            for attempt in range(20):
                src = "127.0.%d.%d" % (20 + attempt, 7)
                prune(held)
                while len(held) < NODE_UNAUTH:
                    s = open_stream(p["starttls"], "127.0.%d.%d" %
                                    (30 + attempt, 1 + len(held)))
                    if s is None:
                        break
                    held.append(s)
                if refused_silent(p[kind], src):
                    break
            else:
                raise AssertionError("%s port not refused when full" % kind)
        pair.exchange()
    finally:
        for s in held:
            s.close()
    # Once they are gone, new addresses and logins get in again.
    deadline = time.monotonic() + 60
    while open_stream(p["starttls"], "127.0.40.1") is None:
        assert time.monotonic() < deadline, "still refused after the flood"
        time.sleep(0.2)
    pair.exchange()


# ---- slow clients -----------------------------------------------------------


def test_slow_stream_header_connection_timeout(node, live, pair):
    """One byte at a time keeps the idle timer happy, not the header
    deadline: <connection-timeout/> after HEADER_T seconds."""
    p = ports(live)
    m = mark(node)
    s = connect(p["starttls"], "127.0.50.1")
    t0 = time.monotonic()
    hdr = (HDR % "localhost").encode()
    got = b""
    closed = False
    for i in range(len(hdr) - 1):  # never the whole header
        try:
            s.sendall(hdr[i:i + 1])
        except OSError:
            closed = True
            break
        data, how = read_until(s, None, 0.3)
        got += data
        if how == "eof":
            closed = True
            break
        if i % 10 == 0:
            pair.exchange()
    if not closed:
        data, how = read_until(s, None, 30)
        got += data
        assert how == "eof"
    elapsed = time.monotonic() - t0
    s.close()
    assert elapsed >= HEADER_T - 0.05, elapsed
    assert b"<connection-timeout" in got, got
    assert got.rstrip().endswith(b"</stream:stream>"), got
    logged(node, m, "stream header not complete within")
    pair.exchange()


def test_stalled_tls_handshake_closed(node, live, pair):
    p = ports(live)
    m = mark(node)
    # Direct TLS: half a record header, then nothing.
    s = connect(p["tls"], "127.0.51.1")
    t0 = time.monotonic()
    s.sendall(b"\x16\x03")
    data, how = read_until(s, None, 30)
    elapsed = time.monotonic() - t0
    s.close()
    assert how == "eof" and elapsed >= TLS_T - 0.05, (how, elapsed)
    logged(node, m, "TLS handshake not complete within")
    pair.exchange()
    # After STARTTLS's <proceed/>: a stall closes as well.
    m = mark(node)
    s = connect(p["starttls"], "127.0.51.2")
    s.sendall((HDR % "localhost").encode())
    assert read_until(s, b"</stream:features>", 20)[1] == "found"
    t0 = time.monotonic()
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert read_until(s, b"<proceed", 20)[1] == "found"
    data, how = read_until(s, None, 30)
    elapsed = time.monotonic() - t0
    s.close()
    assert how == "eof" and elapsed >= TLS_T - 0.05, (how, elapsed)
    logged(node, m, "TLS handshake not complete within")
    pair.exchange()


def test_unfinished_sasl_connection_timeout(node, live, pair):
    p = ports(live)
    m = mark(node)
    t0 = time.monotonic()
    r = Raw(p["tls"], live.cert, direct_tls=True)
    r.open()
    first = base64.b64encode(("n,,n=%s,r=fyko+d2lbbFgONRv9qkxdawL"
                              % pair.ua).encode()).decode()
    r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
          "mechanism='SCRAM-SHA-1'>%s</auth>" % first, "<challenge")
    pair.exchange()
    out = r.closed(timeout=AUTH_T + 30)  # never answers the challenge
    elapsed = time.monotonic() - t0
    r.close()
    assert elapsed >= AUTH_T - 0.05, elapsed
    assert "<connection-timeout" in out, out
    logged(node, m, "authentication not complete within")
    pair.exchange()


def test_slow_http_request_closed(node, live, pair):
    """An HTTP request trickling in is closed at the header deadline
    (http_idle_s alone would wait 30 s after each byte)."""
    p = ports(live)
    m = mark(node)
    s = connect(p["http"], "127.0.52.1")
    t0 = time.monotonic()
    s.sendall(b"GET /.well-known/host-meta HTTP/1.1\r\n")
    closed = False
    for i in range(200):
        try:
            s.sendall(b"X")
        except OSError:
            closed = True
            break
        if read_until(s, None, 0.3)[1] == "eof":
            closed = True
            break
    s.close()
    assert closed, "slow HTTP request never closed"
    assert time.monotonic() - t0 >= HEADER_T - 0.05
    logged(node, m, "HTTP connection without a complete request")
    pair.exchange()


def test_non_reading_client_closed_contacts_see_unavailable(
        node, live, pair, make_user):
    tag = uuid.uuid4().hex[:6]
    x, y, z = "abx" + tag, "aby" + tag, "abz" + tag
    for u in (x, y, z):
        make_user(u, PW)
    roster_row(x, y, "both")
    roster_row(y, x, "both")
    p = ports(live)
    m = mark(node)
    # y on c2s-a watches x's presence.
    yc = login(live, "c2s-a", y, PW, "w")
    # x: a small receive window, logged in, available, then never reads.
    s = connect(p["tls"], "127.0.53.1", rcvbuf=4096)
    r = Raw.__new__(Raw)
    r.cert, r.tls_max, r.buf, r.round_trips = live.cert, None, b"", 0
    r.sock = s
    r._wrap()
    r.open()
    xjid = r.login_plain(x, PW, "slow")
    r.send("<presence/>")
    yc.expect("from='%s'" % xjid, 30)
    # z on c2s-b sends x far more than its output limit.
    zc = login(live, "c2s-b", z, PW, "z")
    body = "x" * 2000
    sent = 0
    deadline = time.monotonic() + 120
    gone = False
    while not gone:
        assert time.monotonic() < deadline, "x not closed (%d sent)" % sent
        for _ in range(20):
            zc.send("<message to='%s' type='chat'><body>%d %s</body>"
                    "</message>" % (xjid, sent, body))
            sent += 1
        gone = "output over %d bytes (the client does not read)" % OUT_MAX \
            in node.text(since=m)
        if sent % 100 == 0:
            pair.exchange()
    # x's contact sees it go, like a dropped connection.
    yc.expect("type='unavailable'", 30)
    pair.exchange()
    # x's socket ends (after what it had not read).
    r.sock.settimeout(30)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if not r.sock.recv(65536):
                break
        except (OSError, ssl.SSLError):
            break
    else:
        raise AssertionError("x's connection not closed")
    r.close()
    zc.close()
    yc.close()
    pair.exchange()


# ---- input rate ------------------------------------------------------------


def test_tcp_rate_backpressure_then_policy_violation(node, live, pair,
                                                     make_user):
    tag = uuid.uuid4().hex[:6]
    f, w = "abf" + tag, "abw" + tag
    make_user(f, PW)
    make_user(w, PW)
    roster_row(f, w, "both")
    roster_row(w, f, "both")
    p = ports(live)
    wc = login(live, "c2s-a", w, PW, "w")
    fc = login_on(live, p["tls"], f, "fast")
    wc.expect("from='%s'" % fc.jid, 30)
    # Twice the burst in one go: reading pauses, nothing is lost.
    m = mark(node)
    n = 2 * STANZA_BURST
    fc.send("".join("<message to='%s' type='chat'><body>burst-%d</body>"
                    "</message>" % (wc.jid, i) for i in range(n)))
    logged(node, m, "%s: over its input rate, reading paused" % fc.jid)
    for i in range(n):
        wc.expect("burst-%d<" % i, 30)
    pair.exchange()
    # Over the rate for longer than rate_close_after: policy-violation,
    # and the session ends like a dropped one.
    m = mark(node)
    i = 0
    closed = False
    deadline = time.monotonic() + 120
    while not closed and time.monotonic() < deadline:
        try:
            fc.send("".join("<message to='%s' type='chat'><body>flood-%d"
                            "</body></message>" % (wc.jid, i + k)
                            for k in range(STANZAS_PER_S)))
        except OSError:
            break
        i += STANZAS_PER_S
        closed = "over its input rate for" in node.text(since=m)
        time.sleep(0.2)
    logged(node, m, "%s: over its input rate for" % fc.jid)
    out = fc.closed(timeout=30)
    assert "<policy-violation" in out, out[-500:]
    wc.expect("type='unavailable'", 30)
    pair.exchange()
    wc.close()


def test_websocket_rate_policy_violation(node, live, pair, make_user):
    u = "abws" + uuid.uuid4().hex[:6]
    make_user(u, PW)
    p = ports(live)
    ws = WS(p["http"])
    ws.open()
    jid = ws.login_plain(u, PW, "ws")
    ws.send("<presence/>")
    m = mark(node)
    i = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            for k in range(STANZAS_PER_S):
                ws.send("<message to='%s' type='chat'><body>ws-%d</body>"
                        "</message>" % (pair.b.jid, i + k))
        except OSError:
            break
        i += STANZAS_PER_S
        if "%s: over its input rate for" % jid in node.text(since=m):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("WebSocket session never closed for its rate")
    texts = ws.until_closed(timeout=30)
    assert any("<policy-violation" in t for t in texts), texts[-5:]
    pair.b.expect("ws-0<", 30)  # what was read before was routed
    pair.exchange()


def test_component_rate_policy_violation(node, live, pair):
    """XEP-0114 components have rates of their own (here 10 stanzas/s):
    paused first, then policy-violation when it keeps going."""
    m = mark(node)

    async def scenario():
        comp = await Component.connect(comp_port(), "gw.localhost",
                                       "gw-secret")
        i = 0
        deadline = time.monotonic() + 120
        while not comp.eof and time.monotonic() < deadline:
            for k in range(STANZAS_PER_S):
                comp.send("<message from='bot@gw.localhost' to='%s' "
                          "type='chat'><body>comp-%d</body></message>"
                          % (pair.b.jid, i + k))
            i += STANZAS_PER_S
            await asyncio.sleep(0.2)
        return await comp.closed(timeout=30)

    err = run(scenario(), timeout=180)
    assert err == "policy-violation", err
    text = node.text(since=m)
    assert "component gw.localhost from 127.0.0.1: over its input rate, " \
        "reading paused" in text, text[-2000:]
    logged(node, m, "component gw.localhost from 127.0.0.1 closed: "
           "policy-violation")
    pair.b.expect("comp-0<", 30)  # what was read before was routed
    pair.exchange()
