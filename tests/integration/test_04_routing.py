"""04 routing through c2s: two users on two c2s nodes, messages and IQs
across nodes, routing failures, bad input that must not hurt others,
resource conflict across nodes, and framing.

Requirement IDs: R-ARCH-1 (framing: split and batched stanzas are each
processed once), R-ARCH-2 (full JID on another node), R-ARCH-3 (message
to a bare JID / an unavailable full JID), R-ARCH-4 (iq to an unavailable
full JID -> service-unavailable), R-DROP-7 (conflict across nodes),
R-BASE-1 (from stamping, invalid-from).
"""

import asyncio
import re
import time

import pytest

from test_01_stream import _error_then_close, login as raw_login
from xmpp_client import login, run

PW = "pw-c4"


@pytest.fixture
def users(live, make_user):
    make_user("c4alice", PW)
    make_user("c4bob", PW)
    return live


def test_messages_both_ways_full_and_bare_R_ARCH_2_R_ARCH_3(users):
    async def scenario():
        a = await login(users, "c4alice", PW, "c2s-a", "pc")
        b = await login(users, "c4bob", PW, "c2s-b", "phone")
        a.send_message(mto="c4bob@localhost/phone", mbody="full", mtype="chat")
        m = await b.next_message()
        assert m["body"] == "full"
        assert str(m["from"]) == "c4alice@localhost/pc"
        a.send_message(mto="c4bob@localhost", mbody="bare", mtype="chat")
        assert await b.next_message(body_only=True) == "bare"
        b.send_message(mto="c4alice@localhost/pc", mbody="back", mtype="chat")
        m = await a.next_message()
        assert m["body"] == "back" and str(m["from"]) == "c4bob@localhost/phone"
        b.send_message(mto="c4alice@localhost", mbody="back bare")
        assert await a.next_message(body_only=True) == "back bare"
        # A message to an unavailable full JID goes to the bare JID
        # (R-ARCH-3): Bob's other resource does not exist, phone gets it.
        a.send_message(mto="c4bob@localhost/gone", mbody="rerouted",
                       mtype="chat")
        assert await b.next_message(body_only=True) == "rerouted"
        # IQ ping between full JIDs across nodes.
        rtt = await a["xep_0199"].ping("c4bob@localhost/phone", timeout=5)
        assert rtt is not None
        await a.no_message(0.3)
        await b.no_message(0.3)
        await a.stop()
        await b.stop()

    run(scenario())


def test_iq_to_offline_full_jid_service_unavailable_R_ARCH_4(users):
    a = raw_login(users, "c2s-a", "c4alice", PW, "iq")
    a.send("<iq type='get' id='q1' to='c4bob@localhost/nowhere'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>")
    out = a.expect("</iq>")
    assert "type='error'" in out and "id='q1'" in out, out
    assert "<service-unavailable" in out, out
    assert "from='c4bob@localhost/nowhere'" in out, out
    a.close()


def test_undeliverable_messages_bounce_with_errors(users):
    """Another domain (no server-to-server yet): remote-server-not-found;
    groupchat to a user's bare JID: service-unavailable (RFC 6121 8.5.2).
    A message to an offline user is stored instead (presenced, test_06)."""
    a = raw_login(users, "c2s-a", "c4alice", PW, "off")
    a.send("<message to='someone@example.net' type='chat' id='m1'>"
           "<body>anyone?</body></message>")
    out = a.expect("</message>")
    assert "type='error'" in out and "id='m1'" in out, out
    assert "<remote-server-not-found" in out, out
    a.send("<message to='c4bob@localhost' type='groupchat' id='m2'>"
           "<body>x</body></message>")
    out = a.expect("</message>")
    assert "type='error'" in out and "id='m2'" in out, out
    assert "<service-unavailable" in out, out
    a.close()


def test_forged_from_invalid_from(users):
    a = raw_login(users, "c2s-a", "c4alice", PW, "forge")
    a.send("<message from='c4bob@localhost/phone' to='c4bob@localhost'>"
           "<body>it is me</body></message>")
    _error_then_close(a, "invalid-from")


