// The cluster view: every node's /v1/cluster, merged into a members table,
// a shards × nodes grid, moves in flight and a summary. The node that
// served the page is asked for its own view and relays the others'
// (GET /v1/nodes/{id}/cluster), so the page talks to one origin only.
import { api, path } from "./api.js";
import { $, h, fill, ago, banner } from "./dom.js";
import { Sparks } from "./spark.js";
import { transferLeadership, drain } from "./ops.js";

const pollEvery = 2000;
const switchAfter = 3; // failed polls of the serving node before moving to another member

export class ClusterView {
  // onSwitch(member) is called when the serving node stopped answering (or
  // drains) and member is another node to continue on.
  constructor({ onSwitch }) {
    this.onSwitch = onSwitch;
    this.self = null; // the serving node's id
    this.members = [];
    this.views = new Map(); // node id → {view, byShard} or {error}
    this.failures = 0;
    this.admin = false;
    this.sparks = new Sparks($("sparks"));
    this.timer = null;
  }

  setAdmin(admin) {
    this.admin = admin;
    this.render();
  }

  start() {
    if (this.timer) return;
    const loop = async () => {
      await this.poll();
      this.timer = setTimeout(loop, pollEvery);
    };
    this.timer = setTimeout(loop, 0);
  }

  async poll() {
    let own;
    try {
      own = await api("/v1/cluster", { timeout: 4000 });
    } catch (e) {
      if (e.status === 401 || e.status === 403) return;
      this.failures++;
      const others = this.members.filter((m) => m.id !== this.self && m.state === "alive" && !m.draining);
      banner(`${this.self || "This node"} is not answering (${e.message}).` +
        (others.length ? ` Moving to ${others[0].id} after ${switchAfter} failed polls.` : ""), true);
      if (this.failures >= switchAfter && others.length) this.onSwitch(others[0]);
      return;
    }
    if (this.failures > 0) banner("");
    this.failures = 0;
    this.self = own.node;
    $("served-by").textContent = `served by ${own.node}${own.version ? ` (${own.version})` : ""}`;
    this.members = own.members.length ? own.members
      : [{ id: own.node, state: "alive", httpAddr: location.host, draining: false, replicas: own.shards.length }];
    const me = this.members.find((m) => m.id === own.node);
    const views = new Map([[own.node, indexed(own)]]);
    await Promise.all(this.members.filter((m) => m.id !== own.node).map(async (m) => {
      if (m.state === "dead" || m.state === "left") {
        views.set(m.id, { error: m.state });
        return;
      }
      try {
        views.set(m.id, indexed(await api(path("/v1/nodes", m.id, "cluster"), { timeout: 4000 })));
      } catch (e) {
        views.set(m.id, { error: e.message });
      }
    }));
    this.views = views;
    const now = Date.now();
    for (const [id, v] of views) if (v.view) this.sparks.record(id, v.view, now);
    this.render();
    if (me && me.draining) {
      const other = this.members.find((m) => m.id !== own.node && m.state === "alive" && !m.draining);
      if (other) this.onSwitch(other);
    }
  }

  render() {
    if (!this.self) return;
    const nodes = this.members.map((m) => m.id);
    const own = this.views.get(this.self).view;
    const shards = [];
    for (let i = 0; i < own.shardCount; i++) shards.push(this.merged(i));
    const leaders = new Map(nodes.map((n) => [n, 0]));
    for (const s of shards) if (s && s.leader) leaders.set(s.leader, (leaders.get(s.leader) || 0) + 1);
    this.renderSummary(shards, leaders);
    this.renderMembers(leaders);
    this.sparks.render(nodes);
    this.renderGrid(nodes, shards);
    this.renderMoves(shards);
  }

  // merged is shard i as its best-informed node sees it: the leader's own
  // replica, else any replica (highest term), else gossip's leader only.
  merged(i) {
    let best = null;
    let bestRank = -1;
    for (const v of this.views.values()) {
      const s = v.byShard && v.byShard.get(i);
      if (!s) continue;
      const rank = (s.local ? 2 : 0) + (s.local && s.state === "Leader" ? 2 : 0);
      if (rank > bestRank || (rank === bestRank && s.term > best.term)) [best, bestRank] = [s, rank];
    }
    if (!best) return null;
    const replicas = best.replicas.map((r) => {
      const mine = this.views.get(r.id);
      const s = mine && mine.byShard && mine.byShard.get(i);
      const lag = s && s.local ? Math.max(0, best.commitIndex - s.appliedIndex) : null;
      return { ...r, lag };
    });
    return { ...best, replicas, authoritative: best.local };
  }

  renderSummary(shards, leaders) {
    const own = this.views.get(this.self).view;
    const converged = shards.filter((s) => s && s.authoritative && s.converged).length;
    const moves = shards.filter((s) => s && s.move).length;
    const silent = this.members.filter((m) => !(this.views.get(m.id) || {}).view).map((m) => m.id);
    fill($("summary"),
      h("strong", { id: "converged" }, `${converged}/${own.shardCount} shards converged`),
      ` · leaders: ${[...leaders].map(([n, c]) => `${n} ${c}`).join(", ")}`,
      ` · ${moves} move${moves === 1 ? "" : "s"} in flight`,
      silent.length ? h("span", { class: "silent" }, ` · not answering: ${silent.join(", ")}`) : "");
  }

