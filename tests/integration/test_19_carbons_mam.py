"""19 Phones and many devices (issue 11): XEP-0280 carbons with XEP-0334
hints, XEP-0359 stanza ids, XEP-0313 one-to-one archive.

The parties are on different c2s nodes. slixmpp's carbons/MAM plugins are
not loaded: requests and the copies are checked as raw XML, so the test
sees exactly what the server sends.
"""

import asyncio
import time
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import roster_row, sql
from xmpp_client import drain, iq, iq_error, login, next_message, run

PW = "secret-pw"
D = "localhost"
NS_C = "urn:xmpp:carbons:2"
NS_FWD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_HINTS = "urn:xmpp:hints"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_CLIENT = "jabber:client"


def users(make_user, *names):
    suffix = "%d" % (time.monotonic_ns() % 10**9)
    out = []
    for n in names:
        u = "%s%s" % (n, suffix)
        make_user(u, PW)
        out.append(u)
    return out


def send_raw(c, xml):
    c.send_raw(xml)


async def carbons(c, on=True):
    await iq(c, "set", None, "<%s xmlns='%s'/>" % (
        "enable" if on else "disable", NS_C))


def carbon_of(m, kind):
    """The forwarded message inside a <sent/>/<received/> carbon, or None."""
    w = m.xml.find("{%s}%s" % (NS_C, kind))
    if w is None:
        return None
    return w.find("{%s}forwarded/{%s}message" % (NS_FWD, NS_CLIENT))


def body_of(x):
    b = x.find("{%s}body" % NS_CLIENT)
    return None if b is None else b.text


def watch_carbons(*clients):
    """Queue every carbon a client gets in c.carbons (slixmpp without its
    xep_0280 plugin does not raise a message event for them)."""
    for c in clients:
        c.carbons = asyncio.Queue()
        for kind in ("sent", "received"):
            c.register_handler(Callback(
                "carbon-" + kind,
                MatchXPath("{%s}message/{%s}%s" % (NS_CLIENT, NS_C, kind)),
                lambda m, c=c: c.carbons.put_nowait(m)))


