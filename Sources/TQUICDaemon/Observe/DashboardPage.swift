// The dashboard tquicd serves at / beside /metrics: one self-contained page (no external script,
// style or font: a VPS behind a strict firewall reaches no CDN) that polls /status.json every
// second (after /history.json's last five minutes) and draws, per path, the throughput, RTT and loss of the last five minutes, with the
// paths' states, the scheduler and congestion controller, and the tenants on a VPS.

enum DashboardPage {
    static let html = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>TQUIC dashboard</title>
        <style>
          body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em; color: #222; background: #fafafa; }
          h1 { font-size: 1.3em; margin: 0 0 .3em; }
          #summary { margin-bottom: 1em; color: #444; }
          .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 1em; }
          .chart { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5em .8em; }
          .chart h2 { font-size: 1em; margin: 0 0 .3em; }
          svg { width: 100%; height: 170px; }
          table { border-collapse: collapse; margin-top: 1em; background: #fff; }
          th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
          th:first-child, td:first-child { text-align: left; }
          .up { color: #137333; } .down { color: #b3261e; }
          .legend span { margin-right: 1em; white-space: nowrap; }
          .swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: middle; }
        </style>
        </head>
        <body>
        <h1>TQUIC <span id="role"></span></h1>
        <div id="summary">waiting for the first figures…</div>
        <div class="legend" id="legend"></div>
        <div class="charts">
          <div class="chart"><h2>Throughput sent (Mbit/s)</h2><svg id="rate" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
          <div class="chart"><h2>RTT (ms)</h2><svg id="rtt" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
          <div class="chart"><h2>Loss (%)</h2><svg id="loss" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
        </div>
        <table id="paths"><thead><tr><th>path</th><th>state</th><th>backup</th><th>RTT ms</th><th>min RTT ms</th><th>cwnd KB</th><th>rate Mbit/s</th><th>loss %</th><th>sent MB</th><th>lost pkts</th></tr></thead><tbody></tbody></table>
        <table id="tenants" hidden><thead><tr><th>tenant</th><th>connected</th><th>from</th><th>paths</th><th>to tenant MB</th><th>from tenant MB</th><th>dropped</th></tr></thead><tbody></tbody></table>
        <script>
        "use strict";
        const HISTORY = 300;                       // samples: five minutes at one a second
        const COLORS = ["#1a73e8", "#e8710a", "#188038", "#a142f4", "#d93025", "#12b5cb", "#f9ab00", "#5f6368"];
        const series = new Map();                  // path key -> {color, rate: [], rtt: [], loss: [], lastBytes, lastTime}
        let samples = 0;
        let changes = 0;                           // samples in which some path's figures moved

        function pathsOf(s) {
          if (s.role === "router") return (s.paths || []).map(p => [p.interface || String(p.pathID), p]);
          return (s.tenants || []).flatMap(t => (t.paths || []).map(p => [t.name + "/" + p.pathID, p]));
        }

        function push(list, v) { list.push(v); if (list.length > HISTORY) list.shift(); }

        let lastSampledAt = null;

        // One sample, timed by tquicd's own clock (sampledAtSeconds): the page's clock may differ, and
        // a sample seen twice counts once.
        function record(s) {
          const at = s.sampledAtSeconds;
          if (at === undefined || at === null || at === lastSampledAt) return false;
          lastSampledAt = at;
          const now = at * 1000;
          samples++;
          let moved = false;
          for (const [key, p] of pathsOf(s)) {
            let e = series.get(key);
            if (!e) { e = {color: COLORS[series.size % COLORS.length], rate: [], rtt: [], loss: [], lastBytes: null, lastTime: null}; series.set(key, e); }
            const bytes = p.bytesSent ?? null;
            let mbps = null;
            if (bytes !== null && e.lastBytes !== null && now > e.lastTime && bytes >= e.lastBytes) mbps = (bytes - e.lastBytes) * 8 / 1e6 / ((now - e.lastTime) / 1000);
            e.lastBytes = bytes; e.lastTime = now;
            push(e.rate, mbps); push(e.rtt, p.rttMs ?? null); push(e.loss, p.lossRate != null ? p.lossRate * 100 : null);
            if (mbps !== null && mbps > 0) moved = true;
          }
          if (moved) changes++;
          return true;
        }

        function draw(id, field) {
          const svg = document.getElementById(id);
          let max = 0;
          for (const e of series.values()) for (const v of e[field]) if (v !== null && v > max) max = v;
          max = max > 0 ? max * 1.1 : 1;
          let out = "";
          for (let i = 1; i <= 3; i++) {
            const y = 160 - i * 50;
            out += `<line x1="0" x2="400" y1="${y}" y2="${y}" stroke="#eee"/><text x="2" y="${y - 2}" font-size="10" fill="#888">${(max * i / 3).toFixed(max < 3 ? 2 : 0)}</text>`;
          }
          for (const [key, e] of series) {
            const values = e[field], n = values.length;
            let d = "";
            values.forEach((v, i) => {
              if (v === null) return;
              const x = 400 - (n - 1 - i) * 400 / (HISTORY - 1), y = 160 - v / max * 150;
              d += (d ? " L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
            });
            if (d) out += `<path d="${d}" fill="none" stroke="${e.color}" stroke-width="1.5" data-path="${key}"/>`;
          }
          svg.innerHTML = out;
        }

        function cell(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

        function render(s) {
          document.getElementById("role").textContent = s.role === "router" ? "router" : "VPS";
          const connected = s.role === "router" ? (s.connected ? "connected to " + s.server : "connecting to " + s.server)
                                                : (s.tenants || []).filter(t => t.connected).length + "/" + (s.tenants || []).length + " tenants connected";
          document.getElementById("summary").textContent = `${connected} · scheduler ${s.scheduler} · congestion ${s.congestion} · ${series.size} paths · updated ${new Date().toLocaleTimeString()}`;
          document.getElementById("legend").innerHTML = [...series].map(([k, e]) => `<span><i class="swatch" style="background:${e.color}"></i>${k}</span>`).join("");
          draw("rate", "rate"); draw("rtt", "rtt"); draw("loss", "loss");
          const rows = pathsOf(s).map(([key, p]) => {
            const up = (p.up ?? true) && p.state === "active" && !p.dead;
            return `<tr data-path="${key}"><td>${key}</td><td class="${up ? "up" : "down"}">${p.state}${p.dead ? " (dead)" : ""}</td><td>${p.backup ? "yes" : "no"}</td>` +
              `<td>${cell(p.rttMs, 1)}</td><td>${cell(p.minRttMs, 1)}</td><td>${cell(p.congestionWindow != null ? p.congestionWindow / 1024 : null, 0)}</td>` +
              `<td>${cell(p.deliveryRateBitsPerSecond != null ? p.deliveryRateBitsPerSecond / 1e6 : null, 1)}</td><td>${cell(p.lossRate != null ? p.lossRate * 100 : null, 2)}</td>` +
              `<td>${cell(p.bytesSent != null ? p.bytesSent / 1e6 : null, 1)}</td><td>${cell(p.packetsLost, 0)}</td></tr>`;
          });
          document.querySelector("#paths tbody").innerHTML = rows.join("");
          const tenants = document.getElementById("tenants");
          tenants.hidden = s.role !== "vps";
          if (s.role === "vps") {
            tenants.querySelector("tbody").innerHTML = (s.tenants || []).map(t => {
              const dropped = t.droppedSourceNotAllowed + t.droppedNotConnected + t.droppedQueueFull + t.droppedCoDel + t.droppedTooBig;
              return `<tr><td>${t.name}</td><td class="${t.connected ? "up" : "down"}">${t.connected ? "yes" : "no"}</td><td>${t.remote || "–"}</td><td>${(t.paths || []).length}</td>` +
                `<td>${cell(t.bytesSent / 1e6, 1)}</td><td>${cell(t.bytesDelivered / 1e6, 1)}</td><td>${dropped}</td></tr>`;
            }).join("");
          }
          document.body.dataset.samples = String(samples);
          document.body.dataset.changes = String(changes);
        }

        async function tick() {
          try {
            const r = await fetch("status.json", {cache: "no-store"});
            const s = await r.json();
            record(s);
            render(s);
          } catch (e) {
            document.getElementById("summary").textContent = "tquicd does not answer: " + e;
          }
        }

        // The last five minutes first, then a sample a second.
        async function start() {
          try {
            const r = await fetch("history.json", {cache: "no-store"});
            const history = await r.json();
            for (const s of history) record(s);
            if (history.length) render(history[history.length - 1]);
          } catch (e) { /* the live samples still come */ }
          tick();
          setInterval(tick, 1000);
        }
        start();
        </script>
        </body>
        </html>
        """#
}
