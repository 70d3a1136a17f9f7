"""17 web: the HTTP side of kiln-c2s. XMPP over WebSocket (RFC 7395) as an
ordinary session, HTTP statuses for bad requests, XEP-0156 discovery,
CORS, the /chat/ static files, WSS on the HTTPS port.

Requirement IDs: R-WEB-1 (WebSocket login, messages, clean <close/>),
R-WEB-2 (BOSH: session attributes, rid window, inactivity ends the session
like a drop), R-WEB-3 (a WebSocket or BOSH session and a TCP session on
different nodes see each other's presence and talk), R-WEB-4 (Origin
allow-list, CORS).

The clients are byte-level (web_client.py: socket + struct, stdlib only),
so every frame and status is checked exactly.
"""

import base64
import json
import os
import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

import conftest
from test_01_stream import login as tcp_login
from test_03_sasl import _scram
from test_05_roster import D, roster_row
from web_client import (CLOSE, FRAMING, WS, XBOSH, Bosh, HandshakeRefused,
                        closed_after, http, read_response)

PW = "web-secret"
NS_STREAMS = "http://etherx.jabber.org/streams"


def port(live, node="c2s-a", kind="http"):
    return live.ports[node][kind]


def ws_login(live, user, node="c2s-a", path="/xmpp-websocket",
             resource=None, **kw):
    w = WS(port(live, node), path=path, **kw)
    w.open()
    w.login_plain(user, PW, resource)
    return w


def parse(msg):
    """Every message must be one complete element that stands alone."""
    return ET.fromstring(msg)


# ---- R-WEB-1 ----------------------------------------------------------------


def test_ws_login_message_close_R_WEB_1(live, make_user):
    make_user("w17a", PW)
    make_user("w17b", PW)
    w = WS(port(live), path="/ws")
    feats = w.open()
    opened = parse(w.last_messages[0])
    assert opened.tag == "{%s}open" % FRAMING
    assert opened.get("from") == D and opened.get("version") == "1.0"
    assert opened.get("id")
    f = parse(w.last_messages[-1])
    assert f.tag == "{%s}features" % NS_STREAMS
    assert "<mechanism>PLAIN</mechanism>" in feats
    assert "starttls" not in feats  # no STARTTLS inside a WebSocket
    jid = w.login_plain("w17a", PW, "web")
    assert jid == "w17a@%s/web" % D
    w.send("<presence xmlns='jabber:client'/>")
    t = tcp_login(live, "c2s-b", "w17b", PW, "tcp")
    # WebSocket -> TCP on the other node
    w.send("<message xmlns='jabber:client' to='%s' type='chat' id='m1'>"
           "<body>hello from the web</body></message>" % t.jid)
    got = t.expect("</message>")
    assert "hello from the web" in got and "from='%s'" % jid in got
    # TCP -> WebSocket: one stanza per message, jabber:client declared
    t.send("<message to='%s' type='chat' id='m2'><body>hi web</body>"
           "</message>" % jid)
    w.expect("hi web")
    m = parse(w.last_messages[-1])
    assert m.tag == "{jabber:client}message"
    assert m.find("{jabber:client}body").text == "hi web"
    # clean close: <close/> answered with <close/>, then the WebSocket
    # closing handshake (1000) and EOF
    w.send(CLOSE)
    w.expect("<close")
    assert parse(w.last_messages[-1]).tag == "{%s}close" % FRAMING
    w.until_closed()
    assert w.close_code == 1000
    t.close()


def test_ws_scram_login_R_WEB_1(live, make_user):
    make_user("w17s", PW)
    w = WS(port(live, "c2s-b"))
    feats = w.open()
    assert "SCRAM-SHA-256" in feats and "SCRAM-SHA-1" in feats
    out = _scram(w, "w17s", PW, "sha256")
    assert "<success" in out, out
    jid = w.bind("scram")
    assert jid == "w17s@%s/scram" % D
    w.ask("<iq xmlns='jabber:client' type='get' id='p1' to='%s'>"
          "<ping xmlns='urn:xmpp:ping'/></iq>" % D, "id='p1'")
    assert parse(w.last_messages[-1]).get("type") == "result"
    w.close()