async def next_carbon(c, kind, body, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s carbon of %r" % (kind, body)
        m = await asyncio.wait_for(c.carbons.get(), left)
        inner = carbon_of(m, kind)
        if inner is not None and body_of(inner) == body:
            return m, inner


async def no_carbon(c, wait=1.0):
    """No carbon arrives at c for `wait` seconds."""
    try:
        m = await asyncio.wait_for(c.carbons.get(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected carbon: %s" % m)


# ---- XEP-0280 ----------------------------------------------------------------

def test_carbons_advertised_in_server_disco_XEP_0280(live, make_user):
    a, = users(make_user, "cda")

    async def go():
        c = await login(live, a, PW)
        try:
            r = await iq(c, "get", D, "<query xmlns='%s'/>" % NS_INFO)
            feats = {f.get("var") for f in r.xml.iter("{%s}feature" % NS_INFO)}
            assert NS_C in feats
        finally:
            await c.stop()
    run(go())


def test_carbons_received_and_sent_across_nodes_XEP_0280(live, make_user):
    """A has a phone on c2s-a and a laptop on c2s-b, both with carbons; B
    is on c2s-b. B -> A/phone: the laptop gets a <received/> copy.
    A/phone -> B: the laptop gets a <sent/> copy. A resource without
    carbons gets nothing; disable stops the copies."""
    a, b = users(make_user, "cra", "crb")

    async def go():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        desk = await login(live, a, PW, node="c2s-a", resource="desk")
        bob = await login(live, b, PW, node="c2s-b")
        watch_carbons(phone, laptop, desk)
        try:
            await carbons(phone)
            await carbons(laptop)
            await asyncio.sleep(0.2)
            for c in (phone, laptop, desk, bob):
                drain(c.messages)
                if hasattr(c, "carbons"):
                    drain(c.carbons)
            # received: to the phone's full JID
            bob.send_message(mto="%s@%s/phone" % (a, D), mbody="hi phone",
                             mtype="chat")
            m = await next_message(phone, lambda m: m["body"] == "hi phone")
            assert m.xml.find("{%s}received" % NS_C) is None
            cm, inner = await next_carbon(laptop, "received", "hi phone")
            assert str(cm["from"]) == "%s@%s" % (a, D)
            # the copy carries A's archive id (XEP-0359), as the original
            sid = inner.find("{%s}stanza-id" % NS_SID)
            osid = m.xml.find("{%s}stanza-id" % NS_SID)
            assert sid is not None and osid is not None
            assert sid.get("id") == osid.get("id")
            assert sid.get("by") == "%s@%s" % (a, D)
            assert inner.get("from").startswith("%s@%s/" % (b, D))
            assert inner.get("to") == "%s@%s/phone" % (a, D)
            # sent: the phone to bob
            phone.send_message(mto="%s@%s" % (b, D), mbody="hi bob",
                               mtype="chat")
            assert (await bob.next_message(body_only=True)) == "hi bob"
            cm, inner = await next_carbon(laptop, "sent", "hi bob")
            assert str(cm["from"]) == "%s@%s" % (a, D)
            sid = inner.find("{%s}stanza-id" % NS_SID)
            assert sid is not None and sid.get("by") == "%s@%s" % (a, D)
            assert inner.get("from") == "%s@%s/phone" % (a, D)
            assert inner.get("to") == "%s@%s" % (b, D)
            # the resource without carbons got neither
            await no_carbon(desk, 0.5)
            # disable on the laptop: no more copies
            await carbons(laptop, on=False)
            bob.send_message(mto="%s@%s/phone" % (a, D), mbody="second",
                             mtype="chat")
            assert (await phone.next_message(body_only=True)) == "second"
            await no_carbon(laptop, 1.0)
        finally:
            for c in (phone, laptop, desk, bob):
                await c.stop()
    run(go(), timeout=60)


def test_carbons_survive_router_restart_XEP_0280(live, make_user):
    """The router keeps the carbons flag in its table; c2s re-announces it
    after a router restart (SESSION_UP with KN_F_CARBONS)."""
    a, b = users(make_user, "cra", "crb")

    async def setup():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        bob = await login(live, b, PW, node="c2s-a")
        watch_carbons(laptop)
        await carbons(laptop)
        return phone, laptop, bob

    phone, laptop, bob = run(setup())
    marks = {n: live.log_mark(n) for n in ("c2s-a", "c2s-b")}
    live.restart("router")
    for n in ("c2s-a", "c2s-b"):
        live.wait_log(n, "re-announced", timeout=20, since=marks[n])

    async def after():
        try:
            bob.send_message(mto="%s@%s/phone" % (a, D), mbody="after",
                             mtype="chat")
            assert (await phone.next_message(timeout=10,
                                             body_only=True)) == "after"
            await next_carbon(laptop, "received", "after", timeout=10)
        finally:
            for c in (phone, laptop, bob):
                await c.stop()
    run(after(), timeout=60)


def test_carbons_eligibility_private_groupchat_XEP_0280(live, make_user):
    """<private/> + <no-copy/> is not copied; headline and groupchat are
    not copied; normal without a body is not; normal with a body is."""
    a, b = users(make_user, "cpa", "cpb")

    async def go():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        bob = await login(live, b, PW, node="c2s-b")
        watch_carbons(laptop)
        try:
            await carbons(laptop)
            to_b = "%s@%s" % (b, D)
            send_raw(phone, "<message to='%s' type='chat'><body>secret</body>"
                     "<private xmlns='%s'/><no-copy xmlns='%s'/></message>"
                     % (to_b, NS_C, NS_HINTS))
            send_raw(phone, "<message to='%s' type='headline'><body>news"
                     "</body></message>" % to_b)
            send_raw(phone, "<message to='%s'><thread>t</thread></message>"
                     % to_b)
            send_raw(bob, "<message to='%s@%s/phone' type='groupchat'><body>"
                     "gc</body></message>" % (a, D))
            send_raw(phone, "<message to='%s'><body>normal</body></message>"
                     % to_b)
            # the normal message with a body is the only copy
            m = await asyncio.wait_for(laptop.carbons.get(), 5)
            inner = carbon_of(m, "sent")
            assert inner is not None and body_of(inner) == "normal", m
            await no_carbon(laptop, 1.0)
        finally:
            for c in (phone, laptop, bob):
                await c.stop()
    run(go(), timeout=60)


def test_carbons_not_for_groupchat_in_a_room_XEP_0280(live, make_user):
    """A real room: the phone (c2s-a) talks in it; the laptop (c2s-b,
    carbons on, not in the room) gets neither a <sent/> copy of the
    groupchat message nor a <received/> copy of the room's reflection."""
    from xmpp_client import joined, say
    a, b = users(make_user, "cga", "cgb")
    room = "carbonroom%d@conference.localhost" % (time.monotonic_ns() % 10**6)

    async def go():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        watch_carbons(laptop)
        try:
            await carbons(laptop)
            await joined(phone, room, "ph")
            say(phone, room, "to the room")
            m = await next_message(phone, lambda m: m["type"] == "groupchat"
                                   and m["body"] == "to the room")
            assert str(m["from"]) == room + "/ph"
            await no_carbon(laptop, 1.0)
            # and a chat message still is copied (carbons are on)
            phone.send_message(mto="%s@%s" % (b, D), mbody="to b",
                               mtype="chat")
            await next_carbon(laptop, "sent", "to b")
        finally:
            await phone.stop()
            await laptop.stop()
    run(go(), timeout=60)


# ---- XEP-0359 / XEP-0313 -----------------------------------------------------

def watch_mam(c):
    c.mam = asyncio.Queue()
    c.register_handler(Callback(
        "mam-result", MatchXPath("{%s}message/{%s}result" % (NS_CLIENT, NS_MAM)),
        lambda m: c.mam.put_nowait(m)))


_qid = [0]


async def mam_query(c, with_=None, start=None, end=None, after_id=None,
                    before_id=None, max_=None, after=None, before=None):
    """One page: ([(id, forwarded message element)], fin element)."""
    _qid[0] += 1
    qid = "q%d" % _qid[0]
    fields = ""
    for var, v in (("with", with_), ("start", start), ("end", end),
                   ("after-id", after_id), ("before-id", before_id)):
        if v is not None:
            fields += "<field var='%s'><value>%s</value></field>" % (var, v)
    form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
            "type='hidden'><value>%s</value></field>%s</x>" % (NS_MAM, fields))
    rsm = ""
    if max_ is not None:
        rsm += "<max>%d</max>" % max_
    if after is not None:
        rsm += "<after>%s</after>" % after
    if before is not None:
        rsm += "<before>%s</before>" % before
    if rsm:
        rsm = "<set xmlns='%s'>%s</set>" % (NS_RSM, rsm)
    r = await iq(c, "set", None, "<query xmlns='%s' queryid='%s'>%s%s</query>"
                 % (NS_MAM, qid, form, rsm))
    fin = r.xml.find("{%s}fin" % NS_MAM)
    assert fin is not None, r
    out = []
    while not c.mam.empty():
        m = c.mam.get_nowait()
        res = m.xml.find("{%s}result" % NS_MAM)
        if res.get("queryid") != qid:
            continue
        fwd = res.find("{%s}forwarded/{%s}message" % (NS_FWD, NS_CLIENT))
        out.append((res.get("id"), fwd))
    return out, fin


def fin_complete(fin):
    return fin.get("complete") == "true"


def fin_last(fin):
    e = fin.find("{%s}set/{%s}last" % (NS_RSM, NS_RSM))
    return None if e is None else e.text


def fin_first(fin):
    e = fin.find("{%s}set/{%s}first" % (NS_RSM, NS_RSM))
    return None if e is None else e.text


async def archived(user, n, timeout=20):
    """Wait until user's archive holds n rows (archiving is asynchronous);
    the loop keeps running meanwhile (clients go on sending)."""
    deadline = time.monotonic() + timeout
    while True:
        got = int(sql("select count(*) from mam_messages where username = '%s'"
                      % user))
        if got >= n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def test_stanza_id_added_and_forged_one_removed_XEP_0359(live, make_user):
    a, b = users(make_user, "sia", "sib")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        try:
            send_raw(alice, "<message to='%s@%s' type='chat' id='m1'><body>"
                     "with forged</body><stanza-id xmlns='%s' by='%s@%s' "
                     "id='forged-1'/><stanza-id xmlns='%s' by='%s' "
                     "id='forged-2'/></message>"
                     % (b, D, NS_SID, b, D, NS_SID, D))
            m = await next_message(bob, lambda m: m["body"] == "with forged")
            sids = m.xml.findall("{%s}stanza-id" % NS_SID)
            assert len(sids) == 1, m
            assert sids[0].get("by") == "%s@%s" % (b, D)
            sid = sids[0].get("id")
            assert sid and not sid.startswith("forged")
            # the id is the archive id of bob's row
            assert await archived(b, 1) == 1
            assert sql("select id from mam_messages where username = '%s'"
                       % b) == sid
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=60)


def test_mam_disco_feature_on_account_XEP_0313(live, make_user):
    a, = users(make_user, "mda")

    async def go():
        c = await login(live, a, PW)
        try:
            r = await iq(c, "get", "%s@%s" % (a, D),
                         "<query xmlns='%s'/>" % NS_INFO)
            feats = {f.get("var") for f in r.xml.iter("{%s}feature" % NS_INFO)}
            assert NS_MAM in feats
        finally:
            await c.stop()
    run(go())


def test_mam_paging_1000_in_pages_of_50_XEP_0313(live, make_user):
    """1,000 messages sent as fast as the client can, from c2s-a to a
    recipient on c2s-b; both archives hold all of them, and paging forward
    in pages of 50 (RSM after) gives each exactly once, in order, with
    complete='true' only on the last page; backward paging from the end
    (RSM before) gives the same ids."""
    a, b = users(make_user, "mpa", "mpb")
    N = 1000

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        watch_mam(alice)
        watch_mam(bob)
        try:
            for i in range(N):
                alice.send_message(mto="%s@%s" % (b, D), mbody="m%04d" % i,
                                   mtype="chat")
            got = 0
            while got < N:
                await bob.next_message(timeout=20)
                got += 1
            assert await archived(a, N) == N and await archived(b, N) == N
            for who in (alice, bob):
                seen, after, pages = [], None, 0
                while True:
                    rows, fin = await mam_query(who, max_=50, after=after)
                    pages += 1
                    assert len(rows) <= 50
                    seen += rows
                    if fin_complete(fin):
                        break
                    assert len(rows) == 50
                    assert fin_last(fin) == rows[-1][0]
                    assert fin_first(fin) == rows[0][0]
                    after = fin_last(fin)
                    assert pages <= N // 50 + 1
                bodies = [body_of(m) for _, m in seen]
                assert bodies == ["m%04d" % i for i in range(N)]
                ids = [int(i) for i, _ in seen]
                assert ids == sorted(set(ids))
            # backward from the end, pages of 50
            back, before = [], ""
            while True:
                rows, fin = await mam_query(bob, max_=50, before=before)
                back = rows + back
                if fin_complete(fin):
                    break
                before = fin_first(fin)
            assert [i for i, _ in back] == [i for i, _ in seen]
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=240)


