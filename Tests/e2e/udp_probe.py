"""A UDP probe for measuring how long traffic stops (a WAN cut, an MTU change).

The sender sends a sequence-numbered datagram every INTERVAL on an absolute schedule; the receiver
records each arrival's CLOCK_MONOTONIC time (the same clock in every network namespace of the
host, so the test can place its own events, such as the cut, on the receiver's time line) and
echoes the datagram back, so the sender sees the way back too (the LAN host is reachable from the
internet host only as the answer to its own packets, through the VPS's masquerade). Each end
writes its arrivals as JSON when it stops. lab.py starts both ends inside the lab's namespaces
with `ip netns exec` and analyses the result (lab.ProbeResult).

usage: udp_probe.py send HOST PORT SECONDS INTERVAL_MS OUT.json [SIZE]   (stdlib only, Python 3.9+)
       udp_probe.py recv PORT SECONDS OUT.json
"""

from __future__ import annotations

import json
import select
import signal
import socket
import struct
import sys
import time

HEADER = struct.Struct("!QQ")  # sequence number, sender's monotonic time (ns)
SIZE = 64


def send(host: str, port: int, seconds: float, interval_ms: float, out: str, size: int = SIZE) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    interval = int(interval_ms * 1e6)
    start = time.monotonic_ns()
    end = start + int(seconds * 1e9)
    seq = 0
    late = 0
    worst_late = 0
    echoes: list[tuple[int, int, int]] = []  # (seq, sent_ns, echo arrived_ns)
    pad = b"\0" * (max(size, HEADER.size) - HEADER.size)

    def take_echoes(wait_ns: int) -> None:
        while True:
            ready, _, _ = select.select([s], [], [], max(0, wait_ns) / 1e9)
            if not ready:
                return
            try:
                data = s.recv(2048)
            except OSError:  # ICMP errors surface here; nothing to read
                return
            if len(data) >= HEADER.size:
                echoes.append((*HEADER.unpack_from(data), time.monotonic_ns()))
            wait_ns = 0

    while True:
        due = start + seq * interval
        if due >= end:
            break
        now = time.monotonic_ns()
        while due > now:
            take_echoes(due - now)
            now = time.monotonic_ns()
        worst_late = max(worst_late, now - due)
        if now - due > interval:
            late += 1
        try:
            s.send(HEADER.pack(seq, now) + pad)
        except OSError:
            pass  # no route for a moment: the receiver sees the gap
        seq += 1
    take_echoes(300_000_000)  # the last echoes in flight
    # late/worst_late: what the sender itself contributed to a gap (descheduled, not the tunnel).
    with open(out, "w") as f:
        json.dump({"sent": seq, "late": late, "worst_late_ms": worst_late / 1e6, "echoes": echoes}, f)
    return 0


def recv(port: int, seconds: float, out: str) -> int:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.settimeout(0.05)
    arrivals: list[tuple[int, int, int]] = []  # (seq, sent_ns, arrived_ns)
    stop = time.monotonic_ns() + int(seconds * 1e9)
    stopping = False

    def on_term(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    while not stopping and time.monotonic_ns() < stop:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        t = time.monotonic_ns()
        if len(data) >= HEADER.size:
            seq, sent = HEADER.unpack_from(data)
            arrivals.append((seq, sent, t))
            try:
                s.sendto(data, peer)
            except OSError:
                pass
    with open(out, "w") as f:
        json.dump({"arrivals": arrivals}, f)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) in (6, 7) and argv[0] == "send":
        return send(argv[1], int(argv[2]), float(argv[3]), float(argv[4]), argv[5], *(int(a) for a in argv[6:]))
    if len(argv) == 4 and argv[0] == "recv":
        return recv(int(argv[1]), float(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
