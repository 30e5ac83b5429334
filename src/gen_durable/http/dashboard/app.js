// The gen_durable dashboard: a single page over the JSON API of src/gen_durable/http/dashboard.cpp.
// Routes: #/ (queues, nodes and schedules), #/instances?status=&queue=&fsm=&key= (search), #/instance/ID.
// Data is always inserted as text (never as HTML). No inline script or style: the server's
// Content-Security-Policy forbids both.
"use strict";

const STATUSES = ["scheduled", "runnable", "executing", "awaiting_signal", "awaiting_children",
                  "done", "failed", "cancelled"];
let refreshMs = 3000;
let timer = null;
let cascadeChecked = false;  // the instance page's "with children" box, kept across refreshes
// From GET /api/session: "all" or "read_only" (no action buttons), and the token every action
// sends back (X-CSRF-Token), which another site cannot read.
let session = {access: "read_only", csrf: ""};
const canAct = () => session.access === "all";

// el("td", {class: "num"}, "12") -> <td class="num">12</td>
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf},
    body: JSON.stringify(body)};
  const res = await fetch(path, {...init, credentials: "same-origin"});
  const data = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function setStatus(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "error" : "muted";
}

function badge(status) { return el("span", {class: "badge " + status}, status); }

function ms(value) {
  if (value === null || value === undefined) return "-";
  if (value < 1000) return Math.round(value) + " ms";
  if (value < 120000) return (value / 1000).toFixed(1) + " s";
  return Math.round(value / 60000) + " min";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// --- pages ---

async function queuesPage(main, stale) {
  const data = await api("/api/overview");
  if (stale()) return;
  refreshMs = data.refresh_ms || refreshMs;
  document.getElementById("schema").textContent = "schema " + data.schema;
  const head = el("tr", {}, el("th", {}, "queue"), el("th", {}, "state"),
                  STATUSES.map((s) => el("th", {class: "num"}, s.replace("awaiting_", "await "))),
                  el("th", {class: "num"}, "oldest ready"), el("th", {class: "num"}, "done / min"),
                  el("th", {class: "num"}, "slots"), el("th", {class: "num"}, "cluster limit"),
                  el("th", {}, ""));
  const rows = data.queues.map((q) => {
    const slots = Object.values(q.concurrency).reduce((a, b) => a + b, 0);
    const action = !canAct() ? null : q.paused
      ? el("button", {"data-test": "resume-" + q.name, onclick: () => act(
          () => api("/api/queues/" + encodeURIComponent(q.name) + "/resume", {}))}, "Resume")
      : el("button", {"data-test": "pause-" + q.name, onclick: () => act(
          () => api("/api/queues/" + encodeURIComponent(q.name) + "/pause", {}))}, "Pause");
    return el("tr", {"data-test": "queue-" + q.name},
      el("td", {}, el("a", {href: "#/instances" + query({queue: q.name})}, q.name)),
      el("td", {"data-test": "state-" + q.name}, q.paused ? badge("paused") : "running"),
      STATUSES.map((s) => el("td", {class: "num", "data-test": "count-" + q.name + "-" + s},
        q.counts[s] ? el("a", {href: "#/instances" + query({queue: q.name, status: s})},
                         q.counts[s]) : "0")),
      el("td", {class: "num"}, ms(q.oldest_ready_ms)),
      el("td", {class: "num", "data-test": "throughput-" + q.name}, q.completed_last_minute),
      el("td", {class: "num"}, slots),
      el("td", {class: "num", "data-test": "global-limit-" + q.name},
         q.global_limit == null ? "-" : q.global_limit),
      el("td", {}, action));
  });
  const nodeRows = data.nodes.map((n) => el("tr", {"data-test": "node"},
    el("td", {}, n.id), el("td", {}, n.engine), el("td", {}, n.host), el("td", {class: "num"}, n.pid),
    el("td", {}, Object.entries(n.queues).map(([q, c]) => q + ":" + c).join(", ")),
    el("td", {class: "num"}, n.running), el("td", {class: "muted"}, n.heartbeat_at)));
  const parts = [
    el("h1", {}, "Queues"),
    el("section", {}, el("table", {"data-test": "queues"}, el("thead", {}, head),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: 15, class: "muted"},
        "No queue has instances, is paused or is served by a live node.")))))];
  parts.push(el("h2", {}, "Nodes"), el("section", {}, el("table", {"data-test": "nodes"},
    el("thead", {}, el("tr", {}, ["node", "engine", "host", "pid", "queues (slots)", "running",
                                  "last heartbeat"].map((h) => el("th", {}, h)))),
    el("tbody", {}, nodeRows.length ? nodeRows
                                    : el("tr", {}, el("td", {colspan: 7, class: "muted"},
                                                      "No live node."))))));
  const scheduleRows = (data.schedules || []).map((s) => el("tr", {"data-test": "schedule-" + s.name},
    el("td", {}, s.name), el("td", {}, el("code", {}, s.cron)), el("td", {}, s.time_zone),
    el("td", {}, el("a", {href: "#/instances" + query({fsm: s.fsm})}, s.fsm)),
    el("td", {class: "muted"}, s.last_fired || "-"),
    el("td", {"data-test": "next-fire-" + s.name}, s.next_fire || "-")));
  parts.push(el("h2", {}, "Schedules"), el("section", {}, el("table", {"data-test": "schedules"},
    el("thead", {}, el("tr", {}, ["schedule", "cron", "zone", "machine", "last fired",
                                  "next fire"].map((h) => el("th", {}, h)))),
    el("tbody", {}, scheduleRows.length ? scheduleRows
                                        : el("tr", {}, el("td", {colspan: 6, class: "muted"},
                                                          "No periodic schedule."))))));
  if (data.local) {
    const local = Object.entries(data.local.queues).map(([q, s]) => el("tr", {},
      el("td", {}, q), el("td", {class: "num"}, s.concurrency),
      el("td", {class: "num"}, s.min === s.max ? "fixed" : s.min + "-" + s.max),
      el("td", {class: "num"}, s.in_flight), el("td", {class: "num"}, s.buffered),
      el("td", {}, s.draining ? "draining" : "")));
    parts.push(el("h2", {}, "This node (" + data.local.node + ")"), el("section", {},
      el("table", {}, el("thead", {}, el("tr", {}, ["queue", "slots", "autoscale", "running",
        "buffered", ""].map((h) => el("th", {}, h)))), el("tbody", {}, local))));
  }
  main.replaceChildren(...parts);
}

