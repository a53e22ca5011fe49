#!/usr/bin/env python3
"""aioquic reference peer for the TQUIC interop suite.

Mirrors the CLI of our Swift `tquic-peer` binary so that the two can be
swapped freely in Tests/interop/test_interop.py.

  aioquic_peer.py server --listen HOST:PORT --cert FILE --key FILE
                         [--alpn ALPN ...] [--retry] [--www DIR]
  aioquic_peer.py client --connect HOST:PORT [--alpn ALPN]
                         [--insecure | --ca FILE] [--server-name NAME]
                         [--stream TEXT ...] [--datagram TEXT ...]
                         [--download-bytes N] [--chacha20] [--key-update]
                         [--get URL ...] [--downloads DIR]
                         [--session-file FILE] [--zero-rtt] [--timeout SEC]

Addresses are HOST:PORT; IPv6 hosts may be written [::1]:PORT (preferred)
or ::1:PORT.

Application protocols
  tquic-echo  every client bidirectional stream is echoed back on the same
              stream (FIN when the peer FINs); every DATAGRAM frame is echoed
              back as a DATAGRAM frame.
  hq-interop  HTTP/0.9: the client sends "GET /NAME\\r\\n" on a bidirectional
              stream (then FIN); the server answers with the bytes of
              WWW/NAME and FIN, or resets the stream (error 0x10) when the
              file does not exist.

Output contract (stdout, one line each, flushed):
  server: "listening on HOST:PORT" once bound, then for each connection
          "connection: peer=ADDR alpn=ALPN cipher=SUITE resumed=yes|no
          early_data=yes|no retry=yes|no" when its handshake completes,
          "key-update: peer=ADDR trigger=local|remote phase=N" for each
          1-RTT key update and "closed: peer=ADDR error=0xCODE reason=..."
          when it ends.
  client: "stream: TEXT" per echoed --stream, "datagram: TEXT" per echoed
          --datagram, "stream: N bytes echoed" for --download-bytes,
          "resumed: yes|no" when --session-file is given,
          "zero-rtt: accepted|rejected" when --zero-rtt is given
          (rejected also when no usable ticket was available).
  Diagnostics go to stderr, prefixed "info: " or "error: ".
  Client exit status: 0 when everything expected arrived intact, 1 otherwise
  (including --timeout), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import ssl
import sys
from pathlib import Path
from urllib.parse import urlparse

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic import tls
from aioquic.tls import CipherSuite, SessionTicket

ECHO_ALPN = "tquic-echo"
HQ_ALPN = "hq-interop"
MAX_DATAGRAM_FRAME_SIZE = 65536
HQ_NOT_FOUND = 0x10
DATAGRAM_RESEND_INTERVAL = 0.3


def out(line: str) -> None:
    print(line, flush=True)


def info(line: str) -> None:
    print(f"info: {line}", file=sys.stderr, flush=True)


def error(line: str) -> None:
    print(f"error: {line}", file=sys.stderr, flush=True)


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse HOST:PORT, [V6]:PORT or V6:PORT."""
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


def format_addr(addr) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def pattern_bytes(n: int) -> bytes:
    """Byte i of the --download-bytes payload is i % 251."""
    base = bytes(range(251))
    reps = n // 251 + 1
    return (base * reps)[:n]


def open_keylog() -> object | None:
    path = os.environ.get("SSLKEYLOGFILE")
    if not path:
        return None
    return open(path, "a", buffering=1)


class KeyUpdateCounter:
    """Counts 1-RTT key updates by hooking QuicConnection._log_key_updated.

    The hook must be installed before the connection initialises its crypto
    (which happens on connect() for clients and on the first datagram for
    servers), because the callbacks are bound with functools.partial then.
    """

    def __init__(self, quic: QuicConnection, on_update=None) -> None:
        self.local = 0
        self.remote = 0
        self._on_update = on_update
        original = quic._log_key_updated

        def hook(key_type: str, trigger: str) -> None:
            # One update re-keys both directions: count the send side only.
            send_name = "client_1rtt_secret" if quic._is_client else "server_1rtt_secret"
            if key_type == send_name and trigger in ("local_update", "remote_update"):
                if trigger == "local_update":
                    self.local += 1
                else:
                    self.remote += 1
                if self._on_update is not None:
                    self._on_update(trigger.split("_")[0], self.local + self.remote)
            original(key_type, trigger)

        quic._log_key_updated = hook

    @property
    def total(self) -> int:
        return self.local + self.remote


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------


