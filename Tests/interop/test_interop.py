"""TQUIC <-> aioquic interop matrix.

Every test runs for each `pair` (ids are CLIENT-SERVER):
  tquic-aioquic    our tquic-peer client against the aioquic server
  aioquic-tquic    the aioquic client against our tquic-peer server
  aioquic-aioquic  control run proving the harness itself (-m control)

Relay-based cases put relay.Relay (in-process, seeded by the test id or
$INTEROP_SEED) between client and server.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import Harness, Pair

SMALL_TIMEOUT = 30.0
TRANSFER_TIMEOUT = 60.0


def relay_addr(relay) -> str:
    host, port = relay.listen_address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_www(root: Path, sizes: list[int], seed: int = 7) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = {}
    for i, size in enumerate(sizes):
        name = f"f{i:02d}-{size}.bin"
        data = rng.randbytes(size)
        (root / name).write_bytes(data)
        files[name] = data
    return files


def check_downloads(h: Harness, files: dict[str, bytes], downloads: Path) -> None:
    bad = []
    for name, data in files.items():
        path = downloads / name
        if not path.exists():
            bad.append(f"{name}: missing")
            continue
        got = path.read_bytes()
        if got != data:
            bad.append(f"{name}: {len(got)} bytes, expected {len(data)} (content differs)")
    if bad:
        h.fail("downloads differ from the served files:\n  " + "\n  ".join(bad))


# ---------------------------------------------------------------------------
# plain loopback
# ---------------------------------------------------------------------------


def test_handshake(h: Harness, pair: Pair):
    srv = h.server(pair.server)
    res = h.client(pair.client, srv.addr, ["--stream", "hello"], timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello"], servers=[srv])
    if pair.server == "aioquic":
        h.expect_server_line(srv, r"^connection: .*alpn=tquic-echo")


def test_streams(h: Harness, pair: Pair):
    texts = [
        "alpha",
        "beta gamma",
        "x",
        "the quick brown fox jumps over the lazy dog",
        "0123456789" * 150,  # spans two packets
        "zeta",
        "eta theta iota",
        "kappa",
    ]
    srv = h.server(pair.server)
    args = []
    for text in texts:
        args += ["--stream", text]
    res = h.client(pair.client, srv.addr, args, timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=[f"stream: {t}" for t in texts], servers=[srv])


def test_transfer(h: Harness, pair: Pair):
    srv = h.server(pair.server)
    res = h.client(pair.client, srv.addr, ["--download-bytes", "5000000"],
                   timeout=TRANSFER_TIMEOUT)
    h.expect_success(res, lines=["stream: 5000000 bytes echoed"], servers=[srv])


def test_datagram(h: Harness, pair: Pair):
    texts = [f"datagram-{i}" for i in range(5)]
    srv = h.server(pair.server)
    args = []
    for text in texts:
        args += ["--datagram", text]
    res = h.client(pair.client, srv.addr, args, timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=[f"datagram: {t}" for t in texts], servers=[srv])


def test_chacha20(h: Harness, pair: Pair):
    srv = h.server(pair.server)
    res = h.client(pair.client, srv.addr,
                   ["--chacha20", "--stream", "hello", "--download-bytes", "200000"],
                   timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello", "stream: 200000 bytes echoed"],
                     servers=[srv])
    if pair.server == "aioquic":
        h.expect_server_line(srv, r"^connection: .*cipher=TLS_CHACHA20_POLY1305_SHA256")
    if pair.client == "aioquic" and "cipher=TLS_CHACHA20_POLY1305_SHA256" not in res.stderr:
        h.fail("aioquic client did not negotiate TLS_CHACHA20_POLY1305_SHA256")


def test_keyupdate(h: Harness, pair: Pair):
    srv = h.server(pair.server)
    res = h.client(pair.client, srv.addr,
                   ["--key-update", "--stream", "hello", "--download-bytes", "2000000"],
                   timeout=TRANSFER_TIMEOUT)
    h.expect_success(res, lines=["stream: hello", "stream: 2000000 bytes echoed"],
                     servers=[srv])
    if pair.server == "aioquic":
        # the server saw the client's key phase flip
        h.expect_server_line(srv, r"^key-update: .*trigger=remote")
    if pair.client == "aioquic" and "key updates: local=" not in res.stderr:
        h.fail("aioquic client did not report performing its key update")


def test_retry(h: Harness, pair: Pair):
    srv = h.server(pair.server, retry=True)
    res = h.client(pair.client, srv.addr, ["--stream", "hello"], timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello"], servers=[srv])
    if pair.server == "aioquic":
        h.expect_server_line(srv, r"^connection: .*retry=yes")
    if pair.client == "aioquic" and "retry=yes" not in res.stderr:
        h.fail("the server did not send a Retry packet (aioquic client saw none)")


MULTIPLEX_SIZES = [
    1, 10, 100, 500, 1000, 1199, 1200, 1201, 1500, 2000,
    4096, 5000, 8192, 10000, 16384, 20000, 32768, 50000, 65535, 65536,
    65537, 100000, 131072, 200000, 250000, 300000, 400000, 500000, 750000, 1000000,
]


def test_multiplexing(h: Harness, pair: Pair):
    www = h.tmp / "www"
    files = make_www(www, MULTIPLEX_SIZES)
    downloads = h.tmp / "downloads"
    srv = h.server(pair.server, www=www)
    urls = [srv.url(name) for name in files]
    res = h.client(pair.client, srv.addr, ["--get", *urls, "--downloads", downloads],
                   timeout=TRANSFER_TIMEOUT)
    h.expect_success(res, servers=[srv])
    check_downloads(h, files, downloads)


def test_resumption(h: Harness, pair: Pair):
    srv = h.server(pair.server)
    session = h.tmp / "session.ticket"
    first = h.client(pair.client, srv.addr,
                     ["--session-file", session, "--stream", "first"], timeout=SMALL_TIMEOUT)
    h.expect_success(first, lines=["stream: first", "resumed: no"], servers=[srv])
    if not session.exists():
        h.fail(f"first client run did not save a session ticket to {session}")
    second = h.client(pair.client, srv.addr,
                      ["--session-file", session, "--stream", "second"], timeout=SMALL_TIMEOUT)
    h.expect_success(second, lines=["stream: second", "resumed: yes"], servers=[srv])
    if pair.server == "aioquic":
        h.expect_server_line(srv, r"^connection: .*resumed=yes")


def test_zerortt(h: Harness, pair: Pair):
    www = h.tmp / "www"
    files = make_www(www, [100, 1000, 5000, 20000, 100000], seed=11)
    srv = h.server(pair.server, www=www)
    urls = [srv.url(name) for name in files]
    session = h.tmp / "session.ticket"
    first = h.client(pair.client, srv.addr,
                     ["--session-file", session, "--get", *urls,
                      "--downloads", h.tmp / "dl1"], timeout=SMALL_TIMEOUT)
    h.expect_success(first, lines=["resumed: no"], servers=[srv])
    check_downloads(h, files, h.tmp / "dl1")
    if not session.exists():
        h.fail(f"first client run did not save a session ticket to {session}")
    second = h.client(pair.client, srv.addr,
                      ["--session-file", session, "--zero-rtt", "--get", *urls,
                       "--downloads", h.tmp / "dl2"], timeout=SMALL_TIMEOUT)
    h.expect_success(second, lines=["resumed: yes", "zero-rtt: accepted"], servers=[srv])
    check_downloads(h, files, h.tmp / "dl2")
    if pair.server == "aioquic":
        h.expect_server_line(srv, r"^connection: .*early_data=yes")


def test_ipv6(h: Harness, pair: Pair):
    srv = h.server(pair.server, host="::1")
    res = h.client(pair.client, srv.addr,
                   ["--stream", "hello over ipv6", "--download-bytes", "300000"],
                   timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello over ipv6", "stream: 300000 bytes echoed"],
                     servers=[srv])


# ---------------------------------------------------------------------------
# through relay.py
# ---------------------------------------------------------------------------

HANDSHAKE_CONNECTIONS = 5
LOSS_TRANSFER_BYTES = 1_500_000
MIGRATION_TRANSFER_BYTES = 3_000_000


def _several_small_connections(h: Harness, pair: Pair, **impairments):
    srv = h.server(pair.server)
    relay = h.relay(srv, **impairments)
    for i in range(HANDSHAKE_CONNECTIONS):
        res = h.client(pair.client, relay_addr(relay), ["--stream", f"hello-{i}"],
                       timeout=SMALL_TIMEOUT)
        h.expect_success(res, lines=[f"stream: hello-{i}"], servers=[srv])
    return relay.stats()


def test_handshakeloss(h: Harness, pair: Pair):
    stats = _several_small_connections(h, pair, drop=0.30)
    if stats["c2s"]["dropped"] + stats["s2c"]["dropped"] == 0:
        h.fail("relay dropped nothing: the test did not exercise loss")


def test_handshakecorruption(h: Harness, pair: Pair):
    stats = _several_small_connections(h, pair, corrupt=0.30, corrupt_handshake_only=True)
    if stats["c2s"]["corrupted"] + stats["s2c"]["corrupted"] == 0:
        h.fail("relay corrupted nothing: the test did not exercise corruption")


def _transfer_through_relay(h: Harness, pair: Pair, nbytes: int, **impairments):
    srv = h.server(pair.server)
    relay = h.relay(srv, **impairments)
    res = h.client(pair.client, relay_addr(relay), ["--download-bytes", str(nbytes)],
                   timeout=TRANSFER_TIMEOUT)
    h.expect_success(res, lines=[f"stream: {nbytes} bytes echoed"], servers=[srv])
    return relay.stats()


def test_transferloss(h: Harness, pair: Pair):
    stats = _transfer_through_relay(h, pair, LOSS_TRANSFER_BYTES, drop=0.02)
    if not (stats["c2s"]["dropped"] and stats["s2c"]["dropped"]):
        h.fail("relay did not drop in both directions: the test did not exercise loss")


def test_transfercorruption(h: Harness, pair: Pair):
    stats = _transfer_through_relay(h, pair, LOSS_TRANSFER_BYTES, corrupt=0.02)
    if not (stats["c2s"]["corrupted"] and stats["s2c"]["corrupted"]):
        h.fail("relay did not corrupt in both directions: the test did not exercise it")


def test_blackhole(h: Harness, pair: Pair):
    # The outage starts once 1.5 MB went through (a byte trigger, so it lands
    # mid-transfer however fast the peers are) and lasts 2 s.
    stats = _transfer_through_relay(h, pair, MIGRATION_TRANSFER_BYTES,
                                    blackhole=("1500000B", 2.0))
    if stats["c2s"]["blackholed"] + stats["s2c"]["blackholed"] == 0:
        h.fail("no datagram fell into the blackhole: the outage did not hit the transfer")


def _check_rebind(h: Harness, stats: dict) -> None:
    rebinds = [e for e in stats["events"] if e["event"].startswith("rebind")]
    if len(rebinds) != 1:
        h.fail(f"expected exactly one rebind, relay reports {rebinds}")
    ev = rebinds[0]
    after_c2s = stats["c2s"]["forwarded"] - ev["c2s_forwarded"]
    after_s2c = stats["s2c"]["forwarded"] - ev["s2c_forwarded"]
    if after_c2s < 10 or after_s2c < 10:
        h.fail(f"too little traffic on the new path after the rebind "
               f"(c2s={after_c2s}, s2c={after_s2c} datagrams)")


def test_rebind_port(h: Harness, pair: Pair):
    stats = _transfer_through_relay(h, pair, MIGRATION_TRANSFER_BYTES,
                                    rebind_port_at="2000000B")
    _check_rebind(h, stats)


def test_rebind_addr(h: Harness, pair: Pair):
    stats = _transfer_through_relay(h, pair, MIGRATION_TRANSFER_BYTES,
                                    rebind_addr_at="2000000B", rebind_addr="127.0.0.2")
    _check_rebind(h, stats)
