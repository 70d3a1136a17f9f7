"""30 limits: holding under abuse (issue 16), the limits and SASL-guessing
part.

- SASL lock-out (c2s_lockout.c, docs/SECURITY.md): auth_lockout_*
  failures within auth_lockout_window (8 s, 3 per account, 8 per address
  in the test config) lock the account or the address out, counted in
  Redis across both c2s nodes; locked attempts get
  <temporary-auth-failure/> with a text, unchecked; the lock-out ends
  with its window; another address is not locked by an address's
  lock-out; every failure and lock-out is logged in a fixed format that
  the shipped fail2ban filter (deploy/fail2ban/kiln-c2s.conf) matches.
- Sessions per account (max_sessions = 5): the sixth bind, anywhere in
  the cluster, gets <resource-constraint/> with a text; the stream stays
  usable and binds once a session ended; rebinding a bound resource (the
  older session is replaced, R-DROP-7) is not refused.

The guessing tests connect from addresses of their own (127.0.30.x) so
that their failures and delays do not touch the other tests' 127.0.0.1.
"""

import base64
import os
import re
import socket
import time

from test_01_stream import Raw

PW = "pw-l30-secret"
TOP = os.path.join(os.path.dirname(__file__), "..", "..")
WINDOW = 8  # auth_lockout_window of deploy/dev/kiln.conf.in
USER_FAILURES = 6  # auth_lockout_user_failures
ADDR_FAILURES = 20  # auth_lockout_addr_failures


def raw_from(live, node, src):
    """A Raw client on node's direct TLS port from source address src,
    stream opened."""
    r = Raw.__new__(Raw)
    r.sock = socket.create_connection(("127.0.0.1", live.ports[node]["tls"]),
                                      timeout=10, source_address=(src, 0))
    r.cert = live.cert
    r.tls_max = None
    r.buf = b""
    r.round_trips = 0
    r._wrap()
    r.open()
    return r


def send_plain(r, user, password):
    raw = ("\0%s\0%s" % (user, password)).encode()
    r.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
           "mechanism='PLAIN'>%s</auth>" % base64.b64encode(raw).decode())


def sasl_answer(r, timeout=30):
    """Read up to the end of <success/> or <failure/>."""
    deadline = time.monotonic() + timeout
    while True:
        text = r.buf.decode("utf-8", "replace")
        for end in ("</success>", "</failure>"):
            if end in text:
                i = r.buf.index(end.encode()) + len(end)
                out, r.buf = r.buf[:i], r.buf[i:]
                return out.decode()
        left = deadline - time.monotonic()
        assert left > 0, "no SASL answer: %r" % r.buf
        r.sock.settimeout(left)
        chunk = r.sock.recv(65536)
        assert chunk, "closed: %r" % r.buf
        r.buf += chunk


def bind(r, resource):
    r.open()
    return r.ask("<iq type='set' id='b-%s'><bind xmlns='urn:ietf:params:xml:"
                 "ns:xmpp-bind'><resource>%s</resource></bind></iq>"
                 % (resource, resource), "</iq>")


def rebind(r, resource):
    return r.ask("<iq type='set' id='rb-%s'><bind xmlns='urn:ietf:params:xml:"
                 "ns:xmpp-bind'><resource>%s</resource></bind></iq>"
                 % (resource, resource), "</iq>")


def remaining_s(answer):
    m = re.search(r"try again in (\d+) s", answer)
    assert m, answer
    return int(m.group(1))


def locked(answer):
    return ("<temporary-auth-failure/>" in answer and
            "Too many failed authentication attempts" in answer)


def wait_unlocked(r, user, password, first):
    """Retry on the same stream as the lock-out text says until the login
    succeeds; returns (answers refused meanwhile, the success)."""
    refused = 0
    answer = first
    for _ in range(10):
        wait = remaining_s(answer)
        assert 1 <= wait <= WINDOW, answer
        time.sleep(wait)  # what the server told the client to wait
        send_plain(r, user, password)
        answer = sasl_answer(r)
        if "<success" in answer:
            return refused, answer
        assert locked(answer), answer
        refused += 1
    raise AssertionError("still locked out: %s" % answer)


