"""16 profanity: a real terminal client (Profanity, libstrophe) against Kiln.

Profanity runs headless in its own tmux server (a private socket, a fixed
200x50 pane); the test types commands with send-keys and reads the screen
with capture-pane, waiting for a regex with a bounded poll. Each test gives
Profanity a private HOME and XDG directories (accounts file, profrc, its
debug log), so nothing of the machine's configuration is used. Profanity
logs in on node B (STARTTLS; tls.policy=trust for the self-signed test
certificate), its contact is a slixmpp client on node A, and both have
subscription both. On failure the assertion message carries the screen and
the end of Profanity's own log (the XML it sent and received).

Requirement IDs: R-BASE-1 (STARTTLS, SASL, bind, roster get, presence,
chat and MUC with a client that is not ours), R-PRES-2 (the contact's
login reaches Profanity), R-PRES-3 (contacts already online at Profanity's
login), R-DROP-1 (Profanity's /quit reaches the contact).
"""

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from test_05_roster import D, roster_row
from xmpp_client import joined, login, next_message, next_presence, run, say

PW = "secret-pw"
PROFANITY = shutil.which("profanity") or "/usr/bin/profanity"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
WAIT = 20  # seconds for one screen condition (ASan build, busy machine)


class Profanity:
    """One Profanity process in a private tmux server and HOME."""

    def __init__(self, user, port, resource="prof", nick=None):
        self.jid = "%s@%s" % (user, D)
        self.full = "%s/%s" % (self.jid, resource)
        # Short path: a tmux socket path must fit in sun_path.
        self.dir = tempfile.mkdtemp(prefix="kp16-")
        self.home = os.path.join(self.dir, "home")
        self.sock = os.path.join(self.dir, "tmux.sock")
        data = os.path.join(self.home, ".local", "share")
        conf = os.path.join(self.home, ".config")
        os.makedirs(os.path.join(data, "profanity"))
        os.makedirs(os.path.join(conf, "profanity"))
        self.logpath = os.path.join(data, "profanity", "logs",
                                    "profanity.log")
        accounts = os.path.join(data, "profanity", "accounts")
        with open(accounts, "w") as f:
            f.write("[%s]\n" % self.jid +
                    "enabled=true\n"
                    "jid=%s\n" % self.jid +
                    "server=127.0.0.1\n"
                    "port=%d\n" % port +
                    "resource=%s\n" % resource +
                    "password=%s\n" % PW +
                    "tls.policy=trust\n"
                    "muc.nick=%s\n" % (nick or user) +
                    "presence.login=online\n")
        os.chmod(accounts, 0o600)
        with open(os.path.join(conf, "profanity", "profrc"), "w") as f:
            # No desktop notifications, no OMEMO/OTR prompts in the way.
            f.write("[notifications]\nmessage=false\nroom=false\n"
                    "invite=false\nsub=false\n")
        self.tmuxconf = os.path.join(self.dir, "tmux.conf")
        with open(self.tmuxconf, "w") as f:
            # Keep the pane (and its last screen) when Profanity exits.
            f.write("set -g remain-on-exit on\nset -g status off\n")
        self.env = {
            "HOME": self.home, "XDG_CONFIG_HOME": conf,
            "XDG_DATA_HOME": data, "XDG_CACHE_HOME":
            os.path.join(self.home, ".cache"),
            "XDG_RUNTIME_DIR": self.dir, "PATH": "/usr/bin:/bin",
            "TERM": "xterm-256color", "LANG": "C.UTF-8", "TMUX_TMPDIR":
            self.dir,
        }

    def tmux(self, *args, check=True):
        r = subprocess.run([TMUX, "-f", self.tmuxconf, "-S", self.sock,
                            *args], env=self.env, capture_output=True,
                           text=True, timeout=10)
        if check:
            assert r.returncode == 0, "tmux %s: %s" % (args, r.stderr)
        return r.stdout

    def start(self):
        self.tmux("new-session", "-d", "-s", "prof", "-x", "200", "-y", "50",
                  "%s -l DEBUG -a %s" % (PROFANITY, self.jid))

    def screen(self):
        """The visible pane, each line without its trailing blanks."""
        out = self.tmux("capture-pane", "-p", "-J", "-t", "prof",
                        check=False)
        return "\n".join(line.rstrip() for line in out.splitlines())

    def dead(self):
        out = self.tmux("display-message", "-p", "-t", "prof",
                        "#{pane_dead}", check=False)
        return out.strip() != "0"

    def log_tail(self, n=40):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return "(no log at %s)\n" % self.logpath

    def report(self, what):
        return ("%s\n---- profanity screen ----\n%s\n---- end of %s ----\n%s"
                % (what, self.screen().rstrip(), self.logpath,
                   self.log_tail()))

    async def wait(self, pattern, timeout=WAIT, what=None):
        """Poll the screen until pattern matches (re.M); the match."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.screen())
            if m:
                return m
            if time.monotonic() >= deadline or self.dead():
                raise AssertionError(self.report(
                    "%s: no /%s/ on Profanity's screen within %ss"
                    % (what or "waiting", pattern, timeout)))
            await asyncio.sleep(0.1)  # poll period, not a wait for an event

    async def expect(self, coro, what):
        """Await a slixmpp-side wait; on timeout, fail with the screen."""
        try:
            return await coro
        except (asyncio.TimeoutError, AssertionError) as e:
            raise AssertionError(self.report("%s: %r" % (what, e))) from e

    def type(self, line):
        """Type one line into Profanity's input and press Enter."""
        self.tmux("send-keys", "-t", "prof", "-l", line)
        self.tmux("send-keys", "-t", "prof", "Enter")

    async def login(self):
        await self.wait(r"%s logged in successfully" % re.escape(self.full),
                        what="login")

    async def quit(self):
        self.type("/quit")
        deadline = time.monotonic() + WAIT
        while not self.dead():
            assert time.monotonic() < deadline, self.report("/quit: still up")
            await asyncio.sleep(0.1)

    def close(self):
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def profanity(live):
    """Profanity(user) factory; every tmux server is killed at teardown
    (the private HOME too, unless KILN_TEST_KEEP=1)."""
    made = []

    def make(user, node="c2s-b", **kw):
        p = Profanity(user, live.ports[node]["starttls"], **kw)
        made.append(p)
        p.start()
        return p

    yield make
    for p in made:
        if os.environ.get("KILN_TEST_KEEP") == "1":
            p.tmux("kill-server", check=False)
        else:
            p.close()


