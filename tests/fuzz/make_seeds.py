#!/usr/bin/python3
"""Seed corpora for the fuzzers from real client traffic.

    tests/fuzz/make_seeds.py capture BUILD [pytest args...]
        run the integration tests (tests/run-all.sh BUILD, with your
        KILN_PG_PORT / KILN_PORT_OFFSET) with KILN_FUZZ_CAPTURE set, so
        tests/fuzz/capture.py records what every client sent, into
        build/fuzz/capture/
    tests/fuzz/make_seeds.py convert
        turn the captures into inputs for each target (below), then let
        libFuzzer's -merge=1 keep only those that add coverage to the
        committed seeds in tests/fuzz/corpus/<target>/ (build the fuzzers
        first: make fuzz-bin)

What each target gets from one captured client stream:
  c2s_stream  setting byte (direct TLS or STARTTLS) + the writes split by
              0xFF; the SASL exchange is rewritten to PLAIN for
              alice/"secret", the password the fuzzer's fake owner knows,
              so the seed gets past authentication into binding and
              routing (a captured SCRAM exchange could not be replayed:
              the server nonce is random)
  xml         two split bytes + the stream as one byte string
  stanza      each top-level element, one file each
  jid         every to/from/jid attribute value and <jid/> text
  sasl        the decoded <auth/> and <response/> payloads

    tests/fuzz/make_seeds.py component
        write the seeds of fuzz_component (XEP-0114) into
        tests/fuzz/corpus/component: no capture, since the stream id is
        random on a real server and fixed (FZ_SID) in the fuzzer; each
        seed's <handshake/> is SHA-1(FZ_SID + secret) for the fuzzer's
        configured components, so it gets past the handshake
"""

import base64
import hashlib
import os
import re
import subprocess
import sys
import xml.parsers.expat

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CAPDIR = os.path.join(TOP, "build", "fuzz", "capture")
CANDIR = os.path.join(TOP, "build", "fuzz", "candidates")
PLAIN = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
         + base64.b64encode(b"\0alice\0secret") + b"</auth>")
MAX_SEED = 8192  # bytes; larger captures are left out


def capture(build, args):
    env = dict(os.environ, KILN_FUZZ_CAPTURE=CAPDIR)
    if args:
        env["KILN_PYTEST_ARGS"] = " ".join(args)
    os.makedirs(CAPDIR, exist_ok=True)
    return subprocess.call([os.path.join(TOP, "tests", "run-all.sh"), build],
                           env=env)


def is_header(chunk):
    s = chunk.lstrip()
    return s.startswith(b"<?xml") or s.startswith(b"<stream:stream")


def rewrite_sasl(chunks):
    """Replace everything from the first <auth .../> up to the next
    stream header with a PLAIN <auth/> for alice/secret."""
    for i, c in enumerate(chunks):
        if b"<auth " in c:
            j = i + 1
            while j < len(chunks) and not is_header(chunks[j]):
                j += 1
            head = c[:c.index(b"<auth ")]
            return chunks[:i] + ([head] if head.strip() else []) + \
                [PLAIN] + chunks[j:]
    return chunks


def top_level(stream):
    """Byte strings of the top-level elements (depth 1 under the stream
    element) of every stream in stream (restarts included)."""
    out = []
    for seg in re.split(rb"(?=<\?xml|<stream:stream)", stream):
        if b"<stream:stream" not in seg:
            continue
        p = xml.parsers.expat.ParserCreate()
        depth = [0]
        start = [None]

        def s(name, attrs):
            depth[0] += 1
            if depth[0] == 2:
                start[0] = p.CurrentByteIndex

        def e(name):
            if depth[0] == 2 and start[0] is not None:
                end = seg.find(b">", p.CurrentByteIndex) + 1
                # a self-closed element reports its end at its start tag
                out.append(seg[start[0]:max(end, start[0])])
            depth[0] -= 1

        p.StartElementHandler = s
        p.EndElementHandler = e
        try:
            p.Parse(seg, False)
        except xml.parsers.expat.ExpatError:
            pass
    return [x for x in out if x]


def jids(stanzas):
    out = set()
    for st in stanzas:
        for m in re.finditer(rb"""\b(?:to|from|jid)=(['"])(.*?)\1""", st):
            out.add(m.group(2))
        for m in re.finditer(rb"<jid>(.*?)</jid>", st):
            out.add(m.group(1))
    return out


SASL_EL = re.compile(rb"<(auth|response)\b([^>]*)>([^<]*)</(?:auth|response)>")
MECH = re.compile(rb"""mechanism=['"]([^'"]*)['"]""")


def sasl_seeds(raw):
    """Each captured SASL exchange: its first message alone for the
    honest-client check (direct kn_scram path) and first + second as
    sent, through c2s (PLAIN or SCRAM)."""
    first, mode = None, 0
    for m in SASL_EL.finditer(raw):
        try:
            msg = base64.b64decode(m.group(3), validate=True)
        except ValueError:
            continue
        if m.group(1) == b"auth":
            mm = MECH.search(m.group(2))
            mech = mm.group(1) if mm else b""
            mode = (0x01 if b"256" in mech else 0) | \
                (0x02 if mech.endswith(b"-PLUS") else 0)
            first = msg
            if mech == b"PLAIN":
                write("sasl", bytes([0x20]) + msg)
                first = None
            elif msg:
                write("sasl", bytes([0x10 | mode]) + msg)
        elif first is not None:
            write("sasl", bytes([0x40 | mode]) + first + b"\xff" + msg)
            first = None