def ms_of(i):
    return int(i) >> 16


def stamp(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def test_mam_with_start_end_filters_XEP_0313(live, make_user):
    a, b, c = users(make_user, "mfa", "mfb", "mfc")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        watch_mam(alice)
        try:
            for i in range(3):
                alice.send_message(mto="%s@%s" % (b, D), mbody="b%d" % i,
                                   mtype="chat")
            assert await archived(a, 3) == 3
            for i in range(2):
                alice.send_message(mto="%s@%s" % (c, D), mbody="c%d" % i,
                                   mtype="chat")  # c is offline
            bob.send_message(mto="%s@%s" % (a, D), mbody="from bob",
                             mtype="chat")
            assert await archived(a, 6) == 6
            rows, fin = await mam_query(alice)
            assert fin_complete(fin) and len(rows) == 6
            ids = [i for i, _ in rows]
            # with: bare JID of the other party, both directions
            rows, _ = await mam_query(alice, with_="%s@%s" % (b, D))
            assert [body_of(m) for _, m in rows] == ["b0", "b1", "b2",
                                                     "from bob"]
            rows, _ = await mam_query(alice, with_="%s@%s" % (c, D))
            assert [body_of(m) for _, m in rows] == ["c0", "c1"]
            # start/end: the first three were committed before the rest
            # were sent, so their milliseconds differ
            assert ms_of(ids[2]) < ms_of(ids[3])
            rows, _ = await mam_query(alice, end=stamp(ms_of(ids[2])))
            assert [i for i, _ in rows] == ids[:3]
            rows, _ = await mam_query(alice, start=stamp(ms_of(ids[3])))
            assert [i for i, _ in rows] == ids[3:]
            rows, _ = await mam_query(alice, start=stamp(ms_of(ids[3])),
                                      with_="%s@%s" % (b, D))
            assert [body_of(m) for _, m in rows] == ["from bob"]
            # after-id / before-id form fields
            rows, _ = await mam_query(alice, after_id=ids[1], before_id=ids[4])
            assert [i for i, _ in rows] == ids[2:4]
            # results carry the delay stamp of the id
            _, m = rows[0]
            # a bad date, an unknown field, someone else's archive
            assert await iq_error(alice, "set", None,
                                  "<query xmlns='%s'><x xmlns='jabber:x:data' "
                                  "type='submit'><field var='start'><value>"
                                  "yesterday</value></field></x></query>"
                                  % NS_MAM) == "bad-request"
            assert await iq_error(alice, "set", None,
                                  "<query xmlns='%s'><x xmlns='jabber:x:data' "
                                  "type='submit'><field var='nope'><value>1"
                                  "</value></field></x></query>"
                                  % NS_MAM) == "bad-request"
            assert await iq_error(alice, "set", "%s@%s" % (b, D),
                                  "<query xmlns='%s'/>" % NS_MAM) in (
                                      "forbidden",)
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=60)


