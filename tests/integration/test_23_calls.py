"""23 calls: external services (XEP-0215), Jingle and Jingle Message
Initiation (XEP-0166/0353) through the cluster, a real TURN server.

Requirement IDs: R-AV-1 (Jingle IQs and JMI messages pass between full
JIDs across nodes unchanged; a >= 16 KB IQ arrives identical), R-AV-2
(extdisco entries from config, TURN REST credentials with expires, valid
for the secret: checked by computing the HMAC and by coturn itself).

Config (deploy/dev/kiln.conf.in): c2s.extdisco host 127.0.0.1, port
$KILN_TURN_PORT, secret kiln-turn-secret, ttl 86400; c2s-c has no host.
"""

import asyncio
import base64
import calendar
import hashlib
import hmac
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmpp_client import (Client, iq, iq_error, login, next_message,
                         next_presence, run)

PW = "secret-pw"
NS = "urn:xmpp:extdisco:2"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_JINGLE = "urn:xmpp:jingle:1"
NS_RTP = "urn:xmpp:jingle:apps:rtp:1"
NS_ICE = "urn:xmpp:jingle:transports:ice-udp:1"
NS_JMI = "urn:xmpp:jingle-message:0"
SECRET = "kiln-turn-secret"
TTL = 86400
TURN_PORT = int(os.environ["KILN_TURN_PORT"])
VAR = os.environ["KILN_VAR"]


def services(res, tag="services"):
    q = res.xml.find("{%s}%s" % (NS, tag))
    assert q is not None, res
    return [s.attrib for s in q.findall("{%s}service" % NS)]


def check_turn_creds(s, bare, now):
    user = s["username"]
    exp, who = user.split(":", 1)
    assert who == bare
    assert now + TTL - 5 <= int(exp) <= time.time() + TTL + 5
    want = base64.b64encode(hmac.new(SECRET.encode(), user.encode(),
                                     hashlib.sha1).digest()).decode()
    assert s["password"] == want
    expires = calendar.timegm(time.strptime(s["expires"],
                                            "%Y-%m-%dT%H:%M:%SZ"))
    assert expires == int(exp)


def test_extdisco_services_and_credentials_R_AV_2(live, make_user):
    make_user("c23alice", PW)

    async def scenario():
        now = int(time.time())
        a = await login(live, "c23alice", PW, "c2s-a", "r1")
        info = await iq(a, "get", "localhost", "<query xmlns='%s'/>" % NS_INFO)
        feats = {f.get("var") for f in info.xml.iter("{%s}feature" % NS_INFO)}
        assert NS in feats
        res = await iq(a, "get", "localhost", "<services xmlns='%s'/>" % NS)
        svc = services(res)
        kinds = sorted((s["type"], s["transport"]) for s in svc)
        assert kinds == [("stun", "udp"), ("turn", "tcp"), ("turn", "udp")]
        for s in svc:
            assert s["host"] == "127.0.0.1"
            assert int(s["port"]) == TURN_PORT
            if s["type"] == "turn":
                check_turn_creds(s, "c23alice@localhost", now)
            else:
                assert "password" not in s
        # Filtered by type.
        res = await iq(a, "get", "localhost",
                       "<services xmlns='%s' type='stun'/>" % NS)
        assert [s["type"] for s in services(res)] == ["stun"]
        # <credentials/> for one service.
        res = await iq(a, "get", "localhost",
                       "<credentials xmlns='%s'><service type='turn' "
                       "host='127.0.0.1'/></credentials>" % NS)
        svc = services(res, "credentials")
        assert {s["transport"] for s in svc} == {"udp", "tcp"}
        for s in svc:
            check_turn_creds(s, "c23alice@localhost", now)
        cond = await iq_error(a, "get", "localhost",
                              "<credentials xmlns='%s'><service type='turn' "
                              "host='elsewhere.example'/></credentials>" % NS)
        assert cond == "item-not-found"
        await a.stop()

    run(scenario())


@pytest.fixture
def node_c(live):
    live.start("c2s-c")
    try:
        yield live
    finally:
        live.stop("c2s-c")


def test_extdisco_unconfigured_R_AV_2(node_c, make_user):
    make_user("c23bob", PW)

    async def scenario():
        b = await login(node_c, "c23bob", PW, "c2s-c", "r1")
        cond = await iq_error(b, "get", "localhost",
                              "<services xmlns='%s'/>" % NS)
        assert cond == "service-unavailable"
        await b.stop()

    run(scenario())


