"""Network namespaces, partitions and a slow disk for tools/chaos.

Each node of a chaos cluster runs in its own network namespace with one
address, 10.77.X.K/24 for node K, on a veth pair plugged into a bridge in
the initial namespace, which holds 10.77.X.254 (X is a /24 no route or
address of this machine uses). The chaos tool and its clients run in the
initial namespace and reach every node through the bridge, even while the
nodes are partitioned from each other (as in Jepsen: the network between
servers fails, clients still reach each side).

A cut link between nodes A and B is a pair of blackhole routes, one in A's
namespace for B's address and one in B's for A's: every packet between them
is dropped in both directions (raft's TCP, inter-node RPC, anything), an
established connection stalls silently and a new connect() fails at once
(EINVAL). Healing deletes the routes; stalled connections resume. Isolating
a node cuts its links to every other node; a split cuts every link between
two groups.

The nodes are started by tools/localcluster itself (up, start, kill, pause,
...) with two hooks on a private copy of that module: node addresses are
made in the namespaces instead of on 127.0.0.1, and cairnd is started as
`ip netns exec NS cairnd -c CONF` (same pid: ip execs it). localcluster's
default behaviour is untouched.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; available()
says why not otherwise, and tools/chaos then runs on loopback without
partitions.

The slow disk is tests/chaos/slowdisk.c, an LD_PRELOAD shim (built as
libcairn_chaos_slowdisk.so next to cairnd): when a node's control file
holds a delay, fsync/fdatasync of files under its data directory and its
raft log writes (KAIO io_submit) take that much longer, in the threadpool
(see the shim). Standard library only.
"""

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time

SUBNET_BASE = "10.77"
NAME_PREFIX = "cch"          # bridge cch<tag>, veths cch<tag>v<K>, netns cch<tag>n<K>
IP_TIMEOUT = 10.0
SLOWDISK_LIB = "libcairn_chaos_slowdisk.so"


class NetError(Exception):
    pass


def _ip(*args, check=True):
    """Runs `ip ARGS`; returns its stdout. Raises NetError on failure when
    check."""
    try:
        p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=IP_TIMEOUT, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetError("ip %s: %s" % (" ".join(args), e)) from None
    if check and p.returncode != 0:
        raise NetError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout


def available():
    """(True, "") if per-node namespaces can be made here, else (False,
    why)."""
    if os.geteuid() != 0:
        return False, "not root (network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return False, "no `ip` command (iproute2)"
    name = "%s%dprobe" % (NAME_PREFIX, os.getpid())
    try:
        _ip("netns", "add", name)
    except NetError as e:
        return False, "cannot create a network namespace: %s" % e
    try:
        _ip("-n", name, "link", "set", "lo", "up")
    except NetError as e:
        return False, "cannot configure a network namespace: %s" % e
    finally:
        _ip("netns", "del", name, check=False)
    return True, ""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup_stale():
    """Removes namespaces, bridges and veths left by chaos runs whose
    process is gone (their names carry its pid). Returns what it removed."""
    removed = []
    pat = re.compile(r"^%s(\d+)(?:n\d+|probe)?$" % NAME_PREFIX)
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            for pid in _ip("netns", "pids", name, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)  # a cairnd of that dead run
                except (ValueError, OSError):
                    pass
            _ip("netns", "del", name, check=False)
            removed.append(name)
    link_pat = re.compile(r"^\d+: (%s(\d+)(?:v\d+)?)[@:]" % NAME_PREFIX)
    for line in _ip("-o", "link", "show", check=False).splitlines():
        m = link_pat.match(line)
        if m and not _pid_alive(int(m.group(2))):
            _ip("link", "del", m.group(1), check=False)
            removed.append(m.group(1))
    return removed