def write(target, data):
    d = os.path.join(CANDIR, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def convert():
    n = 0
    for fn in sorted(os.listdir(CAPDIR)):
        with open(os.path.join(CAPDIR, fn), "rb") as f:
            raw = f.read()
        n += 1
        sasl_seeds(raw)
        chunks, size = [], 0
        for c in rewrite_sasl(raw.split(b"\xff")):
            if size + len(c) > MAX_SEED - 64:
                break  # long sessions: their start is what is new
            chunks.append(c)
            size += len(c) + 1
        mode = 0x01 if fn.endswith("-tls.bin") else 0x00
        write("c2s_stream", bytes([mode]) + b"\xff".join(chunks))
        stream = b"".join(chunks)
        write("xml", bytes([0x00, len(stream) // 2 & 0xff]) + stream)
        stanzas = top_level(stream)
        for st in stanzas:
            write("stanza", b"\x00" + st)
        for j in jids(stanzas):
            write("jid", j)
    print("make_seeds: %d captures converted into %s" % (n, CANDIR))
    for target in sorted(os.listdir(CANDIR)):
        fuzzer = os.path.join(TOP, "build", "fuzz", "bin", "fuzz_" + target)
        corpus = os.path.join(TOP, "tests", "fuzz", "corpus", target)
        os.makedirs(corpus, exist_ok=True)
        before = len(os.listdir(corpus))
        subprocess.run([fuzzer, "-merge=1", "-max_len=%d" % MAX_SEED, corpus,
                        os.path.join(CANDIR, target)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        print("make_seeds: %s: %d candidates, corpus %d -> %d files"
              % (target, len(os.listdir(os.path.join(CANDIR, target))),
                 before, len(os.listdir(corpus))))


# tests/fuzz/fuzz_component.c: its fixed stream id, its components
FZ_SID = b"00112233445566778899aabbccddeeff"
COMPONENTS = {b"gw.localhost": b"s3cret", b"irc.localhost": b"pw"}
NS_COMP = b"jabber:component:accept"


def comp_header(to):
    return (b"<?xml version='1.0'?><stream:stream xmlns='" + NS_COMP +
            b"' xmlns:stream='http://etherx.jabber.org/streams' to='" + to +
            b"'>")


def comp_handshake(domain, upper=False):
    h = hashlib.sha1(FZ_SID + COMPONENTS[domain]).hexdigest().encode()
    return b"<handshake>" + (h.upper() if upper else h) + b"</handshake>"


def component():
    """The seeds of fuzz_component: mode byte + the component's writes
    split by 0xFF (mode bits in fuzz_component.c)."""
    gw, irc = b"gw.localhost", b"irc.localhost"
    ok = [comp_header(gw), comp_handshake(gw)]
    stanzas = [
        b"<message from='bob@gw.localhost/x' to='alice@localhost' "
        b"type='chat' id='c1'><body>hello</body></message>",
        b"<presence from='bob@gw.localhost' to='alice@localhost' "
        b"type='subscribe'/>",
        b"<iq from='gw.localhost' to='localhost' type='get' id='c2'>"
        b"<query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        b"<iq from='gw.localhost' to='alice@localhost/r' type='result' "
        b"id='c3'/>",
        b"<message from='#room%irc.example@irc.localhost/nick' "
        b"to='alice@localhost' type='groupchat'><body>x</body></message>",
        b"<message from='evil@localhost' to='alice@localhost'><body>x"
        b"</body></message>",                          # invalid-from
        b"<message from='bob@gw.localhost'><body>x</body></message>",
        b"<message from='bob@gw.localhost' to='a@@b'/>",  # jid-malformed
        b"<message from='bob@gw.localhost' to='alice@localhost' "
        b"type='bogus'/>",                             # bad-request
        b"<foo xmlns='urn:x'/>",                       # unsupported
        b"<message xmlns='jabber:client' from='bob@gw.localhost' "
        b"to='alice@localhost'/>",                     # wrong namespace
    ]
    seeds = [
        (0x00, ok + stanzas[:5] + [b"</stream:stream>"]),
        (0x40, ok + stanzas[:2]),                      # router deliveries
        (0x80, ok + [stanzas[0]]),                     # 7-byte reads
        (0x00, [comp_header(irc), comp_handshake(irc, upper=True),
                stanzas[4]]),
        (0x0c, ok + stanzas[:4] * 3),                  # over its rates
        (0x60, ok + [stanzas[2]]),                     # small output
        (0x01, ok + [stanzas[0]]),                     # link not ready
        (0x02, ok + stanzas[:3]),                      # sends fail
        (0x10, ok + [stanzas[0]]),                     # small limits
        (0x00, [comp_header(gw), b"<handshake>0000</handshake>"]),
        (0x00, [comp_header(b"nope.localhost")]),
        (0x00, [comp_header(gw), b"<message/>"]),
        (0x00, [comp_header(gw) + comp_handshake(gw) + stanzas[0]]),
        (0x00, [comp_header(gw), comp_header(gw)]),
    ]
    seeds += [(0x00, ok + [st]) for st in stanzas[5:]]
    corpus = os.path.join(TOP, "tests", "fuzz", "corpus", "component")
    os.makedirs(corpus, exist_ok=True)
    for mode, chunks in seeds:
        data = bytes([mode]) + b"\xff".join(chunks)
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    print("make_seeds: %d component seeds in %s" % (len(seeds), corpus))


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "component":
        component()
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "capture":
        sys.exit(capture(sys.argv[2], sys.argv[3:]))
    if len(sys.argv) == 2 and sys.argv[1] == "convert":
        convert()
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
