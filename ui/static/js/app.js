// The console's entry point: the token, the two views (#cluster and
// #sessions/ID) and moving to another node when this one goes away.
import { api, setToken, token, whenUnauthorized } from "./api.js";
import { $, banner } from "./dom.js";
import { ClusterView } from "./cluster.js";
import { SessionExplorer } from "./sessions.js";

let switching = false;

// switchTo reopens the console on another member, keeping the view.
function switchTo(member) {
  if (switching || !member.httpAddr) return;
  switching = true;
  banner(`Moving to ${member.id} at ${member.httpAddr}…`);
  location.assign(`${location.protocol}//${member.httpAddr}/ui/${location.hash}`);
}

const cluster = new ClusterView({ onSwitch: switchTo });
const explorer = new SessionExplorer({
  onOpen: (id) => {
    const want = `#sessions/${encodeURIComponent(id)}`;
    if (location.hash !== want) history.pushState(null, "", want);
  },
});

function route() {
  const [view, ...rest] = (location.hash || "#cluster").slice(1).split("/");
  const sessions = view === "sessions";
  $("view-cluster").hidden = sessions;
  $("view-sessions").hidden = !sessions;
  for (const [tab, on] of [["tab-cluster", !sessions], ["tab-sessions", sessions]]) {
    if (on) $(tab).setAttribute("aria-current", "page");
    else $(tab).removeAttribute("aria-current");
  }
  if (sessions && rest.length) {
    let id = "";
    try { id = decodeURIComponent(rest.join("/")); } catch { /* a malformed address opens nothing */ }
    if (id && id !== explorer.id) explorer.open(id);
  }
}

function askForToken(reason) {
  $("token-form").hidden = false;
  $("token-error").textContent = reason || "";
  $("token-input").focus();
}

// checkAccess learns what the token (if any) allows, then starts polling.
// Operations are shown only to an admin token.
async function checkAccess() {
  try {
    const t = await api("/v1/token");
    $("token-form").hidden = true;
    $("token-button").hidden = !t.tokensRequired;
    cluster.setAdmin(t.scopes.includes("admin"));
    cluster.start();
  } catch (e) {
    if (e.status === 401) askForToken(token() ? "The node did not accept this token." : "");
    else if (e.status === 403) askForToken("This token may not read the cluster: it needs the read or admin scope.");
    else {
      banner(`The node did not answer (${e.message}); retrying.`, true);
      setTimeout(checkAccess, 2000);
    }
  }
}

whenUnauthorized(() => askForToken("The node did not accept the token."));
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken($("token-input").value.trim());
  $("token-input").value = "";
  checkAccess();
});
$("token-button").addEventListener("click", () => askForToken(""));
window.addEventListener("hashchange", route);
route();
checkAccess();
