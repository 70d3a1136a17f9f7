"""25 upload: XEP-0363 HTTP file upload (issue 12, "XEP-0363 HTTP file
upload"; no requirement ID yet). The service upload.localhost is answered
by the client's own c2s node; PUT and GET go to the c2s HTTP(S) ports and
the files live in one directory every node shares (c2s.upload_dir), so a
file uploaded through node A downloads through node B.

Slots are asked for with raw IQs (Debian's slixmpp xep_0363 plugin needs
aiohttp, which is not installed); the HTTP side is curl, over HTTPS with
the stack's certificate and over plain HTTP.
"""

import hashlib
import hmac
import itertools
import os
import re
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET

from test_01_stream import login

PW = "upload-secret"
NS = "urn:xmpp:http:upload:0"
SVC = "upload.localhost"
MAX = 1048576  # deploy/dev/kiln.conf.in: upload_max_bytes
QUOTA = 3145728  # upload_quota_bytes
_ids = itertools.count(1)


def conf_value(live, key):
    with open(live.conf) as f:
        m = re.search(r'^\s*%s\s*=\s*"([^"]*)"' % key, f.read(), re.M)
    assert m, key
    return m.group(1)


def iq(r, payload, to=SVC, typ="get"):
    i = "up%d" % next(_ids)
    r.send("<iq type='%s' to='%s' id='%s'>%s</iq>" % (typ, to, i, payload))
    while True:
        out = r.expect("</iq>")
        if "id='%s'" % i in out:
            return ET.fromstring(out[out.rindex("<iq "):])


def request(r, name, size, ctype):
    return iq(r, "<request xmlns='%s' filename='%s' size='%d' "
                 "content-type='%s'/>" % (NS, name, size, ctype))


def slot(r, name, size, ctype):
    res = request(r, name, size, ctype)
    assert res.get("type") == "result", ET.tostring(res)
    s = res.find("{%s}slot" % NS)
    return s.find("{%s}put" % NS).get("url"), s.find("{%s}get" % NS).get("url")


def on_node(live, url, node, scheme="https"):
    """The same URL through another node's port (the path and signature
    do not depend on the node)."""
    u = urllib.parse.urlsplit(url)
    port = live.ports[node][scheme]
    return urllib.parse.urlunsplit((scheme, "localhost:%d" % port, u.path,
                                    u.query, ""))


def curl(live, *args, data=None):
    """Run curl; return (status, headers dict, body bytes)."""
    cmd = ["curl", "-sS", "--cacert", live.cert, "-D", "-", "-o", "-",
           "--max-time", "20"] + list(args)
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    raw = p.stdout
    # skip "100 Continue" heads
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw[raw.index(b"\r\n\r\n") + 4:]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def put(live, url, data, ctype, *extra):
    return curl(live, "-X", "PUT", "-H", "Content-Type: " + ctype,
                "--data-binary", "@-", *extra, url, data=data)


def test_upload_service_disco(live, make_user):
    make_user("up25d", PW)
    r = login(live, "c2s-a", "up25d", PW)
    items = iq(r, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
               to="localhost")
    jids = [i.get("jid") for i in items.iter(
        "{http://jabber.org/protocol/disco#items}item")]
    assert SVC in jids
    info = iq(r, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    assert info.get("type") == "result"
    q = info.find("{http://jabber.org/protocol/disco#info}query")
    feats = [f.get("var") for f in q.findall(
        "{http://jabber.org/protocol/disco#info}feature")]
    assert NS in feats
    ident = q.find("{http://jabber.org/protocol/disco#info}identity")
    assert ident.get("category") == "store" and ident.get("type") == "file"
    vals = {f.get("var"): f.findtext("{jabber:x:data}value")
            for f in q.iter("{jabber:x:data}field")}
    assert vals["FORM_TYPE"] == NS and vals["max-file-size"] == str(MAX)


def test_upload_a_download_b_range(live, make_user):
    make_user("up25a", PW)
    r = login(live, "c2s-a", "up25a", PW)
    data = os.urandom(300000)
    put_url, get_url = slot(r, "holiday photo.png", len(data), "image/png")
    # node A's upload_url (its HTTPS port, the certificate's name)
    assert put_url.startswith("https://localhost:%d/upload/"
                              % live.ports["c2s-a"]["https"])
    # A web page on another origin (node B's /chat/, say) may PUT: the
    # CORS preflight and the PUT answer any origin (the signed URL is the
    # capability); the browser test does it from Converse.js.
    page = "http://localhost:%d" % live.ports["c2s-b"]["http"]
    st, h, _ = curl(live, "-X", "OPTIONS", "-H", "Origin: " + page,
                    "-H", "Access-Control-Request-Method: PUT",
                    "-H", "Access-Control-Request-Headers: content-type",
                    put_url)
    assert st == 204 and h["access-control-allow-origin"] == "*"
    assert "PUT" in h["access-control-allow-methods"]
    assert "content-type" in h["access-control-allow-headers"].lower()
    st, h, _ = put(live, put_url, data, "image/png", "-H", "Origin: " + page)
    assert st == 201 and h["access-control-allow-origin"] == "*"
    # the slot is used: a second PUT is refused
    st, _, _ = put(live, put_url, data, "image/png")
    assert st == 409
    # download through node B, HTTPS and plain HTTP: byte-identical
    for scheme in ("https", "http"):
        st, h, body = curl(live, on_node(live, get_url, "c2s-b", scheme))
        assert st == 200
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert h["content-type"] == "image/png"
        assert h["content-length"] == str(len(data))
        assert h["content-disposition"] == \
            'inline; filename="holiday_photo.png"'
    # Range through node B
    st, h, body = curl(live, "-H", "Range: bytes=1000-1999",
                       on_node(live, get_url, "c2s-b"))
    assert st == 206 and body == data[1000:2000]
    assert h["content-range"] == "bytes 1000-1999/%d" % len(data)
    assert h["content-length"] == "1000"
    st, h, body = curl(live, "-H", "Range: bytes=-10",
                       on_node(live, get_url, "c2s-b"))
    assert st == 206 and body == data[-10:]
    st, h, _ = curl(live, "-H", "Range: bytes=%d-" % len(data),
                    on_node(live, get_url, "c2s-b"))
    assert st == 416 and h["content-range"] == "bytes */%d" % len(data)
    # HEAD: the head only
    st, h, body = curl(live, "-I", on_node(live, get_url, "c2s-b"))
    assert st == 200 and h["content-length"] == str(len(data))
    # keep-alive: two GETs on one connection, the second after a body
    u = on_node(live, get_url, "c2s-a", "http")
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{http_code} %{num_connects}\n", u, u],
                       capture_output=True, timeout=30, text=True)
    assert p.stdout.split("\n")[:2] == ["200 1", "200 0"], p.stdout


