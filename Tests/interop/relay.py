#!/usr/bin/env python3
"""Seeded, lossy UDP relay for QUIC interop tests (loopback only).

  relay.py --listen HOST:PORT --upstream HOST:PORT --seed N
           [--drop RATE] [--drop-handshake-only]
           [--corrupt RATE] [--corrupt-handshake-only]
           [--blackhole START:DURATION_S]
           [--rebind-port-at START]
           [--rebind-addr-at START --rebind-addr 127.0.0.2]
           [--stats FILE]

Clients send to --listen; for every client address the relay opens its own
upstream socket (like a NAT) and forwards to --upstream; server replies are
sent back to that client.

Impairments are applied independently per direction, each direction with
its own random.Random seeded from --seed:
  --drop RATE             drop a datagram with probability RATE
  --corrupt RATE          XOR one random byte of a datagram with a random
                          non-zero value (a datagram is corrupted at most once)
  --*-handshake-only      apply that impairment only to datagrams whose first
                          packet has a long header (Initial/0-RTT/Handshake/Retry)
  --blackhole S:D         drop everything in both directions for D seconds
                          starting at S
  --rebind-port-at S      at S, replace every upstream socket by a new one on
                          a new port (NAT rebinding); datagrams the server
                          still sends to the old port are dropped
  --rebind-addr-at S      same, but the new sockets are bound to --rebind-addr
                          (127.0.0.2 works on Linux loopback)

A START is either seconds (e.g. "0.5") counted from the first datagram
received from a client, or a byte count with a "B" suffix (e.g. "1000000B"):
the event then fires once that many UDP payload bytes have been forwarded
(both directions together). Byte triggers fire mid-transfer no matter how
fast the peers are.

Prints "relaying LISTEN -> UPSTREAM" (flushed) once bound, and writes its
counters as JSON to --stats on SIGTERM/SIGINT/exit.

As a module:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", 4433), seed=1, drop=0.3)
    relay.start()            # runs in a daemon thread
    relay.listen_address     # where clients should send
    ...
    relay.stop(); relay.stats()
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

Address = tuple  # (host, port) or (host, port, flow, scope)


def parse_hostport(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise argparse.ArgumentTypeError(f"bad address {text!r}")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"bad address {text!r} (want HOST:PORT)")
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None


def format_addr(addr: Address) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Trigger:
    """When an event fires: after `seconds` or once `bytes` were forwarded."""

    seconds: float | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, text: str | float | int | Trigger | None) -> Trigger | None:
        if text is None or isinstance(text, Trigger):
            return text
        if isinstance(text, (int, float)):
            return cls(seconds=float(text))
        text = text.strip()
        if text.upper().endswith("B"):
            return cls(bytes=int(text[:-1]))
        return cls(seconds=float(text))

    def fired(self, elapsed: float, forwarded_bytes: int) -> bool:
        if self.seconds is not None:
            return elapsed >= self.seconds
        return forwarded_bytes >= self.bytes

    def __str__(self) -> str:
        return f"{self.seconds}s" if self.seconds is not None else f"{self.bytes}B"


def parse_blackhole(text: str) -> tuple[Trigger, float]:
    start, sep, duration = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("--blackhole wants START:DURATION_S")
    return Trigger.parse(start), float(duration)


@dataclass
class DirectionStats:
    received: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped: int = 0
    corrupted: int = 0
    blackholed: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Session:
    client: Address
    upstream: socket.socket
    retired: list = field(default_factory=list)


def is_long_header(data: bytes) -> bool:
    return bool(data) and bool(data[0] & 0x80)


class Relay:
    def __init__(
        self,
        listen: Address,
        upstream: Address,
        *,
        seed: int = 0,
        drop: float = 0.0,
        drop_handshake_only: bool = False,
        corrupt: float = 0.0,
        corrupt_handshake_only: bool = False,
        blackhole: tuple | None = None,  # (Trigger|str|float, duration_s)
        rebind_port_at: Trigger | str | float | None = None,
        rebind_addr_at: Trigger | str | float | None = None,
        rebind_addr: str | None = None,
        verbose: bool = False,
    ) -> None:
        if rebind_addr_at is not None and not rebind_addr:
            raise ValueError("rebind_addr_at needs rebind_addr")
        self.upstream = (upstream[0], upstream[1])
        self.seed = seed
        self.drop = drop
        self.drop_handshake_only = drop_handshake_only
        self.corrupt = corrupt
        self.corrupt_handshake_only = corrupt_handshake_only
        self.blackhole = (
            (Trigger.parse(blackhole[0]), float(blackhole[1])) if blackhole else None
        )
        self.rebind_port_at = Trigger.parse(rebind_port_at)
        self.rebind_addr_at = Trigger.parse(rebind_addr_at)
        self.rebind_addr = rebind_addr
        self.verbose = verbose

        self._up_family = _family(self.upstream[0])
        self._bind_host = "::1" if self._up_family == socket.AF_INET6 else "127.0.0.1"
        self._listen = socket.socket(_family(listen[0]), socket.SOCK_DGRAM)
        self._listen.bind((listen[0], listen[1]))
        self._listen.setblocking(False)
        _bigger_buffers(self._listen)
        self.listen_address = self._listen.getsockname()[:2]

        self._rng = {
            "c2s": random.Random(f"{seed}/c2s"),
            "s2c": random.Random(f"{seed}/s2c"),
        }
        self._stats = {"c2s": DirectionStats(), "s2c": DirectionStats()}
        self._sessions: dict[Address, Session] = {}
        self._by_socket: dict[socket.socket, Session] = {}
        self._start: float | None = None
        self._blackhole_window: tuple[float, float] | None = None
        self._pending_rebinds: list[tuple[str, Trigger]] = []
        if self.rebind_port_at is not None:
            self._pending_rebinds.append(("rebind-port", self.rebind_port_at))
        if self.rebind_addr_at is not None:
            self._pending_rebinds.append(("rebind-addr", self.rebind_addr_at))
        self.events: list[dict] = []
        self.stale_dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listen, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.error: BaseException | None = None

    # -- public API -------------------------------------------------------

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._run_safely, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def stats(self) -> dict:
        with self._lock:
            return {
                "listen": format_addr(self.listen_address),
                "upstream": format_addr(self.upstream),
                "seed": self.seed,
                "c2s": self._stats["c2s"].as_dict(),
                "s2c": self._stats["s2c"].as_dict(),
                "sessions": len(self._sessions),
                "rebinds": sum(1 for e in self.events if e["event"].startswith("rebind")),
                "stale_dropped": self.stale_dropped,
                "events": [dict(e) for e in self.events],
            }

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals --------------------------------------------------------

    def _run_safely(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # surfaced by stats()/tests
            self.error = exc
            raise

    def run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.01):
                if key.data == "wake":
                    return
                sock = key.fileobj
                for _ in range(64):  # drain a burst, then look at timers again
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break  # e.g. ICMP port unreachable reported on the socket
                    with self._lock:
                        if key.data == "listen":
                            self._from_client(data, addr)
                        else:
                            self._from_server(sock, data)
            with self._lock:
                self._check_events()

    def _now(self) -> float:
        return time.monotonic() - self._start if self._start is not None else 0.0

    def _forwarded_bytes(self) -> int:
        return self._stats["c2s"].forwarded_bytes + self._stats["s2c"].forwarded_bytes

    def _check_events(self) -> None:
        if self._start is None:
            return
        elapsed, nbytes = self._now(), self._forwarded_bytes()
        if self.blackhole is not None and self._blackhole_window is None:
            trigger, duration = self.blackhole
            if trigger.fired(elapsed, nbytes):
                begin = trigger.seconds if trigger.seconds is not None else elapsed
                self._blackhole_window = (begin, begin + duration)
                self._event("blackhole-start", until=round(begin + duration, 3))
        if self._blackhole_window is not None and elapsed >= self._blackhole_window[1]:
            if not any(e["event"] == "blackhole-end" for e in self.events):
                self._event("blackhole-end")
        for item in list(self._pending_rebinds):
            kind, trigger = item
            if trigger.fired(elapsed, nbytes):
                self._pending_rebinds.remove(item)
                self._rebind(kind)

    def _event(self, name: str, **extra) -> None:
        record = {
            "event": name,
            "t": round(self._now(), 3),
            "c2s_forwarded": self._stats["c2s"].forwarded,
            "s2c_forwarded": self._stats["s2c"].forwarded,
            "bytes_forwarded": self._forwarded_bytes(),
        }
        record.update(extra)
        self.events.append(record)
        if self.verbose:
            print(f"relay: {record}", file=sys.stderr, flush=True)

    def _in_blackhole(self) -> bool:
        if self._blackhole_window is None:
            return False
        begin, end = self._blackhole_window
        return begin <= self._now() < end

    def _new_upstream_socket(self, host: str) -> socket.socket:
        sock = socket.socket(self._up_family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.setblocking(False)
        _bigger_buffers(sock)
        return sock

    def _rebind(self, kind: str) -> None:
        if kind == "rebind-addr":
            self._bind_host = self.rebind_addr
        moved = []
        for session in self._sessions.values():
            old = session.upstream
            new = self._new_upstream_socket(self._bind_host)
            session.retired.append(old)
            session.upstream = new
            self._by_socket[new] = session
            self._selector.register(new, selectors.EVENT_READ, "upstream")
            moved.append(f"{format_addr(old.getsockname())}->{format_addr(new.getsockname())}")
        self._event(kind, moved=moved)

    def _impair(self, direction: str, data: bytes) -> bytes | None:
        stats = self._stats[direction]
        stats.received += 1
        if self._in_blackhole():
            stats.blackholed += 1
            return None
        rng = self._rng[direction]
        long_header = is_long_header(data)
        if self.drop > 0 and (long_header or not self.drop_handshake_only):
            if rng.random() < self.drop:
                stats.dropped += 1
                return None
        if self.corrupt > 0 and data and (long_header or not self.corrupt_handshake_only):
            if rng.random() < self.corrupt:
                buf = bytearray(data)
                index = rng.randrange(len(buf))
                buf[index] ^= rng.randrange(1, 256)
                stats.corrupted += 1
                return bytes(buf)
        return data

    def _from_client(self, data: bytes, addr: Address) -> None:
        if self._start is None:
            self._start = time.monotonic()
            self._check_events()
        client = addr[:2]
        session = self._sessions.get(client)
        if session is None:
            session = Session(client=client, upstream=self._new_upstream_socket(self._bind_host))
            self._sessions[client] = session
            self._by_socket[session.upstream] = session
            self._selector.register(session.upstream, selectors.EVENT_READ, "upstream")
            self._event("session", client=format_addr(client),
                        via=format_addr(session.upstream.getsockname()))
        out = self._impair("c2s", data)
        if out is None:
            return
        try:
            session.upstream.sendto(out, self.upstream)
        except OSError:
            return
        stats = self._stats["c2s"]
        stats.forwarded += 1
        stats.forwarded_bytes += len(out)

    def _from_server(self, sock: socket.socket, data: bytes) -> None:
        session = self._by_socket.get(sock)
        if session is None:
            return
        if sock is not session.upstream:
            self.stale_dropped += 1  # server still talks to the pre-rebind port
            return
        out = self._impair("s2c", data)
        if out is None:
            return
        try:
            self._listen.sendto(out, session.client)
        except OSError:
            return
        stats = self._stats["s2c"]
        stats.forwarded += 1
        stats.forwarded_bytes += len(out)

    def _close(self) -> None:
        socks = [self._listen, self._wake_r, self._wake_w]
        for session in self._sessions.values():
            socks.append(session.upstream)
            socks.extend(session.retired)
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass
        try:
            self._selector.close()
        except (OSError, RuntimeError):
            pass


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bigger_buffers(sock: socket.socket) -> None:
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="seeded lossy UDP relay")
    parser.add_argument("--listen", type=parse_hostport, required=True, metavar="HOST:PORT")
    parser.add_argument("--upstream", type=parse_hostport, required=True, metavar="HOST:PORT")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--drop", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--drop-handshake-only", action="store_true")
    parser.add_argument("--corrupt", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--corrupt-handshake-only", action="store_true")
    parser.add_argument("--blackhole", type=parse_blackhole, metavar="START:DURATION_S")
    parser.add_argument("--rebind-port-at", type=Trigger.parse, metavar="START")
    parser.add_argument("--rebind-addr-at", type=Trigger.parse, metavar="START")
    parser.add_argument("--rebind-addr", metavar="ADDR")
    parser.add_argument("--stats", metavar="FILE")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.rebind_addr_at is not None and not args.rebind_addr:
        parser.error("--rebind-addr-at needs --rebind-addr")

    relay = Relay(
        args.listen,
        args.upstream,
        seed=args.seed,
        drop=args.drop,
        drop_handshake_only=args.drop_handshake_only,
        corrupt=args.corrupt,
        corrupt_handshake_only=args.corrupt_handshake_only,
        blackhole=args.blackhole,
        rebind_port_at=args.rebind_port_at,
        rebind_addr_at=args.rebind_addr_at,
        rebind_addr=args.rebind_addr,
        verbose=args.verbose,
    )
    done = threading.Event()

    def on_signal(signum, frame) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    relay.start()
    print(
        f"relaying {format_addr(relay.listen_address)} -> {format_addr(relay.upstream)}",
        flush=True,
    )
    try:
        while not done.is_set() and relay._thread.is_alive():
            done.wait(0.2)
    finally:
        relay.stop()
        stats = relay.stats()
        if args.stats:
            with open(args.stats, "w") as fp:
                json.dump(stats, fp, indent=2)
        print(f"relay stats: {json.dumps(stats)}", file=sys.stderr, flush=True)
    return 1 if relay.error else 0


if __name__ == "__main__":
    sys.exit(main())
