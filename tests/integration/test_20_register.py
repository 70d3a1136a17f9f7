"""20 account self-service (XEP-0077 for a logged-in user, issue 11):
the registration query, password change (then SCRAM and PLAIN logins
with the new password on the other node, the old one refused), refusals
with clear errors, and account removal (every session on every node ends
with <not-authorized/>, the data is gone, the login is refused).
"""

import asyncio
import base64
import os
import subprocess
import uuid

import pytest

from xmpp_client import AuthFailed, iq, iq_error, login, run

NS = "jabber:iq:register"
PW = "secret-1"


def psql(sql):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-XAtq", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def fresh(make_user):
    return make_user("reg%s" % uuid.uuid4().hex[:8], PW)


async def login_fails(cluster, user, pw, node, mech=None):
    with pytest.raises((AuthFailed, ConnectionError)):
        await login(cluster, user, pw, node=node, mech=mech)


def test_register_query_says_registered_XEP_0077(live, make_user):
    u = fresh(make_user)

    async def go():
        c = await login(live, u, PW)
        r = await iq(c, "get", live.domain, "<query xmlns='%s'/>" % NS)
        q = r.xml.find("{%s}query" % NS)
        assert q is not None
        assert q.find("{%s}registered" % NS) is not None
        assert q.find("{%s}username" % NS).text == u
        await c.stop()

    run(go())


def test_password_change_then_login_with_new_XEP_0077(live, make_user):
    u = fresh(make_user)

    async def go():
        c = await login(live, u, PW, node="c2s-a")
        await iq(c, "set", live.domain,
                 "<query xmlns='%s'><username>%s</username>"
                 "<password>n\u00e9w-pass</password></query>" % (NS, u))
        # The session that changed it stays up.
        r = await iq(c, "get", live.domain, "<query xmlns='%s'/>" % NS)
        assert r["type"] == "result"
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
            d = await login(live, u, "n\u00e9w-pass", node="c2s-b", mech=mech)
            await d.stop()
        await login_fails(live, u, PW, "c2s-b")
        await c.stop()

    run(go())


def test_password_change_refusals_XEP_0077(live, make_user):
    u = fresh(make_user)
    other = fresh(make_user)

    async def go():
        c = await login(live, u, PW)
        # another user's password: not for a client to change
        assert await iq_error(
            c, "set", live.domain,
            "<query xmlns='%s'><username>%s</username>"
            "<password>x-1</password></query>" % (NS, other)) == "not-authorized"
        # empty after SASLprep
        assert await iq_error(
            c, "set", live.domain,
            "<query xmlns='%s'><username>%s</username>"
            "<password></password></query>" % (NS, u)) == "not-acceptable"
        # a prohibited character (U+0007)
        assert await iq_error(
            c, "set", live.domain,
            "<query xmlns='%s'><username>%s</username>"
            "<password>a&#xE000;b</password></query>" % (NS, u)) in (
                "not-acceptable", "bad-request")
        # no password at all
        assert await iq_error(
            c, "set", live.domain,
            "<query xmlns='%s'><username>%s</username></query>" % (NS, u)
        ) == "bad-request"
        # to another user's bare JID: not this server's account service
        assert await iq_error(
            c, "set", "%s@%s" % (other, live.domain),
            "<query xmlns='%s'><remove/></query>" % NS) in (
                "forbidden", "service-unavailable")
        await c.stop()
        # nothing changed: both still log in with the old password
        for who in (u, other):
            d = await login(live, who, PW, node="c2s-b")
            await d.stop()

    run(go())


def test_account_removal_ends_every_session_XEP_0077(live, make_user):
    u = fresh(make_user)
    friend = fresh(make_user)
    psql("insert into rosteritems (username, jid) values ('%s', '%s@%s')"
         % (u, friend, live.domain))
    async def go():
        a = await login(live, u, PW, node="c2s-a", resource="phone")
        b = await login(live, u, PW, node="c2s-b", resource="desk")
        ended = [asyncio.get_event_loop().create_future() for _ in range(2)]
        for cl, f in zip((a, b), ended):
            cl.add_event_handler(
                "disconnected", lambda _, f=f: f.done() or f.set_result(True))
        r = await iq(a, "set", live.domain,
                     "<query xmlns='%s'><remove/></query>" % NS)
        assert r["type"] == "result"
        await asyncio.wait_for(asyncio.gather(*ended), 10)
        assert "not-authorized" in a.stream_errors, a.stream_errors
        assert "not-authorized" in b.stream_errors, b.stream_errors
        await login_fails(live, u, PW, "c2s-a")

    run(go())
    assert psql("select count(*) from users where username = '%s'" % u) == "0"
    assert psql("select count(*) from rosteritems where username = '%s'"
                % u) == "0"
    assert psql("select count(*) from rosteritems where username = '%s'"
                % friend) == "0"  # the friend's roster never had u
    assert live.procs["router"].alive() and live.procs["presenced"].alive()


def test_account_removal_ends_a_session_bound_meanwhile_XEP_0077(live,
                                                                make_user):
    """A stream that authenticated before the removal and binds after it
    (its SESSION_UP reaches presenced after the kicks went out, the race
    of a second session binding while the account is removed) must end
    too: presenced finds the account gone when the session comes up."""
    from test_01_stream import Raw
    u = fresh(make_user)
    raw = Raw(live.ports["c2s-b"]["starttls"], live.cert)
    try:
        raw.starttls()
        r = raw.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                    "mechanism='PLAIN'>%s</auth>"
                    % base64.b64encode(("\0%s\0%s" % (u, PW)).encode())
                    .decode(), "</")
        assert "<success" in r, r
        raw.open()

        async def go():
            a = await login(live, u, PW, node="c2s-a", resource="phone")
            ended = asyncio.get_event_loop().create_future()
            a.add_event_handler(
                "disconnected",
                lambda _: ended.done() or ended.set_result(True))
            # What this test is about is the other stream, below: here
            # only the removal must happen. The result and the kick race
            # to this client (seen once under load: the kick won and the
            # result never came; docs/ARCHITECTURE.md gaps), so either
            # the result or the end of the session will do, and the
            # session must end.
            answer = asyncio.ensure_future(
                iq(a, "set", live.domain,
                   "<query xmlns='%s'><remove/></query>" % NS))
            await asyncio.wait_for(ended, 15)
            if not answer.done() or answer.cancelled():
                answer.cancel()
            elif answer.exception() is None:
                assert answer.result()["type"] == "result", answer.result()
            else:  # an error answer fails; no answer (the kick won) does not
                from slixmpp.exceptions import IqTimeout
                assert isinstance(answer.exception(), IqTimeout), \
                    answer.exception()

        run(go())
        assert psql("select count(*) from users where username = '%s'"
                    % u) == "0"
        # the account is gone; the stream authenticated before now binds
        raw.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:"
                 "xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>")
        out = raw.closed(15)
        assert "not-authorized" in out, out
    finally:
        raw.close()
    assert live.procs["router"].alive() and live.procs["presenced"].alive()
