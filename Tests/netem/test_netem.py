"""tquic-netem in network namespaces (root): two end namespaces bridged through a middle one
(scripts/netem-net.sh), the emulated link checked from the outside with ping, iperf3 and UDP.

- the round trip a ping sees is twice the one-way DELAY;
- a rate limit holds for TCP (iperf3 goodput after its first second within 10 % below what TCP
  can carry of the rate, 1448 of every 1500 bytes, and never above the rate);
- UDP offered beyond the rate leaves at the rate (within 5 %), the excess dropped at the queue;
- loss=10% loses about 10 % of 1000 UDP datagrams, exactly as many as tquic-netem counts;
- an outage window drops everything sent in it, and nothing outside it;
- with the veths' offloads left on (partial checksums, GSO/TSO super-frames) TCP still flows at
  the rate, the super-frames cut into wire frames.

Each test builds its own namespaces (`tqn-<pid>-<n>-{a,m,b}`), removes them however it ends, and
bounds every command with a timeout; namespaces of an earlier run whose process is gone are
removed first. Skipped when not root. The binary: $TQUIC_NETEM, else the debug build's.

usage: .venv/bin/pytest Tests/netem      (scripts/test.sh runs it as root)
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NET = ROOT / "scripts" / "netem-net.sh"
COUNTER = itertools.count(1)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces); CI runs as root")


def binary() -> str:
    if os.environ.get("TQUIC_NETEM"):
        return os.environ["TQUIC_NETEM"]
    path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()
    return str(Path(path) / "tquic-netem")


def sweep_stale() -> None:
    """Deletes tqn-PID-* namespaces whose process is gone (a run killed before its cleanup)."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout.split()
    for name in names:
        m = re.match(r"tqn-(\d+)-\d+-[amb]$", name)
        if m and int(m.group(1)) != os.getpid() and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", name], timeout=10)