def test_ws_wrong_password_not_authorized(live, make_user):
    make_user("w17w", PW)
    w = WS(port(live))
    w.open()
    raw = base64.b64encode(b"\0w17w\0wrong").decode()
    r = w.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
              "mechanism='PLAIN'>%s</auth>" % raw, "</failure>", timeout=20)
    assert "<not-authorized/>" in r
    w.close()


# ---- R-WEB-3 ----------------------------------------------------------------


def wait_unavailable(t, full, timeout=10):
    """Read t's presences from full until an unavailable one."""
    deadline = time.monotonic() + timeout
    while True:
        got = t.expect("from='%s'" % full,
                       max(0.1, deadline - time.monotonic()))
        head = got[got.rindex("<presence"):] + t.expect(">")
        if "type='unavailable'" in head:
            return


def test_ws_and_tcp_see_presence_across_nodes_R_WEB_3(live, make_user):
    make_user("w17p", PW)
    make_user("w17q", PW)
    roster_row("w17p", "w17q", "both")
    roster_row("w17q", "w17p", "both")
    t = tcp_login(live, "c2s-b", "w17q", PW, "tcp")  # sends presence
    w = ws_login(live, "w17p", "c2s-a", resource="web")
    w.send("<presence xmlns='jabber:client'/>")
    # the WS user gets the TCP user's presence (probe answer) ...
    w.expect("from='w17q@%s/tcp'" % D)
    # ... and the TCP user the WS user's
    t.expect("from='w17p@%s/web'" % D)
    # going unavailable over WS reaches the other node
    w.send("<presence xmlns='jabber:client' type='unavailable'/>")
    wait_unavailable(t, "w17p@%s/web" % D)
    w.send(CLOSE)
    w.until_closed()
    t.close()


def test_ws_drop_sends_unavailable_R_WEB_3(live, make_user):
    """A WebSocket that vanishes is a drop: subscribers get unavailable."""
    make_user("w17d", PW)
    make_user("w17e", PW)
    roster_row("w17d", "w17e", "both")
    roster_row("w17e", "w17d", "both")
    t = tcp_login(live, "c2s-b", "w17e", PW, "tcp")
    w = ws_login(live, "w17d", "c2s-a", resource="web")
    w.send("<presence xmlns='jabber:client'/>")
    t.expect("from='w17d@%s/web'" % D)
    w.sock.close()  # no <close/>, no close frame
    wait_unavailable(t, "w17d@%s/web" % D)
    t.close()


# ---- R-WEB-4 and the handshake ------------------------------------------------


def test_ws_origin_checked_R_WEB_4(live):
    p = port(live)
    # empty ws_origins: same host only
    with pytest.raises(HandshakeRefused) as e:
        WS(p, origin="http://evil.example")
    assert e.value.status == 403
    with pytest.raises(HandshakeRefused) as e:
        WS(p, origin="null")
    assert e.value.status == 403
    with pytest.raises(HandshakeRefused) as e:
        WS(p, origin="http://localhost:%d.evil.example" % p,
           host="localhost:%d" % p)
    assert e.value.status == 403
    # the page's own origin, and a client without Origin, are let in
    WS(p, origin="http://localhost:%d" % p, host="localhost:%d" % p).close()
    WS(p).close()


def test_ws_handshake_statuses(live):
    p = port(live)
    with pytest.raises(HandshakeRefused) as e:
        WS(p, protocol=None)
    assert e.value.status == 400 and b"xmpp" in e.value.body
    with pytest.raises(HandshakeRefused) as e:
        WS(p, protocol="chat, superchat")
    assert e.value.status == 400
    with pytest.raises(HandshakeRefused) as e:
        WS(p, version="8")
    assert e.value.status == 426
    assert e.value.headers.get("sec-websocket-version") == "13"
    # a plain GET on the WebSocket path: 426 Upgrade Required
    st, hd, _ = http(p, "GET", "/xmpp-websocket")
    assert st == 426 and hd.get("upgrade") == "websocket"
    st, hd, _ = http(p, "POST", "/ws", body=b"x")
    assert st == 405 and "GET" in hd.get("allow", "")
    # a bad key
    st, _, _ = http(p, "GET", "/ws", {
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "c2hvcnQ=", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "xmpp"})
    assert st == 400


