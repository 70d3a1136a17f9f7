"""01 stream: byte-level RFC 6120 stream negotiation on kiln-c2s.

Requirement IDs: R-BASE-1 (stream basics, STARTTLS required, no stanza
before authentication). Exact bytes in, expected stream errors out; each
error must be followed by the close tag and the socket closing.

The `Raw` client here is also used by test_02..04 (byte-level helpers:
STARTTLS, direct TLS, PLAIN login and bind).
"""

import base64
import socket
import ssl
import time

HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='%s' "
       "version='1.0'>")


class Raw:
    """A byte-level XMPP client: send bytes, wait for substrings."""

    def __init__(self, port, cert=None, direct_tls=False, tls_max=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.cert = cert
        self.tls_max = tls_max
        self.buf = b""
        self.round_trips = 0
        if direct_tls:
            self._wrap()

    def _wrap(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        if self.tls_max is not None:
            ctx.maximum_version = self.tls_max
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def expect(self, needle, timeout=10):
        """Read until needle (str) appears; return everything read so far
        and forget it."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timeout waiting for %r; got %r"
                                     % (needle, self.buf[-2000:]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError("closed waiting for %r; got %r"
                                     % (needle, self.buf[-2000:]))
            self.buf += chunk
        i = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode("utf-8", "replace")

    def ask(self, data, needle, timeout=10):
        """One round trip: send data, wait for needle."""
        self.round_trips += 1
        self.send(data)
        return self.expect(needle, timeout)

    def closed(self, timeout=10):
        """Wait for the server to close; return what was read meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError):
                return self.buf.decode("utf-8", "replace")
            if not chunk:
                return self.buf.decode("utf-8", "replace")
            self.buf += chunk
        raise AssertionError("server did not close; got %r" % self.buf[-2000:])

    def open(self, domain="localhost"):
        return self.ask(HDR % domain, "</stream:features>")

    def starttls(self, domain="localhost"):
        self.open(domain)
        self.ask("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                 "<proceed")
        self._wrap()
        return self.open(domain)

    def login_plain(self, user, password, resource=None):
        """SASL PLAIN, restart, bind; returns the bound JID."""
        raw = ("\0%s\0%s" % (user, password)).encode()
        r = self.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                     "mechanism='PLAIN'>%s</auth>"
                     % base64.b64encode(raw).decode(), "</")
        if "<success" not in r:
            raise AssertionError("login failed: %s" % r)
        self.open()
        res = "<resource>%s</resource>" % resource if resource else ""
        r = self.ask("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:"
                     "xml:ns:xmpp-bind'>%s</bind></iq>" % res, "</iq>")
        jid = r.split("<jid>")[1].split("</jid>")[0]
        return jid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(cluster, node, user, password, resource=None, presence=True):
    """A Raw client logged in over direct TLS and bound."""
    r = Raw(cluster.ports[node]["tls"], cluster.cert, direct_tls=True)
    r.open()
    r.jid = r.login_plain(user, password, resource)
    if presence:
        r.send("<presence/>")
    return r


def _error_then_close(r, cond):
    out = r.closed()
    assert "<%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" % cond in out, \
        out
    assert out.rstrip().endswith("</stream:stream>"), out
    return out


def test_host_unknown_R_BASE_1(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.send(HDR % "example.org")
    out = _error_then_close(r, "host-unknown")
    # Our header goes out first, so the error is inside a stream.
    assert out.index("<stream:stream") < out.index("<stream:error>")


def test_unsupported_version(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.send("<stream:stream xmlns='jabber:client' xmlns:stream="
           "'http://etherx.jabber.org/streams' to='localhost' version='2.0'>")
    _error_then_close(r, "unsupported-version")


def test_invalid_namespace(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.send("<stream:stream xmlns='jabber:server' xmlns:stream="
           "'http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
    _error_then_close(r, "invalid-namespace")


def test_not_well_formed(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.open()
    r.send("<message><body>x</message>")
    _error_then_close(r, "not-well-formed")


def test_restricted_xml_doctype(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.send("<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]>"
           + HDR % "localhost")
    _error_then_close(r, "restricted-xml")


def test_stanza_before_auth_not_authorized_R_BASE_1(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    r.open()
    r.send("<message to='someone@localhost'><body>x</body></message>")
    _error_then_close(r, "not-authorized")


def test_stanza_before_auth_over_tls(live):
    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    r.open()
    r.send("<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>")
    _error_then_close(r, "not-authorized")


def test_clean_close_is_answered(live, make_user):
    make_user("c1carol", "pw-c1")
    r = login(live, "c2s-a", "c1carol", "pw-c1", "r1")
    r.send("</stream:stream>")
    out = r.closed()
    assert out.rstrip().endswith("</stream:stream>"), out