class SessionTicketStore:
    """In-memory ticket store (aioquic's examples/http3_server.py pattern)."""

    def __init__(self) -> None:
        self.tickets: dict[bytes, SessionTicket] = {}

    def add(self, ticket: SessionTicket) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> SessionTicket | None:
        return self.tickets.pop(label, None)


class ServerProtocol(QuicConnectionProtocol):
    www: Path | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._alpn: str | None = None
        self._peer = "?"
        self._hq_requests: dict[int, bytearray] = {}
        self._hq_answered: set[int] = set()
        self._key_updates = KeyUpdateCounter(self._quic, self._on_key_update)

    def _on_key_update(self, trigger: str, count: int) -> None:
        phase = self._quic._cryptos[tls.Epoch.ONE_RTT].send.key_phase
        out(f"key-update: peer={self._peer} trigger={trigger} phase={phase}")

    def datagram_received(self, data, addr) -> None:
        self._peer = format_addr(addr)
        super().datagram_received(data, addr)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        quic = self._quic
        if isinstance(event, events.ProtocolNegotiated):
            self._alpn = event.alpn_protocol
        elif isinstance(event, events.HandshakeCompleted):
            self._alpn = event.alpn_protocol
            suite = quic.tls.key_schedule.cipher_suite
            out(
                f"connection: peer={self._peer} alpn={event.alpn_protocol} "
                f"cipher=TLS_{suite.name} "
                f"resumed={'yes' if event.session_resumed else 'no'} "
                f"early_data={'yes' if event.early_data_accepted else 'no'} "
                f"retry={'yes' if quic._retry_source_connection_id else 'no'}"
            )
        elif isinstance(event, events.StreamDataReceived):
            if self._alpn == HQ_ALPN:
                self._handle_hq(event)
            else:
                self._handle_echo(event)
        elif isinstance(event, events.DatagramFrameReceived):
            if self._alpn != HQ_ALPN:
                quic.send_datagram_frame(event.data)
        elif isinstance(event, events.StreamReset):
            self._hq_requests.pop(event.stream_id, None)
        elif isinstance(event, events.ConnectionTerminated):
            out(
                f"closed: peer={self._peer} error=0x{event.error_code:x} "
                f"reason={event.reason_phrase!r} key_updates={self._key_updates.total}"
            )

    def _handle_echo(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        # Echo client-initiated bidirectional streams only.
        if sid % 4 != 0:
            return
        if event.data or event.end_stream:
            self._quic.send_stream_data(sid, event.data, end_stream=event.end_stream)

    def _handle_hq(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        if sid % 4 != 0 or sid in self._hq_answered:
            return
        buf = self._hq_requests.setdefault(sid, bytearray())
        buf += event.data
        if b"\n" not in buf and not event.end_stream:
            if len(buf) > 4096:
                self._hq_answered.add(sid)
                self._quic.reset_stream(sid, HQ_NOT_FOUND)
            return
        self._hq_answered.add(sid)
        del self._hq_requests[sid]
        line = bytes(buf).split(b"\n", 1)[0].strip()
        parts = line.split()
        body = None
        if len(parts) >= 2 and parts[0] == b"GET" and self.www is not None:
            body = self._read_file(parts[1].decode("utf-8", "replace"))
        if body is None:
            error(f"hq-interop: stream {sid}: cannot serve {line!r}")
            self._quic.reset_stream(sid, HQ_NOT_FOUND)
            return
        self._quic.send_stream_data(sid, body, end_stream=True)

    def _read_file(self, url_path: str) -> bytes | None:
        path = urlparse(url_path).path.lstrip("/")
        root = self.www.resolve()
        target = (root / path).resolve()
        if root not in target.parents or not target.is_file():
            return None
        return target.read_bytes()


async def run_server(args: argparse.Namespace) -> int:
    alpns = args.alpn or ([ECHO_ALPN, HQ_ALPN] if args.www else [ECHO_ALPN])
    if args.www and HQ_ALPN not in alpns:
        alpns.append(HQ_ALPN)
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=alpns,
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
        secrets_log_file=open_keylog(),
    )
    configuration.load_cert_chain(args.cert, args.key)
    ServerProtocol.www = Path(args.www) if args.www else None
    store = SessionTicketStore()
    host, port = args.listen
    server = await serve(
        host,
        port,
        configuration=configuration,
        create_protocol=ServerProtocol,
        session_ticket_fetcher=store.pop,
        session_ticket_handler=store.add,
        retry=args.retry,
    )
    sockname = server._transport.get_extra_info("sockname")
    out(f"listening on {format_addr(sockname)}")
    info(f"alpn={','.join(alpns)} retry={'yes' if args.retry else 'no'} www={args.www}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    return 0


# --------------------------------------------------------------------------
# client
# --------------------------------------------------------------------------


class ClientFailure(Exception):
    pass


class StreamSink:
    """Collects (or verifies on the fly) one stream's received bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, label: str, expect: bytes | None = None):
        self.label = label
        self.expect = expect
        self.data = bytearray()
        self.received = 0
        self.done = loop.create_future()

    def feed(self, data: bytes, end_stream: bool) -> None:
        if self.done.done():
            return
        if self.expect is not None:
            chunk_end = self.received + len(data)
            if chunk_end > len(self.expect) or self.expect[self.received : chunk_end] != data:
                self.done.set_exception(
                    ClientFailure(
                        f"{self.label}: echoed bytes differ from what was sent "
                        f"(around offset {self.received})"
                    )
                )
                return
        else:
            self.data += data
        self.received += len(data)
        if end_stream:
            if self.expect is not None and self.received != len(self.expect):
                self.done.set_exception(
                    ClientFailure(
                        f"{self.label}: FIN after {self.received} bytes, "
                        f"expected {len(self.expect)}"
                    )
                )
            else:
                self.done.set_result(bytes(self.data))

    def fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future = loop.create_future()
        self.sinks: dict[int, StreamSink] = {}
        self.datagram_handler = None
        self.terminated: events.ConnectionTerminated | None = None
        self.key_updates = KeyUpdateCounter(self._quic)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.HandshakeCompleted):
            if not self.handshake.done():
                self.handshake.set_result(event)
        elif isinstance(event, events.StreamDataReceived):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.feed(event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.fail(
                    ClientFailure(
                        f"{sink.label}: stream reset by peer (error 0x{event.error_code:x})"
                    )
                )
        elif isinstance(event, events.DatagramFrameReceived):
            if self.datagram_handler is not None:
                self.datagram_handler(event.data)
        elif isinstance(event, events.ConnectionTerminated):
            self.terminated = event
            exc = ClientFailure(
                f"connection closed: error=0x{event.error_code:x} "
                f"frame_type={event.frame_type} reason={event.reason_phrase!r}"
            )
            if not self.handshake.done():
                self.handshake.set_exception(exc)
            for sink in self.sinks.values():
                sink.fail(exc)

    def open_stream(self, payload: bytes, sink: StreamSink) -> int:
        sid = self._quic.get_next_available_stream_id()
        self.sinks[sid] = sink
        self._quic.send_stream_data(sid, payload, end_stream=True)
        self.transmit()
        return sid


def load_ticket(path: str | None) -> SessionTicket | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as fp:
            ticket = pickle.load(fp)
    except Exception as exc:  # corrupt or foreign file: just do a full handshake
        info(f"ignoring unreadable session file {path}: {exc}")
        return None
    if not isinstance(ticket, SessionTicket):
        info(f"ignoring session file {path}: not an aioquic SessionTicket")
        return None
    return ticket


async def client_main(args: argparse.Namespace, state: dict) -> None:
    loop = asyncio.get_running_loop()
    host, port = args.connect
    alpn = args.alpn or (HQ_ALPN if args.get else ECHO_ALPN)
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=[alpn],
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
        secrets_log_file=open_keylog(),
        server_name=args.server_name or host,
    )
    if args.chacha20:
        configuration.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
    if args.insecure:
        configuration.verify_mode = ssl.CERT_NONE
    elif args.ca:
        configuration.load_verify_locations(cafile=args.ca)

    ticket = load_ticket(args.session_file)
    if ticket is not None:
        configuration.session_ticket = ticket
        info(f"loaded session ticket from {args.session_file}")
    new_tickets: list[SessionTicket] = []
    got_ticket = asyncio.Event()

    def save_ticket(t: SessionTicket) -> None:
        new_tickets.append(t)
        if args.session_file:
            with open(args.session_file + ".tmp", "wb") as fp:
                pickle.dump(t, fp)
            os.replace(args.session_file + ".tmp", args.session_file)
            info(f"saved session ticket to {args.session_file}")
        got_ticket.set()

    early = bool(
        args.zero_rtt
        and ticket is not None
        and ticket.max_early_data_size is not None
        and ticket.server_name == configuration.server_name
    )
    if args.zero_rtt and not early:
        info("no usable session ticket with early data: 0-RTT not attempted")

    # What the run must achieve, used for the timeout message too.
    pending: dict[str, str] = state["pending"]

    async with connect(
        host,
        port,
        configuration=configuration,
        create_protocol=ClientProtocol,
        session_ticket_handler=save_ticket,
        wait_connected=False,
    ) as proto:
        proto: ClientProtocol
        state["proto"] = proto
        stream_waits: list[asyncio.Future] = []

        def start_requests() -> None:
            for text in args.stream:
                sink = StreamSink(loop, f"stream {text!r}", expect=text.encode())
                proto.open_stream(text.encode(), sink)
                pending[f"stream:{text}"] = f"echo of stream {text!r}"

                def done(fut, text=text):
                    if not fut.exception():
                        pending.pop(f"stream:{text}", None)
                        out(f"stream: {text}")

                sink.done.add_done_callback(done)
                stream_waits.append(sink.done)
            if args.download_bytes is not None:
                n = args.download_bytes
                payload = pattern_bytes(n)
                sink = StreamSink(loop, f"{n}-byte stream", expect=payload)
                proto.open_stream(payload, sink)
                pending["download"] = f"echo of {n} bytes"

                def done(fut, n=n):
                    if not fut.exception():
                        pending.pop("download", None)
                        out(f"stream: {n} bytes echoed")

                sink.done.add_done_callback(done)
                stream_waits.append(sink.done)
            for url in args.get:
                path = urlparse(url).path or "/"
                sink = StreamSink(loop, f"GET {path}")
                proto.open_stream(f"GET {path}\r\n".encode(), sink)
                pending[f"get:{url}"] = f"download of {url}"

                def done(fut, url=url, path=path):
                    if fut.exception():
                        return
                    pending.pop(f"get:{url}", None)
                    body = fut.result()
                    name = os.path.basename(path.rstrip("/")) or "index.html"
                    if args.downloads:
                        Path(args.downloads, name).write_bytes(body)
                    info(f"downloaded {path}: {len(body)} bytes")

                sink.done.add_done_callback(done)
                stream_waits.append(sink.done)

        if early:
            # 0-RTT: queue the requests before the handshake, then send.
            start_requests()
        proto.transmit()

        hs: events.HandshakeCompleted = await proto.handshake
        quic = proto._quic
        info(
            f"handshake complete: alpn={hs.alpn_protocol} "
            f"cipher=TLS_{quic.tls.key_schedule.cipher_suite.name} "
            f"resumed={'yes' if hs.session_resumed else 'no'} "
            f"early_data={'yes' if hs.early_data_accepted else 'no'} "
            f"retry={'yes' if quic._retry_source_connection_id else 'no'} "
            f"version=0x{quic._version:x}"
        )
        if hs.alpn_protocol != alpn:
            raise ClientFailure(f"server negotiated ALPN {hs.alpn_protocol!r}, wanted {alpn!r}")
        if args.session_file:
            out(f"resumed: {'yes' if hs.session_resumed else 'no'}")
        if args.zero_rtt:
            out(f"zero-rtt: {'accepted' if early and hs.early_data_accepted else 'rejected'}")

        if args.key_update:
            # Deferred by aioquic until the handshake is confirmed
            # (HANDSHAKE_DONE received), then applied to the next packet.
            proto.request_key_update()
            info("key update requested")

        if not early:
            start_requests()

        # Datagrams: unreliable, so re-send unanswered ones until echoed.
        if args.datagram:
            if quic._remote_max_datagram_frame_size is None:
                raise ClientFailure("peer did not advertise max_datagram_frame_size")
            outstanding = {text.encode(): text for text in args.datagram}
            for text in args.datagram:
                pending[f"datagram:{text}"] = f"echo of datagram {text!r}"
            all_echoed = loop.create_future()

            def on_datagram(data: bytes) -> None:
                text = outstanding.pop(data, None)
                if text is not None:
                    pending.pop(f"datagram:{text}", None)
                    out(f"datagram: {text}")
                    if not outstanding and not all_echoed.done():
                        all_echoed.set_result(None)

            proto.datagram_handler = on_datagram
            while outstanding:
                for data in list(outstanding):
                    quic.send_datagram_frame(data)
                proto.transmit()
                try:
                    await asyncio.wait_for(asyncio.shield(all_echoed), DATAGRAM_RESEND_INTERVAL)
                except asyncio.TimeoutError:
                    if proto.terminated is not None:
                        raise ClientFailure("connection closed while waiting for datagram echoes")

        for fut in stream_waits:
            await fut  # raises ClientFailure on mismatch/reset/close

        if args.key_update:
            # Make sure at least one packet was sent and acknowledged in the
            # new key phase, even if all data was exchanged before the
            # handshake was confirmed.
            await proto.ping()
            if proto.key_updates.local < 1:
                raise ClientFailure("key update was requested but never performed")
            info(
                f"key updates: local={proto.key_updates.local} "
                f"remote={proto.key_updates.remote}"
            )

        if args.session_file and not new_tickets:
            try:
                await asyncio.wait_for(got_ticket.wait(), 2.0)
            except asyncio.TimeoutError:
                info("no session ticket received from server")
        state["ok"] = True
        proto.close()


async def run_client(args: argparse.Namespace) -> int:
    state: dict = {"pending": {}, "ok": False}
    if args.downloads:
        os.makedirs(args.downloads, exist_ok=True)
    try:
        await asyncio.wait_for(client_main(args, state), args.timeout)
    except asyncio.TimeoutError:
        if state["ok"]:
            return 0  # everything arrived; only the close handshake was slow
        missing = ", ".join(state["pending"].values()) or "handshake"
        proto = state.get("proto")
        if proto is not None and not proto.handshake.done():
            missing = "handshake"
        error(f"timeout after {args.timeout:g} s waiting for: {missing}")
        return 1
    except ClientFailure as exc:
        error(str(exc))
        return 1
    except ConnectionError as exc:
        error(f"connection error: {exc!r}")
        return 1
    return 0 if state["ok"] else 1


# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="aioquic interop peer for TQUIC")
    sub = parser.add_subparsers(dest="mode", required=True)

    s = sub.add_parser("server", help="run the echo / hq-interop server")
    s.add_argument("--listen", type=parse_hostport, required=True, metavar="HOST:PORT")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--alpn", nargs="+", action="extend", default=[],
                   help="ALPN(s) to accept (default tquic-echo, plus hq-interop with --www)")
    s.add_argument("--retry", action="store_true", help="validate addresses with Retry")
    s.add_argument("--www", help="directory served over hq-interop")

    c = sub.add_parser("client", help="run the echo / hq-interop client")
    c.add_argument("--connect", type=parse_hostport, required=True, metavar="HOST:PORT")
    c.add_argument("--alpn")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    g.add_argument("--ca", help="CA certificate (PEM) to verify the server with")
    c.add_argument("--server-name", help="SNI / verification name (default: the host)")
    c.add_argument("--stream", action="append", default=[], metavar="TEXT")
    c.add_argument("--datagram", action="append", default=[], metavar="TEXT")
    c.add_argument("--download-bytes", type=int, metavar="N")
    c.add_argument("--chacha20", action="store_true")
    c.add_argument("--key-update", action="store_true")
    c.add_argument("--get", nargs="+", action="extend", default=[], metavar="URL")
    c.add_argument("--downloads", metavar="DIR")
    c.add_argument("--session-file", metavar="FILE")
    c.add_argument("--zero-rtt", action="store_true")
    c.add_argument("--timeout", type=float, default=20.0, metavar="SEC")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "server":
        return asyncio.run(run_server(args))
    if args.get and not args.downloads:
        build_parser().error("--get needs --downloads DIR")
    if not (args.stream or args.datagram or args.get or args.download_bytes is not None):
        build_parser().error("nothing to do: give --stream, --datagram, --download-bytes or --get")
    return asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