def test_jid_malformed_keeps_stream(users):
    a = raw_login(users, "c2s-a", "c4alice", PW, "jm")
    a.send("<message to='a@b@c' id='x1'><body>x</body></message>")
    out = a.expect("</message>")
    assert "<jid-malformed" in out, out
    a.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'"
           "/></iq>")
    out = a.expect("/>")
    assert "type='result'" in out and "id='p1'" in out, out
    a.close()


def test_huge_stanza_policy_violation_others_unaffected(users):
    async def scenario():
        b = await login(users, "c4bob", PW, "c2s-a", "big")
        m = raw_login(users, "c2s-a", "c4alice", PW, "huge")
        body = "x" * (1024 * 1024)
        try:
            m.send("<message to='c4bob@localhost/big'><body>%s</body>"
                   "</message>" % body)
        except OSError:
            pass  # the server may close before we finished writing
        out = m.closed()
        assert "<policy-violation" in out, out[-500:]
        # Bob's session works on.
        c = raw_login(users, "c2s-b", "c4alice", PW, "small")
        c.send("<message to='c4bob@localhost/big'><body>still fine</body>"
               "</message>")
        assert await b.next_message(body_only=True) == "still fine"
        await b.stop()
        c.close()

    run(scenario())


def test_resource_conflict_across_nodes_R_DROP_7(users):
    old = raw_login(users, "c2s-a", "c4alice", PW, "same")
    assert old.jid == "c4alice@localhost/same"
    new = raw_login(users, "c2s-b", "c4alice", PW, "same")
    assert new.jid == "c4alice@localhost/same"
    _error_then_close(old, "conflict")
    # The route points at the new session only.
    time.sleep(0.2)
    b = raw_login(users, "c2s-a", "c4bob", PW, "x")
    b.send("<message to='c4alice@localhost/same' id='after'><body>new"
           "</body></message>")
    out = new.expect("</message>")
    assert "<body>new</body>" in out and "from='c4bob@localhost/x'" in out
    new.close()
    b.close()


def test_split_and_batched_stanzas_once_R_ARCH_1(users):
    async def scenario():
        b = await login(users, "c4bob", PW, "c2s-b", "frames")
        a = raw_login(users, "c2s-a", "c4alice", PW, "frames")
        one = ("<message to='c4bob@localhost/frames' type='chat'>"
               "<body>split</body></message>").encode()
        for i in range(len(one)):
            a.sock.sendall(one[i:i + 1])
        a.send("<message to='c4bob@localhost/frames' type='chat'><body>two-1"
               "</body></message><message to='c4bob@localhost/frames' "
               "type='chat'><body>two-2</body></message>")
        got = [await b.next_message(body_only=True) for _ in range(3)]
        assert got == ["split", "two-1", "two-2"], got
        await b.no_message(0.5)
        a.close()
        await b.stop()

    run(scenario())


def test_server_disco_from_registered_daemons(users):
    """disco#info of the server is the union of what the daemons
    registered (presenced: roster, ...); disco#items lists the MUC
    service mucd registered. Answered by the router."""
    a = raw_login(users, "c2s-a", "c4alice", PW, "disco")
    a.send("<iq type='get' id='di' to='localhost'><query "
           "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    out = a.expect("</iq>")
    assert "type='result'" in out and "id='di'" in out, out
    assert "category='server'" in out, out
    for feature in ("jabber:iq:roster", "urn:xmpp:ping",
                    "http://jabber.org/protocol/disco#items"):
        assert "var='%s'" % feature in out, (feature, out)
    # Each feature once (presenced registers its namespaces both as IQ
    # handlers and as features; Profanity showed them twice).
    listed = re.findall(r"var='([^']*)'", out)
    assert len(listed) == len(set(listed)), out
    a.send("<iq type='get' id='dt' to='localhost'><query "
           "xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    out = a.expect("</iq>")
    assert "id='dt'" in out and "jid='conference.localhost'" in out, out
    a.close()