  renderMembers(leaders) {
    fill($("members").tBodies[0], this.members.map((m) => {
      const v = this.views.get(m.id) || {};
      const state = m.draining && m.state === "alive" ? "draining" : m.state;
      return h("tr", { "data-node": m.id },
        h("th", { scope: "row" }, m.id, m.id === this.self ? " (serves this page)" : ""),
        h("td", { class: `state state-${state}` }, state === "draining"
          ? `draining: leads ${leaders.get(m.id) || 0}, holds ${m.replicas ?? "?"} replicas` : state),
        h("td", { class: v.view ? "" : "silent" }, v.view ? "yes" : `no: ${v.error || "unknown"}`),
        h("td", {}, (v.view && v.view.version) || ""),
        h("td", {}, m.httpAddr || ""),
        h("td", { class: "num" }, String(leaders.get(m.id) || 0)),
        h("td", { class: "num" }, String(m.replicas ?? "")),
        h("td", { class: "op" }, this.admin && m.state === "alive" && !m.draining
          ? h("button", { type: "button", class: "drain", "data-node": m.id, onClick: () => drain(m.id, () => this.poll()) }, `Drain ${m.id}`)
          : ""));
    }));
  }

  renderGrid(nodes, shards) {
    const grid = $("grid");
    fill(grid.tHead, h("tr", {},
      h("th", { scope: "col" }, "Shard"),
      nodes.map((n) => h("th", { scope: "col" }, n)),
      h("th", { scope: "col" }, "Leader"), h("th", { scope: "col" }, "Term"),
      h("th", { scope: "col" }, "Sessions"), h("th", { scope: "col" }, "Placement"),
      h("th", { scope: "col", class: "op" }, "Operations")));
    fill(grid.tBodies[0], shards.map((s, i) => {
      if (!s) return h("tr", { "data-shard": i }, h("th", { scope: "row" }, String(i)), h("td", { colspan: nodes.length + 5 }, "no node reports this shard"));
      const voters = s.replicas.filter((r) => r.suffrage === "voter" && r.id !== s.leader).map((r) => r.id);
      return h("tr", { "data-shard": i, class: s.authoritative && !s.converged ? "unconverged" : "" },
        h("th", { scope: "row" }, String(i)),
        nodes.map((n) => cell(s, n)),
        h("td", { class: "leader-name" }, s.leader || "none"),
        h("td", { class: "num" }, String(s.term ?? "")),
        h("td", { class: "num" }, s.authoritative ? String(s.sessions) : ""),
        h("td", {}, !s.authoritative ? "unknown" : s.converged ? "converged" : `wants ${s.desired.join(", ")}`),
        h("td", { class: "op" }, this.admin && voters.length
          ? h("button", { type: "button", class: "transfer", "data-shard": i, onClick: () => transferLeadership(i, s.leader, voters, () => this.poll()) }, "Transfer")
          : ""));
    }));
  }

  renderMoves(shards) {
    const moving = shards.filter((s) => s && s.move);
    fill($("moves"), moving.length === 0 ? h("li", { class: "muted" }, "none") : moving.map((s) => {
      const m = s.move;
      const to = s.replicas.find((r) => r.id === m.to);
      const progress = to && to.lastIndex && s.lastIndex ? ` · ${Math.min(100, Math.floor((to.lastIndex / s.lastIndex) * 100))}% of the log copied` : "";
      return h("li", {}, `shard ${s.id}: ${m.from || "—"} → ${m.to || "—"} · ${m.step} · started ${ago(m.started)}${progress}`);
    }));
  }
}

function indexed(view) {
  return { view, byShard: new Map(view.shards.map((s) => [s.id, s])) };
}

// cell is one shard × node square of the grid.
function cell(s, node) {
  const r = s.replicas.find((x) => x.id === node);
  const desired = s.desired || [];
  const wanted = desired.includes(node);
  if (!r) {
    return wanted
      ? h("td", { class: "cell wanted", title: `${node}: placement wants a replica here`, "data-node": node }, "+")
      : h("td", { class: "cell", "data-node": node });
  }
  const role = node === s.leader ? "leader" : r.suffrage === "voter" ? "voter" : "learner";
  const letter = { leader: "L", voter: "V", learner: "N" }[role];
  const classes = ["cell", role];
  if (desired.length && !wanted) classes.push("leaving");
  if (r.lag) classes.push("behind");
  const lagText = r.lag === null ? "apply lag unknown" : `${r.lag} entries behind`;
  return h("td", { class: classes.join(" "), "data-node": node, "data-role": role, title: `${node}: ${role}, ${lagText}` },
    letter, r.lag ? ` ${r.lag}` : "");
}
