"""15 real clients: go-sendxmpp (Debian's /usr/bin/go-sendxmpp, a Go
client on mattn/go-xmpp) against the cluster, and the byte patterns it
showed us.

Issue 10 "First contact": each client logs in on a different node, sees
its contact online, exchanges a message and joins a group. Here
go-sendxmpp is on c2s-b and a slixmpp client on c2s-a:
- go-sendxmpp sends a chat message that slixmpp receives;
- go-sendxmpp in listen mode (-l) prints a message slixmpp sent it;
- both are in a shared roster group, so each gets the other's available
  presence. go-sendxmpp has no presence display; its debug mode (-d)
  prints every stanza it receives, which is where we see the contact's
  presence arrive;
- go-sendxmpp joins a MUC room (-c) and its groupchat message reaches a
  slixmpp occupant.

The certificate is verified (SSL_CERT_FILE names the test CA for Go's
crypto/x509), never skipped.

Stream restarts (R-BASE-1, RFC 6120 6.4.6 and 5.4.3.3): go-sendxmpp
writes "<auth ...>...</auth>\\n"; the newline belongs to the old stream
and must not make the new stream's XML declaration not-well-formed.
Likewise whitespace after <starttls/> that arrives before the
ClientHello. Roster versioning (XEP-0237, RFC 6121 2.6.1, R-ROSTER-3):
<ver xmlns='urn:xmpp:features:rosterver'/> is advertised after
authentication and not before.
"""

import asyncio
import base64
import os
import re
import subprocess
import threading
import time

from conftest import BIN, CONF
from test_01_stream import HDR, Raw
from xmpp_client import joined, login, next_message, next_presence, run

GO_SENDXMPP = "/usr/bin/go-sendxmpp"
PW = "pw-c15-secret"
SVC = "conference.localhost"
NS_ROSTERVER = "urn:xmpp:features:rosterver"


def kilnctl(*args):
    r = subprocess.run([os.path.join(BIN, "kilnctl"), "-c", CONF, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def plain(user, password):
    return base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


# ---- stream restarts and features (raw bytes) -----------------------------

def test_newline_after_auth_then_declaration(live, make_user):
    """R-BASE-1: "</auth>\\n" in one write, as go-sendxmpp sends it, then
    the restarted stream with an XML declaration."""
    make_user("c15raw", PW)
    r = Raw(live.ports["c2s-a"]["starttls"], live.cert)
    r.starttls()
    out = r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                "mechanism='PLAIN'>%s</auth>\n" % plain("c15raw", PW),
                "<success")
    r.expect("</success>")
    out = r.ask(HDR % "localhost", "</stream:features>")
    assert "<stream:error" not in out, out
    assert "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>" in out, out
    out = r.ask("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
                "ns:xmpp-bind'/></iq>", "</iq>")
    assert "<jid>c15raw@localhost/" in out, out
    r.close()


def test_whitespace_after_success_then_declaration(live, make_user):
    """R-BASE-1: whitespace that arrives after <success/>, in its own
    segment, before the new header with its XML declaration."""
    make_user("c15raw", PW)
    r = Raw(live.ports["c2s-b"]["tls"], live.cert, direct_tls=True)
    r.open()
    r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
          "mechanism='PLAIN'>%s</auth>" % plain("c15raw", PW), "</success>")
    r.send("\r\n")
    r.send(" \n")
    out = r.ask(HDR % "localhost", "</stream:features>")
    assert "<stream:error" not in out, out
    assert "xmpp-bind" in out, out
    r.close()


def test_newline_after_starttls_before_handshake(live):
    """R-BASE-1: a newline sent after <proceed/> arrived, before the
    ClientHello, is the old stream's and does not break the handshake."""
    r = Raw(live.ports["c2s-a"]["starttls"], live.cert)
    r.open()
    r.ask("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed")
    r.expect("/>")
    r.send("\n")
    r._wrap()
    out = r.open()
    assert "<stream:error" not in out, out
    assert "<mechanism>PLAIN</mechanism>" in out, out
    r.close()


def test_rosterver_feature_only_after_auth(live, make_user):
    """R-ROSTER-3 / XEP-0237: the rosterver stream feature is offered with
    bind, never before authentication."""
    make_user("c15raw", PW)
    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    pre = r.open()
    assert NS_ROSTERVER not in pre, pre
    r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
          "mechanism='PLAIN'>%s</auth>" % plain("c15raw", PW), "</success>")
    post = r.open()
    assert "<ver xmlns='%s'/>" % NS_ROSTERVER in post, post
    assert "xmpp-bind" in post, post
    r.close()


# ---- go-sendxmpp -----------------------------------------------------------

def go_args(live, node, user, *extra):
    return [GO_SENDXMPP, "-j", "127.0.0.1:%d" % live.ports[node]["starttls"],
            "-u", "%s@%s" % (user, live.domain), "-p", PW, "--timeout", "20",
            *extra]


