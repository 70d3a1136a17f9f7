"""20b in-band registration of new accounts (XEP-0077 §3.1, issue 11).

Off by default: node A offers no <register/> feature and answers a
registration IQ with <service-unavailable/>, and the stream goes on (the
client can still log in). On a node with c2s.registration (c2s-c, started
here with its own config), over TLS only: the form, account creation
(then logins over SCRAM and PLAIN on other nodes), <conflict/> for a name
that exists, clear errors for bad names and passwords, and the per-address
hourly allowance (<resource-constraint/>, nothing created).
"""

import os
import re
import subprocess
import uuid

import pytest

from conftest import BIN, Proc
from test_01_stream import Raw
from xmpp_client import login, run

NS = "jabber:iq:register"
FEATURE = "<register xmlns='http://jabber.org/features/iq-register'/>"


def node_conf(per_hour):
    """kiln.conf with registration switched on for c2s-c only."""
    text = open(os.environ["KILN_CONF"]).read()
    text, n = re.subn(r'(\{\s*name\s*=\s*"c2s-c";)',
                      r'\1 registration = true; registration_per_hour = %d;'
                      % per_hour, text)
    assert n == 1, "no c2s-c node entry in the test config"
    # c2s-c closes silent unauthenticated streams after 6 s (test_09);
    # these tests pause between steps longer than that under ASan.
    text = re.sub(r'(name\s*=\s*"c2s-c";.*?)idle_timeout\s*=\s*6;',
                  r'\1idle_timeout = 120;', text, flags=re.S)
    path = os.path.join(os.environ["KILN_VAR"], "reg-%d.conf" % per_hour)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_node(cluster, name, per_hour):
    p = Proc(name, [os.path.join(BIN, "kiln-c2s"), "-c", node_conf(per_hour),
                    "--node", "c2s-c"])
    cluster.procs[name] = p  # teardown checks its log for sanitizer reports
    p.start()
    return p


@pytest.fixture(scope="module")
def reg_node(cluster):
    cluster.ensure()
    p = start_node(cluster, "c2s-c-reg", 1000)
    try:
        yield cluster.ports["c2s-c"]["starttls"]
    finally:
        p.stop()


def psql(sql):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-XAtq", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def reply(r, rid):
    """The whole answer to IQ rid: an empty result (<iq .../>) or one
    with content (... </iq>)."""
    out = r.expect("id='%s'" % rid)
    rest = r.expect(">")
    if rest.endswith("/>"):
        return out + rest
    return out + rest + r.expect("</iq>")


def register(r, user, password, rid="r1"):
    r.send("<iq type='set' id='%s'><query xmlns='%s'><username>%s"
           "</username><password>%s</password></query></iq>"
           % (rid, NS, user, password))
    return reply(r, rid)


def new_name():
    return "ib%s" % uuid.uuid4().hex[:8]


def test_registration_off_by_default_XEP_0077(live):
    r = Raw(live.ports["c2s-a"]["starttls"], live.cert)
    feats = r.starttls()
    assert FEATURE not in feats
    out = r.ask("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS,
                "</iq>")
    assert "type='error'" in out or 'type="error"' in out, out
    assert "<service-unavailable" in out, out
    name = new_name()
    out = register(r, name, "pw-ib-1")
    assert "<service-unavailable" in out, out
    assert psql("select count(*) from users where username = '%s'"
                % name) == "0"
    r.close()


def test_register_then_login_everywhere_XEP_0077(live, reg_node):
    r = Raw(reg_node, live.cert)
    plain = r.open()
    assert FEATURE not in plain  # only once the stream is encrypted
    out = r.ask("<iq type='get' id='g0'><query xmlns='%s'/></iq>" % NS,
                "</iq>")
    assert "<not-authorized" in out, out  # not before STARTTLS
    r.ask("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed")
    r._wrap()
    feats = r.open()
    assert FEATURE in feats, feats
    out = r.ask("<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS,
                "</iq>")
    assert "<username/>" in out and "<password/>" in out, out
    name = new_name()
    out = register(r, name, "pw-ib-2")
    assert "type='result'" in out and "id='r1'" in out, out
    # The same stream logs in with it, then other nodes, every mechanism.
    jid = r.login_plain(name, "pw-ib-2", resource="web")
    assert jid.startswith("%s@localhost/" % name)
    r.close()

    async def go():
        for node, mech in (("c2s-a", "SCRAM-SHA-256"), ("c2s-b", "SCRAM-SHA-1"),
                           ("c2s-b", "PLAIN")):
            c = await login(live, name, "pw-ib-2", node=node, mech=mech)
            await c.stop()

    run(go())


def test_register_refusals_XEP_0077(live, reg_node, make_user):
    taken = make_user("ibtaken", "pw-taken")
    r = Raw(reg_node, live.cert)
    r.starttls()
    out = register(r, taken, "other-pw")
    assert "<conflict" in out, out
    out = register(r, "bad name", "pw-x", rid="r2")
    assert "<jid-malformed" in out, out
    out = register(r, new_name(), "", rid="r3")
    assert "<not-acceptable" in out, out
    out = r.ask("<iq type='set' id='r4'><query xmlns='%s'><username>%s"
                "</username></query></iq>" % (NS, new_name()), "</iq>")
    assert "<not-acceptable" in out, out
    out = r.ask("<iq type='set' id='r5'><query xmlns='%s'><remove/></query>"
                "</iq>" % NS, "</iq>")
    assert "<not-authorized" in out, out
    # The taken account kept its password; the stream is still usable.
    jid = r.login_plain(taken, "pw-taken")
    assert jid.startswith("ibtaken@localhost/")
    r.close()


def test_register_allowance_per_address_XEP_0077(live, reg_node):
    live.procs["c2s-c-reg"].stop()
    p = start_node(live, "c2s-c-reg2", 2)
    try:
        r = Raw(reg_node, live.cert)
        r.starttls()
        names = [new_name() for _ in range(3)]
        for i, n in enumerate(names[:2]):
            out = register(r, n, "pw-a", rid="a%d" % i)
            assert "type='result'" in out, out
        out = register(r, names[2], "pw-a", rid="a2")
        assert "<resource-constraint" in out and "type='wait'" in out, out
        assert psql("select count(*) from users where username = '%s'"
                    % names[2]) == "0"
        # Another connection from the same address: still refused.
        r2 = Raw(reg_node, live.cert)
        r2.starttls()
        out = register(r2, names[2], "pw-a", rid="b0")
        assert "<resource-constraint" in out, out
        r.close()
        r2.close()
    finally:
        p.stop()
        live.procs["c2s-c-reg"].start()
