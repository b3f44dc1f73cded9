// Following a change stream with fetch instead of EventSource, because
// EventSource cannot send the Authorization header a token needs.
import { authHeaders } from "./api.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// follow reads url's Server-Sent Events and calls onEvent(type, data, id)
// for each, reconnecting with Last-Event-ID after the node ends the stream
// or the connection breaks, until stop() is called. onState(text) reports
// the connection's state.
export function follow(url, { onEvent, onState }) {
  let stopped = false;
  let ctl = null;
  let last = "";
  (async () => {
    while (!stopped) {
      ctl = new AbortController();
      try {
        onState("connecting…");
        const headers = authHeaders();
        if (last) headers["Last-Event-ID"] = last;
        const resp = await fetch(url, { headers, signal: ctl.signal, cache: "no-store" });
        if (!resp.ok) {
          onState(`the node refused the stream (${resp.status}); retrying`);
          await sleep(3000);
          continue;
        }
        onState("following live changes");
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const ev = parse(buf.slice(0, end));
            buf = buf.slice(end + 2);
            if (ev.id) last = ev.id;
            if (ev.type) onEvent(ev.type, ev.data, ev.id);
          }
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      onState("reconnecting…");
      await sleep(1000);
    }
  })();
  return {
    stop() {
      stopped = true;
      if (ctl) ctl.abort();
      onState("");
    },
  };
}

// parse reads one event block; comments (keep-alives) give no type.
function parse(block) {
  const ev = { type: "", data: "", id: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") ev.type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") ev.id = value;
  }
  ev.data = data.join("\n");
  if (!ev.type && data.length) ev.type = "message";
  return ev;
}
