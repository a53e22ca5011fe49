"""tquicd's /metrics and dashboard, seen from inside a lab namespace: a Prometheus-text scrape
parsed into series, and the dashboard page loaded in headless Chromium (Debian's package), its
DOM read after a few seconds of live updates and a screenshot taken. Used by the lab's profile
run (its RESULT line's metrics_paths= and dashboard=) and by the end-to-end tests."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lab as L

GRAFANA = L.REPO / "grafana" / "tquic-dashboard.json"

METRICS_PORT = L.METRICS_PORT
SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    """One /metrics answer: series (name, sorted labels) -> value, and the # TYPE of each name."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def parse(text: str) -> "Scrape":
        s = Scrape()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(None, 3)
                s.types[name] = kind
            elif line and not line.startswith("#"):
                m = SERIES.match(line)
                if not m:
                    raise L.LabError(f"/metrics: not a Prometheus text line: {line!r}")
                labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
                s.values[(m.group(1), labels)] = float(m.group(4))
        return s

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, tuple(sorted(labels.items()))))

    def label_values(self, name: str, label: str) -> list[str]:
        return sorted({dict(k[1]).get(label, "") for k in self.values if k[0] == name})

    @property
    def names(self) -> set[str]:
        return {k[0] for k in self.values}


def fetch(lab: L.Lab, node: str, path: str, port: int = METRICS_PORT, timeout: float = 5) -> str:
    """GET http://127.0.0.1:PORT/PATH from inside namespace `node`."""
    code = ("import sys, urllib.request\n"
            f"r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout={timeout})\n"
            "sys.stdout.write(r.read().decode())")
    return lab.x(node, "python3", "-c", code, timeout=timeout + 5).stdout


def scrape(lab: L.Lab, node: str, port: int = METRICS_PORT) -> Scrape:
    return Scrape.parse(fetch(lab, node, "/metrics", port))


def grafana_metric_names(path: Path = GRAFANA) -> set[str]:
    """Every tquic_* metric the shipped Grafana dashboard queries (panel targets and variables)."""
    d = json.loads(path.read_text())
    exprs = [t["expr"] for panel in d["panels"] for t in panel.get("targets", [])]
    exprs += [v.get("query", "") for v in d.get("templating", {}).get("list", []) if isinstance(v.get("query"), str)]
    return {m for e in exprs for m in re.findall(r"\b(tquic_[a-z0-9_]+)", e)}


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class DashboardCheck:
    ok: bool
    detail: str
    screenshot: Path | None = None


def check_dashboard(lab: L.Lab, node: str, paths: list[str], directory: Path, port: int = METRICS_PORT,
                    seconds: int = 6) -> DashboardCheck:
    """Loads the dashboard for `seconds` of live updates in headless Chromium inside `node`;
    ok when the page shows a row and a throughput line for every one of `paths`, has taken at
    least three samples, and its figures changed between them (data-changes)."""
    browser = chromium()
    if browser is None:
        return DashboardCheck(False, "chromium is not installed (scripts/setup.sh installs it)")
    url = f"http://127.0.0.1:{port}/"
    # As root Chromium needs --no-sandbox; the profile directory keeps it off $HOME. Virtual time
    # lets the page's timers run while the fetches it makes are answered by tquicd in real time.
    common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
              f"--user-data-dir={directory / 'chromium-profile'}", f"--virtual-time-budget={seconds * 1000}"]
    dom = lab.x(node, *common, "--dump-dom", url, timeout=seconds + 60).stdout
    shot = directory / "dashboard.png"
    lab.x(node, *common, "--window-size=1280,1000", f"--screenshot={shot}", url, timeout=seconds + 60, check=False)
    (directory / "dashboard.html").write_text(dom)
    samples = int((re.search(r'data-samples="(\d+)"', dom) or [0, 0])[1])
    changes = int((re.search(r'data-changes="(\d+)"', dom) or [0, 0])[1])
    page = dom.split("<script", 1)[0]  # the rendered page, not the script's templates
    rows = set(re.findall(r'<tr data-path="([^"]+)"', page))
    rate_chart = page.split('id="rate"', 1)[1].split("</svg>", 1)[0] if 'id="rate"' in page else ""
    lines = set(re.findall(r'data-path="([^"]+)"', rate_chart))
    missing_rows = [p for p in paths if p not in rows]
    missing_lines = [p for p in paths if p not in lines]
    problems = []
    if samples < 3:
        problems.append(f"only {samples} samples taken")
    if changes < 2:
        problems.append(f"the figures changed {changes} times")
    if missing_rows:
        problems.append(f"no table row for {missing_rows}")
    if missing_lines:
        problems.append(f"no throughput line for {missing_lines}")
    detail = f"{samples} samples, figures changed {changes} times, rows {sorted(rows)}, throughput lines {sorted(lines)}"
    return DashboardCheck(not problems, "; ".join(problems) or detail, shot if shot.exists() else None)
