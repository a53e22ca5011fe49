"""The appliance lab, shared by the end-to-end tests (conftest.py, test_appliance.py) and the demo
(demo.py): the namespaces of scripts/lab-net.sh, tquicd as VPS and as router(s) in them, and the
measurements taken through the tunnel (ping, iperf3, the UDP probe of udp_probe.py, `tquicctl
status`, interface counters).

Every process is started by Lab.spawn (its own session, its output in the lab's directory) inside
one of the lab's namespaces, and killed by pid in Lab.close, which also kills whatever still runs
in a PREFIX-* namespace (`ip netns pids`: only this lab's processes are there), deletes those
namespaces and says what it could not clean. Every command has a timeout. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
LAB_NET = REPO / "scripts" / "lab-net.sh"
PROBE = E2E_DIR / "udp_probe.py"

# Addresses of scripts/lab-net.sh (its header).
VPS_CORE = "10.100.0.2"
VPS_CORE6 = "fd00:100::2"
INET4, INET6 = "10.202.0.2", "fd02::2"
LAN4, LAN6 = "10.201.0.2", "fd01::2"
PORT = 4433
# tquicd's /metrics and dashboard listener, on loopback inside each daemon's namespace.
METRICS_PORT = 9270
TUN = "tquic0"
TABLE = "tquic_tquic0"  # HostSetup.tableName for tunnel name tquic0 (family inet)
RATE_MBIT = 20  # each WAN's rate in the tests and the demo
# A TCP receiver interval delivering less than this is a stall (5 % of one 20 Mbit/s WAN).
STALL_MBPS = 1.0


def bin_dir() -> Path:
    """tquicd and tquicctl: $TQUIC_BIN_DIR, default the release build (scripts/e2e.sh builds it)."""
    return Path(os.environ.get("TQUIC_BIN_DIR", REPO / ".build-release" / "release"))


@dataclass
class HostTCP:
    """How the lab's TCP ends behave (`demo.py --tcp-buffers/--tcp-cc/--streams`), the same for
    the tunnel's transfers and kernel MPTCP's: Linux's defaults unless asked."""
    buffer_mb: int = 0  # largest send and receive buffer (tcp_wmem/tcp_rmem max); 0: the kernel's
    cc: str = ""  # iperf3 -C (TCP_CONGESTION); "": the namespace's default
    streams: int = 1  # iperf3 -P

    def iperf3_args(self) -> list[str]:
        return (["-C", self.cc] if self.cc else []) + (["-P", str(self.streams)] if self.streams > 1 else [])

    def describe(self) -> str:
        parts = [f"buffers up to {self.buffer_mb} MB" if self.buffer_mb else "",
                 f"congestion control {self.cc}" if self.cc else "", f"{self.streams} streams" if self.streams > 1 else ""]
        return ", ".join(x for x in parts if x)


@dataclass
class RouterTuning:
    """The router's path scheduler and WAN weights (`demo.py --scheduler/--weights`), to compare
    schedulers on the same links; empty: tquicd's defaults (aggregate, weight 1)."""
    scheduler: str = ""  # [tquic] scheduler
    weights: list[int] = field(default_factory=list)  # [wan] weight of wan1, wan2, ...

    def describe(self) -> str:
        parts = [f"scheduler {self.scheduler}" if self.scheduler else "",
                 f"weights {':'.join(map(str, self.weights))}" if self.weights else ""]
        return ", ".join(x for x in parts if x)


class LabError(Exception):
    pass


def sh(cmd: list[str], timeout: float = 20, check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs cmd to completion (bounded by timeout); a failure says what ran and what it printed."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout} s: {' '.join(cmd)}\n{e.stdout or ''}{e.stderr or ''}") from None
    except FileNotFoundError:
        raise LabError(f"not found: {cmd[0]}") from None
    if check and r.returncode != 0:
        raise LabError(f"exit {r.returncode}: {' '.join(cmd)}\nstdout: {r.stdout.strip()}\nstderr: {r.stderr.strip()}")
    return r


def new_prefix(letter: str = "e") -> str:
    """A namespace prefix unique to this process: lab-net.sh takes [a-z0-9]{1,8}."""
    return f"{letter}{os.getpid() % 100000}"


