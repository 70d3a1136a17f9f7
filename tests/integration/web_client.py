"""Byte-level HTTP and WebSocket (RFC 6455 / RFC 7395) clients for the
web tests, stdlib only.

    status, headers, body = http(port, "GET", "/.well-known/host-meta")
    ws = WS(port)                        # handshake with 'xmpp' subprotocol
    ws.open()                            # <open/> -> <stream:features>
    ws.login_plain("alice", "pw")        # SASL, restart, bind -> JID
    ws.ask("<presence/>", "...")         # send a text frame, wait for needle

Frames the client sends are masked (RFC 6455 5.3); pings from the server
are answered; a close frame from the server is recorded in close_code.
"""

import base64
import hashlib
import os
import random
import select
import socket
import ssl
import struct
import time

HTTPBIND = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = "<open xmlns='%s' to='%%s' version='1.0'/>" % FRAMING
CLOSE = "<close xmlns='%s'/>" % FRAMING


def _connect(port, tls=False, cert=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context(cafile=cert)
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


def read_response(sock, buf=b"", head_only=False, timeout=10):
    """Read one HTTP response; returns (status, headers, body, rest)."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed before a response head: %r" % buf)
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if head_only or status == 101:
        return status, headers, b"", buf
    n = int(headers.get("content-length", "0"))
    while len(buf) < n:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed in a body")
        buf += chunk
    return status, headers, buf[:n], buf[n:]


def http(port, method, path, headers=None, body=b"", host="localhost",
         tls=False, cert=None, raw=None):
    """One request on a fresh connection; returns (status, headers, body).
    raw: send these bytes instead of building a request."""
    s = _connect(port, tls, cert)
    try:
        if raw is None:
            h = {"Host": host}
            if body:
                h["Content-Length"] = str(len(body))
            h.update(headers or {})
            req = "%s %s HTTP/1.1\r\n" % (method, path)
            req += "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1]
                           is not None)
            raw = req.encode() + b"\r\n" + body
        s.sendall(raw)
        status, hd, b, _ = read_response(s, head_only=(method == "HEAD"))
        return status, hd, b
    finally:
        s.close()


def closed_after(sock, timeout=10):
    """True once the peer closed the socket (EOF or reset)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return True
    return False


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__("WebSocket handshake refused: %d %r" % (status,
                                                                  body))
        self.status = status
        self.headers = headers
        self.body = body


class WS:
    """A WebSocket client speaking the 'xmpp' subprotocol."""

    def __init__(self, port, path="/xmpp-websocket", protocol="xmpp",
                 origin=None, host="localhost", tls=False, cert=None,
                 version="13"):
        self.sock = _connect(port, tls, cert)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: %s\r\n" % (path, host, key, version))
        if protocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        if origin:
            req += "Origin: %s\r\n" % origin
        self.sock.sendall(req.encode() + b"\r\n")
        status, hd, body, self.buf = read_response(self.sock)
        if status != 101:
            self.sock.close()
            raise HandshakeRefused(status, hd, body)
        want = base64.b64encode(hashlib.sha1(
            (key + GUID).encode()).digest()).decode()
        assert hd.get("sec-websocket-accept") == want, hd
        assert hd.get("sec-websocket-protocol") == "xmpp", hd
        self.texts = []  # received text messages not yet consumed
        self.close_code = None
        self.pongs = []
        self.round_trips = 0

    # ---- frames ----------------------------------------------------------

    def send_frame(self, opcode, payload, fin=True, length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self.send_frame(0x1, text)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError()
            self.buf += chunk

    def recv_frame(self, timeout=10):
        """One frame from the server: (fin, opcode, payload)."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def pump(self, timeout=10):
        """Receive one message (answering pings); returns its opcode."""
        fin, op, payload = self.recv_frame(timeout)
        assert fin, "the server sends whole messages"
        if op == 0x1:
            self.texts.append(payload.decode())
        elif op == 0x9:
            self.send_frame(0xA, payload)
        elif op == 0xA:
            self.pongs.append(payload)
        elif op == 0x8:
            self.close_code = (struct.unpack(">H", payload[:2])[0]
                               if len(payload) >= 2 else 1005)
        return op

    def expect(self, needle, timeout=10):
        """Receive text messages until one contains needle; return the
        text of all of them (consumed)."""
        deadline = time.monotonic() + timeout
        while not any(needle in t for t in self.texts):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timeout waiting for %r; got %r"
                                     % (needle, self.texts))
            try:
                op = self.pump(left)
            except (socket.timeout, EOFError):
                raise AssertionError("no %r (closed or timed out); got %r"
                                     % (needle, self.texts))
            if op == 0x8 and not any(needle in t for t in self.texts):
                raise AssertionError("closed (%s) waiting for %r; got %r"
                                     % (self.close_code, needle, self.texts))
        i = next(i for i, t in enumerate(self.texts) if needle in t)
        out, self.texts = self.texts[:i + 1], self.texts[i + 1:]
        self.last_messages = out
        # Like the TCP client: the text up to the end of needle (whole
        # messages stay in last_messages).
        head = "".join(out[:-1])
        return head + out[-1][:out[-1].index(needle) + len(needle)]

    def ask(self, data, needle, timeout=10):
        self.round_trips += 1
        self.send(data)
        return self.expect(needle, timeout)

    def until_closed(self, timeout=10):
        """Read until the server's close frame and EOF; returns the text
        messages received meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close; got %r"
                                     % self.texts)
            try:
                self.pump(left)
            except (EOFError, ConnectionResetError):
                break
            except socket.timeout:
                continue
        return self.texts

    # ---- XMPP ------------------------------------------------------------

    def open(self, domain="localhost"):
        return self.ask(OPEN % domain, "</stream:features>")

    def login_plain(self, user, password, resource=None):
        raw = ("\0%s\0%s" % (user, password)).encode()
        r = self.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                     "mechanism='PLAIN'>%s</auth>"
                     % base64.b64encode(raw).decode(), "</")
        if "<success" not in r:
            raise AssertionError("login failed: %s" % r)
        return self.bind(resource)

    def bind(self, resource=None):
        self.open()
        res = "<resource>%s</resource>" % resource if resource else ""
        r = self.ask("<iq xmlns='jabber:client' type='set' id='bind1'>"
                     "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>%s"
                     "</bind></iq>" % res, "</iq>")
        self.jid = r.split("<jid>")[1].split("</jid>")[0]
        return self.jid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Bosh:
    """A BOSH client (XEP-0124/0206): each request on its own connection,
    so several can be outstanding, as a browser does; at most `keep`
    empty requests are left held while waiting for something."""

    def __init__(self, port, host="localhost", origin=None, wait=10,
                 hold=1, domain="localhost"):
        self.port, self.host, self.origin = port, host, origin
        self.domain = domain
        self.rid = random.randint(1 << 20, 1 << 40)
        self.sid = None
        self.wait, self.hold = wait, hold
        self.outstanding = []  # (sock, rid, buf)
        self.payloads = []     # received <body/> children, as text
        self.bodies = []       # every response <body/> (ET elements)
        self.terminated = None  # the terminate <body/> when one came
        self.last_raw = {}     # rid -> raw response body

    def post(self, attrs, payload="", rid=None, port=None):
        """Send one request; returns its rid."""
        if rid is None:
            self.rid += 1
            rid = self.rid
        a = " ".join("%s='%s'" % kv for kv in attrs.items())
        body = ("<body xmlns='%s' rid='%d' %s>%s</body>"
                % (HTTPBIND, rid, a, payload)).encode()
        s = socket.create_connection(("127.0.0.1", port or self.port),
                                     timeout=10)
        hdr = ("POST /http-bind HTTP/1.1\r\nHost: %s\r\nContent-Type: "
               "text/xml; charset=utf-8\r\nContent-Length: %d\r\n"
               % (self.host, len(body)))
        if self.origin:
            hdr += "Origin: %s\r\n" % self.origin
        s.sendall(hdr.encode() + b"\r\n" + body)
        self.outstanding.append((s, rid))
        return rid

    def send(self, payload="", **attrs):
        attrs.setdefault("sid", self.sid)
        return self.post(attrs, payload)

    def create(self, **extra):
        attrs = {"to": self.domain, "wait": str(self.wait),
                 "hold": str(self.hold), "ver": "1.11",
                 "xml:lang": "en", "xmpp:version": "1.0",
                 "xmlns:xmpp": XBOSH}
        attrs.update(extra)
        self.post(attrs)
        b = self.response()
        self.sid = b.get("sid")
        return b

    def response(self, timeout=20):
        """The next answer to any outstanding request (ET element of the
        <body/>); its children go to self.payloads."""
        deadline = time.monotonic() + timeout
        socks = [o[0] for o in self.outstanding]
        if not socks:
            raise AssertionError("no request outstanding")
        r, _, _ = select.select(socks, [], [], max(0, deadline -
                                                   time.monotonic()))
        if not r:
            raise AssertionError("no BOSH answer in %ss" % timeout)
        i = socks.index(r[0])
        s, rid = self.outstanding.pop(i)
        st, hd, body, _ = read_response(s, timeout=timeout)
        s.close()
        self.last_status, self.last_headers = st, hd
        if st != 200:
            raise AssertionError("HTTP %d: %r" % (st, body))
        self.last_raw[rid] = body
        import xml.etree.ElementTree as ET
        b = ET.fromstring(body)
        assert b.tag == "{%s}body" % HTTPBIND, body
        self.bodies.append(b)
        for child in b:
            self.payloads.append(child)
        if b.get("type") == "terminate":
            self.terminated = b
        return b

    def expect(self, needle, timeout=20):
        """Keep one request outstanding and read answers until a payload
        element's text (ET.tostring: double quotes, ns0: prefixes)
        contains needle; returns that element (earlier ones dropped)."""
        import xml.etree.ElementTree as ET
        deadline = time.monotonic() + timeout
        while True:
            for i, p in enumerate(self.payloads):
                if needle in ET.tostring(p).decode():
                    self.payloads = self.payloads[i + 1:]
                    return p
            if self.terminated is not None:
                raise AssertionError("terminated (%s) waiting for %r" % (
                    self.terminated.get("condition"), needle))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timeout waiting for %r; got %r"
                                     % (needle, self.payloads))
            if not self.outstanding:
                self.send()
            self.response(left)

    def ask(self, payload, needle, timeout=20):
        self.send(payload)
        return self.expect(needle, timeout)

    def login_plain(self, user, password, resource=None):
        self.create()
        raw = base64.b64encode(("\0%s\0%s" % (user, password)).encode())
        self.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='PLAIN'>%s</auth>" % raw.decode(), "success")
        self.send(**{"xmpp:restart": "true", "xmlns:xmpp": XBOSH,
                     "to": self.domain})
        self.expect("bind")
        res = "<resource>%s</resource>" % resource if resource else ""
        r = self.ask("<iq xmlns='jabber:client' type='set' id='bind1'>"
                     "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>%s"
                     "</bind></iq>" % res, "bind1")
        self.jid = r.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid").text
        return self.jid

    def close(self):
        for s, _ in self.outstanding:
            s.close()
        self.outstanding = []
