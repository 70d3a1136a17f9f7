"""25b ws park: an idle WebSocket session gives back libwslay's context
(about 8.6 KiB) when the idle sweep parks its parser, and gets a new one
on its next byte (c2s_ws.c ws_park; issue 12 "Measure": memory per idle
WebSocket session within 4 KiB of a TLS TCP session). The context must
stay while it holds state: half a frame, or the first fragments of a
message. Three sessions idle through one park at the same time:

- one whose last bytes were half a frame header: the rest completes it;
- one in the middle of a fragmented message: the last fragment ends it;
- one with nothing pending (its context is freed): messages both ways
  and a ping afterwards.

Requirement IDs: R-WEB-1 (a WebSocket session is an ordinary session),
R-WEB-3.
"""

import os
import struct
import time

from test_01_stream import login as tcp_login
from web_client import WS

PW = "park-secret"
# c2s_server.c: parsers are parked after C2S_IDLE_PARK_S (5 s) of silence
# by a sweep that runs at least every 5 s: 10 s covers both.
PARK_WAIT = 11.0


def frame(opcode, payload, fin=True):
    payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    head += (bytes([0x80 | n]) if n < 126
             else bytes([0x80 | 126]) + struct.pack(">H", n))
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def msg(to, body):
    return ("<message xmlns='jabber:client' to='%s' type='chat'><body>%s"
            "</body></message>" % (to, body))


def test_idle_websocket_parks_and_resumes_R_WEB_1(live, make_user):
    for u in ("park1", "park2", "park3", "parkt"):
        make_user(u, PW)
    t = tcp_login(live, "c2s-b", "parkt", PW, "tcp")
    ws = []
    for i, u in enumerate(("park1", "park2", "park3")):
        w = WS(live.ports["c2s-a"]["http"])
        w.open()
        w.login_plain(u, PW, "idle")
        w.send("<presence xmlns='jabber:client'/>")
        ws.append(w)
    w1, w2, w3 = ws
    # w1: half a frame; w2: the first fragment of a message
    f1 = frame(0x1, msg(t.jid, "half-frame"))
    w1.sock.sendall(f1[:3])
    whole = msg(t.jid, "fragmented")
    w2.sock.sendall(frame(0x1, whole[:20], fin=False))
    time.sleep(PARK_WAIT)  # through one park (see PARK_WAIT)
    w1.sock.sendall(f1[3:])
    assert "half-frame" in t.expect("</message>")
    w2.sock.sendall(frame(0x0, whole[20:]))
    assert "fragmented" in t.expect("</message>")
    # w3 was idle with nothing pending: in, out, ping all still work
    t.send("<message to='park3@localhost/idle' type='chat'>"
           "<body>to-parked</body></message>")
    assert "to-parked" in w3.expect("</message>")
    w3.send(msg(t.jid, "from-parked"))
    assert "from-parked" in t.expect("</message>")
    w3.send_frame(0x9, b"p1")
    deadline = time.monotonic() + 10
    while not w3.pongs and time.monotonic() < deadline:
        w3.pump(deadline - time.monotonic())
    assert w3.pongs == [b"p1"]
    # a second idle spell for all three, then traffic again
    time.sleep(PARK_WAIT)
    for i, w in enumerate(ws):
        w.send(msg(t.jid, "again%d" % i))
        assert "again%d" % i in t.expect("</message>")