// The search results: a refresh replaces only these, never the form being filled in.
function searchResults(data, filters) {
  const rows = data.instances.map((i) => el("tr", {"data-test": "instance-row"},
    el("td", {class: "num"},
       el("a", {href: "#/instance/" + i.id, "data-test": "instance-link"}, i.id)),
    el("td", {}, i.fsm + "@" + i.fsm_version), el("td", {}, badge(i.status)), el("td", {}, i.step),
    el("td", {class: "num"}, i.attempt), el("td", {}, i.queue),
    el("td", {}, i.unique_key || i.partition_key || ""), el("td", {class: "muted"}, i.updated_at)));
  const last = data.instances.length ? data.instances[data.instances.length - 1].id : null;
  const more = data.instances.length >= 50 && last
    ? el("a", {href: "#/instances" + query({...filters, before: last}), "data-test": "older"},
         "Older →") : null;
  return [el("table", {"data-test": "instances"}, el("thead", {}, el("tr", {},
    ["id", "fsm", "status", "step", "attempt", "queue", "key", "updated"].map(
      (h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: 8, class: "muted"},
                                                         "No instance matches.")))), more];
}

async function instancesPage(main, params, refresh, stale) {
  const filters = {status: params.get("status") || "", queue: params.get("queue") || "",
                   fsm: params.get("fsm") || "", key: params.get("key") || ""};
  const before = params.get("before") || "";
  const data = await api("/api/instances" + query({...filters, before}));
  if (stale()) return;
  const results = document.getElementById("results");
  if (refresh && results) {
    results.replaceChildren(...searchResults(data, filters));
    return;
  }
  const field = (name, input) => el("label", {}, name, input);
  const status = el("select", {name: "status", "data-test": "filter-status"},
    el("option", {value: ""}, "any"),
    STATUSES.map((s) => el("option", {value: s, selected: s === filters.status}, s)));
  const input = (name) => el("input", {name, value: filters[name], "data-test": "filter-" + name,
                                       size: 14});
  const form = el("form", {class: "filters", "data-test": "search", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(form);
    location.hash = "#/instances" + query(Object.fromEntries(f.entries()));
  }}, field("status", status), field("queue", input("queue")), field("fsm", input("fsm")),
      field("key", input("key")), el("button", {type: "submit", "data-test": "search-go"}, "Search"));
  main.replaceChildren(el("h1", {}, "Instances"), el("section", {}, form,
    el("div", {id: "results"}, searchResults(data, filters))));
}