def test_http_bad_requests_do_not_harm_sessions(live, make_user):
    make_user("w17h", PW)
    w = ws_login(live, "w17h", resource="keep")
    p = port(live)
    assert http(p, "GET", "/nothing-here")[0] == 404
    assert http(p, "DELETE", "/.well-known/host-meta")[0] == 405
    assert http(p, "GET", "/", raw=b"\x16\x03\x01garbage\r\n\r\n")[0] == 400
    assert http(p, "GET", "/", raw=b"GET / HTTP/1.1\r\n\r\n")[0] == 400  # Host
    # a body over http_max_body: refused from its Content-Length, or while
    # it arrives (chunked)
    assert http(p, "POST", "/.well-known/host-meta",
                {"Content-Length": str(2 * 1024 * 1024)})[0] == 413
    chunk = b"x" * 100000
    assert http(p, "POST", "/", raw=b"POST /chat/ HTTP/1.1\r\nHost: localhost"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
                (b"%x\r\n" % len(chunk)) + chunk + b"\r\n0\r\n\r\n")[0] == 413
    st, _, _ = http(p, "GET", "/.well-known/host-meta",
                    {"X-Filler": "a" * 20000})
    assert st == 431
    # a broken request closes its connection, and only that one
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n")
    st, hd, _, _ = read_response(s)
    assert st == 400 and hd.get("connection") == "close"
    assert closed_after(s)
    s.close()
    # the WebSocket session from before is untouched
    w.ask("<iq xmlns='jabber:client' type='get' id='still'>"
          "<ping xmlns='urn:xmpp:ping'/></iq>", "id='still'")
    assert parse(w.last_messages[-1]).get("type") == "result"
    w.close()


def test_http_keep_alive_and_pipelining(live):
    p = port(live)
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    req = (b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.sendall(req)
    st1, _, b1, rest = read_response(s)
    st2, _, _, rest = read_response(s, rest)
    assert (st1, st2) == (200, 404) and b"XRD" in b1
    # the connection stays open for a third request
    s.sendall(b"HEAD /.well-known/host-meta.json HTTP/1.1\r\n"
              b"Host: localhost\r\nConnection: close\r\n\r\n")
    st3, hd3, _, rest = read_response(s, rest, head_only=True)
    assert st3 == 200 and hd3.get("connection") == "close"
    assert int(hd3["content-length"]) > 0 and rest == b""
    assert closed_after(s)
    s.close()


# ---- limits, ping ------------------------------------------------------------


def test_ws_oversized_frame_policy_violation(live, make_user):
    make_user("w17big", PW)
    w = ws_login(live, "w17big")
    # a text frame announcing more than max_stanza_bytes (65536): the
    # stream error comes before the payload is read
    n = 200000
    mask = os.urandom(4)
    part = bytes(b ^ mask[i % 4] for i, b in enumerate(b"<message>"))
    w.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n) + mask +
                   part)
    texts = w.until_closed()
    assert any("<policy-violation" in t for t in texts), texts
    err = next(t for t in texts if "<policy-violation" in t)
    assert parse(err).tag == "{%s}error" % NS_STREAMS
    assert any(t.startswith("<close") for t in texts), texts
    assert w.close_code == 1009


def test_ws_oversized_stanza_in_fragments(live, make_user):
    make_user("w17frag", PW)
    w = ws_login(live, "w17frag")
    chunk = "<message xmlns='jabber:client'><body>" + "y" * 40000
    w.send_frame(0x1, chunk, fin=False)
    w.send_frame(0x0, "z" * 40000, fin=False)
    texts = w.until_closed()
    assert any("<policy-violation" in t for t in texts), texts


def test_ws_binary_frame_refused(live, make_user):
    make_user("w17bin", PW)
    w = ws_login(live, "w17bin")
    w.send_frame(0x2, b"<presence/>")
    texts = w.until_closed()
    assert any("<bad-format" in t for t in texts), texts
    assert w.close_code == 1003


def test_ws_ping_pong_and_pipelined_open(live, make_user):
    make_user("w17pp", PW)
    w = WS(port(live, "c2s-b"))
    w.send_frame(0x9, b"are-you-there")
    w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (FRAMING, D))
    w.expect("</stream:features>")
    deadline = time.monotonic() + 10
    while not w.pongs and time.monotonic() < deadline:
        w.pump(deadline - time.monotonic())
    assert w.pongs == [b"are-you-there"]
    w.close()