def test_mam_prefs_never_and_roster_XEP_0313(live, make_user):
    """bob's default never: alice's copy is archived, bob's is not; roster:
    only contacts in bob's roster; an always JID overrides the default."""
    a, b, c = users(make_user, "mna", "mnb", "mnc")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        carol = await login(live, c, PW, node="c2s-a")
        watch_mam(bob)
        try:
            r = await iq(bob, "set", None, "<prefs xmlns='%s' default='never'>"
                         "<always/><never/></prefs>" % NS_MAM)
            assert r.xml.find("{%s}prefs" % NS_MAM).get("default") == "never"
            r = await iq(bob, "get", None, "<prefs xmlns='%s'/>" % NS_MAM)
            assert r.xml.find("{%s}prefs" % NS_MAM).get("default") == "never"
            alice.send_message(mto="%s@%s" % (b, D), mbody="n1", mtype="chat")
            assert (await bob.next_message(body_only=True)) == "n1"
            assert await archived(a, 1) == 1  # same statement as bob's decision
            assert await archived(b, 0, timeout=0) == 0
            # roster: alice in bob's roster, carol not
            await iq(bob, "set", None, "<prefs xmlns='%s' default='roster'/>"
                     % NS_MAM)
            roster_row(b, a, "both")
            alice.send_message(mto="%s@%s" % (b, D), mbody="r1", mtype="chat")
            carol.send_message(mto="%s@%s" % (b, D), mbody="r2", mtype="chat")
            assert await archived(c, 1) == 1 and await archived(a, 2) == 2
            rows, _ = await mam_query(bob)
            assert [body_of(m) for _, m in rows] == ["r1"]
            # always carol, never alice
            r = await iq(bob, "set", None,
                         "<prefs xmlns='%s' default='roster'><always><jid>"
                         "%s@%s</jid></always><never><jid>%s@%s</jid></never>"
                         "</prefs>" % (NS_MAM, c, D, a, D))
            got = await iq(bob, "get", None, "<prefs xmlns='%s'/>" % NS_MAM)
            pr = got.xml.find("{%s}prefs" % NS_MAM)
            assert [j.text for j in pr.iter("{%s}jid" % NS_MAM)] == [
                "%s@%s" % (c, D), "%s@%s" % (a, D)]
            alice.send_message(mto="%s@%s" % (b, D), mbody="r3", mtype="chat")
            carol.send_message(mto="%s@%s" % (b, D), mbody="r4", mtype="chat")
            assert await archived(c, 2) == 2 and await archived(a, 3) == 3
            rows, _ = await mam_query(bob)
            assert [body_of(m) for _, m in rows] == ["r1", "r4"]
            assert await iq_error(bob, "set", None,
                                  "<prefs xmlns='%s' default='sometimes'/>"
                                  % NS_MAM) == "bad-request"
        finally:
            for x in (alice, bob, carol):
                await x.stop()
    run(go(), timeout=60)


