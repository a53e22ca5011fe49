"""Fixtures and process helpers for the TQUIC <-> aioquic interop suite.

Every external process is started in its own process group with its output
sent to files under the test's tmp_path, waited for with a hard timeout and
killed in teardown no matter how the test ended. Failure messages include
the tail of every process's stdout/stderr and the relay's counters.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parents[1]
AIOQUIC_PEER = INTEROP_DIR / "aioquic_peer.py"
DEFAULT_TQUIC_PEER = ".build/debug/tquic-peer"

sys.path.insert(0, str(INTEROP_DIR))
from relay import Relay  # noqa: E402

SERVER_START_TIMEOUT = 20.0
OUTPUT_TAIL = 6000


def tquic_peer_path() -> Path:
    """$TQUIC_PEER, relative paths resolved against the cwd, then the repo root."""
    value = os.environ.get("TQUIC_PEER", DEFAULT_TQUIC_PEER)
    path = Path(value)
    if path.is_absolute():
        return path
    if (Path.cwd() / path).exists():
        return (Path.cwd() / path).resolve()
    return (REPO_ROOT / path).resolve()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "control: aioquic client against aioquic server (proves the harness)")
    config.addinivalue_line("markers", "tquic: involves our tquic-peer binary")


def pytest_report_header(config) -> list[str]:
    path = tquic_peer_path()
    state = "found" if path.exists() else "MISSING: tquic cases will fail"
    try:
        import aioquic

        aq = aioquic.__version__
    except Exception as exc:  # pragma: no cover
        aq = f"not importable ({exc})"
    return [f"tquic-peer: {path} ({state})", f"aioquic: {aq}"]


# ---------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """Throwaway ECDSA P-256 CA and a server certificate for
    localhost / 127.0.0.1 / ::1 (keys in PKCS#8 PEM)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line tool is required to generate test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "ca.key", cwd=d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30",
             "-subj", "/CN=TQUIC interop test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", "ca.pem", cwd=d)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "key.pem", cwd=d)
    _openssl("req", "-new", "-key", "key.pem", "-subj", "/CN=localhost",
             "-out", "server.csr", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "30", "-sha256", "-extfile", "server.ext",
             "-out", "cert.pem", cwd=d)
    return Pki(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")


# ---------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free on `host` now and was not handed out before in
    this session (the kernel picks it; a tiny reuse race remains)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free UDP port")


@pytest.fixture
def udp_port():
    return free_udp_port


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.started = time.monotonic()
        self.elapsed: float | None = None
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            cwd=workdir,
            env=env,
            start_new_session=True,  # own process group: killpg reaches children
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def lines(self) -> list[str]:
        return [line.rstrip("\r") for line in self.stdout.splitlines()]

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match | None:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                m = regex.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline or not self.alive():
                # one last look: the process may have printed and exited
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                return None
            time.sleep(0.05)

    def wait(self, timeout: float) -> int | None:
        """Wait for exit; on timeout kill the process group and return None."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.elapsed = time.monotonic() - self.started
        return rc

    def kill(self) -> None:
        if self.popen.poll() is None:
            for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    def describe(self) -> str:
        rc = self.popen.poll()
        state = "running" if rc is None else f"exit {rc}"
        if self.elapsed is not None:
            state += f" after {self.elapsed:.1f}s"
        return (
            f"----- {self.name} ({state}): {' '.join(map(str, self.argv))}\n"
            f"--- stdout:\n{_tail(self.stdout)}\n--- stderr:\n{_tail(self.stderr)}"
        )


def _tail(text: str) -> str:
    if len(text) <= OUTPUT_TAIL:
        return text.rstrip()
    return "[...]\n" + text[-OUTPUT_TAIL:].rstrip()


@dataclass
class Server:
    proc: Proc
    kind: str
    host: str
    port: int

    @property
    def addr(self) -> str:
        return hostport(self.host, self.port)

    def url(self, name: str) -> str:
        return f"https://{self.addr}/{name}"


@dataclass
class ClientResult:
    proc: Proc
    rc: int | None
    timed_out: bool

    @property
    def lines(self) -> list[str]:
        return self.proc.lines

    @property
    def stderr(self) -> str:
        return self.proc.stderr


@dataclass
class Pair:
    client: str
    server: str

    @property
    def id(self) -> str:
        return f"{self.client}-{self.server}"


class Harness:
    """Starts peers and relays for one test and always cleans them up."""

    def __init__(self, request, tmp_path: Path, pki: Pki):
        self.request = request
        self.tmp = tmp_path
        self.pki = pki
        self.procs: list[Proc] = []
        self.relays: list[Relay] = []
        self._names: dict[str, int] = {}
        self.seed = int(os.environ.get("INTEROP_SEED", zlib.crc32(request.node.nodeid.encode())))

    # -- commands -----------------------------------------------------------

    def peer_argv(self, kind: str) -> list[str]:
        if kind == "aioquic":
            return [sys.executable, str(AIOQUIC_PEER)]
        if kind == "tquic":
            path = tquic_peer_path()
            if not path.exists():
                pytest.fail(
                    f"tquic-peer binary not found at {path}. Build it with "
                    f"`swift build --product tquic-peer` or point TQUIC_PEER at it "
                    f"(relative paths are resolved against the cwd, then {REPO_ROOT}).",
                    pytrace=False,
                )
            if not os.access(path, os.X_OK):
                pytest.fail(f"tquic-peer at {path} is not executable", pytrace=False)
            return [str(path)]
        raise ValueError(kind)

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}{n + 1}"

    def start(self, name: str, argv: list[str]) -> Proc:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("SSLKEYLOGFILE", str(self.tmp / "keys.log"))
        proc = Proc(self._unique(name), argv, self.tmp, env=env)
        self.procs.append(proc)
        return proc

    # -- peers ----------------------------------------------------------------

    def server(self, kind: str, *, host: str = "127.0.0.1", retry: bool = False,
               www: Path | None = None, extra: list[str] = ()) -> Server:
        port = free_udp_port(host)
        argv = self.peer_argv(kind) + [
            "server", "--listen", hostport(host, port),
            "--cert", str(self.pki.cert), "--key", str(self.pki.key),
        ]
        if retry:
            argv.append("--retry")
        if www is not None:
            argv += ["--www", str(www)]
        argv += list(extra)
        proc = self.start(f"server-{kind}", argv)
        m = proc.wait_for_line(r"^listening on (\S+)$", SERVER_START_TIMEOUT)
        if m is None:
            if not proc.alive():
                self.fail(f"{kind} server exited with status {proc.returncode} "
                          f"without printing 'listening on HOST:PORT'")
            self.fail(f"{kind} server did not print 'listening on HOST:PORT' within "
                      f"{SERVER_START_TIMEOUT:.0f}s")
        return Server(proc=proc, kind=kind, host=host, port=port)

    def client(self, kind: str, connect: str, args: list[str], *, timeout: float = 30.0,
               ca: bool = True) -> ClientResult:
        argv = self.peer_argv(kind) + ["client", "--connect", connect]
        if ca:
            argv += ["--ca", str(self.pki.ca)]
        argv += [str(a) for a in args] + ["--timeout", f"{timeout:g}"]
        proc = self.start(f"client-{kind}", argv)
        rc = proc.wait(timeout + 15.0)  # hard limit on top of the client's own
        return ClientResult(proc=proc, rc=rc, timed_out=rc is None)

    def relay(self, upstream: Server, **impairments) -> Relay:
        relay = Relay(("127.0.0.1" if ":" not in upstream.host else "::1", 0),
                      (upstream.host, upstream.port), seed=self.seed, **impairments)
        relay.start()
        self.relays.append(relay)
        return relay

    # -- checks -----------------------------------------------------------------

    def dump(self) -> str:
        parts = [f"seed={self.seed} (set INTEROP_SEED to override)"]
        for relay in self.relays:
            parts.append("----- relay stats:\n" + json.dumps(relay.stats(), indent=1))
            if relay.error is not None:
                parts.append(f"relay thread crashed: {relay.error!r}")
        parts += [p.describe() for p in self.procs]
        return "\n".join(parts)

    def fail(self, msg: str):
        pytest.fail(f"{msg}\n{self.dump()}", pytrace=False)

    def expect_success(self, res: ClientResult, *, lines: list[str] = (),
                       servers: list[Server] = ()) -> None:
        """Client exited 0, printed every expected line, and servers survived."""
        if res.timed_out:
            self.fail(f"{res.proc.name} hung past its own --timeout and was killed")
        if res.rc != 0:
            self.fail(f"{res.proc.name} exited with status {res.rc}")
        got = res.lines
        missing = [line for line in lines if line not in got]
        if missing:
            self.fail(f"{res.proc.name} did not print {missing!r}")
        for srv in servers:
            self.expect_server_healthy(srv)

    def expect_server_healthy(self, srv: Server) -> None:
        if not srv.proc.alive():
            self.fail(f"{srv.proc.name} died (status {srv.proc.returncode})")
        if srv.kind == "aioquic" and "Traceback" in srv.proc.stderr:
            self.fail(f"{srv.proc.name} logged a Python exception")

    def expect_server_line(self, srv: Server, pattern: str, timeout: float = 5.0) -> re.Match:
        m = srv.proc.wait_for_line(pattern, timeout)
        if m is None:
            self.fail(f"{srv.proc.name} did not print a line matching {pattern!r}")
        return m

    def cleanup(self) -> None:
        errors = []
        for proc in reversed(self.procs):
            try:
                proc.kill()
            except Exception as exc:  # keep cleaning up the rest
                errors.append(exc)
        for relay in self.relays:
            try:
                relay.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def h(request, tmp_path, pki):
    harness = Harness(request, tmp_path, pki)
    try:
        yield harness
    finally:
        harness.cleanup()


DIRECTIONS = [
    pytest.param(Pair("tquic", "aioquic"), id="tquic-aioquic", marks=pytest.mark.tquic),
    pytest.param(Pair("aioquic", "tquic"), id="aioquic-tquic", marks=pytest.mark.tquic),
    pytest.param(Pair("aioquic", "aioquic"), id="aioquic-aioquic", marks=pytest.mark.control),
]


@pytest.fixture(params=DIRECTIONS)
def pair(request) -> Pair:
    """client-server: which implementation plays which role."""
    return request.param
