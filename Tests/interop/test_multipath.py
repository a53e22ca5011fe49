"""Multipath (draft-ietf-quic-multipath) between two tquic-peers on loopback, and fallback to a
single path against aioquic, which lacks the extension.

The client opens one extra path per --path address (127.0.0.2 and 127.0.0.3 are loopback
addresses on Linux) once the handshake is confirmed; traffic is spread over all validated paths.
"""

import re

import pytest

from test_interop import check_downloads, make_www

SMALL_TIMEOUT = 30


def _path_stats(stderr: str) -> dict[int, dict[str, str]]:
    stats = {}
    for m in re.finditer(r"info: path (\d+) local=(\S+) state=(\S+) packets sent=(\d+) received=(\d+)", stderr):
        stats[int(m.group(1))] = {"local": m.group(2), "state": m.group(3), "sent": int(m.group(4)),
                                  "received": int(m.group(5))}
    return stats


def test_multipath_transfer_uses_every_path(h):
    srv = h.server("tquic")
    res = h.client("tquic", srv.addr,
                   ["--path", "127.0.0.2", "--path", "127.0.0.3", "--stream", "hello",
                    "--download-bytes", "3000000", "--datagram", "over many paths"],
                   timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello", "stream: 3000000 bytes echoed",
                                 "datagram: over many paths"], servers=[srv])
    h.expect_server_line(srv, r"^path: .* id=1 remote=127\.0\.0\.2:\d+ validated")
    h.expect_server_line(srv, r"^path: .* id=2 remote=127\.0\.0\.3:\d+ validated")
    stats = _path_stats(res.stderr)
    if sorted(stats) != [0, 1, 2]:
        h.fail(f"expected paths 0, 1 and 2 in the client's report, got {stats}")
    for pid, st in stats.items():
        # Each path must have carried a real share of the ~4,500 packets of the transfer.
        if st["sent"] < 300 or st["received"] < 300:
            h.fail(f"path {pid} carried too little traffic: {st}")


def test_multipath_falls_back_to_one_path_against_aioquic(h):
    srv = h.server("aioquic")
    res = h.client("tquic", srv.addr, ["--path", "127.0.0.2", "--stream", "hello",
                                       "--download-bytes", "300000"], timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: hello", "stream: 300000 bytes echoed"], servers=[srv])
    if "does not support multipath" not in res.stderr:
        h.fail("client should report the single-path fallback")


@pytest.mark.parametrize("cc", ["cubic", "bbr", "copa", "westwood"])
def test_every_congestion_controller_carries_a_multipath_transfer(h, cc):
    # Real UDP on loopback: each controller (and OLIA coupling for the loss-based ones) runs the
    # connection's three paths through a 3 MB echo against a tquic server.
    srv = h.server("tquic")
    extra = ["--coupling", "olia"] if cc in ("cubic", "westwood") else []
    res = h.client("tquic", srv.addr,
                   ["--cc", cc, *extra, "--path", "127.0.0.2", "--path", "127.0.0.3",
                    "--download-bytes", "3000000"], timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: 3000000 bytes echoed"], servers=[srv])


def test_tquic_client_with_bbr_against_aioquic(h):
    srv = h.server("aioquic")
    res = h.client("tquic", srv.addr, ["--cc", "bbr", "--download-bytes", "2000000"], timeout=SMALL_TIMEOUT)
    h.expect_success(res, lines=["stream: 2000000 bytes echoed"], servers=[srv])


def test_multipath_hq_interop_downloads_use_every_path(h):
    # The hq-interop (HTTP/0.9) downloads spread over the paths like the echo does.
    www = h.tmp / "www"
    files = make_www(www, [1_000_000, 1_000_000, 500_000, 20_000])
    downloads = h.tmp / "downloads"
    srv = h.server("tquic", www=www)
    urls = [srv.url(name) for name in files]
    res = h.client("tquic", srv.addr, ["--path", "127.0.0.2", "--path", "127.0.0.3",
                                       "--get", *urls, "--downloads", downloads], timeout=SMALL_TIMEOUT)
    h.expect_success(res, servers=[srv])
    check_downloads(h, files, downloads)
    stats = _path_stats(res.stderr)
    if sorted(stats) != [0, 1, 2]:
        h.fail(f"expected paths 0, 1 and 2 in the client's report, got {stats}")
    for pid, st in stats.items():
        # ~2,100 packets of downloads: each path must have carried a real share of them.
        if st["received"] < 200:
            h.fail(f"path {pid} carried too little of the downloads: {st}")