def test_ws_open_wrong_host_and_namespace(live):
    w = WS(port(live))
    w.send("<open xmlns='%s' to='elsewhere.example' version='1.0'/>"
           % FRAMING)
    texts = w.until_closed()
    assert any("<host-unknown" in t for t in texts), texts
    w = WS(port(live))
    w.send("<open xmlns='urn:wrong' to='%s' version='1.0'/>" % D)
    texts = w.until_closed()
    assert any("<invalid-namespace" in t for t in texts), texts


def test_wss_on_https_port(live, make_user):
    make_user("w17tls", PW)
    w = WS(port(live, "c2s-a", "https"), tls=True, cert=live.cert)
    feats = w.open()
    assert "PLAIN" in feats
    assert w.login_plain("w17tls", PW, "secure") == "w17tls@%s/secure" % D
    w.send(CLOSE)
    w.expect("<close")
    w.close()
    st, hd, body = http(port(live, "c2s-a", "https"), "GET",
                        "/.well-known/host-meta.json", tls=True,
                        cert=live.cert)
    assert st == 200
    links = json.loads(body)["links"]
    assert links[0]["href"] == "wss://localhost/xmpp-websocket"


# ---- discovery, CORS, static files ---------------------------------------------


def test_host_meta_xep_0156(live):
    p = port(live, "c2s-b")
    host = "localhost:%d" % p
    st, hd, body = http(p, "GET", "/.well-known/host-meta", host=host)
    assert st == 200 and hd["content-type"].startswith("application/xrd+xml")
    assert hd.get("access-control-allow-origin") == "*"
    x = ET.fromstring(body)
    links = {ln.get("rel"): ln.get("href")
             for ln in x.findall("{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
                                 "Link")}
    assert links["urn:xmpp:alt-connections:websocket"] == \
        "ws://%s/xmpp-websocket" % host
    assert links["urn:xmpp:alt-connections:xbosh"] == \
        "http://%s/http-bind" % host
    st, hd, body = http(p, "GET", "/.well-known/host-meta.json", host=host)
    assert st == 200 and hd["content-type"] == "application/json"
    j = json.loads(body)
    assert {"rel": "urn:xmpp:alt-connections:websocket",
            "href": "ws://%s/xmpp-websocket" % host} in j["links"]
    # a Host header that cannot go into a URL
    assert http(p, "GET", "/.well-known/host-meta",
                host="bad'host")[0] == 400


def test_cors_preflight(live):
    p = port(live)
    own = "http://localhost:%d" % p
    st, hd, _ = http(p, "OPTIONS", "/.well-known/host-meta",
                     {"Origin": own,
                      "Access-Control-Request-Method": "GET"},
                     host="localhost:%d" % p)
    assert st == 204 and hd.get("access-control-allow-origin") == own
    assert "GET" in hd.get("access-control-allow-methods", "")
    st, hd, _ = http(p, "OPTIONS", "/.well-known/host-meta",
                     {"Origin": "http://evil.example"},
                     host="localhost:%d" % p)
    assert st == 204 and "access-control-allow-origin" not in hd


def test_chat_static_files(live):
    # in a folder of its own: web/index.html is the stack's web client
    web = os.path.join(conftest.VAR, "web", "t17")
    os.makedirs(os.path.join(web, "js"), exist_ok=True)
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write("<!doctype html><title>kiln chat</title>")
    with open(os.path.join(web, "js", "app.js"), "w") as f:
        f.write("console.log('kiln');")
    with open(os.path.join(web, ".hidden"), "w") as f:
        f.write("secret")
    outside = os.path.join(conftest.VAR, "outside.txt")
    with open(outside, "w") as f:
        f.write("outside")
    link = os.path.join(web, "escape.txt")
    if not os.path.lexists(link):
        os.symlink(outside, link)
    p = port(live)
    st, hd, body = http(p, "GET", "/chat/t17/")
    assert st == 200 and hd["content-type"].startswith("text/html")
    assert b"kiln chat" in body
    st, hd, body = http(p, "GET", "/chat/t17/js/app.js")
    assert st == 200 and hd["content-type"].startswith("text/javascript")
    assert body == b"console.log('kiln');"
    st, hd, _ = http(p, "GET", "/chat")
    assert st == 301 and hd["location"] == "/chat/"
    for bad in ("/chat/../kiln.conf", "/chat/%2e%2e/kiln.conf",
                "/chat/t17/js/%2E%2E/%2E%2E/%2E%2E/kiln.conf",
                "/chat/t17/.hidden",
                "/chat/t17/escape.txt", "/chat/nope.html", "/chat/a%00b",
                "/chat//etc/passwd"):
        st, _, body = http(p, "GET", bad)
        assert st == 404, (bad, st)
        assert b"outside" not in body and b"secret" not in body