class Netns:
    """The namespaces of one chaos run, nodes 1..n."""

    def __init__(self, n):
        self.n = n
        self.tag = str(os.getpid())
        self.bridge = NAME_PREFIX + self.tag
        self.subnet = None
        self.blocked = set()   # frozenset({a, b}) of cut links
        self.made = False

    def ns(self, k):
        return "%s%sn%d" % (NAME_PREFIX, self.tag, k)

    def veth(self, k):
        return "%s%sv%d" % (NAME_PREFIX, self.tag, k)

    def ip_of(self, k):
        return "%s.%d" % (self.subnet, k)

    def node_of(self, ip):
        """The node whose address ip is, or None."""
        prefix = "%s." % self.subnet
        if self.subnet is None or not ip.startswith(prefix):
            return None
        try:
            k = int(ip[len(prefix):])
        except ValueError:
            return None
        return k if 1 <= k <= self.n else None

    def port_free(self, k, port):
        """True if a TCP socket can bind node k's address and port now, in
        its namespace (with SO_REUSEADDR, as cairnd binds)."""
        code = ("import socket, sys\n"
                "s = socket.socket()\n"
                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind((sys.argv[1], int(sys.argv[2])))\n")
        try:
            p = subprocess.run(["ip", "netns", "exec", self.ns(k), sys.executable, "-c", code,
                                self.ip_of(k), str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=IP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return p.returncode == 0

    def _pick_subnet(self):
        used = _ip("-4", "-o", "addr", "show", check=False) + _ip("-4", "route", "show",
                                                                  "table", "all", check=False)
        nets = []
        for word in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", used):
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
        start = os.getpid() % 200
        for i in range(250):
            x = (start + i) % 250 + 1
            cand = ipaddress.ip_network("%s.%d.0/24" % (SUBNET_BASE, x))
            if not any(cand.overlaps(net) for net in nets if net.prefixlen > 0):
                return "%s.%d" % (SUBNET_BASE, x)
        raise NetError("no free /24 in %s.0.0/16" % SUBNET_BASE)

    def setup(self):
        if self.n > 250:
            raise NetError("at most 250 nodes")
        self.subnet = self._pick_subnet()
        self.made = True
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", "%s.254/24" % self.subnet, "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for k in range(1, self.n + 1):
                ns = self.ns(k)
                _ip("netns", "add", ns)
                _ip("link", "add", self.veth(k), "type", "veth", "peer", "name", "eth0",
                    "netns", ns)
                _ip("link", "set", self.veth(k), "master", self.bridge, "up")
                _ip("-n", ns, "addr", "add", "%s/24" % self.ip_of(k), "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except NetError:
            self.teardown()
            raise
        return self

    def wait_reachable(self, timeout=10.0):
        """Waits until the bridge forwards (it may take a moment after the
        links come up): a connect to each node's address must not time
        out (refused is fine: nothing listens yet)."""
        import socket
        deadline = time.monotonic() + timeout
        for k in range(1, self.n + 1):
            while True:
                s = socket.socket()
                s.settimeout(0.5)
                try:
                    s.connect((self.ip_of(k), 9))
                    break
                except ConnectionRefusedError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        raise NetError("node %d's namespace (%s) unreachable after %.0f s"
                                       % (k, self.ip_of(k), timeout)) from None
                    time.sleep(0.1)
                finally:
                    s.close()

    # Partitions

    def set_blocked(self, pairs):
        """Makes exactly the links in pairs (iterable of (a, b)) cut."""
        want = {frozenset(p) for p in pairs}
        for link in sorted(self.blocked - want, key=sorted):
            a, b = sorted(link)
            _ip("-n", self.ns(a), "route", "del", "blackhole", self.ip_of(b) + "/32",
                check=False)
            _ip("-n", self.ns(b), "route", "del", "blackhole", self.ip_of(a) + "/32",
                check=False)
        self.blocked &= want
        for link in sorted(want - self.blocked, key=sorted):
            a, b = sorted(link)
            _ip("-n", self.ns(a), "route", "replace", "blackhole", self.ip_of(b) + "/32")
            _ip("-n", self.ns(b), "route", "replace", "blackhole", self.ip_of(a) + "/32")
            self.blocked.add(link)

    def heal(self):
        self.set_blocked(())

    def routes(self):
        """{node: blackhole routes listed in its namespace} (for tests)."""
        out = {}
        for k in range(1, self.n + 1):
            out[k] = [line.split()[1] for line in
                      _ip("-n", self.ns(k), "route", "show", "type", "blackhole",
                          check=False).splitlines() if line.strip()]
        return out

    def teardown(self):
        """Deletes everything setup() made. A process still in one of our
        namespaces (a cairnd this run started and failed to stop) is
        SIGKILLed first."""
        if not self.made:
            return
        for k in range(1, self.n + 1):
            ns = self.ns(k)
            for pid in _ip("netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ValueError, OSError):
                    pass
            _ip("link", "del", self.veth(k), check=False)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
        self.blocked = set()
        self.made = False


# ----------------------------------------------------------------------------
# Hooks on a private copy of tools/localcluster.


class _Subprocess:
    """Stands in for the subprocess module inside localcluster: starts
    cairnd inside its node's namespace, with the slow-disk shim if any.
    Everything else is the real module."""

    def __init__(self, real, netns, env_for_node):
        self._real = real
        self._netns = netns
        self._env_for_node = env_for_node

    def __getattr__(self, name):
        return getattr(self._real, name)

    def Popen(self, args, **kw):  # noqa: N802 (the module's name)
        args = list(args)
        node = None
        if "-c" in args:
            m = re.search(r"node(\d+)/cairnd\.conf$", args[args.index("-c") + 1])
            if m:
                node = int(m.group(1))
        if node is not None and os.path.basename(args[0]).startswith("cairnd"):
            env = self._env_for_node(node)
            if env:
                merged = dict(kw.get("env") or os.environ)
                merged.update(env)
                kw["env"] = merged
            if self._netns is not None:
                args = ["ip", "netns", "exec", self._netns.ns(node)] + args
        return self._real.Popen(args, **kw)


def install_hooks(lc, netns, env_for_node):
    """Makes lc (a private copy of localcluster) put nodes in netns (if not
    None) and start them with env_for_node(k)'s extra variables."""
    for attr in ("_new_node", "subprocess", "up", "start", "kill", "pause", "resume", "down"):
        if not hasattr(lc, attr):
            raise NetError("tools/localcluster has no %s any more: tools/chaos_net.py needs "
                           "updating" % attr)
    if netns is not None:
        orig_new_node = lc._new_node

        def _new_node(cluster, node_id, raft_port, api_port):
            node = orig_new_node(cluster, node_id, raft_port, api_port)
            ip = netns.ip_of(node_id)
            for key in ("raft_address", "api_address"):
                _host, _, port = node[key].rpartition(":")
                node[key] = "%s:%s" % (ip, port)
            node["url"] = "http://" + node["api_address"]
            node["netns"] = netns.ns(node_id)
            return node

        lc._new_node = _new_node
        if hasattr(lc, "_listen_free"):
            # localcluster checks that a node's ports can be bound again
            # before restarting it; ours exist only in its namespace.
            orig_listen_free = lc._listen_free

            def _listen_free(addr):
                host, _, port = addr.rpartition(":")
                k = netns.node_of(host)
                if k is None:
                    return orig_listen_free(addr)
                return netns.port_free(k, int(port))

            lc._listen_free = _listen_free
    lc.subprocess = _Subprocess(subprocess, netns, env_for_node)


# ----------------------------------------------------------------------------
# Slow disk


class SlowDisk:
    """Per-node control files of the LD_PRELOAD shim."""

    def __init__(self, lib, cluster_dir):
        self.lib = lib
        self.dir = cluster_dir
        self.active = {}

    @staticmethod
    def find_lib(bin_dir):
        path = os.path.join(bin_dir, SLOWDISK_LIB)
        return path if os.path.isfile(path) else None

    def control(self, k):
        return os.path.join(self.dir, "slowdisk-node%d" % k)

    def env(self, k):
        env = {"LD_PRELOAD": self.lib,
               "CAIRN_CHAOS_SLOWDISK_CTL": self.control(k),
               "CAIRN_CHAOS_SLOWDISK_DIR": os.path.join(self.dir, "node%d" % k, "data")}
        asan = os.environ.get("ASAN_OPTIONS", "")
        # An ASan cairnd refuses a preloaded library ahead of its runtime
        # unless told not to check.
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        return env

    def set(self, k, delay_ms):
        tmp = self.control(k) + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % int(delay_ms))
        os.replace(tmp, self.control(k))
        if delay_ms > 0:
            self.active[k] = delay_ms
        else:
            self.active.pop(k, None)

    def clear_all(self):
        for k in list(self.active):
            self.set(k, 0)
