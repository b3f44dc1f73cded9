// Operations run from the page, each after a confirmation in a modal
// dialog: transfer a shard's leadership, drain a node.
import { api, path } from "./api.js";
import { $, fill, h, banner } from "./dom.js";

// confirmAction asks before an operation. choices, when given, fill a
// select; it resolves to the chosen value, or null when cancelled.
export function confirmAction({ title, text, okLabel, choices }) {
  const dlg = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  const select = $("confirm-select");
  $("confirm-choice").hidden = !choices;
  fill(select, (choices || []).map((c) => h("option", { value: c }, c)));
  dlg.returnValue = "";
  dlg.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok" ? (choices ? select.value : true) : null);
    }, { once: true });
  });
}

// transferLeadership asks, then moves shard's leadership to one of the
// other voters. done runs after the request, whatever its outcome.
export async function transferLeadership(shard, leader, voters, done) {
  const to = await confirmAction({
    title: `Transfer leadership of shard ${shard}`,
    text: `Shard ${shard} is led by ${leader || "no one"}. Hand its leadership to another voter? Writes to the shard pause for a moment.`,
    okLabel: "Transfer leadership",
    choices: voters,
  });
  if (to === null) return;
  try {
    const r = await api(`/v1/shards/${shard}/transfer-leadership?to=${encodeURIComponent(to)}`, { method: "POST", timeout: 30000 });
    banner(r.leader ? `Shard ${shard} is now led by ${r.leader}.` : `Leadership of shard ${shard} is moving to ${to}.`);
  } catch (e) {
    banner(`Leadership transfer of shard ${shard} failed: ${e.message} (${e.code})`, true);
  }
  done();
}

// drain asks, then tells node to hand off its leaderships and replicas and
// leave the cluster.
export async function drain(node, done) {
  const ok = await confirmAction({
    title: `Drain ${node}`,
    text: `${node} will hand off every leadership, move its replicas to the other nodes (when enough remain) and exit. It cannot be undone; a drained node started again joins as a new member.`,
    okLabel: `Drain ${node}`,
  });
  if (!ok) return;
  try {
    await api(path("/v1/nodes", node, "drain"), { method: "POST", timeout: 30000 });
    banner(`${node} is draining; its row below shows the leaderships and replicas it still holds.`);
  } catch (e) {
    banner(`Drain of ${node} failed: ${e.message} (${e.code})`, true);
  }
  done();
}