# ---- BOSH (XEP-0124 / XEP-0206) --------------------------------------------------


def test_bosh_login_presence_messages_R_WEB_3(live, make_user):
    make_user("w17bo", PW)
    make_user("w17bt", PW)
    roster_row("w17bo", "w17bt", "both")
    roster_row("w17bt", "w17bo", "both")
    t = tcp_login(live, "c2s-b", "w17bt", PW, "tcp")
    b = Bosh(port(live, "c2s-a"), wait=5)
    created = b.create()
    assert created.get("sid") and created.get("requests") == "2"
    assert created.get("inactivity") == "30" and created.get("polling") == "5"
    assert created.get("hold") == "1" and created.get("wait") == "5"
    assert created.get("{%s}version" % XBOSH) == "1.0"
    # the features come with the creation answer
    feats = [ET.tostring(p).decode() for p in b.payloads]
    assert any("PLAIN" in f for f in feats), feats
    b.payloads = []
    raw = base64.b64encode(b"\0w17bo\0" + PW.encode()).decode()
    b.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
          "mechanism='PLAIN'>%s</auth>" % raw, "success")
    b.send(**{"xmpp:restart": "true", "xmlns:xmpp": XBOSH, "to": D})
    b.expect("xmpp-bind")
    r = b.ask("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns="
              "'urn:ietf:params:xml:ns:xmpp-bind'><resource>bosh</resource>"
              "</bind></iq>", "b1")
    jid = r.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid").text
    assert jid == "w17bo@%s/bosh" % D
    b.send("<presence xmlns='jabber:client'/>")
    # presence both ways across the nodes
    b.expect('from="w17bt@%s/tcp"' % D)
    t.expect("from='w17bo@%s/bosh'" % D)
    # messages both ways
    b.send("<message xmlns='jabber:client' to='%s' type='chat'><body>"
           "via bosh</body></message>" % t.jid)
    assert "via bosh" in t.expect("</message>")
    t.send("<message to='%s' type='chat'><body>to bosh</body></message>"
           % jid)
    m = b.expect("to bosh")
    assert m.tag == "{jabber:client}message"
    # terminate: an unavailable presence inside, then the session is over
    b.send("<presence xmlns='jabber:client' type='unavailable'/>",
           type="terminate")
    deadline = time.monotonic() + 10
    while b.terminated is None and time.monotonic() < deadline:
        b.response()
    assert b.terminated is not None
    wait_unavailable(t, "w17bo@%s/bosh" % D)
    # the sid is gone
    b.send()
    assert b.response().get("condition") == "item-not-found"
    t.close()


def test_bosh_scram_login(live, make_user):
    make_user("w17bs", PW)
    b = Bosh(port(live, "c2s-b"), wait=5)
    b.create()
    b.payloads = []  # the features
    # SCRAM: challenge then success
    out = _scram(_ShimAsk(b), "w17bs", PW, "sha1")
    assert out.startswith("success"), out


class _ShimAsk:
    """test_03's _scram over BOSH: ask() returns '<tag>TEXT</' like the
    byte-level clients."""

    def __init__(self, b):
        self.b = b

    def ask(self, data, needle):
        self.b.send(data)
        el = self.b.expect("urn:ietf:params:xml:ns:xmpp-sasl")
        tag = el.tag.split("}")[1]
        if tag == "success":
            return "success"
        return "<%s>%s</" % (tag, el.text or "")


def test_bosh_rid_window_replay_and_unknown_sid_R_WEB_2(live, make_user):
    b = Bosh(port(live, "c2s-a"), wait=2)
    b.create()
    # a repeated rid gets the same answer again
    rid = b.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                 "mechanism='NOPE'>=</auth>")
    first = None
    while first is None:
        b.response()
        first = b.last_raw.get(rid)
    assert b"invalid-mechanism" in first
    again = b.post({"sid": b.sid}, rid=rid)
    assert again == rid
    b.response()
    assert b.last_raw[rid] == first
    # another node does not know the session
    b.post({"sid": b.sid}, port=port(live, "c2s-b"))
    t = b.response()
    assert t.get("type") == "terminate"
    assert t.get("condition") == "item-not-found"
    b.terminated = None
    # a rid far outside the window ends the session
    b.post({"sid": b.sid}, rid=b.rid + 50)
    t = b.response()
    assert t.get("type") == "terminate"
    assert t.get("condition") == "item-not-found"
    b.post({"sid": b.sid})
    assert b.response().get("condition") == "item-not-found"


