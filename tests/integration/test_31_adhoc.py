"""31 admin ad-hoc commands: XEP-0133 service administration over XEP-0050,
for the admins named in presenced.admins (the test config names
adhocboss@localhost). Issue 14 ("the same as XEP-0133 ad-hoc commands for
admins named in config"). The admin works on node A, the users on node B,
so every command is seen to reach the whole cluster.
"""

import asyncio
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from xmpp_client import AuthFailed, iq, login, run

NS_CMD = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_ADMIN = "http://jabber.org/protocol/admin"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PW = "adhoc-Secret-1"
ADMIN = "adhocboss"


def psql(sql):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-XAtq", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def fresh(make_user, prefix="adh"):
    return make_user("%s%s" % (prefix, uuid.uuid4().hex[:8]), PW)


def admin_user(make_user):
    if psql("select count(*) from users where username = '%s'" % ADMIN) == "0":
        make_user(ADMIN, PW)
    return ADMIN


def form(fields):
    x = "<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'>" \
        "<value>%s</value></field>" % (NS_DATA, NS_ADMIN)
    for var, vals in fields.items():
        if isinstance(vals, str):
            vals = [vals]
        x += "<field var='%s'>%s</field>" % (
            var, "".join("<value>%s</value>" % v for v in vals))
    return x + "</x>"


async def command(c, domain, name, action=None, sid=None, fields=None):
    attrs = "node='%s#%s'" % (NS_ADMIN, name)
    if action:
        attrs += " action='%s'" % action
    if sid:
        attrs += " sessionid='%s'" % sid
    body = form(fields) if fields is not None else ""
    r = await iq(c, "set", domain,
                 "<command xmlns='%s' %s>%s</command>" % (NS_CMD, attrs, body))
    return r.xml.find("{%s}command" % NS_CMD)


async def command_error(c, domain, name, **kw):
    """The error of a command: (condition, app condition, text)."""
    try:
        await command(c, domain, name, **kw)
    except IqError as e:
        err = e.iq.xml.find("{jabber:client}error")
        app = [ch.tag.split("}")[1] for ch in err
               if ch.tag.startswith("{%s}" % NS_CMD)]
        return e.iq["error"]["condition"], (app[0] if app else None), \
            e.iq["error"]["text"]
    raise AssertionError("expected an error")


async def two_stage(c, domain, name, fields):
    """Execute, get the form, submit it: the completed <command/>."""
    first = await command(c, domain, name)
    assert first.get("status") == "executing"
    x = first.find("{%s}x" % NS_DATA)
    assert x is not None and x.get("type") == "form"
    asked = {f.get("var") for f in x.findall("{%s}field" % NS_DATA)}
    assert set(fields) <= asked, (fields, asked)
    done = await command(c, domain, name, action="complete",
                         sid=first.get("sessionid"), fields=fields)
    assert done.get("status") == "completed"
    assert done.get("sessionid") == first.get("sessionid")
    return done


async def login_fails(live, user, pw, node):
    with pytest.raises((AuthFailed, ConnectionError)):
        c = await login(live, user, pw, node=node)
        await c.stop()


def test_adhoc_commands_listed_for_admins_only_XEP_0133(live, make_user):
    boss = admin_user(make_user)
    u = fresh(make_user)

    async def go():
        a = await login(live, boss, PW, node="c2s-a")
        b = await login(live, u, PW, node="c2s-b")
        try:
            r = await iq(a, "get", live.domain, "<query xmlns='%s'/>" % NS_INFO)
            feats = {f.get("var") for f in r.xml.iter("{%s}feature" % NS_INFO)}
            assert NS_CMD in feats
            items = "<query xmlns='%s' node='%s'/>" % (NS_ITEMS, NS_CMD)
            r = await iq(a, "get", live.domain, items)
            nodes = {i.get("node") for i in r.xml.iter("{%s}item" % NS_ITEMS)}
            for n in ("add-user", "delete-user", "disable-user",
                      "reenable-user", "change-user-password",
                      "end-user-session", "get-online-users-num",
                      "announce"):
                assert "%s#%s" % (NS_ADMIN, n) in nodes
            # a user who is not an admin sees no command
            r = await iq(b, "get", live.domain, items)
            assert list(r.xml.iter("{%s}item" % NS_ITEMS)) == []
            # a command node's info
            r = await iq(a, "get", live.domain,
                         "<query xmlns='%s' node='%s#add-user'/>"
                         % (NS_INFO, NS_ADMIN))
            ident = r.xml.find("{%s}query/{%s}identity" % (NS_INFO, NS_INFO))
            assert (ident.get("category"), ident.get("type")) == \
                ("automation", "command-node")
            # and a user may not run one
            cond, _, _ = await command_error(b, live.domain,
                                             "get-online-users-num")
            assert cond == "forbidden"
        finally:
            await a.stop()
            await b.stop()

    run(go())


