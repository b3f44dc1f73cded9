// Sparklines of each node's raft log counters from /v1/cluster: writes per
// second and mean commit time between two polls.
import { h, fill } from "./dom.js";

const svgNS = "http://www.w3.org/2000/svg";
const keep = 60; // points: two minutes at one poll every two seconds

export class Sparks {
  constructor(el) {
    this.el = el;
    this.history = new Map(); // node id → [{t, writes, commits, meanCommitMillis, rate, latency}]
  }

  // record adds a node's counters seen at time t (ms).
  record(node, view, t) {
    const log = view && view.raftLog;
    if (!log) return;
    let points = this.history.get(node) || [];
    const prev = points[points.length - 1];
    if (prev && (log.writes < prev.writes || log.commits < prev.commits)) points = []; // the node restarted
    const last = points[points.length - 1];
    const p = { t, writes: log.writes, commits: log.commits, meanCommitMillis: log.meanCommitMillis, rate: 0, latency: 0 };
    if (last && t > last.t) {
      p.rate = ((log.writes - last.writes) * 1000) / (t - last.t);
      const commits = log.commits - last.commits;
      if (commits > 0) p.latency = (log.meanCommitMillis * log.commits - last.meanCommitMillis * last.commits) / commits;
    }
    points.push(p);
    this.history.set(node, points.slice(-keep));
  }

  render(nodes) {
    fill(this.el, nodes.map((id) => {
      const points = (this.history.get(id) || []).slice(1);
      const last = points[points.length - 1];
      return h("div", { class: "spark", "data-node": id },
        h("h4", {}, id),
        points.length === 0
          ? h("p", { class: "muted" }, "no readings of the shared raft log yet")
          : [
            line(points.map((p) => p.rate), "tput", `${id}: raft log writes per second`),
            h("p", {}, `${last.rate.toFixed(1)} writes/s · peak ${peak(points, "rate").toFixed(1)}`),
            line(points.map((p) => p.latency), "lat", `${id}: mean log commit time`),
            h("p", {}, `${last.latency.toFixed(2)} ms per commit · peak ${peak(points, "latency").toFixed(2)}`),
          ]);
    }));
  }
}

const peak = (points, key) => Math.max(...points.map((p) => p[key]));

function line(values, cls, label) {
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${keep} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${i + keep - values.length},${(38 - (v / max) * 36).toFixed(1)}`);
  const pl = document.createElementNS(svgNS, "polyline");
  pl.setAttribute("class", cls);
  pl.setAttribute("points", pts.join(" "));
  svg.appendChild(pl);
  return svg;
}