def test_bosh_bad_requests(live):
    p = port(live)
    assert http(p, "GET", "/http-bind")[0] == 405
    st, _, _ = http(p, "POST", "/http-bind", body=b"not xml")
    assert st == 400
    st, _, body = http(p, "POST", "/http-bind",
                       body=b"<body xmlns='http://jabber.org/protocol/"
                            b"httpbind' to='localhost'/>")
    assert st == 200 and b"bad-request" in body
    st, _, body = http(p, "POST", "/http-bind",
                       body=b"<body xmlns='http://jabber.org/protocol/"
                            b"httpbind' rid='5' to='elsewhere' wait='5' "
                            b"hold='1'/>")
    assert st == 200 and b"host-unknown" in body
    st, _, _ = http(p, "POST", "/http-bind", {"Origin": "http://evil.example"},
                    body=b"<body xmlns='http://jabber.org/protocol/"
                         b"httpbind' rid='5' to='localhost'/>")
    assert st == 403
    # CORS for the page's own origin
    own = "http://localhost:%d" % p
    b = Bosh(p, host="localhost:%d" % p, origin=own)
    b.create()
    assert b.last_headers.get("access-control-allow-origin") == own


@pytest.fixture
def node_c(live):
    live.start("c2s-c")
    try:
        yield live
    finally:
        live.stop("c2s-c")


def test_bosh_inactivity_ends_session_like_a_drop_R_WEB_2(node_c,
                                                           make_user):
    """c2s-c has bosh_inactivity = 3: with no request held for 3 s the
    session ends and the subscriber gets unavailable."""
    make_user("w17bi", PW)
    make_user("w17bj", PW)
    roster_row("w17bi", "w17bj", "both")
    roster_row("w17bj", "w17bi", "both")
    t = tcp_login(node_c, "c2s-b", "w17bj", PW, "tcp")
    b = Bosh(port(node_c, "c2s-c"), wait=1)
    created = b.create()
    assert created.get("inactivity") == "3"
    raw = base64.b64encode(b"\0w17bi\0" + PW.encode()).decode()
    b.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
          "mechanism='PLAIN'>%s</auth>" % raw, "success")
    b.send(**{"xmpp:restart": "true", "xmlns:xmpp": XBOSH, "to": D})
    b.expect("xmpp-bind")
    b.ask("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns="
          "'urn:ietf:params:xml:ns:xmpp-bind'><resource>idle</resource>"
          "</bind></iq>", "b1")
    b.send("<presence xmlns='jabber:client'/>")
    t.expect("from='w17bi@%s/idle'" % D)
    # the client stops: its held request is answered after wait (1 s),
    # then nothing is held
    while b.outstanding:
        b.response()
    mark = node_c.log_mark("c2s-c")
    wait_unavailable(t, "w17bi@%s/idle" % D, timeout=20)
    node_c.wait_log("c2s-c", "no request for 3 s", since=mark)
    b.send()
    assert b.response().get("condition") == "item-not-found"
    t.close()


def test_ws_idle_policy_R_DROP_4(node_c, make_user):
    """The idle policy of TCP sessions applies to WebSocket ones (c2s-c:
    idle_timeout = 6): a server ping at 3 s, then connection-timeout and
    the framed close at 6 s."""
    make_user("w17idle", PW)
    w = ws_login(node_c, "w17idle", "c2s-c", resource="quiet")
    t0 = time.monotonic()
    w.expect("kiln-ping-", timeout=15)
    ping = parse(w.last_messages[-1])
    assert ping.tag == "{jabber:client}iq" and ping.get("type") == "get"
    texts = w.until_closed(timeout=15)
    assert time.monotonic() - t0 >= 5
    assert any("<connection-timeout" in x for x in texts), texts
    assert texts[-1].startswith("<close"), texts