def test_mam_offline_messages_archived_XEP_0313(live, make_user):
    """A message to a user with no session is stored offline and archived;
    the stored copy carries the archive's stanza-id, so the device that
    logs in later can tell them apart from MAM results."""
    a, b = users(make_user, "moa", "mob")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        try:
            alice.send_message(mto="%s@%s" % (b, D), mbody="while away",
                               mtype="chat")
            assert await archived(b, 1) == 1
            bob = await login(live, b, PW, node="c2s-b")
            watch_mam(bob)
            try:
                m = await next_message(bob, lambda m: m["body"] == "while away")
                sid = m.xml.find("{%s}stanza-id" % NS_SID)
                assert sid is not None
                rows, fin = await mam_query(bob)
                assert fin_complete(fin)
                assert [(i, body_of(x)) for i, x in rows] == [
                    (sid.get("id"), "while away")]
            finally:
                await bob.stop()
        finally:
            await alice.stop()
    run(go(), timeout=60)


def test_mam_nothing_lost_when_archiver_killed_XEP_0313(live, make_user):
    """The rule: the router keeps each archive copy until presenced has
    committed it, and sends the unacknowledged ones again when presenced
    registers. Kill -9 presenced in the middle of 300 messages (delivery
    goes on meanwhile), start it again: both archives hold all 300,
    once each."""
    a, b = users(make_user, "mka", "mkb")
    N = 300

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        try:
            # The router must count bob available before the count starts:
            # a message that reaches it first goes to offline storage, which
            # only presenced delivers, and presenced is not started again
            # until all N arrived (bob's presence and alice's messages come
            # over two nodes' links, in no set order). Once bob received
            # one message, directly or from storage, it does.
            alice.send_message(mto="%s@%s" % (b, D), mbody="warm",
                               mtype="chat")
            assert (await bob.next_message(timeout=20))["body"] == "warm"
            for i in range(N // 2):
                alice.send_message(mto="%s@%s" % (b, D), mbody="k%03d" % i,
                                   mtype="chat")
            for _ in range(50):
                await bob.next_message(timeout=20)
            live.kill9("presenced")  # with copies in flight
            for i in range(N // 2, N):
                alice.send_message(mto="%s@%s" % (b, D), mbody="k%03d" % i,
                                   mtype="chat")
            for _ in range(50, N):
                await bob.next_message(timeout=20)
            live.start("presenced")
            assert await archived(a, N + 1, timeout=60) == N + 1
            assert await archived(b, N + 1, timeout=60) == N + 1
            assert sql("select count(distinct stanza) from mam_messages "
                       "where username = '%s'" % b) == str(N + 1)
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=240)


def test_mam_batch_with_an_archived_id_written_again_XEP_0313(live,
                                                              make_user):
    """presenced inserts without ON CONFLICT; a batch the primary key
    refuses (a copy already archived: sent again after presenced's restart,
    or an id reused after a router restart whose clock went back) is
    written again with ON CONFLICT DO NOTHING, so the other rows of the
    batch are not lost. Here the recipient's archive already holds a row at
    every id the router can give in the next 20 s (ids are milliseconds <<
    16, plus a counter within one millisecond)."""
    a, b = users(make_user, "mua", "mub")
    now_ms = int(time.time() * 1000)
    sql("insert into mam_messages (username, id, with_jid, outgoing, stanza) "
        "select '%s', (g::bigint << 16) + k, 'x@%s', false, '<message/>' "
        "from generate_series(%d, %d) g, generate_series(0, 3) k"
        % (b, D, now_ms - 1000, now_ms + 20000))
    before = int(sql("select count(*) from mam_messages where username = '%s'"
                     % b))

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        try:
            alice.send_message(mto="%s@%s" % (b, D), mbody="dup-id",
                               mtype="chat")
            await bob.next_message(timeout=20)
            assert await archived(a, 1) == 1
        finally:
            await alice.stop()
            await bob.stop()
    run(go())
    sid = sql("select id from mam_messages where username = '%s'" % a)
    assert "dup-id" in sql("select stanza from mam_messages where username = "
                           "'%s'" % a)
    assert (int(sid) >> 16) <= now_ms + 20000, "the id fell outside the rows"
    # the recipient's row at that id is the one already there
    assert sql("select stanza from mam_messages where username = '%s' and "
               "id = %s" % (b, sid)) == "<message/>"
    assert int(sql("select count(*) from mam_messages where username = '%s'"
                   % b)) == before


def test_mam_account_removal_removes_its_archive_XEP_0313(live, make_user):
    """mam_messages has no foreign key to users (sql/0023): removing an
    account (XEP-0077 <remove/>) removes its archive through the users
    trigger; the other party's archive keeps its copy."""
    a, b = users(make_user, "mda", "mdb")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        try:
            alice.send_message(mto="%s@%s" % (b, D), mbody="bye",
                               mtype="chat")
            await bob.next_message(timeout=20)
            assert await archived(a, 1) == 1
            assert await archived(b, 1) == 1
            r = await iq(alice, "set", D,
                         "<query xmlns='jabber:iq:register'><remove/>"
                         "</query>")
            assert r["type"] == "result"
        finally:
            await alice.stop()
            await bob.stop()
    run(go())
    assert sql("select count(*) from users where username = '%s'" % a) == "0"
    assert sql("select count(*) from mam_messages where username = '%s'"
               % a) == "0"
    assert sql("select count(*) from mam_messages where username = '%s'"
               % b) == "1"


def test_mam_prefs_change_with_owner_cached_XEP_0313(live, make_user):
    """presenced decides the rows of owners whose preferences it has
    cached (pres_mam.c); a prefs set takes effect for the next message
    even when bob's preferences were cached: never alice, then the
    default again."""
    a, b = users(make_user, "mca", "mcb")

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        try:
            # Messages until both owners' rows are decided from the cache:
            # each batch loads the owners it has not seen (the first).
            for i in range(3):
                alice.send_message(mto="%s@%s" % (b, D), mbody="w%d" % i,
                                   mtype="chat")
                assert (await bob.next_message(body_only=True)) == "w%d" % i
                assert await archived(b, i + 1) == i + 1
            r = await iq(bob, "set", None,
                         "<prefs xmlns='%s' default='always'><always/><never>"
                         "<jid>%s@%s</jid></never></prefs>" % (NS_MAM, a, D))
            assert r["type"] == "result"
            alice.send_message(mto="%s@%s" % (b, D), mbody="n", mtype="chat")
            assert (await bob.next_message(body_only=True)) == "n"
            assert await archived(a, 4) == 4  # same batch as bob's row
            assert await archived(b, 4, timeout=0) == 3
            await iq(bob, "set", None, "<prefs xmlns='%s' default='always'/>"
                     % NS_MAM)
            alice.send_message(mto="%s@%s" % (b, D), mbody="y", mtype="chat")
            assert (await bob.next_message(body_only=True)) == "y"
            assert await archived(a, 5) == 5
            assert await archived(b, 4) == 4
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=60)