def go_env(live):
    # Go reads its trust store from SSL_CERT_FILE: verification stays on.
    env = dict(os.environ)
    env["SSL_CERT_FILE"] = live.cert
    env["HOME"] = os.environ.get("KILN_VAR", "/tmp")  # no user sendxmpprc
    return env


class GoListener:
    """go-sendxmpp -d -l running in the background; its output is
    collected by a thread and waited on."""

    def __init__(self, live, node, user):
        self.proc = subprocess.Popen(
            go_args(live, node, user, "-d", "-l"), env=go_env(live),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.out = ""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.out += line

    def text(self):
        with self.lock:
            return self.out

    async def wait_for(self, pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        while not pred(self.text()):
            if self.proc.poll() is not None and not self.reader.is_alive():
                raise AssertionError("go-sendxmpp exited (%s) before %s:\n%s"
                                     % (self.proc.returncode, what,
                                        self.text()[-3000:]))
            if time.monotonic() > deadline:
                raise AssertionError("go-sendxmpp: no %s within %ss:\n%s"
                                     % (what, timeout, self.text()[-3000:]))
            await asyncio.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


async def go_send(live, node, user, body, *extra):
    """Run go-sendxmpp to completion off the event loop (slixmpp keeps
    running); returns the CompletedProcess."""
    def call():
        return subprocess.run(go_args(live, node, user, *extra),
                              env=go_env(live), input=body + "\n",
                              capture_output=True, text=True, timeout=60)
    r = await asyncio.get_event_loop().run_in_executor(None, call)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def test_go_sendxmpp_sends_chat_message(live, make_user):
    """go-sendxmpp on c2s-b logs in (STARTTLS, SASL, restart, bind) and its
    message reaches slixmpp on c2s-a (it failed at the restart before)."""
    make_user("c15go", PW)
    make_user("c15sl", PW)

    async def scenario():
        sl = await login(live, "c15sl", PW, node="c2s-a")
        try:
            await go_send(live, "c2s-b", "c15go", "hello from go-sendxmpp",
                          "c15sl@%s" % live.domain)
            m = await next_message(
                sl, lambda m: m["body"] == "hello from go-sendxmpp",
                timeout=10)
            assert m["from"].bare == "c15go@%s" % live.domain
            assert m["type"] == "chat"
        finally:
            await sl.stop()

    run(scenario(), timeout=90)


def test_go_sendxmpp_contact_presence_and_listen(live, make_user):
    """Contacts through a shared group: each side gets the other's
    available presence; go-sendxmpp -l prints the message slixmpp sends."""
    make_user("c15gol", PW)
    make_user("c15sll", PW)
    kilnctl("group", "add", "c15-team", "--display", "Team",
            "--visibility", "only_group")
    kilnctl("group", "member", "add", "c15-team", "c15gol")
    kilnctl("group", "member", "add", "c15-team", "c15sll")
    gojid = "c15gol@%s" % live.domain
    sljid = "c15sll@%s" % live.domain

    async def scenario():
        sl = await login(live, "c15sll", PW, node="c2s-a")
        go = GoListener(live, "c2s-b", "c15gol")
        try:
            # slixmpp sees go-sendxmpp come online (its initial presence).
            p = await next_presence(
                sl, lambda p: p["from"].bare == gojid and
                p["type"] in ("available", ""), timeout=20)
            gofull = str(p["from"])
            # go-sendxmpp got slixmpp's presence (R-PRES-3), as its debug
            # dump of received stanzas shows.
            # Any available presence start tag from slixmpp's full JID.
            def contact_online(t):
                return any(re.search(r"\bfrom='%s/[^']+'" % re.escape(sljid),
                                     tag) and " type=" not in tag
                           for tag in re.findall(r"<presence\b[^>]*>", t))
            await go.wait_for(contact_online, "presence of its contact")
            sl.send_message(mto=gofull, mbody="hi go, from slixmpp",
                            mtype="chat")
            await go.wait_for(
                lambda t: "%s: hi go, from slixmpp" % sljid in t,
                "printed message")
        finally:
            go.stop()
            await sl.stop()

    run(scenario(), timeout=90)


def test_go_sendxmpp_groupchat(live, make_user):
    """go-sendxmpp joins a room (-c) from c2s-b; its groupchat message
    reaches the slixmpp occupant on c2s-a."""
    make_user("c15gom", PW)
    make_user("c15slm", PW)
    room = "c15room@%s" % SVC

    async def scenario():
        sl = await login(live, "c15slm", PW, node="c2s-a")
        try:
            p = await joined(sl, room, "slix")
            assert p["type"] != "error", p
            await go_send(live, "c2s-b", "c15gom", "hello room", "-c",
                          "-a", "gonick", room)
            m = await next_message(
                sl, lambda m: m["body"] == "hello room", timeout=10)
            assert m["type"] == "groupchat"
            assert str(m["from"]) == "%s/gonick" % room
        finally:
            await sl.stop()

    run(scenario(), timeout=90)