function tree(node) {
  return el("li", {}, el("a", {href: "#/instance/" + node.id}, "#" + node.id), " ",
            node.fsm, " ", badge(node.status), " ", el("span", {class: "muted"}, node.step),
            node.children.length ? el("ul", {class: "tree"}, node.children.map(tree)) : null);
}

async function instancePage(main, id, stale) {
  const data = await api("/api/instances/" + id);
  if (stale()) return;
  const i = data.instance;
  const live = !["done", "failed", "cancelled"].includes(i.status);
  const cascade = el("input", {type: "checkbox", "data-test": "cascade", checked: cascadeChecked,
                              onchange: () => { cascadeChecked = cascade.checked; }});
  const signalName = el("input", {placeholder: "signal name", "data-test": "signal-name"});
  const signalPayload = el("input", {placeholder: "payload (JSON)", "data-test": "signal-payload",
                                     size: 30});
  const retryable = ["failed", "cancelled"].includes(i.status);
  const actions = !canAct() ? el("div", {class: "actions muted", "data-test": "read-only"},
    "Read-only access: no action.") : el("div", {class: "actions"},
    !live && !retryable ? el("span", {class: "muted"}, "Finished: no action applies.") : null,
    live ? el("button", {class: "danger", "data-test": "cancel", onclick: () => act(
      () => api("/api/instances/" + id + "/cancel", {cascade: cascade.checked}))}, "Cancel") : null,
    live ? el("label", {class: "inline"}, cascade, "with children") : null,
    retryable ? el("button", {"data-test": "retry", onclick: () =>
      act(() => api("/api/instances/" + id + "/retry", {}))}, "Retry") : null,
    live ? el("form", {class: "actions", "data-test": "signal", onsubmit: (e) => {
      e.preventDefault();
      let payload = null;
      try {
        payload = signalPayload.value.trim() ? JSON.parse(signalPayload.value) : null;
      } catch (err) {
        setStatus("payload: " + err.message, true);
        return;
      }
      act(() => api("/api/instances/" + id + "/signal", {name: signalName.value, payload}));
    }}, signalName, signalPayload, el("button", {type: "submit"}, "Send signal")) : null);
  const facts = [["status", badge(i.status)], ["step", i.step],
    ["attempt", i.max_attempts ? i.attempt + " of " + i.max_attempts : i.attempt],
    ["queue", i.queue + " (priority " + i.priority + ")"],
    ["unique key", i.unique_key || "-"], ["partition key", i.partition_key || "-"],
    ["parent", i.parent_id ? el("a", {href: "#/instance/" + i.parent_id}, "#" + i.parent_id) : "-"],
    ["locked by", i.locked_by || "-"], ["inserted", i.inserted_at], ["updated", i.updated_at],
    ["eligible", i.eligible_at], ["completed", i.completed_at || "-"]];
  const history = data.history.map((h) => el("tr", {"data-test": "history-row"},
    el("td", {class: "muted"}, h.at), el("td", {}, h.event), el("td", {}, h.step),
    el("td", {}, badge(h.status)), el("td", {class: "num"}, h.attempt),
    el("td", {class: "num"}, h.duration_ms === null ? "" : h.duration_ms.toFixed(1) + " ms"),
    el("td", {}, h.node), el("td", {class: "error"}, h.error || "")));
  const signals = i.signals.map((s) => el("tr", {},
    el("td", {class: "num"}, s.id), el("td", {}, s.name),
    el("td", {}, el("code", {}, JSON.stringify(s.payload))),
    el("td", {}, s.consumed ? "consumed" : "pending"), el("td", {class: "muted"}, s.inserted_at)));
  main.replaceChildren(
    el("h1", {"data-test": "instance-title"}, "Instance #" + i.id + " · " + i.fsm + "@" + i.fsm_version),
    el("section", {}, actions),
    el("div", {class: "grid2"},
      el("section", {}, el("dl", {"data-test": "facts"},
        facts.map(([k, v]) => [el("dt", {}, k), el("dd", {"data-test": "fact-" + k.replace(" ", "-")}, v)]))),
      el("section", {}, el("h2", {class: "first"}, "State"),
        el("pre", {"data-test": "state"}, JSON.stringify(i.state, null, 2)),
        el("h2", {}, "Result"), el("pre", {"data-test": "result"},
          i.result === null ? "-" : JSON.stringify(i.result, null, 2)),
        i.last_error ? [el("h2", {}, "Last error"),
                        el("pre", {class: "error", "data-test": "last-error"}, i.last_error)] : null)),
    el("h2", {}, "History"),
    el("section", {}, data.history.length ? el("table", {"data-test": "history"},
      el("thead", {}, el("tr", {}, ["at", "event", "step", "status", "attempt", "duration", "node",
                                    "error"].map((h) => el("th", {}, h)))), el("tbody", {}, history))
      : el("p", {class: "muted"}, "No history (the engine's history option is off).")),
    el("h2", {}, "Signals"),
    el("section", {}, signals.length ? el("table", {"data-test": "signals"}, el("thead", {},
      el("tr", {}, ["id", "name", "payload", "", "at"].map((h) => el("th", {}, h)))),
      el("tbody", {}, signals)) : el("p", {class: "muted"}, "No signal in the inbox.")),
    el("h2", {}, "Children"),
    el("section", {"data-test": "children"}, data.tree.children.length
      ? el("ul", {class: "tree"}, tree(data.tree)) : el("p", {class: "muted"}, "No children."),
      data.tree.truncated ? el("p", {class: "muted"}, "(only the first 200 are shown)") : null));
}