def test_adhoc_add_user_with_slixmpp_then_login_XEP_0133(live, make_user):
    """A real client's ad-hoc flow (slixmpp's xep_0050: start, fill the
    form it got, complete), then the new account logs in on node B."""
    boss = admin_user(make_user)
    new = "adhnew%s" % uuid.uuid4().hex[:8]

    async def go():
        a = await login(live, boss, PW, node="c2s-a")
        a.register_plugin("xep_0050")
        try:
            fut = asyncio.get_running_loop().create_future()

            def on_form(iq_, session):
                x = iq_["command"]["form"]
                assert "accountjid" in x.get_fields()
                reply = a["xep_0004"].make_form(ftype="submit")
                reply.add_field(var="FORM_TYPE", ftype="hidden",
                                value=NS_ADMIN)
                reply.add_field(var="accountjid",
                                value="%s@%s" % (new, live.domain))
                reply.add_field(var="password", value="n3w-Pass")
                reply.add_field(var="password-verify", value="n3w-Pass")
                session["payload"] = reply
                session["next"] = on_done
                a["xep_0050"].complete_command(session)

            def on_done(iq_, session):
                fut.set_result(iq_["command"])

            def on_error(iq_, session):
                fut.set_exception(AssertionError(str(iq_)))

            a["xep_0050"].start_command(
                live.domain, "%s#add-user" % NS_ADMIN,
                {"next": on_form, "error": on_error})
            done = await asyncio.wait_for(fut, 20)
            assert done["status"] == "completed"
            c = await login(live, new, "n3w-Pass", node="c2s-b")
            await c.stop()
            # the same account again: <conflict/>
            cond, _, _ = await command_error(
                a, live.domain, "add-user",
                fields={"accountjid": "%s@%s" % (new, live.domain),
                        "password": "x-Other-2",
                        "password-verify": "x-Other-2"})
            assert cond == "conflict"
        finally:
            await a.stop()

    run(go())


def test_adhoc_password_disable_reenable_delete_XEP_0133(live, make_user):
    boss = admin_user(make_user)
    u = fresh(make_user)
    jid = "%s@%s" % (u, "localhost")

    async def go():
        a = await login(live, boss, PW, node="c2s-a")
        try:
            assert jid.endswith("@" + live.domain)
            await two_stage(a, live.domain, "change-user-password",
                            {"accountjid": jid, "password": "chang3d-Pw"})
            await login_fails(live, u, PW, "c2s-b")
            c = await login(live, u, "chang3d-Pw", node="c2s-b")
            # disable: the session on node B ends, logins are refused
            ended = asyncio.get_running_loop().create_future()
            c.add_event_handler("disconnected",
                                lambda _e: ended.done() or
                                ended.set_result(True))
            done = await two_stage(a, live.domain, "disable-user",
                                   {"accountjids": [jid]})
            assert "1 of 1" in done.find("{%s}note" % NS_CMD).text
            await asyncio.wait_for(ended, 15)
            await login_fails(live, u, "chang3d-Pw", "c2s-b")
            await two_stage(a, live.domain, "reenable-user",
                            {"accountjids": [jid]})
            c = await login(live, u, "chang3d-Pw", node="c2s-b")
            # end-user-session ends the sessions the server knows of: wait
            # until presenced has this one (its SESSION_UP goes c2s ->
            # router -> presenced, like the roster get that follows it on
            # the same path, so the answer means it has been heard of)
            await iq(c, "get", None, "<query xmlns='jabber:iq:roster'/>")
            # end-user-session: the session goes, the account stays
            ended = asyncio.get_running_loop().create_future()
            c.add_event_handler("disconnected",
                                lambda _e: ended.done() or
                                ended.set_result(True))
            await command(a, live.domain, "end-user-session",
                          fields={"accountjids": [jid]})
            await asyncio.wait_for(ended, 15)
            c = await login(live, u, "chang3d-Pw", node="c2s-b")
            await c.stop()
            # delete (one stage: the form with the request)
            done = await command(a, live.domain, "delete-user",
                                 fields={"accountjids": [jid]})
            assert done.get("status") == "completed"
            assert psql("select count(*) from users where username = '%s'"
                        % u) == "0"
            await login_fails(live, u, "chang3d-Pw", "c2s-b")
        finally:
            await a.stop()

    run(go(), timeout=90)


