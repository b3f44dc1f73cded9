// The session explorer: look a session up by id or browse the list, see its
// owner, fields and messages page by page, and follow its change stream.
import { api, path } from "./api.js";
import { $, h, fill, ago, bytes } from "./dom.js";
import { follow } from "./sse.js";

const pageSize = 50;

export class SessionExplorer {
  // onOpen(id) is told which session is shown, so the address can keep it.
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.id = "";
    this.pages = [0]; // the "after" cursor of every page up to the current one
    this.stream = null;
    this.reloadTimer = null;
    this.listNext = "";
    $("lookup").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = $("session-id").value.trim();
      if (id) this.open(id);
    });
    $("browse").addEventListener("submit", (e) => {
      e.preventDefault();
      this.list(false);
    });
    $("list-more").addEventListener("click", () => this.list(true));
    $("msg-first").addEventListener("click", () => { this.pages = [0]; this.load(); });
    $("msg-prev").addEventListener("click", () => { if (this.pages.length > 1) this.pages.pop(); this.load(); });
    $("msg-next").addEventListener("click", () => { if (this.nextAfter) this.pages.push(this.nextAfter); this.load(); });
    $("follow").addEventListener("change", () => this.setFollow($("follow").checked));
  }

  open(id) {
    if (id !== this.id) {
      this.setFollow(false);
      $("follow").checked = false;
    }
    this.id = id;
    this.pages = [0];
    $("session-id").value = id;
    this.onOpen(id);
    return this.load();
  }

  async load() {
    const id = this.id;
    const base = path("/api/chat/session", id);
    const after = this.pages[this.pages.length - 1];
    $("session").hidden = false;
    fill($("session-title"), "Session ", h("code", {}, id));
    const [owner, fields, page] = await Promise.allSettled([
      api(path("/v1/sessions", id, "owner")),
      api(`${base}/state`),
      api(`${base}/messages?after=${after}&limit=${pageSize}`),
    ]);
    if (id !== this.id) return; // another session was opened meanwhile
    const meta = [];
    const o = owner.status === "fulfilled" ? owner.value : null;
    if (o) meta.push(["Shard", String(o.shard)], ["Leader", o.leader || "none known"], ["Replicas", o.replicas.join(", ")]);
    else meta.push(["Owner", owner.reason.message]);
    if (page.status === "rejected") {
      const missing = page.reason.code === "session_not_found";
      if (!missing) this.retryWhileFollowing();
      meta.push([missing ? "State" : "Error", missing ? "no such session" : `${page.reason.message} (${page.reason.code})`]);
      this.renderMeta(meta);
      $("session-fields").textContent = "";
      fill($("messages"));
      $("msg-range").textContent = "";
      this.nextAfter = 0;
      this.updatePager();
      return;
    }
    const p = page.value;
    meta.push(["Version", String(p.version)], ["Messages", String(p.total)]);
    this.renderMeta(meta);
    $("session-fields").textContent = fields.status === "fulfilled"
      ? JSON.stringify(fields.value, null, 2)
      : `${fields.reason.message} (${fields.reason.code})`;
    if (fields.status === "rejected") this.retryWhileFollowing();
    fill($("messages"), p.messages.map((m) => h("li", { "data-seq": m.seq },
      h("div", { class: "head" },
        `#${m.seq} · `, h("span", { class: "role" }, m.role),
        ` · ${m.id} · ${new Date(m.createdAt).toISOString()}`),
      h("p", { class: "content" }, m.content),
      m.meta ? h("pre", { class: "json" }, JSON.stringify(m.meta, null, 2)) : "")));
    if (p.messages.length === 0) $("messages").appendChild(h("li", { class: "muted" }, "no messages on this page"));
    const first = p.messages.length ? p.messages[0].seq : after;
    const last = p.messages.length ? p.messages[p.messages.length - 1].seq : after;
    $("msg-range").textContent = p.messages.length ? `messages ${first}–${last} of ${p.total}` : "";
    this.nextAfter = p.hasMore ? p.nextAfter : 0;
    this.updatePager();
  }

  // retryWhileFollowing loads the session again soon after a failed load
  // (a timeout, a leader election) when it is followed: the stream has
  // already delivered the change the failed load was meant to show.
  retryWhileFollowing() {
    if (!this.stream) return;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), 2000);
  }

  renderMeta(rows) {
    fill($("session-meta"), rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  updatePager() {
    $("msg-first").disabled = this.pages.length <= 1;
    $("msg-prev").disabled = this.pages.length <= 1;
    $("msg-next").disabled = !this.nextAfter;
  }

  // setFollow starts or stops following the shown session: every change
  // reloads the page being looked at.
  setFollow(on) {
    if (this.stream) this.stream.stop();
    this.stream = null;
    if (!on || !this.id) return;
    this.stream = follow(`${path("/api/chat/session", this.id)}/events`, {
      onEvent: (type) => {
        if (type === "resume") return;
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => this.load(), 150);
      },
      onState: (text) => { $("follow-state").textContent = text; },
    });
  }

  async list(more) {
    const prefix = $("prefix").value;
    if (!more) this.listNext = "";
    let q = `/v1/sessions?limit=${pageSize}&prefix=${encodeURIComponent(prefix)}`;
    if (more && this.listNext) q += `&after=${encodeURIComponent(this.listNext)}`;
    const table = $("session-list");
    const body = table.tBodies[0];
    table.hidden = false;
    let r;
    try {
      r = await api(q, { timeout: 30000 });
    } catch (e) {
      fill(body, h("tr", {}, h("td", { colspan: 5, class: "error" }, `${e.message} (${e.code})`)));
      $("list-more").hidden = true;
      return;
    }
    if (!more) body.replaceChildren();
    for (const s of r.sessions) {
      body.appendChild(h("tr", {},
        h("td", {}, h("a", { href: `#sessions/${encodeURIComponent(s.id)}`, class: "session-link" }, s.id)),
        h("td", { class: "num" }, String(s.messageCount)),
        h("td", {}, ago(s.updatedAt)),
        h("td", { class: "num" }, bytes(s.sizeBytes)),
        h("td", { class: "num" }, String(s.version))));
    }
    if (!body.children.length) body.appendChild(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "no sessions")));
    this.listNext = r.next || "";
    $("list-more").hidden = !this.listNext;
  }
}