class Bridge:
    """The three namespaces and a running tquic-netem between them."""

    def __init__(self, tmp: Path, offloads: bool = False) -> None:
        self.prefix = f"tqn-{os.getpid()}-{next(COUNTER)}"
        self.tmp = tmp
        self.process: subprocess.Popen | None = None
        self.ready_at = 0.0
        self.rate = 0
        env = os.environ | {"OFFLOADS": "on" if offloads else "off"}
        subprocess.run([str(NET), "up", self.prefix], check=True, timeout=30, env=env)

    def start(self, *arguments: str) -> None:
        self.log = open(self.tmp / "netem.err", "w+")
        self.process = subprocess.Popen(
            # SCHED_FIFO: release times hold even when other jobs keep the cores busy (docs/netem.md).
            ["ip", "netns", "exec", f"{self.prefix}-m", binary(), "--a", "a", "--b", "b", "--realtime", "10", *arguments],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while "ready:" not in self.stderr():
            assert self.process.poll() is None, f"tquic-netem exited: {self.stderr()}"
            assert time.monotonic() < deadline, f"tquic-netem printed no ready line in 10 s: {self.stderr()}"
            time.sleep(0.01)
        self.ready_at = time.monotonic()

    def stderr(self) -> str:
        return (self.tmp / "netem.err").read_text()

    def run(self, end: str, *command: str, timeout: float = 30) -> str:
        return subprocess.run(["ip", "netns", "exec", f"{self.prefix}-{end}", *command], check=True,
                              capture_output=True, text=True, timeout=timeout).stdout

    def spawn(self, end: str, *command: str) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", f"{self.prefix}-{end}", *command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        """SIGTERM; tquic-netem must exit 0 within 5 s. Returns its final statistics line."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=5) == 0, f"tquic-netem did not exit cleanly: {self.stderr()}"
        final = [line for line in self.stderr().splitlines() if "final:" in line]
        assert final, f"no final statistics line: {self.stderr()}"
        return final[-1]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        subprocess.run([str(NET), "down", self.prefix], timeout=30)


@pytest.fixture
def bridge(tmp_path, request):
    sweep_stale()
    b = Bridge(tmp_path, offloads=getattr(request, "param", False))
    try:
        yield b
    finally:
        b.close()
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert b.prefix + "-" not in leftover, "namespaces left behind"


# What TCP can carry of an IP rate: 1448 payload bytes in each 1500-byte packet (IP, TCP and the
# timestamp option take 52).
TCP_PAYLOAD = 1448 / 1500

CAUSES = ("queue", "loss", "burst", "outage", "buffers", "oversize", "send", "socket")


def counts(final: str, direction: str) -> dict[str, int]:
    """The numbers of one direction ("a→b") of a statistics line: received, forwarded, dropped and
    each drop cause (0 when absent)."""
    part = next(p for p in final.split(";") if direction in p)
    out = {k: int(v) for k, v in re.findall(r"\b(received|forwarded|dropped) (\d+)", part)}
    causes = re.search(r"dropped \d+ \(([^)]*)\)", part)
    for cause in causes.group(1).split(", ") if causes else []:
        name, value = cause.split(" ")
        out[name] = int(value)
    return out | {c: out.get(c, 0) for c in CAUSES}


UDP = r"""
import json, socket, struct, sys, time
mode = sys.argv[1]
if mode == "send":
    host, port, count, interval = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for i in range(count):
        delay = start + i * interval - time.monotonic()
        if delay > 0: time.sleep(delay)
        s.sendto(struct.pack("!Id", i, time.monotonic()) + bytes(100), (host, port))
else:
    port, seconds = int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.1)
    end = time.monotonic() + seconds
    got = []
    print("listening", flush=True)
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        i, sent = struct.unpack("!Id", data[:12])
        got.append([i, sent, time.monotonic()])
    print(json.dumps(got))
"""


def udp_transfer(b: Bridge, count: int, interval: float, listen: float) -> list[list[float]]:
    """Sends `count` datagrams from a to b, one every `interval` seconds; returns what b got:
    [sequence, sent (monotonic s), arrived (monotonic s)] (CLOCK_MONOTONIC is one clock for every
    namespace)."""
    receiver = b.spawn("b", sys.executable, "-c", UDP, "recv", "9000", str(listen))
    assert receiver.stdout.readline().strip() == "listening"
    b.run("a", sys.executable, "-c", UDP, "send", "10.77.0.2", "9000", str(count), str(interval),
          timeout=count * interval + 30)
    out, err = receiver.communicate(timeout=listen + 30)
    assert receiver.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_ping_round_trip_is_twice_the_one_way_delay(bridge):
    bridge.start("--link", "x=unlimited,20ms")
    out = bridge.run("a", "ping", "-c", "10", "-i", "0.2", "-q", "10.77.0.2")
    rtt_min, rtt_avg, rtt_max = (float(x) for x in re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", out).groups())
    assert "10 received" in out, out
    assert 40.0 <= rtt_min, f"a round trip of 2 × 20 ms cannot be shorter: {out}"
    assert rtt_avg <= 44.0, f"average RTT {rtt_avg} ms: more than 4 ms over 2 × 20 ms one-way"
    final = bridge.stop()
    assert counts(final, "a→b")["dropped"] == 0, final


def tcp_goodputs(b: Bridge, runs: int = 3) -> list[float]:
    """iperf3 TCP a → b, 4 s with the first omitted, up to `runs` times until one reaches 90 % of
    what TCP can carry of the rate: a pause of the shared test machine (another job, the
    hypervisor) can cost one run its window. Returns every run's receiver goodput, Mbit/s."""
    goodputs = []
    for _ in range(runs):
        server = b.spawn("b", "iperf3", "-s", "-1", "-p", "5201")
        time.sleep(0.3)
        report = json.loads(b.run("a", "iperf3", "-c", "10.77.0.2", "-p", "5201", "-t", "4", "-O", "1", "-J", timeout=30))
        server.communicate(timeout=10)
        goodputs.append(report["end"]["sum_received"]["bits_per_second"] / 1e6)
        if goodputs[-1] >= 0.9 * b.rate * TCP_PAYLOAD:
            break
    return goodputs


def test_a_rate_limit_holds_for_tcp(bridge):
    bridge.rate = 50
    bridge.start("--link", f"x={bridge.rate}mbit,10ms")
    goodputs = tcp_goodputs(bridge)
    final = bridge.stop()
    assert max(goodputs) <= bridge.rate, f"TCP goodput {goodputs} Mbit/s above the {bridge.rate} Mbit/s link: {final}"
    assert max(goodputs) >= 0.9 * bridge.rate * TCP_PAYLOAD, \
        f"TCP goodput {goodputs} Mbit/s through a {bridge.rate} Mbit/s link: {final}"


def test_udp_offered_beyond_the_rate_leaves_at_the_rate(bridge):
    # 80 Mbit/s of 1472-byte datagrams into 50 Mbit/s: the link carries 50 Mbit/s of IP packets,
    # 49.07 Mbit/s of UDP payload, and drops the rest at its queue; late wake-ups of the emulator
    # delay frames but do not change how many leave (the link model runs on arrival times).
    rate = 50
    bridge.start("--link", f"x={rate}mbit,10ms")
    server = bridge.spawn("b", "iperf3", "-s", "-1", "-p", "5201")
    time.sleep(0.3)
    report = json.loads(bridge.run("a", "iperf3", "-c", "10.77.0.2", "-p", "5201", "-u", "-b", "80M", "-l", "1472",
                                   "-t", "4", "-J", timeout=30))
    server.communicate(timeout=10)
    final = bridge.stop()
    received = report["end"]["sum_received"] if "sum_received" in report["end"] else report["end"]["sum"]
    goodput = received["bytes"] * 8 / received["seconds"] / 1e6 if "bytes" in received else received["bits_per_second"] / 1e6
    payload_rate = rate * 1472 / 1500
    assert abs(goodput - payload_rate) <= 0.05 * payload_rate, f"UDP goodput {goodput:.2f} Mbit/s, the link carries {payload_rate:.2f}: {final}"
    assert counts(final, "a→b")["queue"] > 0, f"the excess is dropped at the queue: {final}"


def test_ten_percent_loss_loses_about_a_hundred_of_a_thousand_datagrams(bridge):
    bridge.start("--link", "x=unlimited,1ms,loss=10%", "--link-back", "x=unlimited,1ms", "--seed", "7")
    got = udp_transfer(bridge, 1000, 0.001, listen=2.5)
    final = bridge.stop()
    ab = counts(final, "a→b")
    lost = 1000 - len(got)
    assert ab["received"] == 1000, f"only our datagrams cross the link: {final}"
    assert ab["loss"] == lost, f"tquic-netem counts {ab['loss']} losses, the receiver missed {lost}: {final}"
    assert 70 <= lost <= 130, f"{lost} of 1000 lost with loss=10% (binomial: 100 ± 3 σ)"


def test_an_outage_drops_everything_sent_in_its_window(bridge):
    # From 1.5 s to 2.5 s after tquic-netem's start (its `ready` line): a datagram every 10 ms.
    bridge.start("--link", "x=unlimited,5ms,outage=1500ms-2500ms")
    start = bridge.ready_at
    got = udp_transfer(bridge, 400, 0.01, listen=5.5)
    final = bridge.stop()
    ab = counts(final, "a→b")
    sent_offsets = [sent - start for _, sent, _ in got]
    inside = [t for t in sent_offsets if 1.53 <= t < 2.47]
    assert not inside, f"{len(inside)} datagrams sent during the outage arrived"
    before = [t for t in sent_offsets if t < 1.47]
    after = [t for t in sent_offsets if t >= 2.53]
    assert before and after, "traffic flows before and after the outage"
    assert ab["outage"] == 400 - len(got), f"every missing datagram is an outage drop: {final}"
    assert 95 <= ab["outage"] <= 105, f"a 1 s outage of 100 datagrams/s dropped {ab['outage']}"


@pytest.mark.parametrize("bridge", [True], indirect=True, ids=["offloads-on"])
def test_with_offloads_left_on_tcp_flows_at_the_rate_in_wire_sized_frames(bridge):
    bridge.rate = 50
    bridge.start("--link", f"x={bridge.rate}mbit,5ms")
    goodputs = tcp_goodputs(bridge)
    final = bridge.stop()
    assert 0.9 * bridge.rate * TCP_PAYLOAD <= max(goodputs) <= bridge.rate, \
        f"TCP goodput {goodputs} Mbit/s through a {bridge.rate} Mbit/s link: {final}"
    assert "GSO frames cut" in final, f"TSO on: the sender's super-frames were cut: {final}"
    assert counts(final, "a→b")["oversize"] == 0, final
