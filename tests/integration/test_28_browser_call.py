"""28 browser call: a real WebRTC video call between two headless Chromium
pages, signalled through Kiln's WebSocket on two nodes, media through the
private coturn with credentials from Kiln's extdisco.

Requirement IDs: R-AV-1 (JMI propose/proceed and Jingle session-initiate /
session-accept / transport-info between full JIDs on different nodes, as a
real browser stack sends them), R-AV-2 (the TURN credentials handed out by
XEP-0215 are what the browsers' ICE uses: iceTransportPolicy 'relay', and
the selected pair is relay on both ends).

Page A (caller, c2s-a) and page B (callee, c2s-b) are tests/call/call.html
with @xmpp/client 0.14.0's browser build (build/web, `make web`); the Node
driver tests/call/call_driver.cjs (playwright-core, Debian chromium) passes
when both pages' getStats() show inbound-rtp video bytesReceived growing.
Screenshots: $KILN_VAR/screenshots/call-*.png.
"""

import json
import os
import subprocess

from test_23_calls import Turn

PW = "call-pw"
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(TOP, "build", "web")
DRIVER = os.path.join(TOP, "tests", "call", "call_driver.cjs")
VAR = os.environ["KILN_VAR"]
TIMEOUT_S = 120


def test_browser_video_call_through_turn_R_AV_1_R_AV_2(live, make_user):
    assert os.path.exists(os.path.join(
        WEB, "node_modules", "@xmpp", "client", "dist", "xmpp.min.js")), \
        "run `make web` first"
    make_user("c28ann", PW)
    make_user("c28ben", PW)
    shots = os.path.join(VAR, "screenshots")
    os.makedirs(shots, exist_ok=True)
    cfg = {
        "webDir": WEB, "chromium": "/usr/bin/chromium", "pw": PW,
        "shotDir": shots, "timeoutMs": (TIMEOUT_S - 30) * 1000,
        "a": {"user": "c28ann", "peer": "c28ben@localhost", "role": "caller",
              "httpPort": live.ports["c2s-a"]["http"]},
        "b": {"user": "c28ben", "peer": "c28ann@localhost", "role": "callee",
              "httpPort": live.ports["c2s-b"]["http"]},
    }
    log = os.path.join(VAR, "log", "browser-call.log")
    turn = Turn()
    try:
        with open(log, "wb") as lf:
            p = subprocess.Popen(["node", DRIVER, json.dumps(cfg)],
                                 stdout=subprocess.PIPE, stderr=lf,
                                 stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                out, _ = p.communicate(timeout=TIMEOUT_S)
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait()
    finally:
        turn.stop()
    lines = out.decode().strip().splitlines()
    assert lines, "driver printed nothing (see %s)" % log
    res = json.loads(lines[-1])
    assert res["ok"], "%s\n(see %s)" % (json.dumps(res, indent=1), log)
    for side in ("a", "b"):
        first, second = res[side]["first"], res[side]["second"]
        assert 0 < first["bytes"] < second["bytes"]
        assert second["local"] == "relay" and second["remote"] == "relay"
    # The callee's page saw the proposal through Kiln and answered it.
    assert any(ln.startswith("propose ") for ln in res["log0"])
    assert any("TURN from extdisco" in ln for ln in res["log1"])
    for name in ("call-caller-a.png", "call-callee-b.png"):
        assert os.path.getsize(os.path.join(shots, name)) > 0