def namespaces(prefix: str) -> list[str]:
    out = sh(["ip", "netns", "list"], timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix + "-")]


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.name} (pid {self.pid}) still running after {timeout} s\n{self.tail()}") from None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig: Optional[int] = None, timeout: float = 3) -> Optional[int]:
        """sig (default SIGTERM), then SIGKILL after timeout; the exit status (negative: killed by
        a signal)."""
        if not self.alive():
            return self.popen.returncode
        self.signal(signal.SIGTERM if sig is None else sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait(timeout=5)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def text(self) -> str:
        """Standard output, then standard error."""
        return self.stdout() + self.stderr()

    def tail(self, chars: int = 2500) -> str:
        return (f"--- {self.name} stdout (tail) ---\n{self.stdout()[-chars:]}\n"
                f"--- {self.name} stderr (tail) ---\n{self.stderr()[-chars:]}")


def spawn(directory: Path, netns: Optional[str], name: str, *cmd: str) -> Proc:
    """A background process in network namespace `netns` (None: here), its own session, its
    output in directory/NAME.out and .err; `ip netns exec` execs, so the pid is the process itself."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    out, err = directory / f"{name}.out", directory / f"{name}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        p = subprocess.Popen(full, stdout=o, stderr=e, stdin=subprocess.DEVNULL, start_new_session=True)
    return Proc(name, p, out, err)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: Optional[Proc] = None, every: float = 0.05) -> float:
    """Polls predicate until true; returns the seconds it took, raises LabError at timeout (or
    when `proc` died meanwhile)."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if proc is not None and not proc.alive():
            raise LabError(f"{proc.name} exited ({proc.popen.returncode}) while waiting for {what}\n{proc.tail()}")
        if time.monotonic() - start > timeout:
            raise LabError(f"timed out after {timeout} s waiting for {what}" + (f"\n{proc.tail()}" if proc else ""))
        time.sleep(every)


# ---------------------------------------------------------------------------------------------
# Status parsing (RouterDataPlane.status, VPSDataPlane.status)

# Field by field, so a field added to a line does not break the parse.
_PATH = re.compile(r"^  (?P<wan>\S+): (?P<up>up|down)\b")


def _field(pattern: str, line: str, convert=int, default=None):
    m = re.search(pattern, line)
    return convert(m.group(1)) if m else default


@dataclass
class PathStatus:
    wan: str
    up: bool
    id: Optional[int] = None
    state: Optional[str] = None
    sent: int = 0
    lost: int = 0
    rtt_ms: float = 0.0
    mtu: Optional[int] = None  # the path's datagram size (DPLPMTUD), where the status shows it
    dead: bool = False

    @property
    def active(self) -> bool:
        return self.up and self.id is not None and self.state == "active" and not self.dead


@dataclass
class RouterStatus:
    text: str
    connected: bool
    paths: dict[str, PathStatus]
    inner_packets: int = 0  # "tunnel: sent N packets (B bytes)": LAN -> tunnel so far
    inner_bytes: int = 0

    @staticmethod
    def parse(text: str) -> "RouterStatus":
        paths = {}
        section = None
        for line in text.splitlines():
            if not line.startswith(" "):
                section = line.split(":")[0]
                continue
            m = _PATH.match(line)
            if section == "paths" and m:
                paths[m["wan"]] = PathStatus(
                    wan=m["wan"], up=m["up"] == "up", id=_field(r" path (\d+) ", line),
                    state=_field(r" path \d+ (\S+)", line, str), sent=_field(r" sent (\d+)", line, default=0),
                    lost=_field(r" lost (\d+)", line, default=0), rtt_ms=_field(r" rtt ([\d.]+) ms", line, float, 0.0),
                    mtu=_field(r" mtu (\d+)", line), dead="(dead)" in line)
        tunnel = next((x for x in text.splitlines() if x.startswith("tunnel:")), "")
        return RouterStatus(text=text, connected=re.search(r"^server: .* \(connected\)$", text, re.M) is not None, paths=paths,
                            inner_packets=_field(r"sent (\d+) packets", tunnel, default=0),
                            inner_bytes=_field(r"sent \d+ packets \((\d+) bytes\)", tunnel, default=0))


_TENANT_FIELDS = {
    "from_packets": r"from tenant (\d+) packets", "from_bytes": r"from tenant \d+ packets \((\d+) bytes\)",
    "to_packets": r"to tenant (\d+) packets", "to_bytes": r"to tenant \d+ packets \((\d+) bytes\)",
    "source_not_allowed": r"source not allowed (\d+)", "not_connected": r"not connected (\d+)",
    "queue_full": r"queue full (\d+)", "paths": r", (\d+) paths;",
}


def parse_tenants(text: str) -> dict[str, dict]:
    """The VPS's tenant lines: name -> counters (and connected)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^  (\S+): (connected from|not connected)", line)
        if m:
            t = {k: _field(p, line, default=0) for k, p in _TENANT_FIELDS.items()}
            t["connected"] = m.group(2) == "connected from"
            out[m.group(1)] = t
    return out


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass
class IperfResult:
    """iperf3 --json --get-server-output of the client, the server having run with -J -i 0.1."""
    data: dict
    reverse: bool = False

    @property
    def error(self) -> Optional[str]:
        return self.data.get("error") or (self.data.get("server_output_json") or {}).get("error")

    @property
    def server(self) -> dict:
        return self.data.get("server_output_json") or {}

    def received_mbps(self) -> float:
        """TCP: the receiver's rate over the measured (not omitted) seconds."""
        return self.data["end"]["sum_received"]["bits_per_second"] / 1e6

    def received_bytes(self) -> int:
        return int(self.data["end"]["sum_received"]["bytes"])

    def receiver_intervals(self) -> list[tuple[float, float, int]]:
        """(start, end, bytes) at the receiving end, omitted intervals included."""
        side = self.data if self.reverse else self.server
        return [(i["sum"]["start"], i["sum"]["end"], int(i["sum"]["bytes"])) for i in side.get("intervals", [])]

    def longest_stall_s(self, below_mbps: float = STALL_MBPS) -> float:
        """The longest stretch of the receiver's intervals (joined end to end) whose average rate
        stayed below below_mbps: a connection that only trickles retransmissions is stalled too."""
        iv = self.receiver_intervals()
        longest = 0.0
        for i in range(len(iv)):
            n = 0
            for j in range(i, len(iv)):
                n += iv[j][2]
                d = iv[j][1] - iv[i][0]
                if d > longest and n * 8 < below_mbps * 1e6 * d:
                    longest = d
        return longest

    def bytes_between(self, t0: float, t1: float) -> int:
        """Bytes received in the intervals lying within [t0, t1] (seconds from the test's start)."""
        return sum(n for start, end, n in self.receiver_intervals() if start >= t0 - 1e-3 and end <= t1 + 1e-3)

    def mbps_between(self, t0: float, t1: float) -> float:
        """The receiver's rate over the intervals lying within [t0, t1]."""
        iv = [(s, e, n) for s, e, n in self.receiver_intervals() if s >= t0 - 1e-3 and e <= t1 + 1e-3]
        d = sum(e - s for s, e, _ in iv)
        return sum(n for _, _, n in iv) * 8 / d / 1e6 if d > 0 else 0.0

    def udp_loss(self) -> tuple[int, int, float]:
        """UDP: (sent, received, lost fraction); lost = not received, counted from the sender's side,
        so datagrams lost at the end of the run count too."""
        sent = int(self.data["end"]["sum"]["packets"])
        s = self.server["end"]["sum"]
        received = int(s["packets"]) - int(s["lost_packets"])
        return sent, received, (sent - received) / sent if sent else 1.0


@dataclass
class ProbeResult:
    """One direction of the UDP probe: arrivals (seq, sent_ns, arrived_ns) sorted by arrival.
    Probe.finish gives the forward one (at the receiver); its `echo` is the round trip (the echoes
    back at the sender, so both directions of the tunnel)."""
    sent: int
    arrivals: list[tuple[int, int, int]]
    sender: dict
    echo: Optional["ProbeResult"] = None

    @property
    def received(self) -> int:
        return len({a[0] for a in self.arrivals})

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0

    def largest_gap(self, start_ns: Optional[int] = None, end_ns: Optional[int] = None) -> tuple[float, int]:
        """The longest time without an arrival, in ms, among gaps ending after start_ns and
        beginning before end_ns (the whole run if not given), and when that gap began (ns). A gap
        straddling start_ns counts: the cut may fall between two datagrams."""
        t = [a[2] for a in self.arrivals]
        best, at = 0, 0
        for a, b in zip(t, t[1:]):
            if start_ns is not None and b <= start_ns:
                continue
            if end_ns is not None and a >= end_ns:
                break
            if b - a > best:
                best, at = b - a, a
        return best / 1e6, at

    def one_way_delays_ms(self) -> list[float]:
        """Each datagram's one-way delay in sequence order (the sender's and the receiver's
        CLOCK_MONOTONIC are one clock: every namespace shares the host's), duplicates dropped."""
        seen: dict[int, float] = {}
        for seq, sent, arrived in self.arrivals:
            seen.setdefault(seq, (arrived - sent) / 1e6)
        return [seen[k] for k in sorted(seen)]

    def rfc3550_jitter_ms(self) -> float:
        """RFC 3550 §6.4.1's interarrival jitter at the end of the run: J += (|D(i-1,i)| - J) / 16
        over consecutive datagrams, D the difference of their transit times."""
        d = self.one_way_delays_ms()
        j = 0.0
        for a, b in zip(d, d[1:]):
            j += (abs(b - a) - j) / 16
        return j

    def gap_around(self, event_ns: int, before_s: float = 0.1, after_s: float = 3.0) -> float:
        """The largest gap (ms) from shortly before an event to a few seconds after it."""
        return self.largest_gap(event_ns - int(before_s * 1e9), event_ns + int(after_s * 1e9))[0]


class Probe:
    """The UDP probe between two lab hosts (udp_probe.py): start(), then finish() after the event."""

    def __init__(self, lab: "Lab", src: str, dst: str, address: str, port: int, seconds: float, name: str,
                 interval_ms: float = 2, size: int = 64):
        self.lab, self.src, self.dst, self.address, self.port, self.seconds, self.name = lab, src, dst, address, port, seconds, name
        self.interval_ms, self.size = interval_ms, size
        self.receiver: Optional[Proc] = None
        self.sender: Optional[Proc] = None

    def start(self) -> "Probe":
        py = sys.executable or "python3"
        d = self.lab.dir
        self.receiver = self.lab.spawn(self.dst, f"{self.name}-recv", py, str(PROBE), "recv", str(self.port),
                                       str(self.seconds + 10), str(d / f"{self.name}-recv.json"))
        self.lab.wait_for(lambda: "ready" in self.receiver.stdout(), 5, f"{self.name} receiver ready", proc=self.receiver)
        self.sender = self.lab.spawn(self.src, f"{self.name}-send", py, str(PROBE), "send", self.address, str(self.port),
                                     str(self.seconds), str(self.interval_ms), str(d / f"{self.name}-send.json"), str(self.size))
        return self

    def finish(self) -> ProbeResult:
        assert self.sender and self.receiver
        if self.sender.wait(self.seconds + 10) != 0:
            raise LabError(f"the probe's sender failed\n{self.sender.tail()}")
        self.receiver.signal(signal.SIGTERM)
        if self.receiver.wait(10) != 0:
            raise LabError(f"the probe's receiver failed\n{self.receiver.tail()}")
        d = self.lab.dir
        arrivals = json.loads((d / f"{self.name}-recv.json").read_text())["arrivals"]
        sender = json.loads((d / f"{self.name}-send.json").read_text())
        echoes = sender.pop("echoes")
        by_arrival = lambda xs: sorted((tuple(a) for a in xs), key=lambda a: a[2])
        echo = ProbeResult(sent=sender["sent"], arrivals=by_arrival(echoes), sender=sender)
        return ProbeResult(sent=sender["sent"], arrivals=by_arrival(arrivals), sender=sender, echo=echo)


# ---------------------------------------------------------------------------------------------
# Routers (tenants) and the lab


@dataclass
class Router:
    """One tenant: a router namespace with its tquicd, and its [tenant] entry at the VPS."""
    name: str
    node: str
    address4: str
    address6: str
    lan: list[str]
    wans: list[str]
    private_key: str = ""
    public_key: str = ""
    socket: str = ""
    config: Optional[Path] = None
    proc: Optional[Proc] = None

    @property
    def allowed(self) -> list[str]:
        return [f"{self.address4}/32", f"{self.address6}/128", *self.lan]


def tenant_a() -> Router:
    return Router(name="a", node="rtr", address4="10.8.0.2", address6="fd00:8::2",
                  lan=["10.201.0.0/24", "fd01::/64"], wans=["wan1", "wan2"])


def tenant_b() -> Router:
    return Router(name="b", node="rtr2", address4="10.8.0.3", address6="fd00:8::3",
                  lan=["10.211.0.0/24", "fd11::/64"], wans=["wan1"])


@dataclass
class EmulatedLink:
    """One WAN through tquic-netem: its uplink (router -> internet) and downlink in the link
    syntax (docs/link-syntax.md), as `tquic-sim --print-links` prints a scenario's."""
    name: str
    up: str
    down: str

    @property
    def up_mbps(self) -> float:
        return rate_mbps(self.up)

    @property
    def down_mbps(self) -> float:
        return rate_mbps(self.down)


def rate_mbps(spec: str) -> float:
    """The initial rate of a link specification, Mbit/s (0 for `unlimited`)."""
    text = spec.split("=", 1)[1] if "=" in spec.split(",", 1)[0] else spec
    rate = text.split(",", 1)[0].strip().lower()
    m = re.fullmatch(r"([0-9.]+)(bit|kbit|mbit|gbit)", rate)
    if rate == "unlimited" or not m:
        return 0.0
    return float(m.group(1)) * {"bit": 1e-6, "kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}[m.group(2)]


def scenario_links(scenario: str) -> list[EmulatedLink]:
    """A simulator scenario's links, from `tquic-sim --scenario NAME --print-links`: the lab's
    profile and the simulator's scenario of the same name are the same links."""
    out = sh([str(bin_dir() / "tquic-sim"), "--scenario", scenario, "--print-links"], timeout=30).stdout
    return [EmulatedLink(*line.split("\t")) for line in out.splitlines() if line.strip()]


class Lab:
    def __init__(self, prefix: str, directory: Path, wans: int = 2, rate_mbit: int = RATE_MBIT,
                 log: Callable[[str], None] = print, links: Optional[list[EmulatedLink]] = None, tcp: Optional[HostTCP] = None,
                 tuning: Optional[RouterTuning] = None):
        """wans WANs shaped with tbf at rate_mbit both ways, or with `links` one WAN per link, each
        through its own tquic-netem (scripts/lab-net.sh's `netem` WANs)."""
        if not re.fullmatch(r"[a-z0-9]{1,8}", prefix):
            raise LabError(f"prefix {prefix!r}: lab-net.sh takes [a-z0-9]{{1,8}}")
        self.links = links
        if links:
            wans = len(links)
        self.prefix, self.dir, self.wans, self.rate = prefix, Path(directory), wans, rate_mbit
        self.emulators: list[Proc] = []
        self.tcp = tcp or HostTCP()
        self.tuning = tuning or RouterTuning()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.procs: list[Proc] = []
        self.routers: list[Router] = []
        self.vps: Optional[Proc] = None
        self.vps_socket = str(self.dir / "vps.sock")
        self.vps_private, self.vps_public = "", ""
        self.is_up = False
        self.log_level = "info"  # of both daemons' configurations
        self.outer_ipv6 = False  # routers reach the VPS over the WANs' IPv6 addresses (fd00:100::2)
        self.tquicd = str(bin_dir() / "tquicd")
        self.tquicctl = str(bin_dir() / "tquicctl")
        for b in (self.tquicd, self.tquicctl):
            if not os.access(b, os.X_OK):
                raise LabError(f"{b} missing: build it (scripts/e2e.sh does) or set TQUIC_BIN_DIR")
        if len(self.vps_socket) > 100:
            raise LabError(f"{self.dir}: too long for a control socket path")

    # --- namespaces and commands

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def x(self, node: str, *cmd: str, timeout: float = 20, check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
        return sh(["ip", "netns", "exec", self.ns(node), *cmd], timeout=timeout, check=check, input=input)

    def spawn(self, node: Optional[str], name: str, *cmd: str) -> Proc:
        """A background process in namespace `node` (None: here), killed at close."""
        proc = spawn(self.dir, self.ns(node) if node else None, name, *cmd)
        self.procs.append(proc)
        return proc

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, proc: Optional[Proc] = None, every: float = 0.05) -> float:
        return wait_for(predicate, timeout, what, proc, every)

    # --- topology

    @property
    def link_mbps(self) -> list[float]:
        """Each WAN's uplink rate (Mbit/s)."""
        return [l.up_mbps for l in self.links] if self.links else [float(self.rate)] * self.wans

    @property
    def sum_link_mbps(self) -> float:
        return sum(self.link_mbps)

    def up(self) -> "Lab":
        self.is_up = True
        if not self.links:
            self.log(f"lab: {self.prefix}-{{lan,rtr,isp,vps,inet}}, {self.wans} WANs at {self.rate} Mbit/s")
            sh([str(LAB_NET), "up", self.prefix, str(self.wans), str(self.rate)], timeout=60)
            self.set_tcp_buffers()
            return self
        self.log(f"lab: {self.prefix}-{{lan,rtr,isp,vps,inet}} and {self.prefix}-w1..w{self.wans}, one tquic-netem per WAN")
        sh([str(LAB_NET), "up", self.prefix, str(self.wans), "netem"], timeout=60)
        self.set_tcp_buffers()
        netem = str(bin_dir() / "tquic-netem")
        if not os.access(netem, os.X_OK):
            raise LabError(f"{netem} missing: build it or set TQUIC_BIN_DIR")
        for k, link in enumerate(self.links, start=1):
            # --a is the router's side: --link is the uplink. Real-time priority keeps the
            # emulator's timing when iperf3 and both daemons load the two cores.
            p = self.spawn(f"w{k}", f"netem-wan{k}", netem, "--a", "rt", "--b", "isp", "--link", link.up,
                           "--link-back", link.down, "--seed", str(k), "--realtime", "10")
            self.emulators.append(p)
        for k, p in enumerate(self.emulators, start=1):
            self.wait_for(lambda: "ready:" in p.stderr(), 10, f"tquic-netem of wan{k}", proc=p)
            self.log(f"wan{k}: {self.links[k - 1].up} up, {self.links[k - 1].down} down")
        return self

    def set_tcp_buffers(self) -> None:
        """TCP's largest send and receive buffers in every namespace that ends a TCP connection
        (the tunnel's transfers and MPTCP's), if asked for (`HostTCP.buffer_mb`)."""
        if self.tcp.describe():
            self.log(f"lab: TCP ends: {self.tcp.describe()}")
        if self.tuning.describe():
            self.log(f"lab: router: {self.tuning.describe()}")
        if not self.tcp.buffer_mb:
            return
        n = str(self.tcp.buffer_mb << 20)
        for node in ("lan", "rtr", "vps", "inet"):
            self.x(node, "sysctl", "-qw", f"net.ipv4.tcp_rmem=4096 131072 {n}", f"net.ipv4.tcp_wmem=4096 16384 {n}")

    def emulator_drops(self) -> dict[str, str]:
        """Each emulator's statistics line (SIGUSR1 asks for one), by WAN."""
        out = {}
        for k, p in enumerate(self.emulators, start=1):
            if p.alive():
                before = p.stderr().count("stats:")
                p.signal(signal.SIGUSR1)
                try:
                    self.wait_for(lambda: p.stderr().count("stats:") > before, 3, f"wan{k}'s emulator statistics")
                except LabError:
                    continue
                out[f"wan{k}"] = [x for x in p.stderr().splitlines() if "stats:" in x][-1].split("stats:", 1)[1].strip()
        return out

    def add_wan(self, k: int) -> None:
        sh([str(LAB_NET), "add-wan", self.prefix, str(k), str(self.rate)], timeout=30)

    def up_rtr2(self, wans: int = 1) -> None:
        sh([str(LAB_NET), "up-rtr2", self.prefix, str(wans), str(self.rate)], timeout=30)

    def cut_wan(self, k: int, node: str = "rtr") -> int:
        """`ip link set wanK down` in the router; returns the monotonic time (ns) just before."""
        t = time.monotonic_ns()
        self.x(node, "ip", "link", "set", f"wan{k}", "down", timeout=10)
        return t

    def restore_wan(self, k: int, node: str = "rtr") -> None:
        """The link back, with its default route (the kernel dropped it; a DHCP client would add it)."""
        self.x(node, "ip", "link", "set", f"wan{k}", "up", timeout=10)
        net = "10.10" if node == "rtr" else "10.11"
        self.x(node, "ip", "route", "replace", "default", "via", f"{net}{k}.0.1", "dev", f"wan{k}", "metric", str(100 * k), timeout=10)

    def link_stats(self, node: str, dev: str) -> dict:
        """rx/tx bytes and packets of dev (`ip -s -j link`); {} if it does not exist."""
        r = self.x(node, "ip", "-s", "-j", "link", "show", "dev", dev, timeout=10, check=False)
        if r.returncode != 0:
            return {}
        s = json.loads(r.stdout)[0]["stats64"]
        return {"rx_bytes": s["rx"]["bytes"], "rx_packets": s["rx"]["packets"], "tx_bytes": s["tx"]["bytes"], "tx_packets": s["tx"]["packets"]}

    def pmtu(self, node: str, destination: str) -> Optional[int]:
        """The path MTU node's kernel has cached toward destination (from an ICMP too-big), if any."""
        out = self.x(node, "ip", "route", "get", destination, timeout=10, check=False).stdout
        return _field(r" mtu (?:lock )?(\d+)", out)

    def host_state(self, node: str) -> dict:
        """What tquicd leaves on a host: the TUN device and its nftables table."""
        tun = self.x(node, "ip", "link", "show", "dev", TUN, timeout=10, check=False).returncode == 0
        tables = self.x(node, "nft", "list", "tables", timeout=10, check=False).stdout
        return {"tun": tun, "table": f"inet {TABLE}" in tables}

    # --- keys, configurations, daemons

    def genkey(self) -> tuple[str, str]:
        private = sh([self.tquicctl, "genkey"], timeout=10).stdout.strip()
        public = sh([self.tquicctl, "pubkey"], timeout=10, input=private + "\n").stdout.strip()
        return private, public

    def add_router(self, router: Router) -> Router:
        router.private_key, router.public_key = self.genkey()
        router.socket = str(self.dir / f"{router.node}.sock")
        self.routers.append(router)
        return router

    def vps_config(self) -> str:
        tenants = "".join(
            f"\n[tenant]\nname = {r.name}\npublic-key = {r.public_key}\nallowed = {', '.join(r.allowed)}\n" for r in self.routers)
        return (f"[tquic]\nrole = vps\nprivate-key = {self.vps_private}\ncontrol-socket = {self.vps_socket}\n"
                f"log-level = {self.log_level}\nmetrics = 127.0.0.1:{METRICS_PORT}\n"
                f"\n[tunnel]\naddress = 10.8.0.1/24, fd00:8::1/64\n"
                f"\n[vps]\nlisten = [::]:{PORT}\negress = egress\n{tenants}")

    def router_config(self, r: Router) -> str:
        weights = self.tuning.weights
        wans = "".join(f"\n[wan]\ninterface = {w}\n" + (f"weight = {weights[k]}\n" if k < len(weights) else "")
                       for k, w in enumerate(r.wans))
        scheduler = f"scheduler = {self.tuning.scheduler}\n" if self.tuning.scheduler else ""
        return (f"[tquic]\nrole = router\nprivate-key = {r.private_key}\ncontrol-socket = {r.socket}\n{scheduler}"
                f"log-level = {self.log_level}\nmetrics = 127.0.0.1:{METRICS_PORT}\n"
                f"\n[tunnel]\naddress = {r.address4}/24, {r.address6}/64\n"
                f"\n[server]\naddress = {f'[{VPS_CORE6}]' if self.outer_ipv6 else VPS_CORE}:{PORT}\npublic-key = {self.vps_public}\n{wans}")

    def status(self, node: str, socket: str) -> str:
        return self.x(node, self.tquicctl, "status", "--socket", socket, timeout=10).stdout

    def router_status(self, r: Router) -> RouterStatus:
        return RouterStatus.parse(self.status(r.node, r.socket))

    def vps_status(self) -> str:
        return self.status("vps", self.vps_socket)

    def tenants(self) -> dict[str, dict]:
        return parse_tenants(self.vps_status())

    def start_vps(self) -> None:
        self.vps_private, self.vps_public = self.genkey()
        path = self.dir / "vps.conf"
        path.write_text(self.vps_config())
        self.vps = self.spawn("vps", "tquicd-vps", self.tquicd, "--config", str(path))
        self.wait_for(lambda: os.path.exists(self.vps_socket), 10, "the VPS's control socket", proc=self.vps)

    def start_router(self, r: Router, paths: Optional[int] = None, timeout: float = 15) -> float:
        """Starts r's tquicd; waits for the tunnel and `paths` active paths (default: all its WANs).
        Returns the seconds from start to that."""
        r.config = self.dir / f"{r.node}.conf"
        r.config.write_text(self.router_config(r))
        start = time.monotonic()
        r.proc = self.spawn(r.node, f"tquicd-{r.node}", self.tquicd, "--config", str(r.config))
        self.wait_for(lambda: os.path.exists(r.socket), 10, f"{r.node}'s control socket", proc=r.proc)
        want = len(r.wans) if paths is None else paths

        def ready() -> bool:
            # Connected, and each active path past its MTU search's 1200-byte start (a transfer
            # begun before would lose its first full-size packets while the paths still probe).
            s = self.router_status(r)
            active = [p for p in s.paths.values() if p.active]
            return s.connected and len(active) >= want and all((p.mtu or 0) > 1200 for p in active)
        try:
            self.wait_for(ready, timeout, f"{r.node} connected with {want} active paths past their MTU search", proc=r.proc, every=0.1)
        except LabError as e:
            raise LabError(f"{e}\n{self.diagnostics()}") from None
        return time.monotonic() - start

    def start(self, *routers: Router) -> None:
        """VPS with routers as its tenants, then each router, connected."""
        for r in routers or (tenant_a(),):
            self.add_router(r)
        self.start_vps()
        for r in self.routers:
            t = self.start_router(r)
            self.log(f"{r.node}: tenant {r.name} connected, {len(r.wans)} paths, in {t:.1f} s")

    def router(self, name: str = "a") -> Router:
        return next(r for r in self.routers if r.name == name)

    def stop_daemons(self) -> list[str]:
        """SIGTERM to each tquicd (routers, then the VPS): each must exit 0 within 5 s and leave
        neither its TUN nor its nftables table. Returns what went wrong."""
        problems = []
        daemons = [(r.node, r.proc) for r in self.routers if r.proc] + ([("vps", self.vps)] if self.vps else [])
        for node, p in daemons:
            if not p.alive():
                problems.append(f"tquicd in {node} had already exited ({p.popen.returncode})\n{p.tail()}")
                continue
            p.signal(signal.SIGTERM)
            try:
                rc = p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                rc = p.stop(timeout=1)
                problems.append(f"tquicd in {node} did not exit within 5 s of SIGTERM (killed)")
            if rc != 0:
                problems.append(f"tquicd in {node} exited {rc} after SIGTERM\n{p.tail()}")
            left = self.host_state(node)
            if left["tun"] or left["table"]:
                problems.append(f"tquicd in {node} left {'TUN ' + TUN if left['tun'] else ''} {'table inet ' + TABLE if left['table'] else ''}")
        for r in self.routers:
            r.proc = None
        self.vps = None
        return problems

    def diagnostics(self) -> str:
        """Status of every daemon and the tails of their logs, for a failure's message."""
        parts = []
        for node, sock in [("vps", self.vps_socket)] + [(r.node, r.socket) for r in self.routers]:
            if os.path.exists(sock):
                try:
                    parts.append(f"--- tquicctl status ({node}) ---\n{self.status(node, sock)}")
                except LabError as e:
                    parts.append(f"--- tquicctl status ({node}) failed: {e}")
        for p in self.procs:
            if p.name.startswith("tquicd"):
                parts.append(p.tail())
        return "\n".join(parts)

    def close(self) -> list[str]:
        """Daemons stopped (and checked), every other process killed, every PREFIX-* namespace
        deleted. Returns what was wrong or could not be cleaned (empty: all clean)."""
        problems = []
        try:
            problems += self.stop_daemons()
        except Exception as e:  # keep cleaning
            problems.append(f"stopping the daemons: {e}")
        for p in self.procs:
            if p.alive():
                p.stop(timeout=2)
        if self.is_up or namespaces(self.prefix):
            problems += kill_namespace_processes(self.prefix)
            r = sh([str(LAB_NET), "down", self.prefix], timeout=60, check=False)
            if r.returncode != 0:
                problems.append(f"lab-net.sh down: {r.stderr.strip()}")
            for n in namespaces(self.prefix):  # any other namespace of ours
                sh(["ip", "netns", "del", n], timeout=20, check=False)
            left = namespaces(self.prefix)
            if left:
                problems.append(f"namespaces left: {left}")
        self.is_up = False
        alive = [f"{p.name} ({p.pid})" for p in self.procs if p.alive()]
        if alive:
            problems.append(f"processes still alive: {alive}")
        return problems

    # --- traffic

    def ping(self, node: str, address: str, count: int = 3, source: Optional[str] = None, timeout_s: int = 1) -> subprocess.CompletedProcess:
        cmd = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(timeout_s)]
        if source:
            cmd += ["-I", source]
        return self.x(node, *cmd, address, timeout=count * 0.2 + timeout_s + 10, check=False)

    def iperf3_server(self, node: str = "inet", port: int = 5201) -> Proc:
        """One test's iperf3 server with 0.1 s receiver intervals (they give the stall figures)."""
        p = self.spawn(node, f"iperf3-server-{port}", "iperf3", "-s", "-1", "-J", "-i", "0.1", "-p", str(port))
        self.wait_for(lambda: f":{port} " in self.x(node, "ss", "-Hltn", timeout=5).stdout, 5, f"iperf3 server on {port}", proc=p)
        return p

    def iperf3_client(self, seconds: float, *args: str, node: str = "lan", server: str = INET4, port: int = 5201, name: str = "iperf3") -> Proc:
        return self.spawn(node, name, "iperf3", "-c", server, "-p", str(port), "-t", str(seconds), "-i", "0.1",
                          "--json", "--get-server-output", "--connect-timeout", "3000", *self.tcp.iperf3_args(), *args)

    def iperf3_result(self, client: Proc, seconds: float, reverse: bool = False) -> IperfResult:
        rc = client.wait(seconds + 20)
        text = client.stdout()
        try:
            data = json.loads(text)
        except ValueError:
            raise LabError(f"iperf3 printed no JSON (exit {rc})\n{client.tail()}") from None
        return IperfResult(data=data, reverse=reverse)

    def iperf3(self, seconds: float, *args: str, node: str = "lan", server_node: str = "inet", server: str = INET4,
               port: int = 5201) -> IperfResult:
        self.iperf3_server(server_node, port)
        c = self.iperf3_client(seconds, *args, node=node, server=server, port=port)
        return self.iperf3_result(c, seconds, reverse="-R" in args)

    def probe(self, seconds: float, src: str = "lan", dst: str = "inet", address: str = INET4, port: int = 7000,
              name: str = "probe", interval_ms: float = 2, size: int = 64) -> Probe:
        return Probe(self, src, dst, address, port, seconds, name, interval_ms, size).start()

    def wan_tx_bytes(self, router: Router) -> dict[str, int]:
        return {w: self.link_stats(router.node, w).get("tx_bytes", 0) for w in router.wans}

    def snapshot(self, router: Router) -> "Snapshot":
        status = self.router_status(router)
        return Snapshot(wan_bytes=self.wan_tx_bytes(router), path_sent={w: p.sent for w, p in status.paths.items()}, status=status)

    def transfer_with_cut(self, seconds: float, cut_after: float, wan: int = 1, router: Optional[Router] = None) -> "CutRun":
        """An iperf3 TCP transfer LAN host -> internet host with the UDP probe running from
        before it to after it; wanK cut `cut_after` seconds into it. (The test of the cut and the
        demo.)"""
        r = router or self.router()
        probe = self.probe(seconds + 1)
        self.iperf3_server()
        before = self.snapshot(r)
        start = time.monotonic_ns()
        client = self.iperf3_client(seconds)
        time.sleep(cut_after)
        at_cut = self.snapshot(r)
        cut = self.cut_wan(wan)
        result = self.iperf3_result(client, seconds)
        return CutRun(seconds=seconds, iperf=result, probe=probe.finish(), cut_ns=cut, cut_at=(cut - start) / 1e9,
                      before=before, at_cut=at_cut, after=self.snapshot(r))


@dataclass
class Snapshot:
    """What the router's WANs sent so far: interface bytes and QUIC packets per path."""
    wan_bytes: dict[str, int]
    path_sent: dict[str, int]
    status: RouterStatus


def inner_packet_size(a: Snapshot, b: Snapshot) -> float:
    """The average size of the inner packets the router sent into the tunnel between two snapshots."""
    n = b.status.inner_packets - a.status.inner_packets
    return (b.status.inner_bytes - a.status.inner_bytes) / n if n > 0 else 0.0


def shares(a: Snapshot, b: Snapshot) -> str:
    """Each WAN's part of what was sent between two snapshots: bytes on the interface (share) and
    the path's QUIC packets."""
    delta = {w: b.wan_bytes[w] - a.wan_bytes.get(w, 0) for w in b.wan_bytes}
    total = sum(delta.values()) or 1
    return ", ".join(f"{w} {d / 1e6:5.1f} MB {100 * d / total:3.0f} % ({b.path_sent.get(w, 0) - a.path_sent.get(w, 0)} packets)"
                     for w, d in delta.items())


@dataclass
class CutRun:
    """Lab.transfer_with_cut's measurements. Times in seconds from the transfer's start."""
    seconds: float
    iperf: IperfResult
    probe: ProbeResult
    cut_ns: int
    cut_at: float
    before: Snapshot
    at_cut: Snapshot
    after: Snapshot

    @property
    def survived(self) -> bool:
        """The TCP connection went on: iperf3 finished without error and bytes arrived after the cut."""
        return self.iperf.error is None and self.iperf.bytes_between(self.cut_at + 0.5, self.seconds) > 0

    @property
    def gap_ms(self) -> float:
        """The probe's longest time without an arrival around the cut, LAN host -> internet host."""
        return self.probe.gap_around(self.cut_ns)

    @property
    def round_trip_gap_ms(self) -> float:
        return self.probe.echo.gap_around(self.cut_ns)

    def mbps_both(self) -> float:
        """TCP while both WANs were up, after the first second (slow start)."""
        return self.iperf.mbps_between(1.0, self.cut_at)

    def mbps_after(self) -> float:
        return self.iperf.mbps_between(self.cut_at + 0.5, self.seconds)


def kill_namespace_processes(prefix: str) -> list[str]:
    """Kills (by pid) what still runs in a PREFIX-* namespace: a namespace's deletion would
    otherwise leave its processes running. Returns the ones it found."""
    found = []
    for n in namespaces(prefix):
        pids = [int(p) for p in sh(["ip", "netns", "pids", n], timeout=10, check=False).stdout.split()]
        for pid in pids:
            found.append(f"pid {pid} still running in {n}")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
    return found


def leftover_problems(prefix: str) -> list[str]:
    """After everything: no PREFIX-* namespace, and here no TUN or table of ours (the lab never
    runs tquicd outside its namespaces, so neither may appear here)."""
    problems = []
    left = namespaces(prefix)
    if left:
        problems.append(f"namespaces left: {left}")
    if sh(["ip", "link", "show", "dev", TUN], timeout=10, check=False).returncode == 0:
        problems.append(f"a {TUN} exists in the host's namespace")
    if shutil.which("nft") and f"inet {TABLE}" in sh(["nft", "list", "tables"], timeout=10, check=False).stdout:
        problems.append(f"table inet {TABLE} exists in the host's namespace")
    return problems