def contacts(a, b):
    roster_row(a, b, "both")
    roster_row(b, a, "both")


def from_is(jid, ptype=None):
    return lambda s: str(s["from"]) == jid and (ptype is None or
                                                s["type"] == ptype)


def body_is(body):
    return lambda m: m["body"] == body


def test_profanity_contact_presence_and_chat_R_BASE_1_R_PRES_2(
        live, make_user, profanity):
    """Profanity on B logs in, sees its contact (slixmpp on A) come online
    and go offline, chats both ways, and its /quit reaches the contact."""
    make_user("p16pa", PW)
    make_user("p16pb", PW)
    contacts("p16pa", "p16pb")
    p = profanity("p16pb")

    async def scenario():
        await p.login()
        # The roster result has arrived when the contact is in the roster
        # panel (right-hand column, at the end of a line).
        await p.wait(r"\s{2}p16pa@localhost( \(\d+\))?$", what="roster panel")
        p.type("/roster")
        await p.wait(r"p16pa@localhost - both", what="/roster")

        # R-PRES-2: the contact's initial presence reaches Profanity, and
        # Profanity's presence (the answer to the probe) the contact.
        a = await login(live, "p16pa", PW, "c2s-a", "sli")
        await p.wait(r"\+\+ p16pa@localhost \(sli\) is online",
                     what="contact online")
        await p.expect(next_presence(a, from_is(p.full, "available"),
                                     WAIT), "slixmpp: Profanity's presence")
        p.type("/who online")
        await p.wait(r"^\S+ - p16pa@localhost is online", what="/who online")

        # Profanity -> slixmpp
        p.type("/msg p16pa@localhost hello from profanity")
        m = await p.expect(next_message(a, body_is("hello from profanity"),
                                        WAIT), "slixmpp: Profanity's /msg")
        assert str(m["from"]) == p.full and m["type"] == "chat", m
        await p.wait(r"me: hello from profanity", what="own line")

        # slixmpp -> Profanity, to the bare and to the full JID
        a.send_message(mto="p16pb@" + D, mbody="hello from slixmpp",
                       mtype="chat")
        await p.wait(r"p16pa@localhost(/sli)?: hello from slixmpp",
                     what="incoming chat (bare JID)")
        a.send_message(mto=p.full, mbody="to the full jid", mtype="chat")
        await p.wait(r"p16pa@localhost(/sli)?: to the full jid",
                     what="incoming chat (full JID)")

        # The contact going offline and back (shown in the console).
        p.type("/win 1")
        await a.stop()
        await p.wait(r"-- p16pa@localhost \(sli\) is offline",
                     what="contact offline")
        a = await login(live, "p16pa", PW, "c2s-a", "sli2")
        await p.wait(r"\+\+ p16pa@localhost \(sli2\) is online",
                     what="contact back online")
        await p.expect(next_presence(a, from_is(p.full, "available"),
                                     WAIT), "slixmpp: Profanity's presence")

        # R-DROP-1: Profanity's /quit is an unavailable presence to A.
        await p.quit()
        await p.expect(next_presence(a, from_is(p.full, "unavailable"),
                                     WAIT), "slixmpp: unavailable at /quit")
        await a.stop()

    run(scenario(), timeout=180)


