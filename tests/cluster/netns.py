"""tests/cluster/netns.py - hosts as Linux network namespaces on a bridge.

Each host is a namespace `<prefix>-<name>` with a veth `eth0` holding its
address in a private /24; the other ends of the veths hang on a bridge
`br0` that lives in a namespace of its own (`<prefix>-sw`), so nothing
is added to the machine's own network namespace and two harnesses with
different prefixes never see each other. Root only.
"""

import subprocess


def sh(*argv, check=True, capture=False):
    r = subprocess.run(argv, check=False, text=True,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout if capture else r.returncode


class Net:
    def __init__(self, prefix, subnet="10.77.0"):
        self.prefix = prefix
        self.subnet = subnet
        self.hosts = {}  # name -> address
        self.sw = prefix + "-sw"

    def ns(self, name):
        return "%s-%s" % (self.prefix, name)

    def existing(self):
        out = sh("ip", "netns", "list", capture=True)
        mine = []
        for line in out.splitlines():
            n = line.split()[0] if line.split() else ""
            if n.startswith(self.prefix + "-"):
                mine.append(n)
        return mine

    def up(self):
        self.down()  # leftovers of an interrupted run
        sh("ip", "netns", "add", self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")
        sh("ip", "-n", self.sw, "link", "set", "lo", "up")

    def add_host(self, name, last_octet):
        ns = self.ns(name)
        addr = "%s.%d" % (self.subnet, last_octet)
        sh("ip", "netns", "add", ns)
        port = "v-" + name
        sh("ip", "-n", self.sw, "link", "add", port, "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.sw, "link", "set", port, "master", "br0")
        sh("ip", "-n", self.sw, "link", "set", port, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = addr
        return addr

    def argv(self, host, argv):
        """argv run inside host's namespace."""
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    def partition(self, host):
        """Cut host off: its port on the bridge goes down (a pulled cable:
        the host keeps its address and sockets, every packet is lost; this
        kernel has no netem/prio qdisc and the machine no nftables)."""
        sh("ip", "-n", self.sw, "link", "set", "v-" + host, "down")

    def heal(self, host):
        sh("ip", "-n", self.sw, "link", "set", "v-" + host, "up")

    def pids(self, nsname):
        out = sh("ip", "netns", "pids", nsname, capture=True)
        return [int(p) for p in out.split()]

    def down(self):
        """Delete every namespace of this prefix (after their processes)."""
        import os
        import signal
        import time
        names = self.existing()
        for n in names:
            for p in self.pids(n):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for n in names:
            while self.pids(n) and time.monotonic() < deadline:
                time.sleep(0.05)
            sh("ip", "netns", "del", n, check=False)
