"""Record what the integration tests' clients send, for fuzz seeds.

Imported by tests/integration/conftest.py when KILN_FUZZ_CAPTURE names a
directory (tests/fuzz/make_seeds.py sets it). It records, on the client
side and therefore in plain text even inside TLS, every byte each client
connection writes:

- slixmpp clients: XMLStream.send_raw, one capture per connection (the
  STARTTLS upgrade, which calls connection_made again, continues it);
- byte-level clients (the Raw helper of test_01_stream.py and the like):
  socket.sendall and ssl.SSLSocket.sendall, one capture per connect().

At exit each capture that looks like an XMPP client stream (its first
write starts with '<') is written to KILN_FUZZ_CAPTURE as
cap-<pid>-<n>-<tls|plain>.bin: the writes in order, separated by one 0xFF
byte (never valid UTF-8; the c2s_stream fuzzer's read separator).
"direct" means the connection was encrypted before its first write
(direct TLS, XEP-0368). Nothing is recorded without the variable.
"""

import atexit
import os
import socket
import ssl

DIR = os.environ.get("KILN_FUZZ_CAPTURE")
MAX_CAPTURES = 2000
MAX_BYTES = 64 * 1024  # per capture; longer ones are cut

_captures = []  # [tls: bool | None, [chunks]]
_by_fd = {}
_by_stream = {}


def _new():
    cap = [None, []]
    if len(_captures) < MAX_CAPTURES:
        _captures.append(cap)
    return cap


def _add(cap, data, tls):
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if not data:
        return
    if cap[0] is None:
        cap[0] = tls
    if sum(len(c) for c in cap[1]) < MAX_BYTES:
        cap[1].append(data)


def _flush():
    os.makedirs(DIR, exist_ok=True)
    n = 0
    for tls, chunks in _captures:
        if not chunks or not chunks[0].lstrip().startswith(b"<"):
            continue
        name = "cap-%d-%d-%s.bin" % (os.getpid(), n,
                                      "tls" if tls else "plain")
        with open(os.path.join(DIR, name), "wb") as f:
            f.write(b"\xff".join(chunks))
        n += 1


def _install():
    orig_connect = socket.socket.connect
    orig_sendall = socket.socket.sendall
    orig_ssl_sendall = ssl.SSLSocket.sendall

    def connect(self, *a, **kw):
        r = orig_connect(self, *a, **kw)
        try:
            _by_fd[self.fileno()] = _new()
        except OSError:
            pass
        return r

    def sendall(self, data, *a, **kw):
        cap = _by_fd.get(self.fileno())
        if cap is not None:
            _add(cap, data, False)
        return orig_sendall(self, data, *a, **kw)

    def ssl_sendall(self, data, *a, **kw):
        cap = _by_fd.get(self.fileno())
        if cap is not None:
            _add(cap, data, True)
        return orig_ssl_sendall(self, data, *a, **kw)

    socket.socket.connect = connect
    socket.socket.sendall = sendall
    ssl.SSLSocket.sendall = ssl_sendall

    try:
        from slixmpp.xmlstream import XMLStream
    except ImportError:
        return
    orig_made = XMLStream.connection_made
    orig_send_raw = XMLStream.send_raw

    def connection_made(self, transport):
        cap = _by_stream.get(id(self))
        upgraded = cap is not None and cap[1] and b"<starttls" in cap[1][-1]
        if not upgraded:
            cap = _new()
            cap[0] = transport.get_extra_info("ssl_object") is not None
            _by_stream[id(self)] = cap
        return orig_made(self, transport)

    def send_raw(self, data):
        cap = _by_stream.get(id(self))
        if cap is not None:
            _add(cap, data, cap[0])
        return orig_send_raw(self, data)

    XMLStream.connection_made = connection_made
    XMLStream.send_raw = send_raw


if DIR:
    _install()
    atexit.register(_flush)