def test_upload_refusals(live, make_user):
    make_user("up25r", PW)
    r = login(live, "c2s-a", "up25r", PW)
    # over the limit: not-acceptable with <file-too-large/> and the maximum
    res = request(r, "big.bin", MAX + 1, "application/octet-stream")
    assert res.get("type") == "error"
    err = res.find("error")
    assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") \
        is not None
    assert err.findtext("{%s}file-too-large/{%s}max-file-size" % (NS, NS)) \
        == str(MAX)
    # a type the config does not allow
    res = request(r, "x.exe", 10, "application/x-msdownload")
    assert res.get("type") == "error"
    assert res.find("error").find(
        "{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
    # wrong signature: 403 on PUT and GET
    data = b"hello upload\n"
    put_url, get_url = slot(r, "note.txt", len(data), "text/plain")
    bad = put_url[:-1] + ("0" if put_url[-1] != "0" else "1")
    st, _, _ = put(live, bad, data, "text/plain")
    assert st == 403
    # wrong length, wrong type: 400; nothing stored
    st, _, _ = put(live, put_url, data + b"x", "text/plain")
    assert st == 400
    st, _, _ = put(live, put_url, data, "text/html")
    assert st == 400
    st, _, _ = curl(live, get_url)
    assert st == 404
    st, _, _ = put(live, put_url, data, "text/plain")
    assert st == 201
    st, h, body = curl(live, get_url)
    assert st == 200 and body == data
    assert h["content-type"] == "text/plain"
    bad = get_url[:-1] + ("0" if get_url[-1] != "0" else "1")
    st, _, _ = curl(live, bad)
    assert st == 403
    # another name under the same token: the signature is of the path
    st, _, _ = curl(live, get_url.replace("note.txt", "other.txt"))
    assert st == 403


def test_upload_expired_slot(live, make_user):
    """A PUT URL signed with the node's secret but past its expiry: 403.
    The test signs it itself with the secret from the config."""
    make_user("up25e", PW)
    r = login(live, "c2s-a", "up25e", PW)
    data = b"late\n"
    put_url, _ = slot(r, "late.txt", len(data), "text/plain")
    u = urllib.parse.urlsplit(put_url)
    q = dict(urllib.parse.parse_qsl(u.query))
    exp = int(time.time()) - 1
    path = u.path[len("/upload/"):]
    msg = "PUT\n%s\n%d\n%s\n%d" % (path, len(data), q["t"], exp)
    secret = conf_value(live, "upload_secret").encode()
    sig = hmac.new(secret, msg.encode(), hashlib.sha256).hexdigest()
    # the same slot with the original expiry and this signature would be
    # a bad signature; with the past expiry it is well signed but expired
    url = "%s://%s%s?e=%d&n=%d&t=%s&s=%s" % (
        u.scheme, u.netloc, u.path, exp, len(data),
        urllib.parse.quote(q["t"], safe=""), sig)
    st, _, body = put(live, url, data, "text/plain")
    assert st == 403 and b"expired" in body
    # and the server's own URL, still valid, works
    st, _, _ = put(live, put_url, data, "text/plain")
    assert st == 201


def test_upload_quota(live, make_user):
    make_user("up25q", PW)
    r = login(live, "c2s-b", "up25q", PW)
    chunk = os.urandom(MAX)
    for i in range(QUOTA // MAX):
        put_url, _ = slot(r, "part%d.bin" % i, len(chunk),
                          "application/octet-stream")
        st, _, _ = put(live, on_node(live, put_url, "c2s-a", "http"), chunk,
                       "application/octet-stream")
        assert st == 201
    res = request(r, "one-more.bin", 1, "application/octet-stream")
    assert res.get("type") == "error"
    assert res.find("error").find(
        "{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint") \
        is not None
    # another account is not affected
    make_user("up25q2", PW)
    r2 = login(live, "c2s-b", "up25q2", PW)
    slot(r2, "fine.bin", 1, "application/octet-stream")
