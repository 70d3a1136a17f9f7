"""22 a real gateway: biboumi (XMPP-IRC, an XEP-0114 component) and ngircd.

Requirement IDs: R-GW-1 (a real component connects, its domain is routed
from both c2s nodes), R-GW-3 (a user's unavailable reaches the gateway:
it leaves the IRC channel).

The test starts its own ngircd (private config, 127.77.x.y:6667: a
loopback address of its own, so biboumi's default IRC port works without
per-user configuration) and biboumi (private config and sqlite database
in var/test/gateway, component secret of deploy/dev/kiln.conf.in,
connected to c2s-a's component port). A raw-socket IRC client sits in
#test. Kiln users on c2s-a and c2s-b join #test%<ip>@biboumi.localhost.
"""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from xmpp_client import codes, join, login, next_message, next_presence, run

PW = "secret-pw"
GW = "biboumi.localhost"
SECRET = "biboumi-secret"
VAR = os.environ["KILN_VAR"]
OFF = int(os.environ.get("KILN_PORT_OFFSET", "0"))
IRC_IP = "127.77.%d.%d" % ((OFF >> 8) & 255, OFF % 253 + 1)
ROOM = "#test%%%s@%s" % (IRC_IP, GW)


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _listening(ip, port):
    try:
        socket.create_connection((ip, port), 0.5).close()
        return True
    except OSError:
        return False


