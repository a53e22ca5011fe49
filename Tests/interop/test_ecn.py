"""ECN over real UDP sockets (RFC 9000 §13.4): tquic-peer marks 1-RTT datagrams ECT(0) with an
IP_TOS / IPV6_TCLASS control message and reads each received datagram's codepoint with
IP_RECVTOS / IPV6_RECVTCLASS. Loopback keeps the marks, so between two tquic-peers every path's
validation must end "capable". aioquic neither reads the codepoints nor sends ACK_ECN, so against
it validation must fail and the connection carry on without ECN (RFC 9000 §13.4.2.1).

The client reports each path at exit on stderr:
`info: path N local=... state=... packets sent=N received=N ... ecn=STATE`.
"""

import re

import pytest

TIMEOUT = 30
PATH_LINE = re.compile(r"info: path (\d+) local=(\S+) state=(\S+) packets sent=(\d+) received=(\d+)\b.* ecn=(\S+)$",
                       re.MULTILINE)


def _ecn_states(stderr: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(6) for m in PATH_LINE.finditer(stderr)}


@pytest.mark.parametrize("host,paths", [
    ("127.0.0.1", []),
    ("127.0.0.1", ["127.0.0.2"]),
    ("::1", []),
], ids=["ipv4", "ipv4-two-paths", "ipv6"])
def test_ecn_validates_over_loopback_udp(h, host, paths):
    srv = h.server("tquic", host=host)
    args = [a for p in paths for a in ("--path", p)] + ["--download-bytes", "2000000"]
    res = h.client("tquic", srv.addr, args, timeout=TIMEOUT)
    h.expect_success(res, lines=["stream: 2000000 bytes echoed"], servers=[srv])
    states = _ecn_states(res.stderr)
    expected = list(range(len(paths) + 1))
    if sorted(states) != expected:
        h.fail(f"expected ECN states of paths {expected} in the client's report, got {states}")
    not_capable = {pid: s for pid, s in states.items() if s != "capable"}
    if not_capable:
        h.fail(f"ECN did not validate over loopback: {not_capable}")


def test_ecn_falls_back_against_aioquic(h):
    # aioquic acknowledges our ECT(0) packets with plain ACK frames: validation fails, the
    # client stops marking, and the transfer completes anyway.
    srv = h.server("aioquic")
    res = h.client("tquic", srv.addr, ["--download-bytes", "2000000"], timeout=TIMEOUT)
    h.expect_success(res, lines=["stream: 2000000 bytes echoed"], servers=[srv])
    states = _ecn_states(res.stderr)
    if states.get(0) != "failed":
        h.fail(f"expected path 0 to end ecn=failed against aioquic, got {states}")
