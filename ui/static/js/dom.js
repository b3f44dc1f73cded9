// Building the page's elements. Every value is inserted as text (text nodes,
// textContent, attributes set one by one), never parsed as HTML: session ids,
// field values and message contents come from whoever writes sessions.

// h makes an element. attrs maps attribute names to values (class, id,
// aria-*, …); onclick-style handlers are passed as functions under "on"
// keys (onClick). Children are nodes, strings (inserted as text) or arrays.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// fill replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (id) => document.getElementById(id);

// ago renders a past time (ms since the epoch, or an ISO string) briefly.
export function ago(t) {
  const ms = Date.now() - (typeof t === "number" ? t : Date.parse(t));
  if (!Number.isFinite(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

let bannerTimer = null;

// banner shows a message at the top of the page; an empty text hides it.
// A problem stays until it is replaced; news goes after 15 s.
export function banner(text, bad = false) {
  const b = $("banner");
  b.textContent = text;
  b.hidden = !text;
  b.classList.toggle("bad", bad);
  clearTimeout(bannerTimer);
  if (text && !bad) bannerTimer = setTimeout(() => { b.hidden = true; }, 15000);
}