def fail2ban_regex():
    """The failregex of the shipped filter, <HOST> as a named group."""
    path = os.path.join(TOP, "deploy", "fail2ban", "kiln-c2s.conf")
    with open(path) as f:
        for line in f:
            if line.startswith("failregex"):
                rx = line.split("=", 1)[1].strip()
                return re.compile(rx.replace(
                    "<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))
    raise AssertionError("no failregex in " + path)


def test_account_lockout_across_nodes_and_window_end(live, make_user):
    user = make_user("l30acct", PW)
    marks = {n: live.log_mark(n) for n in ("c2s-a", "c2s-b")}
    # USER_FAILURES wrong passwords at once, from as many addresses, on
    # both nodes: the per-address delay does not add up, the account
    # count does.
    srcs = ["127.0.30.%d" % (i + 1) for i in range(USER_FAILURES)]
    guess = [raw_from(live, ("c2s-a", "c2s-b")[i % 2], src)
             for i, src in enumerate(srcs)]
    for r in guess:
        send_plain(r, user, "wrong")
    for r in guess:
        out = sasl_answer(r)
        assert "<not-authorized/>" in out, out
    # The right password from another address, on node b: refused
    # unchecked, with a text saying for how long.
    r = raw_from(live, "c2s-b", "127.0.30.9")
    send_plain(r, user, PW)
    first = sasl_answer(r)
    assert locked(first), first
    live.wait_log("c2s-b", "auth locked user=%s@localhost addr=127.0.30.9 "
                  "mech=PLAIN" % user, since=marks["c2s-b"])
    # The lock-out started once, on the node that counted the last.
    text = (live.procs["c2s-a"].text(since=marks["c2s-a"]) +
            live.procs["c2s-b"].text(since=marks["c2s-b"]))
    assert text.count("auth lockout user=%s@localhost" % user) == 1, text
    assert "scope=account failures=%d window=8s" % USER_FAILURES in text, text
    for src in srcs:
        assert ("auth failure user=%s@localhost addr=%s mech=PLAIN"
                % (user, src)) in text, text
    # The window ends: the same stream logs in and binds.
    _, ok = wait_unlocked(r, user, PW, first)
    assert "<success" in ok, ok
    assert "<jid>%s@localhost/after</jid>" % user in bind(r, "after")
    for c in guess + [r]:
        c.close()


def test_address_lockout_spares_other_addresses(live, make_user):
    user = make_user("l30addr", PW)
    marks = {n: live.log_mark(n) for n in ("c2s-a", "c2s-b")}
    mark = marks["c2s-a"]
    # ADDR_FAILURES unknown accounts (each below the per-account
    # threshold) from one address, spread over both nodes.
    guess = [raw_from(live, ("c2s-a", "c2s-b")[i % 2], "127.0.30.20")
             for i in range(ADDR_FAILURES)]
    for i, r in enumerate(guess):
        send_plain(r, "l30ghost%d" % i, "wrong")
    # Once the lock-out is logged (the failures' answers come later, each
    # after the address's growing failure delay) that address is locked
    # out, even with a right password ...
    deadline = time.monotonic() + 30
    while not any("addr=127.0.30.20 scope=address" in
                  live.procs[n].text(since=marks[n]) for n in marks):
        assert time.monotonic() < deadline, "no address lock-out logged"
        time.sleep(0.05)
    r = raw_from(live, "c2s-a", "127.0.30.20")
    send_plain(r, user, PW)
    out = sasl_answer(r)
    assert locked(out), out
    for g in guess:
        out = sasl_answer(g)
        assert "<not-authorized/>" in out, out
    live.wait_log("c2s-a", "auth locked user=%s@localhost addr=127.0.30.20"
                  % user, since=mark)
    # ... another address is not, and its session works.
    other = raw_from(live, "c2s-b", "127.0.30.21")
    send_plain(other, user, PW)
    out = sasl_answer(other)
    assert "<success" in out, out
    out = bind(other, "spared")
    assert "<jid>%s@localhost/spared</jid>" % user in out, out
    pong = other.ask("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/>"
                     "</iq>", "id='p1'")
    assert "<iq type='result' id='p1'" in pong, pong
    for c in guess + [r, other]:
        c.close()


def test_fail2ban_filter_matches_the_real_log_lines(live, make_user):
    user = make_user("l30f2b", PW)
    mark = live.log_mark("c2s-b")
    r = raw_from(live, "c2s-b", "127.0.30.40")
    send_plain(r, user, "wrong")
    assert "<not-authorized/>" in sasl_answer(r)
    live.wait_log("c2s-b", "auth failure user=%s@localhost" % user,
                  since=mark)
    rx = fail2ban_regex()
    lines = [ln for ln in live.procs["c2s-b"].text(since=mark).splitlines()
             if user in ln]
    hits = [rx.search(ln) for ln in lines]
    hosts = [m.group("host") for m in hits if m]
    assert hosts == ["127.0.30.40"], lines
    # Nothing else of a normal login matches (a success is not a failure).
    ok = raw_from(live, "c2s-b", "127.0.30.41")
    send_plain(ok, user, PW)
    assert "<success" in sasl_answer(ok)
    live.wait_log("c2s-b", "%s@localhost authenticated" % user, since=mark)
    text = live.procs["c2s-b"].text(since=mark)
    assert not [ln for ln in text.splitlines()
                if "127.0.30.41" in ln and rx.search(ln)], text
    r.close()
    ok.close()


def _login(live, node, user, resource):
    r = Raw(live.ports[node]["tls"], live.cert, direct_tls=True)
    r.open()
    r.jid = r.login_plain(user, PW, resource)
    r.send("<presence/>")
    return r


def test_sessions_per_account_resource_constraint(live, make_user, redis):
    user = make_user("l30sess", PW)
    bare = "%s@localhost" % user
    held = [_login(live, "c2s-a", user, "a%d" % i) for i in range(3)]
    held += [_login(live, "c2s-b", user, "b%d" % i) for i in range(2)]
    deadline = time.monotonic() + 20
    while int(redis("HLEN", "sessions:" + bare).strip()) < 5:
        assert time.monotonic() < deadline, "sessions not in Redis"
        time.sleep(0.05)
    # The sixth, on either node: <resource-constraint/> with a text, and
    # the stream stays authenticated and usable.
    r = Raw(live.ports["c2s-b"]["tls"], live.cert, direct_tls=True)
    r.open()
    send_plain(r, user, PW)
    assert "<success" in sasl_answer(r)
    out = bind(r, "sixth")
    assert "type='error'" in out, out
    assert "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-" \
        "stanzas'/>" in out, out
    assert "at most 5" in out, out
    # Rebinding a bound resource replaces that session: not refused.
    again = Raw(live.ports["c2s-b"]["tls"], live.cert, direct_tls=True)
    again.open()
    assert again.login_plain(user, PW, "a0") == bare + "/a0"
    # One session ends; then the same stream binds.
    held[1].send("</stream:stream>")
    held[1].closed()
    while int(redis("HLEN", "sessions:" + bare).strip()) > 4:
        assert time.monotonic() < deadline + 20, "session not removed"
        time.sleep(0.05)
    out = rebind(r, "sixth")
    assert "<jid>%s/sixth</jid>" % bare in out, out
    for c in held + [r, again]:
        c.close()


# ---- per-account storage limits (presenced) and MUC limits (mucd) --------
#
# The test config (deploy/dev/kiln.conf.in): roster_max_items 20,
# private_max_bytes 4096, vcard_max_bytes 8192, pep_item_max_bytes 4096,
# max_rooms_per_user 5; offline_quota_bytes is the default 102400.

from slixmpp.exceptions import IqError  # noqa: E402

from test_13_muc_more import configure  # noqa: E402
from xmpp_client import iq, joined, login, next_presence, run  # noqa: E402

D = "localhost"
MUC = "conference.localhost"


async def iq_fail(c, itype, to, payload):
    """(condition, text, error element) of the IQ's error answer."""
    try:
        r = await iq(c, itype, to, payload)
    except IqError as e:
        return (e.iq["error"]["condition"], e.iq["error"]["text"],
                e.iq.xml.find("{jabber:client}error"))
    raise AssertionError("expected an error, got %s" % r)


def roster_item(jid, name=None):
    n = " name='%s'" % name if name else ""
    return ("<query xmlns='jabber:iq:roster'><item jid='%s'%s/></query>"
            % (jid, n))


def test_roster_size_limit(live, make_user):
    for u in ("l30ros", "l30rosx", "l30rosy"):
        make_user(u, PW)

    async def scenario():
        a = await login(live, "l30ros", PW, "c2s-a", "r")
        for i in range(20):
            await iq(a, "set", None, roster_item("l30c%d@%s" % (i, D)))
        cond, text, _ = await iq_fail(a, "set", None,
                                      roster_item("l30c20@%s" % D))
        assert cond == "not-allowed", cond
        assert text == "Roster full (at most 20 items)", text
        # The session goes on: an existing item is still updated, the
        # roster reads back with the 20 items.
        await iq(a, "set", None, roster_item("l30c3@%s" % D, "Three"))
        r = await iq(a, "get", None, "<query xmlns='jabber:iq:roster'/>")
        items = r.xml.findall("{jabber:iq:roster}query/"
                              "{jabber:iq:roster}item")
        assert len(items) == 20, len(items)
        # A subscription request of the full user to a new contact (on the
        # other node) is refused to its sender, with why.
        x = await login(live, "l30rosx", PW, "c2s-b", "r")
        a.send_presence(pto="l30rosx@" + D, ptype="subscribe")
        p = await next_presence(a, lambda p: p["type"] == "error", 10)
        assert p["error"]["condition"] == "not-allowed", p
        assert "Your roster is full (at most 20 items)" in \
            p["error"]["text"], p
        # Someone asking the full user is refused the same way.
        y = await login(live, "l30rosy", PW, "c2s-b", "r")
        y.send_presence(pto="l30ros@" + D, ptype="subscribe")
        p = await next_presence(y, lambda p: p["type"] == "error", 10)
        assert p["error"]["condition"] == "not-allowed", p
        assert "The contact's roster is full" in p["error"]["text"], p
        # Room again after a removal: the same request goes through.
        await iq(a, "set", None, "<query xmlns='jabber:iq:roster'><item "
                 "jid='l30c0@%s' subscription='remove'/></query>" % D)
        a.send_presence(pto="l30rosx@" + D, ptype="subscribe")
        p = await next_presence(
            x, lambda p: p["type"] == "subscribe" and
            str(p["from"]).startswith("l30ros@"), 10)
        for c in (a, x, y):
            await c.stop()

    run(scenario(), timeout=90)


def test_private_vcard_pep_size_limits(live, make_user):
    make_user("l30store", PW)
    big = "x" * 9000

    async def scenario():
        a = await login(live, "l30store", PW, "c2s-a", "r")
        # XEP-0049: over private_max_bytes -> not-acceptable with a text;
        # the stored value stays.
        await iq(a, "set", None, "<query xmlns='jabber:iq:private'><p "
                 "xmlns='l30:p'>small</p></query>")
        cond, text, _ = await iq_fail(
            a, "set", None, "<query xmlns='jabber:iq:private'><p "
            "xmlns='l30:p'>%s</p></query>" % big)
        assert cond == "not-acceptable", cond
        assert "Private XML element too large" in text, text
        assert "at most 4096" in text, text
        r = await iq(a, "get", None, "<query xmlns='jabber:iq:private'><p "
                     "xmlns='l30:p'/></query>")
        assert r.xml.findtext("{jabber:iq:private}query/{l30:p}p") == \
            "small"
        # XEP-0054: over vcard_max_bytes; the old vCard stays.
        await iq(a, "set", None, "<vCard xmlns='vcard-temp'><FN>Small</FN>"
                 "</vCard>")
        cond, text, _ = await iq_fail(
            a, "set", None, "<vCard xmlns='vcard-temp'><FN>Big</FN><DESC>%s"
            "</DESC></vCard>" % big)
        assert cond == "not-acceptable", cond
        assert "vCard too large" in text and "at most 8192" in text, text
        r = await iq(a, "get", None, "<vCard xmlns='vcard-temp'/>")
        assert r.xml.findtext("{vcard-temp}vCard/{vcard-temp}FN") == "Small"
        # XEP-0163/XEP-0060 7.1.3.4: not-acceptable + payload-too-big.
        pub = ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish "
               "node='l30:big'><item id='i1'><e xmlns='l30:big'>%s</e></item>"
               "</publish></pubsub>")
        cond, text, err = await iq_fail(a, "set", None, pub % big)
        assert cond == "not-acceptable", cond
        assert err.find("{http://jabber.org/protocol/pubsub#errors}"
                        "payload-too-big") is not None, err
        assert "at most 4096" in text, text
        await iq(a, "set", None, pub % "fits")
        await a.stop()

    run(scenario(), timeout=60)


def test_offline_quota_error_says_why(live, make_user):
    make_user("l30offl", PW)
    make_user("l30offs", PW)

    async def scenario():
        s = await login(live, "l30offs", PW, "c2s-b", "s")
        body = "x" * 40000
        for _ in range(3):  # 120 KB > the 100 KB quota
            s.send_message(mto="l30offl@" + D, mbody=body, mtype="chat")
        m = await s.next_message(10)
        assert m["type"] == "error", m
        assert m["error"]["condition"] == "service-unavailable", m
        assert m["error"]["text"] == \
            "Offline storage of the recipient is full (102400 bytes)", m
        # The sender's session goes on.
        await iq(s, "get", None, "<ping xmlns='urn:xmpp:ping'/>")
        await s.stop()
        # What fitted was stored.
        r = await login(live, "l30offl", PW, "c2s-a", "r")
        got = await r.next_message(10)
        assert got["body"] == body
        await r.stop()

    run(scenario(), timeout=60)


def test_rooms_per_user_and_full_room(live, make_user):
    for u in ("l30mo", "l30mb", "l30mc"):
        make_user(u, PW)

    async def scenario():
        o = await login(live, "l30mo", PW, "c2s-a", "r")
        for i in range(5):
            p = await joined(o, "l30r%d@%s" % (i, MUC), "o")
            assert p["type"] != "error", p
        # A sixth room: not-allowed (XEP-0045 10.1.1) with the limit.
        p = await joined(o, "l30r5@%s" % MUC, "o")
        assert p["type"] == "error", p
        assert p["error"]["condition"] == "not-allowed", p
        assert "at most 5" in p["error"]["text"], p
        # Joining somebody else's room is no creation.
        b = await login(live, "l30mb", PW, "c2s-b", "r")
        assert (await joined(b, "l30rb@%s" % MUC, "b"))["type"] != "error"
        assert (await joined(o, "l30rb@%s" % MUC, "o"))["type"] != "error"
        # A full room (XEP-0045 7.2.10): maxusers 2, the owner and one.
        await configure(o, "l30r0@" + MUC,
                        [("muc#roomconfig_maxusers", "2")])
        assert (await joined(b, "l30r0@%s" % MUC, "b"))["type"] != "error"
        c = await login(live, "l30mc", PW, "c2s-a", "r")
        p = await joined(c, "l30r0@%s" % MUC, "c")
        assert p["type"] == "error", p
        assert p["error"]["condition"] == "service-unavailable", p
        assert "room is full (at most 2 occupants)" in p["error"]["text"], p
        # Room again once b leaves.
        b.send_presence(pto="l30r0@%s/b" % MUC, ptype="unavailable")
        await next_presence(
            o, lambda p: str(p["from"]) == "l30r0@%s/b" % MUC and
            p["type"] == "unavailable", 10)
        p = await joined(c, "l30r0@%s" % MUC, "c")
        assert p["type"] != "error", p
        for x in (o, b, c):
            await x.stop()

    run(scenario(), timeout=90)
