"""05 roster: roster get/set/push with groups, versioning, the
subscription handshake, pending requests, shared groups.

Requirement IDs: R-ROSTER-1 (items with groups, push to every resource on
every node), R-ROSTER-2 (shared groups, kilnctl group ...), R-ROSTER-3
(XEP-0237 versioning), R-CACHE-3 (a shared-group change is pushed live,
no restart), R-BASE-1 (roster get/set/push and the subscription state
machine), R-PRES-4 (pending inbound requests re-delivered at each login).

kiln-presenced is started by the shared cluster fixture (conftest.py).
"""

import asyncio
import os
import subprocess

import pytest

import conftest
from xmpp_client import login, run

PW = "secret-pw"
D = "localhost"


@pytest.fixture
def presenced(live):
    """The cluster, kiln-presenced included."""
    return live


def kilnctl(*args):
    r = subprocess.run([os.path.join(conftest.BIN, "kilnctl"), "-c",
                        conftest.CONF, *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def sql(q):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-XAtq", "-c", q],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def roster_row(user, contact, sub, groups=()):
    """Give user a roster item for contact with subscription sub (none, to,
    from, both), straight in PostgreSQL (test setup only)."""
    bits = {"none": 0, "to": 1, "from": 2, "both": 3}[sub]
    g = "{" + ",".join('"%s"' % x for x in groups) + "}"
    sql("insert into rosteritems (username, jid, subscription, groups) "
        "values ('%s', '%s@%s', %d, '%s') on conflict (username, jid) do "
        "update set subscription = excluded.subscription"
        % (user, contact, D, bits, g))


def watch_pushes(c):
    q = asyncio.Queue()
    c.add_event_handler("roster_update", lambda iq: q.put_nowait(iq))
    return q


async def presences(c, wait=1.5):
    """Every presence c receives within wait seconds."""
    got = []
    deadline = asyncio.get_event_loop().time() + wait
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            return got
        try:
            got.append(await asyncio.wait_for(c.presences.get(), left))
        except asyncio.TimeoutError:
            return got


async def login_manual(cluster, user, password, node, resource):
    """login() with slixmpp's automatic subscription handling off.

    By default slixmpp answers every inbound subscribe with "subscribed"
    AND a subscribe of its own (auto_authorize, auto_subscribe), which the
    server rightly applies (RFC 6121 Appendix A): a one-way handshake then
    ends in "both", and a pending request is answered at the first login.
    Set before the first await, so nothing inbound is handled earlier."""
    c = await login(cluster, user, password, node, resource)
    c.auto_authorize = None  # deliver requests to the test, answer nothing
    c.auto_subscribe = False
    return c


def test_roster_set_push_groups_R_ROSTER_1(presenced, make_user):
    make_user("r5alice", PW)
    make_user("r5bob", PW)

    async def scenario():
        a1 = await login(presenced, "r5alice", PW, "c2s-a", "one")
        a2 = await login(presenced, "r5alice", PW, "c2s-b", "two")
        await a2.get_roster()
        pushes = watch_pushes(a2)
        await a1.get_roster()
        a1.update_roster("r5bob@" + D, name="Bob",
                         groups=["Friends", "Company::R&D::Backend"])
        push = await asyncio.wait_for(pushes.get(), 5)
        item = push["roster"]["items"]["r5bob@" + D]
        assert set(item["groups"]) == {"Friends", "Company::R&D::Backend"}
        assert item["name"] == "Bob"
        await a1.get_roster()
        assert set(a1.client_roster["r5bob@" + D]["groups"]) == {
            "Friends", "Company::R&D::Backend"}
        a1.del_roster_item("r5bob@" + D)
        push = await asyncio.wait_for(pushes.get(), 5)
        assert push["roster"]["items"]["r5bob@" + D]["subscription"] == \
            "remove"
        await a1.stop()
        await a2.stop()

    run(scenario())


def test_roster_versioning_R_ROSTER_3(presenced, make_user):
    make_user("r5ver", PW)
    make_user("r5verb", PW)

    async def scenario():
        a = await login(presenced, "r5ver", PW, "c2s-a", "v")
        iq = a.Iq(stype="get")
        iq.enable("roster")
        iq["roster"]["ver"] = ""
        res = await iq.send()
        ver = res["roster"]["ver"]
        assert ver
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ver
        res = await iq.send()
        # current version: empty result, changes come as pushes
        assert res.xml.find("{jabber:iq:roster}query") is None
        await a.get_roster()
        a.update_roster("r5verb@" + D, name="B")
        await asyncio.sleep(0.5)
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ver
        res = await iq.send()
        assert res["roster"]["ver"] != ver
        assert "r5verb@" + D in res["roster"]["items"]
        await a.stop()

    run(scenario())


def test_subscription_handshake_R_BASE_1(presenced, make_user):
    make_user("r5sa", PW)
    make_user("r5sb", PW)

    async def scenario():
        a = await login_manual(presenced, "r5sa", PW, "c2s-a", "a")
        b = await login_manual(presenced, "r5sb", PW, "c2s-b", "b")
        await a.get_roster()
        await b.get_roster()
        a.send_presence(pto="r5sb@" + D, ptype="subscribe")
        got = await presences(b, 3)
        assert any(p["type"] == "subscribe" and p["from"].bare == "r5sa@" + D
                   for p in got)
        b.send_presence(pto="r5sa@" + D, ptype="subscribed")
        got = await presences(a, 3)
        assert any(p["type"] == "subscribed" for p in got)
        # A now has "to": it got B's presence as well
        assert any(p["type"] == "available" and
                   str(p["from"]) == "r5sb@%s/b" % D for p in got)
        await a.get_roster()
        assert a.client_roster["r5sb@" + D]["subscription"] == "to"
        await b.get_roster()
        assert b.client_roster["r5sa@" + D]["subscription"] == "from"
        await a.stop()
        await b.stop()

    run(scenario())


def test_pending_request_redelivered_R_PRES_4(presenced, make_user):
    make_user("r5pa", PW)
    make_user("r5pb", PW)

    async def scenario():
        a = await login_manual(presenced, "r5pa", PW, "c2s-a", "a")
        a.send_presence(pto="r5pb@" + D, ptype="subscribe",
                        pstatus="add me")
        await asyncio.sleep(1)
        for _ in range(2):  # every login until answered
            b = await login_manual(presenced, "r5pb", PW, "c2s-b", "b")
            got = await presences(b, 3)
            subs = [p for p in got if p["type"] == "subscribe"]
            assert subs and subs[0]["from"].bare == "r5pa@" + D
            assert subs[0]["status"] == "add me"
            await b.stop()
        b = await login_manual(presenced, "r5pb", PW, "c2s-b", "b")
        b.send_presence(pto="r5pa@" + D, ptype="subscribed")
        await asyncio.sleep(1)
        await b.stop()
        b = await login_manual(presenced, "r5pb", PW, "c2s-b", "b")
        got = await presences(b, 2)
        assert not [p for p in got if p["type"] == "subscribe"]
        await b.stop()
        await a.stop()

    run(scenario())


def test_shared_group_pushed_live_R_ROSTER_2_R_CACHE_3(presenced, make_user):
    make_user("r5ga", PW)
    make_user("r5gc", PW)
    kilnctl("group", "add", "r5-g", "--display", "Company::R&D",
            "--visibility", "only_group")
    kilnctl("group", "member", "add", "r5-g", "r5ga")

    async def scenario():
        a = await login(presenced, "r5ga", PW, "c2s-a", "a")
        await a.get_roster()
        pushes = watch_pushes(a)
        kilnctl("group", "member", "add", "r5-g", "r5gc")
        push = await asyncio.wait_for(pushes.get(), 3)
        item = push["roster"]["items"]["r5gc@" + D]
        assert item["subscription"] == "both"
        assert list(item["groups"]) == ["Company::R&D"]
        # presence among members works as for "both" items
        c = await login(presenced, "r5gc", PW, "c2s-b", "c")
        got = await presences(a, 3)
        assert any(str(p["from"]) == "r5gc@%s/c" % D for p in got)
        assert "r5gc" in kilnctl("group", "list")
        await c.stop()
        await a.stop()

    run(scenario())
