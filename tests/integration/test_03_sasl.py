"""03 sasl: SCRAM-SHA-1, SCRAM-SHA-256 (and -PLUS with
tls-server-end-point), PLAIN over TLS, wrong passwords, and the number of
round trips of a login.

Requirement IDs: R-PERF-5 (login round trips: stream -> features ->
auth -> success -> restart -> bind), R-BASE-1 (SASL).
"""

import base64
import hashlib
import hmac
import os
import time

from test_01_stream import Raw
from xmpp_client import AuthFailed, Client, run

PW = "pw-c3-secret"


def _slix_login(live, user, mech, node="c2s-a"):
    async def scenario():
        c = Client("%s@localhost/r" % user, PW, live.ports[node]["starttls"],
                   live.cert, mech=mech)
        await c.start()
        jid = str(c.boundjid)
        await c.stop()
        return jid

    return run(scenario())


def test_scram_sha1_login(live, make_user):
    make_user("c3alice", PW)
    assert _slix_login(live, "c3alice", "SCRAM-SHA-1") == "c3alice@localhost/r"


def test_scram_sha256_login(live, make_user):
    make_user("c3alice", PW)
    assert _slix_login(live, "c3alice", "SCRAM-SHA-256", "c2s-b") == \
        "c3alice@localhost/r"


def test_plain_login_over_tls(live, make_user):
    make_user("c3alice", PW)
    assert _slix_login(live, "c3alice", "PLAIN") == "c3alice@localhost/r"


def test_wrong_password_not_authorized(live, make_user):
    make_user("c3alice", PW)

    async def scenario():
        c = Client("c3alice@localhost/r", "not-the-password",
                   live.ports["c2s-a"]["starttls"], live.cert, mech="PLAIN")
        try:
            await c.start()
        except (AuthFailed, ConnectionError):
            return True
        finally:
            c.abort()
        return False

    assert run(scenario())


def _scram(r, user, password, hashname, plus=False, cb_data=b""):
    """A raw SCRAM exchange on r; returns the server's last answer."""
    mech = "SCRAM-%s%s" % (hashname.upper().replace("SHA", "SHA-"),
                           "-PLUS" if plus else "")
    h = getattr(hashlib, hashname)
    gs2 = b"p=tls-server-end-point,," if plus else b"n,,"
    cnonce = base64.b64encode(os.urandom(18))
    bare = b"n=" + user.encode() + b",r=" + cnonce
    out = r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                "mechanism='%s'>%s</auth>"
                % (mech, base64.b64encode(gs2 + bare).decode()), "</")
    assert "<challenge" in out, out
    sfirst = base64.b64decode(out.rsplit(">", 1)[1][:-2])
    parts = dict(p.split(b"=", 1) for p in sfirst.split(b","))
    salt = base64.b64decode(parts[b"s"])
    it = int(parts[b"i"])
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), salt, it)
    ckey = hmac.new(salted, b"Client Key", h).digest()
    skey = h(ckey).digest()
    wp = b"c=" + base64.b64encode(gs2 + cb_data) + b",r=" + parts[b"r"]
    am = bare + b"," + sfirst + b"," + wp
    sig = hmac.new(skey, am, h).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    fin = wp + b",p=" + base64.b64encode(proof)
    return r.ask("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s"
                 "</response>" % base64.b64encode(fin).decode(), "</")


def _end_point(r):
    # RFC 5929: our certificate is ECDSA-SHA256 -> SHA-256 of its DER.
    return hashlib.sha256(r.sock.getpeercert(binary_form=True)).digest()


def test_scram_sha256_plus_end_point(live, make_user):
    make_user("c3alice", PW)
    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    r.open()
    out = _scram(r, "c3alice", PW, "sha256", plus=True, cb_data=_end_point(r))
    assert "<success" in out, out


def test_scram_plus_wrong_binding_fails(live, make_user):
    make_user("c3alice", PW)
    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    r.open()
    out = _scram(r, "c3alice", PW, "sha1", plus=True, cb_data=b"\0" * 32)
    assert "<not-authorized/>" in out, out


def test_scram_wrong_password_and_unknown_user_delayed(live, make_user):
    make_user("c3alice", PW)
    r = Raw(live.ports["c2s-b"]["tls"], live.cert, direct_tls=True)
    r.open()
    t0 = time.monotonic()
    out = _scram(r, "c3alice", "wrong", "sha1")
    assert "<not-authorized/>" in out, out
    # auth_fail_delay_ms (500 by default) holds the failure back.
    assert time.monotonic() - t0 >= 0.4
    out = _scram(r, "c3nobody", "wrong", "sha256")
    assert "<not-authorized/>" in out, out
    # Then the right password still works on the same stream, and the
    # success resets the address's delay.
    out = _scram(r, "c3alice", PW, "sha256")
    assert "<success" in out, out


def test_login_round_trips_R_PERF_5(live, make_user):
    """stream -> features, auth -> success, restart -> features,
    bind -> result: 4 round trips with PLAIN, 5 with SCRAM (its
    challenge), after the TLS handshake of a direct TLS connection."""
    make_user("c3alice", PW)
    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    r.open()
    r.login_plain("c3alice", PW, "rt")
    assert r.round_trips == 4, r.round_trips

    r = Raw(live.ports["c2s-a"]["tls"], live.cert, direct_tls=True)
    r.open()
    assert "<success" in _scram(r, "c3alice", PW, "sha1")
    r.open()
    out = r.ask("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
                "xmpp-bind'/></iq>", "</iq>")
    assert "<jid>c3alice@localhost/" in out, out
    assert r.round_trips == 5, r.round_trips
    # Session establishment is optional and answered at once.
    out = r.ask("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:"
                "ns:xmpp-session'/></iq>", "/>")
    assert "type='result'" in out and "id='s'" in out, out