// --- routing and refresh ---

async function act(action) {
  try {
    await action();
    setStatus("done at " + new Date().toLocaleTimeString(), false);
  } catch (err) {
    setStatus(err.message, true);
  }
  await render();
}

// Draws the page of the current route; `refresh` when the timer redraws it. Only the latest
// render draws: one that a newer render overtook (another page, an action) is dropped.
let renders = 0;
async function render(refresh) {
  const generation = ++renders;
  const stale = () => generation !== renders;
  const main = document.getElementById("main");
  const hash = location.hash || "#/";
  const [path, qs] = hash.slice(1).split("?");
  const samePage = refresh === true && main.dataset.route === hash;
  try {
    if (path.startsWith("/instance/")) {
      await instancePage(main, encodeURIComponent(path.slice("/instance/".length)), stale);
    } else if (path.startsWith("/instances")) {
      await instancesPage(main, new URLSearchParams(qs || ""), samePage, stale);
    } else {
      await queuesPage(main, stale);
    }
    if (stale()) return;
    main.dataset.route = hash;
    document.body.dataset.ready = "1";
  } catch (err) {
    if (!stale()) setStatus(err.message, true);
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    // Never re-render under the user's hands (an input being typed in).
    const typing = document.activeElement && ["INPUT", "TEXTAREA", "SELECT"].includes(
      document.activeElement.tagName);
    if (!typing) await render(true);
    schedule();
  }, refreshMs);
}

window.addEventListener("hashchange", () => {
  cascadeChecked = false;
  render();
  schedule();
});
api("/api/session")
  .then((s) => { session = s; })
  .catch((err) => setStatus(err.message, true))
  .then(render).then(schedule);