def test_mam_removed_account_cached_gets_no_rows_XEP_0313(live, make_user):
    """An account removed by kilnctl while presenced has its preferences
    cached (rows decided without the users probe): presenced hears of it
    on the credential cache's channel, writes no row for it afterwards
    (and deletes any such row written), and an account created again
    with the name starts with an empty archive."""
    a, b = users(make_user, "mxa", "mxb")
    from test_00_foundation import kilnctl

    async def go():
        alice = await login(live, a, PW, node="c2s-a")
        bob = await login(live, b, PW, node="c2s-b")
        watch_mam(alice)
        try:
            for i in range(3):
                bob.send_message(mto="%s@%s" % (a, D), mbody="w%d" % i,
                                 mtype="chat")
                assert (await alice.next_message(body_only=True)) == "w%d" % i
                assert await archived(a, i + 1) == i + 1
            r = kilnctl("user", "del", a)
            assert r.returncode == 0, r.stderr
            assert sql("select count(*) from mam_messages where username = "
                       "'%s'" % a) == "0"
            for i in range(3):
                bob.send_message(mto="%s@%s" % (a, D), mbody="g%d" % i,
                                 mtype="chat")
            assert await archived(b, 6) == 6
        finally:
            await alice.stop()
            await bob.stop()
    run(go(), timeout=60)
    deadline = time.monotonic() + 20
    while sql("select count(*) from mam_messages where username = '%s'"
              % a) != "0" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sql("select count(*) from mam_messages where username = '%s'"
               % a) == "0"
    r = kilnctl("user", "add", a, PW)
    assert r.returncode == 0, r.stderr

    async def again():
        alice = await login(live, a, PW, node="c2s-a")
        watch_mam(alice)
        try:
            rows, fin = await mam_query(alice)
            assert rows == [] and fin_complete(fin)
        finally:
            await alice.stop()
    run(again())


def test_mam_retention_removes_expired_rows_XEP_0313(live, make_user):
    """presenced.mam_retention_days (the test config: 3650) and
    mam_expire_interval_ms (500): a row older than the retention goes,
    a recent one stays."""
    a, = users(make_user, "mra")
    old_ms = int((time.time() - 3700 * 86400) * 1000)
    new_ms = int(time.time() * 1000)
    for ms, body in ((old_ms, "old"), (new_ms, "new")):
        sql("insert into mam_messages (username, id, with_jid, outgoing, "
            "stanza) values ('%s', %d, 'x@%s', true, '<message xmlns=''"
            "jabber:client''><body>%s</body></message>')"
            % (a, ms << 16, D, body))
    deadline = time.monotonic() + 20
    while sql("select count(*) from mam_messages where username = '%s'"
              % a) != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sql("select id from mam_messages where username = '%s'" % a) == \
        str(new_ms << 16)
