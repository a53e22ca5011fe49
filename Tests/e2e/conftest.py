"""Fixtures of the appliance's end-to-end tests (root): a fresh lab per test, cleaned and checked.
The logs of each test (daemons, iperf3, probes) stay in its pytest tmp_path.

One namespace prefix for the whole session (`e` + pid mod 100000). Each test gets the lab
(`lab`: namespaces not built yet; `tunnel`: 2 WANs at RATE Mbit/s, VPS and tenant A's router
connected). At its end the fixture stops the daemons with SIGTERM and requires each to exit 0
leaving neither TUN nor nftables table, kills what is left, deletes the namespaces and fails the
test if anything of that went wrong. The session ends with the same check for the whole prefix
(test_appliance.py's last test asserts it too). A test's own body is bounded by an alarm
(TEST_SECONDS); every command inside has its own timeout.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab as L  # noqa: E402

PREFIX = L.new_prefix("e")
RATE = L.RATE_MBIT
TEST_SECONDS = 90


@dataclass
class Session:
    prefix: str
    host_before: set  # what leftover_problems already found before the first test (not ours)

    def problems(self) -> list[str]:
        return [p for p in L.leftover_problems(self.prefix) if p not in self.host_before]


class TestTimeout(Exception):
    pass


def pytest_report_header(config):
    return [f"e2e: namespaces {PREFIX}-*, binaries {L.bin_dir()}, {RATE} Mbit/s per WAN"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (network namespaces, TUN, nftables)")
        for item in items:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """The test's body under an alarm: a hang becomes a failure, and the fixtures still clean up."""
    def expired(_signum, _frame):
        raise TestTimeout(f"{item.name} took more than {TEST_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, TEST_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def session(tmp_path_factory):
    """The session's prefix; at the end, nothing of it may be left (and nothing new on the host)."""
    if L.namespaces(PREFIX):  # a crashed run whose pid matched ours
        L.Lab(PREFIX, tmp_path_factory.mktemp("stale"), log=lambda _: None).close()
    s = Session(PREFIX, set(L.leftover_problems(PREFIX)))
    yield s
    problems = s.problems()
    if problems:
        L.kill_namespace_processes(PREFIX)
        for n in L.namespaces(PREFIX):
            L.sh(["ip", "netns", "del", n], timeout=20, check=False)
    assert not problems, f"left after the session: {problems}"


@pytest.fixture
def lab(request, tmp_path, session):
    # tmp_path: pytest keeps the last runs' logs (daemons, iperf3, probes), short enough for sockets.
    the_lab = L.Lab(session.prefix, tmp_path, wans=2, rate_mbit=RATE, log=print)
    yield the_lab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        print(the_lab.diagnostics())
    problems = the_lab.close()
    assert not problems, "cleanup: " + "\n".join(problems)


@pytest.fixture
def tunnel(lab):
    """Two WANs at RATE Mbit/s, the VPS and tenant A's router (wan1, wan2) connected."""
    lab.up()
    lab.start(L.tenant_a())
    return lab
