"""Kernel MPTCP on the lab's own WANs, for the comparison the lab prints beside tquic's figures.

The MPTCP endpoints are the router and the VPS, as OpenMPTCProuter deploys it (its router and VPS
terminate the MPTCP connection; a LAN host's own TCP is a single address and cannot open
subflows): `mptcpize run iperf3` in the router namespace sends to the VPS's core address, the
kernel's in-kernel path manager opens one subflow per WAN (`ip mptcp endpoint ... subflow`, with
source-address routing so each subflow leaves by its own WAN), over the same emulated or shaped
links and in the same direction (router -> internet) as the tunnel's transfer. The tunnel stays
up but idle meanwhile. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

import lab as L

PORT = 5301


@dataclass
class MPTCPRun:
    iperf: "L.IperfResult"
    wan_bytes: dict[str, int]  # bytes each WAN sent during the transfer
    warmup_s: float

    @property
    def mbps(self) -> float:
        return self.iperf.mbps_between(self.warmup_s, float("inf"))

    def shares(self) -> str:
        total = sum(self.wan_bytes.values()) or 1
        return ", ".join(f"{w} {b / 1e6:5.1f} MB {100 * b / total:3.0f} %" for w, b in self.wan_bytes.items())


def configure(lab: "L.Lab") -> None:
    """Subflow endpoints on every WAN of the router, each with its own routing table so a subflow
    bound to WAN K's address leaves by WAN K (the main table's default route is wan1's)."""
    n = lab.wans
    for k in range(1, n + 1):
        address, gateway = f"10.10{k}.0.2", f"10.10{k}.0.1"
        lab.x("rtr", "ip", "rule", "add", "from", address, "table", str(100 + k))
        lab.x("rtr", "ip", "route", "replace", "default", "via", gateway, "dev", f"wan{k}", "table", str(100 + k))
        lab.x("rtr", "ip", "mptcp", "endpoint", "add", address, "dev", f"wan{k}", "subflow")
    for node in ("rtr", "vps"):
        lab.x(node, "ip", "mptcp", "limits", "set", "subflow", str(n), "add_addr_accepted", str(n))


def transfer(lab: "L.Lab", seconds: float, warmup_s: float) -> MPTCPRun:
    """One MPTCP iperf3 transfer router -> VPS for `seconds`; its receiver's rate after warmup_s."""
    configure(lab)
    server = lab.spawn("vps", "mptcp-iperf3-server", "mptcpize", "run", "iperf3", "-s", "-1", "-J", "-i", "0.1",
                       "-p", str(PORT))
    lab.wait_for(lambda: f":{PORT} " in lab.x("vps", "ss", "-Hltn", timeout=5).stdout, 5, "the MPTCP iperf3 server", proc=server)
    wans = [f"wan{k}" for k in range(1, lab.wans + 1)]
    before = {w: lab.link_stats("rtr", w).get("tx_bytes", 0) for w in wans}
    client = lab.spawn("rtr", "mptcp-iperf3", "mptcpize", "run", "iperf3", "-c", L.VPS_CORE, "-p", str(PORT),
                       "-t", str(seconds), "-i", "0.1", "--json", "--get-server-output", "--connect-timeout", "3000",
                       *lab.tcp.iperf3_args())
    result = lab.iperf3_result(client, seconds)
    after = {w: lab.link_stats("rtr", w).get("tx_bytes", 0) for w in wans}
    return MPTCPRun(iperf=result, wan_bytes={w: after[w] - before[w] for w in wans}, warmup_s=warmup_s)