class Gateway:
    """Private ngircd and biboumi processes."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.dir = os.path.join(VAR, "gateway")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log_dir = os.path.join(VAR, "log")
        os.makedirs(self.log_dir, exist_ok=True)
        self.ngircd = None
        self.biboumi = None
        with open(os.path.join(self.dir, "ngircd.conf"), "w") as f:
            f.write("[Global]\nName = irc.localhost\nInfo = Kiln test IRC\n"
                    "AdminInfo1 = Kiln\nAdminInfo2 = tests\n"
                    "AdminEMail = root@localhost\n"
                    "Listen = %s\nPorts = 6667\nPidFile = %s/ngircd.pid\n"
                    "MotdPhrase = Kiln test\n"
                    "[Options]\nPAM = no\nIdent = no\nDNS = no\n"
                    "[Limits]\nMaxNickLength = 30\n" % (IRC_IP, self.dir))
        with open(os.path.join(self.dir, "biboumi.cfg"), "w") as f:
            f.write("hostname=%s\npassword=%s\nxmpp_server_ip=127.0.0.1\n"
                    "port=%s\ndb_name=%s/biboumi.sqlite\nidentd_port=0\n"
                    "log_level=1\nrealname_customization=false\n"
                    "policy_directory=%s\n"
                    % (GW, SECRET, os.environ["KILN_COMPONENT_PORT"],
                       self.dir, self.dir))

    def start_ngircd(self):
        if _listening(IRC_IP, 6667):
            pytest.fail("%s:6667 is taken" % IRC_IP)
        log = open(os.path.join(self.log_dir, "ngircd.log"), "ab")
        self.ngircd = subprocess.Popen(
            ["ngircd", "-n", "-f", os.path.join(self.dir, "ngircd.conf")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _wait(lambda: _listening(IRC_IP, 6667) or
              self.ngircd.poll() is not None, 20, "ngircd")
        assert self.ngircd.poll() is None, "ngircd exited"

    def start_biboumi(self):
        mark = self.cluster.log_mark("router")
        log = open(os.path.join(self.log_dir, "biboumi.log"), "ab")
        self.biboumi = subprocess.Popen(
            ["biboumi", os.path.join(self.dir, "biboumi.cfg")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.dir)
        log.close()
        self.cluster.wait_log("router", "component %s: connection on" % GW,
                              since=mark)

    def kill_biboumi(self):
        mark = self.cluster.log_mark("router")
        self.biboumi.kill()
        self.biboumi.wait()
        self.cluster.wait_log("router", "left (0 left)", since=mark)

    def stop(self):
        for p in (self.biboumi, self.ngircd):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def gateway(live):
    g = Gateway(live)
    try:
        g.start_ngircd()
        g.start_biboumi()
        yield g
    finally:
        g.stop()


class Irc:
    """A raw IRC client on asyncio streams."""

    def __init__(self, r, w):
        self.r = r
        self.w = w
        self.lines = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, nick):
        r, w = await asyncio.open_connection(IRC_IP, 6667)
        c = cls(r, w)
        c.send("NICK %s" % nick)
        c.send("USER %s 0 * :Kiln test" % nick)
        await c.expect(r"^:\S+ 001 ")
        return c

    def send(self, line):
        self.w.write((line + "\r\n").encode())

    async def _read(self):
        while True:
            line = await self.r.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("PING"):
                self.send("PONG" + line[4:])
                continue
            self.lines.put_nowait(line)

    async def expect(self, pattern, timeout=15):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("IRC: no line matching %r" % pattern)
            line = await asyncio.wait_for(self.lines.get(), left)
            if rx.search(line):
                return line

    async def close(self):
        self.send("QUIT :bye")
        self.w.close()
        self.task.cancel()


async def joined_room(c, nick, timeout=20):
    join(c, ROOM, nick)
    return await next_presence(
        c, lambda p: str(p["from"]) == "%s/%s" % (ROOM, nick) and
        (p["type"] == "error" or "110" in codes(p)), timeout=timeout)


def groupchat(body):
    return lambda m: m["type"] == "groupchat" and m["body"] == body


def test_irc_gateway_biboumi_R_GW_1(gateway, live, make_user):
    make_user("c22anna", PW)
    make_user("c22ben", PW)

    async def scenario():
        irc = await Irc.connect("ircbob")
        irc.send("JOIN #test")
        await irc.expect(r" 366 ircbob #test ")
        # A Kiln user on node A joins the channel through biboumi.
        a = await login(live, "c22anna", PW, "c2s-a", "r1")
        p = await joined_room(a, "anna")
        assert p["type"] != "error", p
        await irc.expect(r"^:anna!\S+ JOIN :?#test")
        # XMPP -> IRC.
        a.send_message(mto=ROOM, mbody="hello from xmpp", mtype="groupchat")
        await irc.expect(r"^:anna!\S+ PRIVMSG #test :hello from xmpp$")
        # IRC -> XMPP.
        irc.send("PRIVMSG #test :hello from irc")
        m = await next_message(a, groupchat("hello from irc"), timeout=15)
        assert str(m["from"]) == ROOM + "/ircbob"
        # A user on node B joins and sees both; messages reach everyone.
        b = await login(live, "c22ben", PW, "c2s-b", "r1")
        p = await joined_room(b, "ben")
        assert p["type"] != "error", p
        await irc.expect(r"^:ben!\S+ JOIN :?#test")
        b.send_message(mto=ROOM, mbody="ben here", mtype="groupchat")
        await irc.expect(r"^:ben!\S+ PRIVMSG #test :ben here$")
        await next_message(a, groupchat("ben here"), timeout=15)
        irc.send("PRIVMSG #test :to both")
        await next_message(a, groupchat("to both"), timeout=15)
        await next_message(b, groupchat("to both"), timeout=15)

        # biboumi dies: a message to the room gets an error, not silence.
        await asyncio.get_event_loop().run_in_executor(
            None, gateway.kill_biboumi)
        a.send_message(mto=ROOM, mbody="anyone?", mtype="groupchat")
        err = await next_message(a, lambda m: m["type"] == "error",
                                 timeout=10)
        assert err["error"]["condition"] == "remote-server-not-found"
        b.send_message(mto=ROOM, mbody="anyone?", mtype="groupchat")
        err = await next_message(b, lambda m: m["type"] == "error",
                                 timeout=10)
        assert err["error"]["condition"] == "remote-server-not-found"

        # Restarted, it works again: rejoin and talk both ways.
        await asyncio.get_event_loop().run_in_executor(
            None, gateway.start_biboumi)
        p = await joined_room(a, "anna")
        assert p["type"] != "error", p
        a.send_message(mto=ROOM, mbody="back again", mtype="groupchat")
        await irc.expect(r"PRIVMSG #test :back again$", timeout=30)
        irc.send("PRIVMSG #test :welcome back")
        await next_message(a, groupchat("welcome back"), timeout=15)

        # R-GW-3: anna's connection drops; biboumi learns it (unavailable
        # to the room) and leaves IRC.
        a.abort()
        await irc.expect(r"^:anna!\S+ (QUIT|PART)", timeout=30)
        await b.stop()
        await irc.close()

    run(scenario(), timeout=180)
