"""24 browser: the bundled web client (Converse.js at /chat/ on every c2s
node) in a real browser: Debian's Chromium, headless, driven by
playwright-core (tests/browser/chat.mjs; both from `make web`).

Alice opens node A's page, Bob node B's; they log in, see each other come
online, exchange messages both ways, Alice shares an image (XEP-0363:
Converse uploads it through node A, Bob's page shows it loaded), find their group in the XEP-0402
bookmarks kiln-mucd keeps for members (the page lists it and joins it),
talk there; Bob leaves (Alice sees him go offline), Bob logs in again in
a fresh browser profile (no cache) and sees the group's history from the
server (nobody writes while he is away: see "Known issue" in
docs/WEB.md). Once over WebSocket (the page's default: no BOSH request at
all) and once with `?transport=bosh` (no WebSocket at all).

Screenshots of every step (and of every page when a step fails) land in
$KILN_VAR/screenshots/<transport>/ (var/test/screenshots: kept by
tests/run-all.sh after a failed run, or always with KILN_TEST_KEEP=1).

Requirement IDs: R-WEB-1 (WebSocket), R-WEB-2 (BOSH), R-WEB-3 (web
sessions on two nodes see each other's presence and talk).
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import conftest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(TOP, "tests", "browser", "chat.mjs")
WEB = os.environ.get("KILN_WEB_DIR", os.path.join(TOP, "build", "web"))
SHOTS = os.path.join(conftest.VAR, "screenshots")
PW = "browser-Secret-24"


def kilnctl(*args):
    r = subprocess.run([os.path.join(conftest.BIN, "kilnctl"), "-c",
                        conftest.CONF, *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def marked_procs(mark):
    """Pids of our processes whose environment holds KILN_BROWSER_RUN=mark:
    the node script and every browser process it started (they inherit
    it, whatever session or process group Playwright gives them)."""
    needle = ("KILN_BROWSER_RUN=%s" % mark).encode()
    left = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            left.append(int(d))
    return left


def kill_marked(mark):
    for pid in marked_procs(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def web(live):
    for f in (SCRIPT, os.path.join(WEB, "node_modules", "playwright-core"),
              os.path.join(conftest.VAR, "web", "index.html"), "/usr/bin/chromium"):
        assert os.path.exists(f), "%s is missing (make web)" % f
    return live


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
def test_web_chat_in_browser_R_WEB_1_R_WEB_3(web, make_user, transport):
    t = "ws" if transport == "websocket" else "bosh"
    alice, bob = make_user("b24alice" + t, PW), make_user("b24bob" + t, PW)
    # Mutual contacts: a shared group both are in (roster items "both").
    kilnctl("group", "add", "b24team" + t, "--display", "Team " + t,
            "--visibility", "only_group")
    kilnctl("group", "member", "add", "b24team" + t, alice)
    kilnctl("group", "member", "add", "b24team" + t, bob)
    # A persistent members-only group: kiln-mucd writes each member an
    # XEP-0402 bookmark with autojoin.
    room_name = "Lounge " + t
    room = kilnctl("group-room", "create", "b24lounge" + t, "--name",
                   room_name, "--owner", alice + "@localhost").strip()
    assert room == "b24lounge%s@conference.localhost" % t
    kilnctl("group-room", "add-member", room, alice + "@localhost",
            "--nick", "Alice")
    kilnctl("group-room", "add-member", room, bob + "@localhost",
            "--nick", "Bob")

    query = "?transport=bosh" if transport == "bosh" else ""
    shots = os.path.join(SHOTS, transport)
    shutil.rmtree(shots, ignore_errors=True)
    cfg = {
        "a_url": "http://localhost:%d/chat/%s" % (web.ports["c2s-a"]["http"],
                                                 query),
        "b_url": "http://localhost:%d/chat/%s" % (web.ports["c2s-b"]["http"],
                                                 query),
        "transport": transport, "domain": "localhost", "room": room,
        "room_name": room_name, "alice": {"user": alice, "pw": PW},
        "bob": {"user": bob, "pw": PW}, "shots": shots, "tag": t,
    }
    os.makedirs(shots, exist_ok=True)
    cfg_path = os.path.join(shots, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)

    mark = "%d-%s" % (os.getpid(), t)
    env = dict(os.environ, KILN_WEB_DIR=WEB, KILN_BROWSER_RUN=mark)
    p = subprocess.Popen(["node", SCRIPT, cfg_path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    left = []
    try:
        out, _ = p.communicate(timeout=240)
        # The script closed the browser: nothing of it may remain (a
        # renderer may take a moment to notice; bounded).
        deadline = time.monotonic() + 10
        while (left := marked_procs(mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
    except subprocess.TimeoutExpired:
        kill_marked(mark)
        out, _ = p.communicate()
        pytest.fail("the browser test did not finish in 240 s:\n" + out)
    finally:
        kill_marked(mark)  # every browser process goes, whatever happened
    print(out)
    assert p.returncode == 0, "browser test failed (screenshots in %s):\n%s" \
        % (shots, out)
    assert "] done: ok" in out
    assert left == [], "browser processes left behind: %s" % left
    shots_taken = [f for f in os.listdir(shots) if f.endswith(".png")]
    assert len(shots_taken) >= 10, shots_taken