class Turn:
    def __init__(self):
        self.dir = os.path.join(VAR, "turn")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log = os.path.join(VAR, "log", "turnserver.log")
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        lf = open(self.log, "ab")
        self.p = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1",
             "--listening-port=%d" % TURN_PORT, "--relay-ip=127.0.0.1",
             "--min-port=%d" % (TURN_PORT + 20000),
             "--max-port=%d" % (TURN_PORT + 20100),
             "--use-auth-secret", "--static-auth-secret=" + SECRET,
             "--realm=localhost", "--no-tls", "--no-dtls", "--no-cli",
             "--log-file=stdout", "--simple-log", "--allow-loopback-peers",
             "--pidfile=%s/turnserver.pid" % self.dir,
             "--userdb=%s/turndb.sqlite" % self.dir],
            stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        lf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                if b"Total auth threads" in f.read() or \
                        self.p.poll() is not None:
                    break
            time.sleep(0.05)
        assert self.p.poll() is None, "turnserver exited"
        # A UDP echo peer behind the relay: data really goes through it.
        self.peer_port = TURN_PORT + 20200
        lf = open(self.log, "ab")
        self.peer = subprocess.Popen(
            ["turnutils_peer", "-L", "127.0.0.1", "-p", str(self.peer_port)],
            stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        lf.close()

    def allocate(self, user, password, tcp=False):
        """turnutils_uclient allocates a relay and sends through it to the
        echo peer; True when every packet came back."""
        argv = ["turnutils_uclient", "-p", str(TURN_PORT), "-u", user,
                "-w", password, "-n", "2", "-e", "127.0.0.1",
                "-r", str(self.peer_port), "-X"]
        if tcp:
            argv.append("-t")
        r = subprocess.run(argv + ["127.0.0.1"], capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        return (r.returncode == 0 and
                "Cannot complete Allocation" not in out and
                "Total lost packets 0 " in out)

    def stop(self):
        for p in (self.peer, self.p):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_turn_credentials_accepted_by_coturn_R_AV_2(live, make_user):
    make_user("c23carol", PW)

    async def creds():
        c = await login(live, "c23carol", PW, "c2s-b", "r1")
        res = await iq(c, "get", "localhost",
                       "<credentials xmlns='%s'><service type='turn' "
                       "host='127.0.0.1'/></credentials>" % NS)
        await c.stop()
        return services(res, "credentials")[0]

    s = run(creds())
    turn = Turn()
    try:
        assert turn.allocate(s["username"], s["password"])
        assert turn.allocate(s["username"], s["password"], tcp=True)
        # A wrong password, and an expired username with a valid HMAC.
        assert not turn.allocate(s["username"], s["password"][:-4] + "AAA=")
        old = "%d:c23carol@localhost" % (int(time.time()) - 60)
        pw = base64.b64encode(hmac.new(SECRET.encode(), old.encode(),
                                       hashlib.sha1).digest()).decode()
        assert not turn.allocate(old, pw)
    finally:
        turn.stop()


def big_jingle(sid):
    """A session-initiate about 20 KB long: RTP description with many
    payload types and ICE candidates, plus a long SDP-like text."""
    j = ET.Element("{%s}jingle" % NS_JINGLE, action="session-initiate",
                   sid=sid, initiator="c23dan@localhost/pc")
    content = ET.SubElement(j, "{%s}content" % NS_JINGLE, creator="initiator",
                            name="video")
    desc = ET.SubElement(content, "{%s}description" % NS_RTP, media="video")
    for pt in range(96, 128):
        p = ET.SubElement(desc, "{%s}payload-type" % NS_RTP, id=str(pt),
                          name="VP8", clockrate="90000")
        ET.SubElement(p, "{%s}parameter" % NS_RTP, name="x-google-flag",
                      value="conference & <more> \"quoted\" 'single'")
    tr = ET.SubElement(content, "{%s}transport" % NS_ICE, ufrag="8hhy",
                       pwd="asd88fgpdd777uzjYhagZg")
    for i in range(60):
        ET.SubElement(tr, "{%s}candidate" % NS_ICE, component="1",
                      foundation=str(i), generation="0", id="c%d" % i,
                      ip="10.0.%d.%d" % (i // 250, i % 250 + 1),
                      network="1", port=str(40000 + i), priority="2130706431",
                      protocol="udp", type="host")
    sdp = ET.SubElement(j, "{urn:example:sdp}sdp")
    sdp.text = "".join("a=candidate:%d 1 udp 2130706431 10.0.0.%d %d typ "
                       "host generation 0 ufrag 8hhy\r\n"
                       % (i, i % 250, 50000 + i) for i in range(120))
    return j


def test_jingle_iq_identical_across_nodes_R_AV_1(live, make_user):
    make_user("c23dan", PW)
    make_user("c23eve", PW)

    async def scenario():
        d = await login(live, "c23dan", PW, "c2s-a", "pc")
        e = await login(live, "c23eve", PW, "c2s-b", "phone")
        got = asyncio.get_event_loop().create_future()

        def on_jingle(stanza):
            if not got.done():
                got.set_result(stanza)
            stanza.reply().send()

        e.register_handler(Callback(
            "jingle", MatchXPath("{jabber:client}iq/{%s}jingle" % NS_JINGLE),
            on_jingle))
        sent = big_jingle("sid-1")
        wire = ET.tostring(sent)
        assert len(wire) >= 16 * 1024, len(wire)
        q = d.make_iq(ito="c23eve@localhost/phone", itype="set")
        q.xml.append(sent)
        res = await q.send(timeout=10)
        assert res["type"] == "result"
        st = await asyncio.wait_for(got, 5)
        assert str(st["from"]) == "c23dan@localhost/pc"
        recv = st.xml.find("{%s}jingle" % NS_JINGLE)
        assert ET.canonicalize(ET.tostring(recv)) == \
            ET.canonicalize(wire.decode())
        await d.stop()
        await e.stop()

    run(scenario())


async def jlogin(cluster, user, node, resource):
    """login() with JMI messages (bodiless) queued too, from the start."""
    c = Client("%s@localhost/%s" % (user, resource), PW,
               cluster.ports[node]["starttls"], cluster.cert)

    def on_jmi(m):
        if m.xml.find("{jabber:client}body") is None:
            c.messages.put_nowait(m)

    c.register_handler(Callback(
        "jmi", MatchXPath("{jabber:client}message/{%s}*" % NS_JMI), on_jmi))
    return await c.start()


def jmi(c, to, action, sid, media=True, store=False):
    m = c.make_message(mto=to, mtype="chat")
    el = ET.SubElement(m.xml, "{%s}%s" % (NS_JMI, action), id=sid)
    if media:
        ET.SubElement(el, "{%s}description" % NS_RTP, media="audio")
    if store:
        ET.SubElement(m.xml, "{urn:xmpp:hints}store")
    m.send()


def jmi_pred(action, sid):
    def pred(m):
        el = m.xml.find("{%s}%s" % (NS_JMI, action))
        return el is not None and el.get("id") == sid
    return pred


def test_jingle_message_initiation_R_AV_1(live, make_user):
    make_user("c23fay", PW)
    make_user("c23gus", PW)
    make_user("c23hal", PW)

    async def scenario():
        f = await jlogin(live, "c23fay", "c2s-a", "pc")
        g1 = await jlogin(live, "c23gus", "c2s-a", "laptop")
        g2 = await jlogin(live, "c23gus", "c2s-b", "phone")
        # Both devices available in the router before the call: each sees
        # the other's presence only after the router took its priority.
        for g, other in ((g1, "phone"), (g2, "laptop")):
            await next_presence(
                g, lambda p, o=other: str(p["from"]) == "c23gus@localhost/" + o
                and p["type"] == "available")
        # propose to the bare JID rings every device of the callee.
        jmi(f, "c23gus@localhost", "propose", "call-1")
        for g in (g1, g2):
            m = await next_message(g, jmi_pred("propose", "call-1"))
            assert str(m["from"]) == "c23fay@localhost/pc"
            d = m.xml.find("{%s}propose/{%s}description" % (NS_JMI, NS_RTP))
            assert d is not None and d.get("media") == "audio"
        # ringing, proceed from the phone (node B) to the caller's full JID.
        for action in ("ringing", "proceed"):
            jmi(g2, "c23fay@localhost/pc", action, "call-1", media=False)
            m = await next_message(f, jmi_pred(action, "call-1"))
            assert str(m["from"]) == "c23gus@localhost/phone"
        # accept / reject / retract / finish pass the same way.
        for action in ("accept", "reject", "finish"):
            jmi(g1, "c23fay@localhost/pc", action, "call-1", media=False)
            await next_message(f, jmi_pred(action, "call-1"))
        jmi(f, "c23gus@localhost/phone", "retract", "call-1", media=False)
        await next_message(g2, jmi_pred("retract", "call-1"))
        # A propose to an offline user is stored: a missed call at login.
        jmi(f, "c23hal@localhost", "propose", "call-2", store=True)
        jmi(f, "c23hal@localhost", "retract", "call-2", media=False,
            store=True)
        # Stored before anything later from the same sender: a message
        # with a body behind them, once stored, means they are too.
        f.send_message(mto="c23hal@localhost", mbody="marker", mtype="chat")
        for _ in range(100):
            r = subprocess.run(
                ["psql", os.environ["KILN_PG"], "-tAc",
                 "select count(*) from offline_messages where username = "
                 "'c23hal'"], capture_output=True, text=True, timeout=10)
            if r.stdout.strip() == "3":
                break
            await asyncio.sleep(0.1)
        assert r.stdout.strip() == "3", r.stdout + r.stderr
        h = await jlogin(live, "c23hal", "c2s-b", "r1")
        m = await next_message(h, jmi_pred("propose", "call-2"))
        assert str(m["from"]) == "c23fay@localhost/pc"
        await next_message(h, jmi_pred("retract", "call-2"))
        for c in (f, g1, g2, h):
            await c.stop()

    run(scenario(), timeout=90)


NS_C = "urn:xmpp:carbons:2"
NS_FWD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_CLIENT = "jabber:client"


def sql(q):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-tAc", q],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_jmi_propose_carbon_copied_to_callers_other_device_R_AV_1(
        live, make_user):
    """XEP-0353 via XEP-0280: the caller's other device (carbons on, other
    node) gets a <sent/> carbon of the propose, so it stops offering to
    call too; the callee gets the propose itself."""
    make_user("c23ivy", PW)
    make_user("c23jon", PW)

    async def scenario():
        i1 = await jlogin(live, "c23ivy", "c2s-a", "pc")
        i2 = await jlogin(live, "c23ivy", "c2s-b", "phone")
        j = await jlogin(live, "c23jon", "c2s-b", "r1")
        carbons = asyncio.Queue()
        i2.register_handler(Callback(
            "carbon", MatchXPath("{%s}message/{%s}sent" % (NS_CLIENT, NS_C)),
            lambda m: carbons.put_nowait(m)))
        await iq(i2, "set", None, "<enable xmlns='%s'/>" % NS_C)
        jmi(i1, "c23jon@localhost", "propose", "call-c")
        m = await next_message(j, jmi_pred("propose", "call-c"))
        assert str(m["from"]) == "c23ivy@localhost/pc"
        c = await asyncio.wait_for(carbons.get(), 10)
        fwd = c.xml.find("{%s}sent/{%s}forwarded/{%s}message"
                         % (NS_C, NS_FWD, NS_CLIENT))
        assert fwd is not None, c
        assert fwd.get("from") == "c23ivy@localhost/pc"
        assert fwd.get("to") == "c23jon@localhost"
        p = fwd.find("{%s}propose" % NS_JMI)
        assert p is not None and p.get("id") == "call-c"
        for x in (i1, i2, j):
            await x.stop()

    run(scenario(), timeout=60)


def test_jmi_propose_to_offline_callee_archived_and_stored_R_AV_1(
        live, make_user):
    """A propose (no <store/> hint: not every client adds one) to a callee
    with no session is stored offline and archived in both archives; the
    callee logs in, gets it, and finds it in MAM: a missed call."""
    make_user("c23kim", PW)
    make_user("c23lou", PW)

    async def scenario():
        k = await jlogin(live, "c23kim", "c2s-a", "pc")
        jmi(k, "c23lou@localhost", "propose", "call-m")
        q = ("select count(*) from %s where username = 'c23lou' and "
             "stanza like '%%call-m%%'")
        for _ in range(200):
            if sql(q % "offline_messages") == "1" and \
                    sql(q % "mam_messages") == "1":
                break
            await asyncio.sleep(0.05)
        assert sql(q % "offline_messages") == "1"
        assert sql(q % "mam_messages") == "1"
        assert sql("select count(*) from mam_messages where username = "
                   "'c23kim' and stanza like '%call-m%'") == "1"
        lo = await jlogin(live, "c23lou", "c2s-b", "r1")
        m = await next_message(lo, jmi_pred("propose", "call-m"))
        assert str(m["from"]) == "c23kim@localhost/pc"
        results = asyncio.Queue()
        lo.register_handler(Callback(
            "mam", MatchXPath("{%s}message/{%s}result" % (NS_CLIENT, NS_MAM)),
            lambda m: results.put_nowait(m)))
        await iq(lo, "set", None, "<query xmlns='%s' queryid='q1'/>" % NS_MAM)
        found = []
        while not results.empty():
            r = results.get_nowait().xml.find("{%s}result" % NS_MAM)
            fwd = r.find("{%s}forwarded/{%s}message" % (NS_FWD, NS_CLIENT))
            p = fwd.find("{%s}propose" % NS_JMI)
            if p is not None:
                found.append((fwd.get("from"), p.get("id")))
        assert found == [("c23kim@localhost/pc", "call-m")]
        for x in (k, lo):
            await x.stop()

    run(scenario(), timeout=60)