def test_profanity_login_contact_online_offline_message_R_PRES_3_R_PRES_5(
        live, make_user, profanity):
    """A contact already online when Profanity logs in is shown online
    (R-PRES-3) and gets Profanity's presence; a message sent while
    Profanity was offline is shown after its login (R-PRES-5)."""
    make_user("p16qa", PW)
    make_user("p16qb", PW)
    contacts("p16qa", "p16qb")

    async def scenario():
        a = await login(live, "p16qa", PW, "c2s-a", "early")
        a.send_message(mto="p16qb@" + D, mbody="while you were away",
                       mtype="chat")
        p = profanity("p16qb")
        await p.login()
        await p.expect(next_presence(a, from_is(p.full, "available"),
                                     WAIT), "slixmpp: Profanity's presence")
        # Profanity sends its initial presence before its roster get, so
        # the contact's presence comes before the roster and Profanity
        # prints no "++ ... is online" line; the roster panel (right
        # column) lists the contact under "Online".
        await p.wait(r"\bOnline \(\d+\)\n[^\n]*\s{2}p16qa@localhost"
                     r"( \(\d+\))?$", what="contact under Online (panel)")
        p.type("/who online")
        await p.wait(r"^\S+ - p16qa@localhost is online", what="/who online")
        # The offline message opened a chat window (window 2).
        await p.wait(r"<< chat message: p16qa@localhost(/early)? \(win 2\)",
                     what="offline message notice")
        p.type("/win 2")
        await p.wait(r"p16qa@localhost(/early)?: while you were away",
                     what="offline message")
        await p.quit()
        await a.stop()

    run(scenario(), timeout=120)


def test_profanity_joins_room_R_BASE_1(live, make_user, profanity):
    """Profanity /join's a room a slixmpp occupant (node A) is in: the
    occupant sees it join, groupchat goes both ways, and the occupant sees
    it leave when Profanity closes the room window."""
    make_user("p16ra", PW)
    make_user("p16rb", PW)
    contacts("p16ra", "p16rb")
    room = "p16room@conference." + D
    p = profanity("p16rb", nick="profnick")

    async def scenario():
        await p.login()
        a = await login(live, "p16ra", PW, "c2s-a", "sli")
        await joined(a, room, "slinick")
        p.type("/join " + room)
        await p.expect(next_presence(a, from_is(room + "/profnick",
                                                "available"), WAIT),
                       "slixmpp: Profanity's join")
        await p.wait(r"You have joined the room as profnick",
                     what="joined")
        # The room window's occupant list (right column) has the owner.
        await p.wait(r"Moderators\n[^\n]*\s{2}slinick$",
                     what="occupant list")

        p.type("hello room from profanity")
        m = await p.expect(next_message(
            a, body_is("hello room from profanity"), WAIT),
            "slixmpp: Profanity's groupchat")
        assert str(m["from"]) == room + "/profnick", m
        assert m["type"] == "groupchat", m
        await p.wait(r"profnick: hello room from profanity",
                     what="own groupchat (reflected)")

        say(a, room, "hello profanity from slixmpp")
        await p.wait(r"slinick: hello profanity from slixmpp",
                     what="groupchat from the other occupant")

        p.type("/close")  # Profanity 0.13 has no /leave: closing leaves
        await p.expect(next_presence(a, from_is(room + "/profnick",
                                                "unavailable"), WAIT),
                       "slixmpp: Profanity leaves the room")
        await p.quit()
        await a.stop()

    run(scenario(), timeout=180)
