"""02 tls: STARTTLS is required (no SASL mechanism on a plain stream),
direct TLS (XEP-0368) works, channel-binding types (XEP-0440) follow the
TLS version.

Requirement IDs: R-BASE-1 (STARTTLS required by default).
"""

import ssl

from test_01_stream import Raw, _error_then_close
from xmpp_client import Client, run


def test_plain_stream_offers_only_starttls_R_BASE_1(live):
    r = Raw(live.ports["c2s-a"]["starttls"])
    feats = r.open()
    assert "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>" \
        in feats, feats
    assert "<mechanisms" not in feats and "PLAIN" not in feats, feats
    # An <auth/> anyway: refused, nothing learnt about the user.
    out = r.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                "mechanism='PLAIN'>AGEAYg==</auth>", "</failure>")
    assert "<encryption-required/>" in out, out


def test_starttls_then_mechanisms(live):
    r = Raw(live.ports["c2s-a"]["starttls"], live.cert)
    feats = r.starttls()
    assert "<starttls" not in feats, feats
    for m in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
              "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
        assert "<mechanism>%s</mechanism>" % m in feats, feats
    assert "urn:xmpp:sasl-cb:0" in feats
    assert r.sock.version() == "TLSv1.3"
    assert "<channel-binding type='tls-exporter'/>" in feats, feats
    # A second STARTTLS inside TLS is a failure and the end of the stream.
    r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    out = r.closed()
    assert "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" in out, out


def test_tls12_offers_end_point_only(live):
    r = Raw(live.ports["c2s-b"]["tls"], live.cert, direct_tls=True,
            tls_max=ssl.TLSVersion.TLSv1_2)
    feats = r.open()
    assert r.sock.version() == "TLSv1.2"
    assert "<channel-binding type='tls-server-end-point'/>" in feats, feats
    assert "tls-exporter" not in feats, feats


def test_direct_tls_login(live, make_user):
    make_user("c2dora", "pw-c2")

    async def scenario():
        c = Client("c2dora@localhost/d", "pw-c2", live.ports["c2s-b"]["tls"],
                   live.cert, direct_tls=True)
        await c.start()
        assert str(c.boundjid) == "c2dora@localhost/d"
        await c.stop()

    run(scenario())


def test_garbage_instead_of_tls_handshake(live):
    r = Raw(live.ports["c2s-a"]["tls"])
    r.send(b"GET / HTTP/1.0\r\n\r\n")
    r.closed()
    # The node is still serving.
    r2 = Raw(live.ports["c2s-a"]["starttls"])
    assert "<starttls" in r2.open()


def test_stanza_after_starttls_before_auth(live):
    r = Raw(live.ports["c2s-a"]["starttls"], live.cert)
    r.starttls()
    r.send("<presence/>")
    _error_then_close(r, "not-authorized")


def _own_records(live, node):
    from test_27_admin import scrape, value
    return value(scrape("http://127.0.0.1:%d/metrics"
                        % live.ports[node]["http"]),
                 "kiln_c2s_tls_own_records_total")


def test_own_record_layer_carries_a_session(live, make_user):
    # Issue 15: node B runs with tls.own_record_layer (deploy/dev's
    # kiln.conf.in): after the TLS 1.3 handshake c2s frees OpenSSL's
    # session and protects the records itself. A login, a message to
    # itself larger than a record (40,000 bytes: several records each
    # way) and a clean stop over it; node A keeps OpenSSL's layer.
    make_user("c2rec", "pw-c2rec")
    b0 = _own_records(live, "c2s-b")
    a0 = _own_records(live, "c2s-a")
    body = "".join(chr(0x41 + i % 26) for i in range(40000))

    async def scenario():
        c = Client("c2rec@localhost/r", "pw-c2rec",
                   live.ports["c2s-b"]["starttls"], live.cert)
        await c.start()
        c.send_message(mto="c2rec@localhost/r", mbody=body, mtype="chat")
        got = await c.next_message()
        assert got["body"] == body
        c.send_message(mto="c2rec@localhost/r", mbody="small", mtype="chat")
        assert (await c.next_message())["body"] == "small"
        await c.stop()

    run(scenario())
    assert _own_records(live, "c2s-b") >= b0 + 1
    assert _own_records(live, "c2s-a") == a0
