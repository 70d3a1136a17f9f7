#!/usr/bin/python3
"""Memory per idle authenticated TLS session of a running kiln-c2s.

    c2s/mem_per_session.py PID PORT USER PASSWORD CAFILE [N [SETTLE]]

Opens N direct-TLS connections to PORT (the node's tls_port), logs each
in with PLAIN as USER (resources m0..mN-1), binds and sends available
presence, waits, then reports (VmRSS after - VmRSS before) / N of PID.
One warm-up batch first, so allocator arenas and the database pool are
already grown. Both readings are taken SETTLE seconds (default 12) after
the last login, so the node's idle sweep (every 5 s) has parked the
sessions' XML parsers, as it does for any idle session.
"""
import base64
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def expect(s, needle):
    buf = b""
    while needle not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed: %r" % buf)
        buf += chunk
    return buf


HDR = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
       b"version='1.0'>")


def session(port, ctx, user, pw, res):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                        server_hostname="localhost")
    s.sendall(HDR)
    expect(s, b"</stream:features>")
    auth = base64.b64encode(("\0%s\0%s" % (user, pw)).encode())
    s.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
              b"mechanism='PLAIN'>" + auth + b"</auth>")
    expect(s, b"<success")
    s.sendall(HDR)
    expect(s, b"</stream:features>")
    s.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
              b"xmpp-bind'><resource>" + res.encode() +
              b"</resource></bind></iq>")
    expect(s, b"</iq>")
    s.sendall(b"<presence/>")
    return s


def main():
    pid, port, user, pw, ca = (int(sys.argv[1]), int(sys.argv[2]),
                               sys.argv[3], sys.argv[4], sys.argv[5])
    n = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    settle = float(sys.argv[7]) if len(sys.argv) > 7 else 12.0
    ctx = ssl.create_default_context(cafile=ca)
    warm = [session(port, ctx, user, pw, "w%d" % i) for i in range(50)]
    time.sleep(settle)
    before = rss_kib(pid)
    socks = [session(port, ctx, user, pw, "m%d" % i) for i in range(n)]
    time.sleep(settle)
    after = rss_kib(pid)
    print("sessions=%d rss_before_kib=%d rss_after_kib=%d "
          "per_session_bytes=%d" % (n, before, after,
                                    (after - before) * 1024 // n))
    for s in socks + warm:
        s.close()


if __name__ == "__main__":
    main()