def test_adhoc_online_count_and_announce_XEP_0133(live, make_user):
    boss = admin_user(make_user)
    u1, u2 = fresh(make_user), fresh(make_user)

    def count(cmd):
        x = cmd.find("{%s}x" % NS_DATA)
        for f in x.findall("{%s}field" % NS_DATA):
            if f.get("var") == "onlineusersnum":
                return int(f.find("{%s}value" % NS_DATA).text)
        raise AssertionError("no onlineusersnum")

    async def go():
        a = await login(live, boss, PW, node="c2s-a")
        try:
            # The starting count: only once the sessions of earlier tests
            # (their clients already closed, the SESSION_DOWN still on its
            # way c2s -> router -> presenced) are gone from the server's
            # own figure, i.e. only the admin is online (poll the figure,
            # bounded; should something else stay online longer than that,
            # start from the last figure as before).
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                n0 = count(await command(a, live.domain,
                                         "get-online-users-num"))
                if n0 <= 1 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert n0 >= 1  # the admin
            c1 = await login(live, u1, PW, node="c2s-a")
            c2 = await login(live, u2, PW, node="c2s-b")
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                n1 = count(await command(a, live.domain,
                                         "get-online-users-num"))
                if n1 == n0 + 2 or \
                        asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert n1 == n0 + 2
            got = {c1: asyncio.Queue(), c2: asyncio.Queue()}
            for c in (c1, c2):
                c.add_event_handler("message", got[c].put_nowait)
            await two_stage(a, live.domain, "announce",
                            {"subject": "Maintenance",
                             "body": ["Line one", "Line two"]})
            for c in (c1, c2):
                while True:
                    m = await asyncio.wait_for(got[c].get(), 15)
                    if m["type"] == "headline":
                        break
                assert m["from"].bare == live.domain
                assert m["subject"] == "Maintenance"
                assert m["body"] == "Line one\nLine two"
            await c1.stop()
            await c2.stop()
        finally:
            await a.stop()

    run(go(), timeout=60)


def test_adhoc_bad_requests_XEP_0050(live, make_user):
    boss = admin_user(make_user)

    async def go():
        a = await login(live, boss, PW, node="c2s-a")
        try:
            D = live.domain
            # an unknown session id
            cond, app, _ = await command_error(
                a, D, "delete-user", action="complete", sid="nope",
                fields={"accountjids": ["x@" + D]})
            assert (cond, app) == ("bad-request", "bad-sessionid")
            # a JID of another server, and no JID at all
            cond, app, text = await command_error(
                a, D, "delete-user", fields={"accountjids": ["x@elsewhere"]})
            assert (cond, app) == ("bad-request", "bad-payload")
            assert "x@elsewhere" in text
            cond, app, _ = await command_error(
                a, D, "add-user", fields={"accountjid": "y@" + D,
                                          "password": "aa-Bb-1",
                                          "password-verify": "other"})
            assert (cond, app) == ("bad-request", "bad-payload")
            cond, _, _ = await command_error(
                a, D, "change-user-password",
                fields={"accountjid": "nobody%s@%s" % (uuid.uuid4().hex[:6], D),
                        "password": "aa-Bb-1"})
            assert cond == "item-not-found"
            # an unknown command, an unknown action
            cond, _, _ = await command_error(a, D, "shutdown")
            assert cond == "item-not-found"
            cond, app, _ = await command_error(a, D, "announce",
                                               action="prev")
            assert (cond, app) == ("bad-request", "bad-action")
            # cancel: the session ends, its id is gone
            first = await command(a, D, "announce")
            sid = first.get("sessionid")
            r = await command(a, D, "announce", action="cancel", sid=sid)
            assert r.get("status") == "canceled"
            cond, app, _ = await command_error(
                a, D, "announce", action="complete", sid=sid,
                fields={"body": "late"})
            assert (cond, app) == ("bad-request", "bad-sessionid")
            # after all that the admin's session works
            r = await iq(a, "get", D, "<query xmlns='%s'/>" % NS_INFO)
            assert r["type"] == "result"
        finally:
            await a.stop()

    run(go())
