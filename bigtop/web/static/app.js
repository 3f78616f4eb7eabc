// The console's page: one WebSocket keeps the state of every node (and of
// the cluster it follows, if any); the route (#/all, #/n/NODE,
// #/n/NODE/w/WATCHER) picks what is drawn from it.

import { LineChart, seriesColor, sparkline } from "./chart.js";
import {
  ago, api, ApiError, bytes, clock, confirmAction, duration, h, lastExit, modal, percent,
  session, setText, toast,
} from "./ui.js";

// The ranges the charts offer, as /api/session's history gives them (these
// until it answers); the first is the live one, which the WebSocket feeds.
let RANGES = [
  { name: "10m", label: "10 min", seconds: 600, step: 1 },
  { name: "1h", label: "1 h", seconds: 3600, step: 10 },
  { name: "24h", label: "24 h", seconds: 86400, step: 10 },
];
let chosenRange = "10m"; // the charts' range, kept from page to page
const LOG_KEEP = 2000; // lines kept in a log view
const NODE_TIMEOUT = 30; // seconds an action on every node waits for each, unless told

// -- state --------------------------------------------------------------------------------------

const state = {
  nodes: new Map(), // name -> {info, history: [points], events: []}
  order: [],
  live: false,
  following: false, // bigtop-web follows a cluster (--cluster)
  cluster: null, // its latest reading: GET /api/cluster's shape
  discovery: null, // the LAN probes (--discover): {group, every, forget_after, ...}, or null
};
let page = null; // the page on screen: {update(kind), destroy(), onLog?, onEvents?}
let socket = null;

function nodeState(name) {
  if (!state.nodes.has(name)) {
    state.nodes.set(name, { info: { name, reachable: null }, history: [], events: [] });
    state.order.push(name);
  }
  return state.nodes.get(name);
}

function setNode(info) {
  const node = nodeState(info.name);
  node.info = info;
  node.history = info.history || [];
  node.events = (info.events || []).slice(-100);
  delete info.history;
  delete info.events;
}

function removeNode(name) {
  if (!state.nodes.has(name)) return;
  state.nodes.delete(name);
  state.order = state.order.filter((n) => n !== name);
  fillNodeSelect();
  const where = route();
  if (where.view !== "all" && where.node === name) render();
  else refresh("removed", name);
}

function trimHistory(history) {
  const oldest = Date.now() / 1000 - RANGES[0].seconds - 30;
  while (history.length && history[0].t < oldest) history.shift();
}

function enc(name) {
  return encodeURIComponent(name);
}

function nodePath(node) {
  return `/api/nodes/${enc(node)}`;
}

function watcherPath(node, watcher) {
  return `${nodePath(node)}/watchers/${enc(watcher)}`;
}

// -- the live connection ------------------------------------------------------------------------

function setConn(kind, text) {
  const badge = document.getElementById("conn");
  badge.className = `conn conn-${kind}`;
  badge.textContent = text;
}

function connect(delay = 1000) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${window.location.host}/ws`);
  socket.addEventListener("open", () => {
    delay = 1000;
    state.live = true;
    setConn("live", "live");
  });
  socket.addEventListener("message", (event) => receive(JSON.parse(event.data)));
  socket.addEventListener("close", async () => {
    state.live = false;
    setConn("wait", "reconnecting");
    try {
      await api("/api/session"); // 401 goes to the login page
    } catch (err) {
      if (err.status === 401) return;
    }
    setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  });
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function receive(message) {
  if (message.type === "hello") {
    for (const info of message.nodes) setNode(info);
    for (const name of [...state.order]) {
      if (!message.nodes.some((info) => info.name === name)) removeNode(name);
    }
    state.cluster = message.cluster || null;
    state.following = Boolean(message.cluster);
    state.discovery = message.discovery || null;
    fillNodeSelect();
    if (page && page.resubscribe) page.resubscribe();
    render();
  } else if (message.type === "snapshot") {
    const node = nodeState(message.node);
    node.info = { ...node.info, ...message.info, snapshot: message.snapshot };
    for (const point of message.points) {
      const last = node.history[node.history.length - 1];
      if (!last || point.t > last.t) node.history.push(point);
    }
    trimHistory(node.history);
    refresh("snapshot", message.node);
  } else if (message.type === "node") {
    const node = nodeState(message.node);
    node.info = { ...node.info, ...message.info };
    fillNodeSelect();
    refresh("node", message.node);
  } else if (message.type === "added") {
    setNode(message.node);
    fillNodeSelect();
    refresh("node", message.node.name);
  } else if (message.type === "removed") {
    removeNode(message.node);
  } else if (message.type === "cluster") {
    state.cluster = message.cluster;
    refresh("cluster");
  } else if (message.type === "events") {
    for (const item of message.items) {
      const node = nodeState(item.node);
      node.events.push(item);
      if (node.events.length > 100) node.events.shift();
    }
    if (page && page.onEvents) page.onEvents(message.items);
  } else if (message.type === "log") {
    if (page && page.onLog) page.onLog(message);
  }
}

function refresh(kind, nodeName) {
  if (page && page.update) page.update(kind, nodeName);
}

// -- routing ---------------------------------------------------------------------------------------

function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "n" && parts[1] && parts[2] === "w" && parts[3]) {
    return { view: "watcher", node: parts[1], watcher: parts[3] };
  }
  if (parts[0] === "n" && parts[1]) return { view: "node", node: parts[1] };
  if (parts[0] === "all") return { view: "all" };
  return { view: state.order.length === 1 && !state.following ? "node" : "all", node: state.order[0] };
}

function render() {
  const where = route();
  const view = document.getElementById("view");
  if (page && page.destroy) page.destroy();
  page = null;
  view.replaceChildren();
  if (!state.order.length && !state.following) {
    view.append(h("p", { class: "muted" }, "Connecting…"));
    return;
  }
  const select = document.getElementById("node-select");
  select.value = where.view === "all" ? "*all" : where.node;
  if (where.view === "all") page = allNodesPage(view);
  else if (!state.nodes.has(where.node)) {
    view.append(h("div", { class: "panel panel-body" }, `No node named ${where.node}. `,
      h("a", { href: "#/all" }, "All nodes")));
    return;
  } else if (where.view === "node") page = nodePage(view, where.node);
  else page = watcherPage(view, where.node, where.watcher);
  page.update("init");
}

function fillNodeSelect() {
  const select = document.getElementById("node-select");
  const wanted = ["*all", ...state.order];
  const options = wanted.map((name) => {
    if (name === "*all") return h("option", { value: "*all" }, "All nodes");
    const info = state.nodes.get(name).info;
    const mark = info.reachable === false ? "○ " : "● ";
    return h("option", { value: name }, `${mark}${name}${info.down ? " (down)" : ""}`);
  });
  const current = select.value;
  select.replaceChildren(...options);
  select.value = wanted.includes(current) ? current : wanted[1] || "*all";
  select.closest(".node-picker").hidden = state.order.length < 2 && !state.following;
}

// -- pieces shared by pages ------------------------------------------------------------------------

function badge(status) {
  const text = status || "unknown";
  return h("span", { class: `badge badge-${text}` }, text);
}

// A node as the console reaches it: "down" when the cluster says its lease ended.
function reachText(info) {
  if (info.down) return "down";
  return info.reachable === false ? "unreachable" : info.reachable ? "reachable" : "waiting";
}

// Where a node comes from: given to bigtop-web, listed by the cluster it
// follows, or heard on the LAN (a hint: whatever answered the probe).
const SOURCES = {
  hand: { text: "given by hand", title: "An endpoint given to bigtop-web (--endpoint or its config file)." },
  cluster: { text: "cluster node", title: "Listed by the cluster bigtop-web follows (--cluster)." },
  discovered: {
    text: "discovered on the LAN",
    title: "It answered bigtop-web's LAN probe (--discover): a hint, not a member of anything. "
      + "It is reached like any endpoint, with bigtop-web's keys, and dropped once silent.",
  },
};

function sourceOf(info) {
  if (info.source && Object.hasOwn(SOURCES, info.source)) return SOURCES[info.source];
  return { text: info.source ? String(info.source) : "", title: "" };
}

function setBadge(element, status) {
  const text = status || "unknown";
  element.className = `badge badge-${text}`;
  setText(element, text);
}

function card(label) {
  const value = h("div", { class: "value" }, "–");
  const hint = h("div", { class: "hint" }, "");
  const element = h("div", { class: "panel card" }, h("div", { class: "label" }, label), value, hint);
  return { element, value, hint };
}

function chartPanel(title, format, min = 0) {
  const box = h("div", { class: "chart" });
  const legend = h("div", { class: "legend" });
  const span = h("span", { class: "muted" }, "");
  const element = h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", {}, title), span),
    h("div", { class: "panel-body" }, box), legend);
  const chart = new LineChart(box, { format, windowSeconds: RANGES[0].seconds, min });
  return {
    element,
    chart,
    set(series, range) {
      chart.set(series, range.seconds);
      const young = chart.oldest && chart.shownSeconds < range.seconds - 1;
      setText(span, `last ${range.label}${young ? ` · kept since ${clock(chart.oldest)}` : ""}`);
      const drawn = chart.drawn || { points: 0, gaps: 0, min: null, first: null };
      Object.assign(box.dataset, {
        range: range.name,
        points: String(Math.max(0, ...series.map((s) => s.points.filter((pt) => pt[1] !== null).length))),
        drawn: String(drawn.points),
        gaps: String(drawn.gaps),
        min: drawn.min === null ? "" : String(drawn.min),
        first: drawn.first === null ? "" : String(drawn.first),
      });
      const names = series.map((s) => s.name).join("\u0000");
      if (legend.dataset.names !== names) {
        legend.dataset.names = names;
        legend.replaceChildren(...series.map((s, i) => {
          const span = h("span", {}, s.name);
          span.style.setProperty("--swatch", seriesColor(s.colorIndex ?? i));
          return span;
        }));
      }
    },
  };
}

// The range buttons above a page's charts; onChange(range) when one is picked.
function rangeBar(onChange) {
  const buttons = RANGES.map((r) => {
    const button = h("button", { class: "btn btn-sm", type: "button", "data-range": r.name,
      "aria-pressed": String(r.name === chosenRange), title: `The last ${r.label}` }, r.label);
    button.addEventListener("click", () => {
      chosenRange = r.name;
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
      onChange(r);
    });
    return button;
  });
  return h("div", { class: "range-bar" }, h("span", { class: "muted" }, "Charts:"),
    h("div", { class: "segmented", role: "group", "aria-label": "Time range of the charts" }, ...buttons));
}

function currentRange() {
  return RANGES.find((r) => r.name === chosenRange) || RANGES[0];
}

// The points a page's charts draw, in the live feed's shape ({t, d, w: {name:
// [cpu, rss, {slot: [cpu, rss, pid]}]}}; a gap is a point without values):
// the live range from the node's history, a longer one from GET /api/history,
// fetched again every step while shown.
function chartHistory(nodeName, watcherName, onLoaded) {
  const cache = new Map(); // range -> {points, fetched, error}
  let loading = null;
  let destroyed = false;

  async function load(range) {
    if (loading === range.name) return;
    loading = range.name;
    const query = new URLSearchParams({ node: nodeName, range: range.name });
    if (watcherName) query.set("watcher", watcherName);
    try {
      const data = await api(`/api/history?${query}`);
      cache.set(range.name, { points: pointsFrom(data), fetched: Date.now() / 1000, error: null });
    } catch (err) {
      cache.set(range.name, { points: [], fetched: Date.now() / 1000, error: err.message });
    } finally {
      loading = null;
    }
    if (!destroyed && chosenRange === range.name) onLoaded();
  }

  return {
    points(range) {
      const node = state.nodes.get(nodeName);
      if (range.name === RANGES[0].name) return node ? node.history : [];
      const held = cache.get(range.name);
      if (!held || Date.now() / 1000 - held.fetched >= Math.max(2, range.step)) load(range);
      return held ? held.points : [];
    },
    destroy() {
      destroyed = true;
    },
  };
}

// GET /api/history's columns as points.
function pointsFrom(data) {
  const out = [];
  const watcher = data.watcher || null;
  for (let i = 0; i < data.t.length; i += 1) {
    const w = {};
    for (const [name, s] of Object.entries(data.watchers || {})) w[name] = [s.cpu[i], s.rss[i], {}];
    if (watcher) {
      const slots = {};
      for (const [slot, s] of Object.entries(watcher.slots)) slots[slot] = [s.cpu[i], s.rss[i], s.pid];
      w[watcher.name] = [watcher.cpu[i], watcher.rss[i], slots];
    }
    const d = data.daemon ? [data.daemon.cpu[i], data.daemon.rss[i]] : null;
    out.push({ t: data.t[i], d, w });
  }
  return out;
}

// A value of a point: the watcher's [cpu, rss][which], or null (no data).
function watcherValue(point, name, which) {
  const w = point.w[name];
  return w && w[which] !== undefined ? w[which] : null;
}

function slotValue(point, name, slot, which) {
  const w = point.w[name];
  const s = w && w[2] && w[2][slot];
  return s && s[which] !== undefined ? s[which] : null;
}

// Keep a table body's rows in step with a list: a row per key, made once by
// create(item) and brought up to date by update(row, item).
function syncRows(tbody, items, key, create, update) {
  const existing = new Map([...tbody.children].filter((r) => r.dataset.key).map((r) => [r.dataset.key, r]));
  let previous = null;
  for (const item of items) {
    const id = String(key(item));
    let row = existing.get(id);
    if (!row) {
      row = create(item);
      row.dataset.key = id;
    }
    existing.delete(id);
    update(row, item);
    const expected = previous ? previous.nextElementSibling : tbody.firstElementChild;
    if (expected !== row) tbody.insertBefore(row, expected);
    previous = row;
  }
  for (const row of existing.values()) row.remove();
}

// Run an action on the daemon and say what it answered.
async function act(button, label, path, body, { quiet = false } = {}) {
  if (button) {
    button.disabled = true;
    button.classList.add("busy");
  }
  try {
    const data = await api(path, { method: "POST", body });
    if (!quiet) toast(`${label}: done`, { body: describeReply(data.reply), details: data.reply });
    return data.reply;
  } catch (err) {
    const details = err.body && err.body.reply ? err.body.reply : err.body;
    toast(`${label}: failed`, { body: err.message, error: true, details });
    throw err;
  } finally {
    if (button) {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }
}

function describeReply(reply) {
  if (!reply) return "";
  const parts = [];
  const info = reply.info || reply;
  if (reply.numprocesses !== undefined) parts.push(`${reply.numprocesses} processes wanted`);
  if (info && Array.isArray(info.started) && info.started.length) parts.push(`started ${info.started.join(", ")}`);
  if (info && Array.isArray(info.stopped) && info.stopped.length) parts.push(`stopped ${info.stopped.join(", ")}`);
  if (Array.isArray(reply.pids)) parts.push(`signalled ${reply.pids.join(", ") || "nothing"}`);
  if (reply.changes) {
    for (const [what, names] of Object.entries(reply.changes)) {
      if (names.length) parts.push(`${what.replace("_", " ")}: ${names.join(", ")}`);
    }
    if (!parts.length) parts.push("nothing changed");
  }
  return parts.join("; ") || `status: ${reply.status}`;
}

function guarded(fn) {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      if (!(err instanceof ApiError)) console.error(err);
    }
  };
}

function unreachableNotice(info) {
  if (info.down) {
    return h("div", { class: "panel panel-body bad-text", role: "alert" },
      h("b", {}, `${info.name} is down`), ` since ${clock(info.since)}: ${info.down.replace(/\.?$/, ".")} `,
      h("span", { class: "muted" }, "It is not asked meanwhile, and is polled again once the cluster lists it as up."));
  }
  return h("div", { class: "panel panel-body bad-text", role: "alert" },
    h("b", {}, `${info.name} is unreachable`), ` since ${clock(info.since)}: `,
    `${(info.error || "no reply").replace(/\.?$/, ".")} `,
    h("span", { class: "muted" }, "It is tried again every few seconds and comes back by itself."));
}

// -- all nodes -------------------------------------------------------------------------------------

function allNodesPage(view) {
  const grid = h("div", { class: "grid node-grid" });
  const count = h("span", { class: "sub" });
  view.append(h("div", { class: "page-head" }, h("h1", {}, "All nodes"), count));
  const overview = state.following ? clusterOverview() : null;
  if (overview) view.append(overview.element);
  view.append(grid);
  const cards = new Map();

  function makeCard(name) {
    const status = h("span", { class: "badge" });
    const stats = h("div", { class: "stat-row" });
    const chips = h("div", { class: "chips" });
    const error = h("div", { class: "bad-text", hidden: true });
    const labels = h("div", { class: "muted labels" });
    const element = h("section", { class: "panel node-card", "data-node": name },
      h("div", { class: "panel-head" }, h("h2", {}, h("a", { href: `#/n/${enc(name)}` }, name)), status,
        h("span", { class: "spacer" }), h("span", { class: "muted mono endpoint" }, "")),
      h("div", { class: "panel-body" }, error, labels, stats, chips));
    return { element, status, stats, chips, error, labels };
  }

  return {
    update(kind) {
      const heard = state.order.filter((n) => state.nodes.get(n).info.source === "discovered").length;
      setText(count, `${state.order.length} daemon${state.order.length === 1 ? "" : "s"}`
        + (state.discovery ? ` · ${heard} heard on the LAN (${state.discovery.group})` : ""));
      if (overview) overview.update(kind);
      for (const [name, c] of cards) {
        if (!state.nodes.has(name)) {
          c.element.remove();
          cards.delete(name);
        }
      }
      if (!state.order.length) {
        grid.replaceChildren(h("p", { class: "muted" }, "No node to show yet."));
        return;
      }
      grid.querySelector(":scope > p.muted")?.remove();
      for (const name of state.order) {
        if (!cards.has(name)) {
          cards.set(name, makeCard(name));
          grid.append(cards.get(name).element);
        }
        const c = cards.get(name);
        const info = state.nodes.get(name).info;
        const snap = info.snapshot || { watchers: [] };
        setText(c.element.querySelector(".endpoint"), info.endpoint || "");
        setBadge(c.status, reachText(info));
        c.element.classList.toggle("down", info.reachable === false);
        c.error.hidden = info.reachable !== false;
        setText(c.error, info.reachable === false ? `since ${clock(info.since)}: ${info.error || ""}` : "");
        const record = info.record || null;
        const labelText = record ? Object.entries(record.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ") : "";
        const source = sourceOf(info);
        c.element.dataset.source = info.source || "";
        c.element.classList.toggle("discovered", info.source === "discovered");
        c.labels.title = source.title;
        setText(c.labels, `${source.text}${record && labelText ? ` · ${labelText}` : ""}`
          + `${record && record.load && record.load.length ? ` · load ${Number(record.load[0]).toFixed(2)}` : ""}`);
        const watchers = snap.watchers;
        const running = watchers.reduce((n, w) => n + (w.running || 0), 0);
        const wanted = watchers.reduce((n, w) => n + (w.wanted || 0), 0);
        const cpu = watchers.reduce((n, w) => n + w.cpu, 0);
        const rss = watchers.reduce((n, w) => n + w.rss, 0);
        const active = watchers.filter((w) => w.status === "active").length;
        const failed = watchers.filter((w) => w.status === "failed").length;
        c.stats.hidden = !info.snapshot;
        c.stats.replaceChildren(...[
          h("span", {}, "watchers ", h("b", {}, `${active}/${watchers.length}`), " active"),
          failed ? h("span", { class: "failed" }, h("b", {}, `${failed}`), " failed") : null,
          h("span", {}, "processes ", h("b", {}, `${running}/${wanted}`)),
          h("span", {}, "CPU ", h("b", {}, percent(cpu))),
          h("span", {}, "memory ", h("b", {}, bytes(rss))),
          snap.daemon ? h("span", {}, "daemon ", h("b", {}, `pid ${snap.daemon.pid}`)) : null,
        ].filter(Boolean));
        c.chips.replaceChildren(...watchers.map((w) => h("a", {
          class: `chip s-${w.status}`, href: `#/n/${enc(name)}/w/${enc(w.name)}`, title: w.status,
        }, `${w.name} ${w.running}/${w.wanted}`)));
      }
    },
  };
}

// -- the cluster overview ------------------------------------------------------------------------

// The actions the page offers on a watcher, as an action on every node running it.
const EVERY_NODE_ACTIONS = [
  { action: "decr", label: "−", title: "Remove a process on every node", body: { nb: 1 }, verb: "Remove a process of" },
  { action: "incr", label: "+", title: "Add a process on every node", body: { nb: 1 }, verb: "Add a process to" },
  { action: "start", label: "Start", body: {}, verb: "Start" },
  { action: "stop", label: "Stop", body: {}, verb: "Stop", danger: true },
  { action: "restart", label: "Restart", body: {}, verb: "Restart", danger: true },
  { action: "reload", label: "Reload", title: "Rolling reload on every node", body: { rolling: true }, verb: "Rolling reload of", danger: true },
];

// The console's node for a node of the cluster (null: none, or one given
// by hand has that name: another daemon).
function clusterNode(nodeName) {
  const node = state.nodes.get(nodeName);
  return node && node.info.source === "cluster" ? node : null;
}

// The local watcher on a node, as the page last heard (null: not known now).
function watcherOn(nodeName, watcherName) {
  const node = clusterNode(nodeName);
  if (!node || !node.info.reachable || !node.info.snapshot) return null;
  const wanted = watcherName.toLowerCase();
  return node.info.snapshot.watchers.find((w) => w.name.toLowerCase() === wanted) || null;
}

function placementText(placement) {
  return Object.entries(placement || {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
}

// Which cluster watcher runs where (a row per watcher, a column per node),
// the leader, and the actions on every node running a watcher.
function clusterOverview() {
  const title = h("h2", {}, "Cluster");
  const leader = h("span", { class: "muted leader" });
  const read = h("span", { class: "muted read" });
  const error = h("div", { class: "panel-body bad-text cluster-error", role: "alert", hidden: true });
  const headRow = h("tr");
  const tbody = h("tbody");
  const results = h("div", { class: "fanout", hidden: true });
  const element = h("section", { class: "panel cluster-overview", "data-cluster": "" },
    h("div", { class: "panel-head" }, title, leader, h("span", { class: "spacer" }), read),
    error,
    h("div", { class: "table-wrap" }, h("table", { class: "cluster" }, h("thead", {}, headRow), tbody)),
    results);
  let columns = null;

  function header(nodes) {
    const names = nodes.map((n) => `${n.name}\u0000${n.up}\u0000${n.leader}`).join("\u0001");
    if (names === columns) return;
    columns = names;
    headRow.replaceChildren(h("th", {}, "Watcher"), h("th", { class: "opt" }, "Placement"),
      ...nodes.map((n) => h("th", { "data-node": n.name, class: n.up ? "" : "node-down" },
        clusterNode(n.name) ? h("a", { href: `#/n/${enc(n.name)}` }, n.name) : n.name,
        n.leader ? h("span", { class: "leader-mark", title: "the leader" }, " ★") : null,
        " ", h("span", { class: `badge badge-${n.up ? "up" : "down"}` }, n.up ? "up" : "down"))),
      h("th", {}, "On every node running it"));
  }

  function watcherRow(w) {
    const buttons = EVERY_NODE_ACTIONS.map((spec) => {
      const button = h("button", { class: `btn btn-sm${spec.label.length === 1 ? " btn-icon" : ""}${spec.danger && spec.action === "stop" ? " btn-danger" : ""}`,
        type: "button", "data-action": spec.action, title: spec.title || `${spec.label} on every node` }, spec.label);
      button.addEventListener("click", guarded(() => everyNode(button, w.name, spec)));
      return button;
    });
    return h("tr", { "data-cluster-watcher": w.name }, h("td", { class: "name-cell" }, w.name),
      h("td", { class: "opt mono placement" }), h("td", { class: "row-actions" }, h("div", { class: "actions" }, ...buttons)));
  }

  function cell(nodeName, placed, watcherName) {
    if (!placed) return h("td", { "data-node": nodeName, class: "muted" }, "–");
    const stateText = placed.state || "pending";
    const local = watcherOn(nodeName, watcherName);
    const bits = [h("span", { class: `badge badge-${stateText}`, title: placed.error || null }, stateText)];
    if (local) bits.push(" ", h("span", { class: "local" }, `${local.status} ${local.running}/${local.wanted}`));
    if (placed.up === false) bits.push(" ", h("span", { class: "bad-text" }, "node down"));
    if (placed.error) bits.push(h("div", { class: "bad-text cell-error" }, placed.error));
    return h("td", { "data-node": nodeName, "data-state": stateText, class: "placed" }, ...bits);
  }

  function update() {
    const c = state.cluster;
    if (!c) return;
    setText(title, `Cluster ${c.name || ""}`.trim());
    setText(leader, c.leader ? `leader: ${c.leader}` : "no leader");
    setText(read, c.read ? `read ${ago(c.read)}` : "not read yet");
    error.hidden = !c.error;
    setText(error, c.error ? `Cannot read the cluster at ${c.endpoint}: ${c.error}. `
      + (c.read ? `What is shown is as of ${clock(c.read)}; it is read again every ${c.every}s.` : `It is tried again every ${c.every}s.`) : "");
    header(c.nodes);
    syncRows(tbody, c.watchers, (w) => w.name, watcherRow, (row, w) => {
      setText(row.querySelector(".placement"), placementText(w.placement));
      const cells = c.nodes.map((n) => cell(n.name, w.nodes[n.name], w.name));
      // Nodes it is assigned to that the cluster does not list any more.
      for (const name of Object.keys(w.nodes)) {
        if (!c.nodes.some((n) => n.name === name)) cells.push(cell(name, w.nodes[name], w.name));
      }
      const actions = row.querySelector(".row-actions");
      for (const old of [...row.querySelectorAll("td[data-node]")]) old.remove();
      for (const td of cells) row.insertBefore(td, actions);
      for (const button of actions.querySelectorAll("button")) {
        if (!button.classList.contains("busy")) button.disabled = !Object.keys(w.nodes).length;
      }
    });
    if (!c.watchers.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: c.nodes.length + 3, class: "empty" },
        c.read ? "No cluster watcher (bigtopctl cluster apply FILE adds some)." : "Waiting for the cluster…")));
    }
  }

  // One request per node, all at once, each with its own timeout; each
  // node's row says what it answered as soon as it does.
  async function everyNode(button, watcherName, spec) {
    const placed = (state.cluster.watchers.find((w) => w.name === watcherName) || { nodes: {} }).nodes;
    const targets = Object.keys(placed).sort();
    if (!targets.length) return;
    const chosen = await modal(`${spec.verb} ${watcherName} on every node running it?`, (form) => {
      form.append(h("p", {}, `${targets.length} node${targets.length === 1 ? "" : "s"}: ${targets.join(", ")}. `
        + "Each node gets its own request, all at once, and answers for itself."),
      h("label", {}, "Give up on a node after (seconds)",
        h("input", { name: "timeout", type: "number", min: "1", max: "600", step: "any", value: String(NODE_TIMEOUT) })));
    }, {
      submitLabel: spec.label.length === 1 ? spec.title : `${spec.label} on ${targets.length} node${targets.length === 1 ? "" : "s"}`,
      danger: Boolean(spec.danger),
      submit: (form) => {
        const timeout = Number(new FormData(form).get("timeout"));
        if (!(timeout > 0 && timeout <= 600)) throw new Error("The timeout is a number of seconds, from 1 to 600.");
        return { timeout };
      },
    });
    if (!chosen) return;
    const label = `${spec.action} ${watcherName}`;
    const rows = new Map(targets.map((name) => {
      const status = h("span", { class: "badge badge-waiting" }, "waiting");
      const text = h("td", { class: "wrap answer" });
      return [name, { status, text, row: h("tr", { "data-node": name }, h("td", { class: "name-cell" }, name), h("td", {}, status), text) }];
    }));
    const closeButton = h("button", { class: "btn btn-ghost btn-sm", type: "button", "aria-label": "Close" }, "✕");
    closeButton.addEventListener("click", () => { results.hidden = true; });
    results.replaceChildren(h("div", { class: "panel-head" }, h("h3", {}, `${label} on every node running it`),
      h("span", { class: "muted" }, clock(Date.now() / 1000)), h("span", { class: "spacer" }), closeButton),
    h("div", { class: "table-wrap" }, h("table", { class: "fanout-results" }, h("tbody", {}, ...[...rows.values()].map((r) => r.row)))));
    results.hidden = false;
    button.disabled = true;
    button.classList.add("busy");
    const body = { ...spec.body, timeout: chosen.timeout };
    let failed = 0;
    try {
      await Promise.all(targets.map(async (name) => {
        const r = rows.get(name);
        try {
          if (!clusterNode(name)) {
            throw new Error(state.nodes.has(name) ? `not sent: the node ${name} shown here is one given by hand, not the cluster's`
              : `not sent: bigtop-web does not show ${name}`);
          }
          const data = await api(`${watcherPath(name, watcherName)}/${spec.action}`,
            { method: "POST", body, waitSeconds: chosen.timeout + 10 });
          setBadge(r.status, "ok");
          setText(r.text, describeReply(data.reply));
          r.row.dataset.result = "ok";
        } catch (err) {
          failed += 1;
          setBadge(r.status, "failed");
          setText(r.text, err.message);
          r.text.classList.add("bad-text");
          r.row.dataset.result = "failed";
        }
      }));
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
    const summary = `${targets.length - failed} of ${targets.length} node${targets.length === 1 ? "" : "s"} ok`;
    toast(`${label} on every node: ${failed ? "failed on some" : "done"}`, { body: summary, error: failed > 0 });
  }

  return { element, update };
}

// -- one node ------------------------------------------------------------------------------------

function nodePage(view, nodeName) {
  const node = state.nodes.get(nodeName);
  const reach = h("span", { class: "badge" });
  const sub = h("span", { class: "sub mono" });
  const notice = h("div");
  const addButton = h("button", { class: "btn", type: "button" }, "+ Add watcher");
  const reloadButton = h("button", { class: "btn", type: "button" }, "Reload config");
  view.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, nodeName), sub), reach, h("span", { class: "spacer" }),
    h("div", { class: "actions" }, addButton, reloadButton)), notice);

  const cards = {
    watchers: card("Watchers"), processes: card("Processes"), cpu: card("CPU"),
    memory: card("Memory"), daemon: card("Daemon"),
  };
  view.append(h("div", { class: "grid cards" }, ...Object.values(cards).map((c) => c.element)));

  const cpuChart = chartPanel("CPU by watcher", cpuLabel);
  const memChart = chartPanel("Memory by watcher", bytes, 1 << 20);
  const charts = chartHistory(nodeName, null, () => drawCharts());
  view.append(rangeBar(() => drawCharts()),
    h("div", { class: "grid charts" }, cpuChart.element, memChart.element));

  function drawCharts() {
    const snap = node.info.snapshot;
    if (!snap) return;
    const range = currentRange();
    const points = charts.points(range);
    const names = snap.watchers.map((w) => w.name);
    cpuChart.set(names.map((name, i) => ({ name, colorIndex: i,
      points: points.map((p) => [p.t, watcherValue(p, name, 0)]) })), range);
    memChart.set(names.map((name, i) => ({ name, colorIndex: i,
      points: points.map((p) => [p.t, watcherValue(p, name, 1)]) })), range);
  }

  const tbody = h("tbody");
  view.append(h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", {}, "Watchers")),
    h("div", { class: "table-wrap" }, h("table", { class: "watchers" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Watcher"), h("th", {}, "State"), h("th", { class: "num" }, "Processes"),
        h("th", { class: "num" }, "CPU"), h("th", { class: "num" }, "Memory"), h("th", { class: "opt" }, "Last minutes"),
        h("th", { class: "num opt" }, "Uptime"), h("th", { class: "num opt" }, "Restarts"),
        h("th", { class: "opt" }, "Last exit"), h("th", {}, "Actions"))),
      tbody))));

  const socketBody = h("tbody");
  const socketPanel = h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", {}, "Sockets")),
    h("div", { class: "table-wrap" }, h("table", { class: "sockets" },
      h("thead", {}, h("tr", {}, h("th", {}, "Socket"), h("th", {}, "Address"), h("th", { class: "num" }, "fd"),
        h("th", { class: "num" }, "Backlog"), h("th", { class: "num" }, "Accept queue"))),
      socketBody)));
  view.append(socketPanel);

  const eventList = h("ul", { class: "events" });
  view.append(h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", {}, "Recent events")), eventList));

  addButton.addEventListener("click", () => addWatcherDialog(nodeName));
  reloadButton.addEventListener("click", guarded(async () => {
    if (!(await confirmAction("Reload the configuration?",
      `The daemon on ${nodeName} reads its configuration file again and applies the difference: `
      + "added watchers start, removed ones stop, changed ones restart.", "Reload config"))) return;
    await act(reloadButton, "reloadconfig", `${nodePath(nodeName)}/reloadconfig`, {});
  }));

  function watcherRow(w) {
    const link = h("a", { href: `#/n/${enc(nodeName)}/w/${enc(w.name)}` }, w.name);
    const spark = h("canvas", { class: "spark", "aria-hidden": "true" });
    const path = watcherPath(nodeName, w.name);
    const incr = h("button", { class: "btn btn-sm btn-icon", type: "button", title: "Add a process", "data-action": "incr" }, "+");
    const decr = h("button", { class: "btn btn-sm btn-icon", type: "button", title: "Remove a process", "data-action": "decr" }, "−");
    const start = h("button", { class: "btn btn-sm", type: "button", "data-action": "start" }, "Start");
    const stop = h("button", { class: "btn btn-sm btn-danger", type: "button", "data-action": "stop" }, "Stop");
    const restart = h("button", { class: "btn btn-sm", type: "button", "data-action": "restart" }, "Restart");
    incr.addEventListener("click", guarded(() => act(incr, `incr ${w.name}`, `${path}/incr`, { nb: 1 })));
    decr.addEventListener("click", guarded(() => act(decr, `decr ${w.name}`, `${path}/decr`, { nb: 1 })));
    start.addEventListener("click", guarded(() => act(start, `start ${w.name}`, `${path}/start`, {})));
    stop.addEventListener("click", guarded(async () => {
      if (await confirmAction(`Stop ${w.name}?`, `Every process of ${w.name} on ${nodeName} is stopped.`, "Stop")) {
        await act(stop, `stop ${w.name}`, `${path}/stop`, {});
      }
    }));
    restart.addEventListener("click", guarded(async () => {
      if (await confirmAction(`Restart ${w.name}?`, `Every process of ${w.name} is stopped, then started again.`, "Restart")) {
        await act(restart, `restart ${w.name}`, `${path}/restart`, {});
      }
    }));
    return h("tr", { "data-watcher": w.name },
      h("td", { class: "name-cell" }, link), h("td", {}, h("span", { class: "badge" })),
      h("td", { class: "num procs", "data-label": "processes" }), h("td", { class: "num cpu", "data-label": "CPU" }),
      h("td", { class: "num mem", "data-label": "memory" }),
      h("td", { class: "opt" }, spark), h("td", { class: "num opt uptime" }),
      h("td", { class: "num opt restarts" }), h("td", { class: "opt last-exit" }),
      h("td", { class: "row-actions" }, h("div", { class: "actions" }, decr, incr, start, stop, restart)));
  }

  function updateRow(row, w) {
    setBadge(row.querySelector(".badge"), w.status);
    const ready = w.ready !== null && w.ready !== undefined && w.ready !== w.running ? ` (${w.ready} ready)` : "";
    setText(row.querySelector(".procs"), `${w.running}/${w.wanted}${ready}`);
    setText(row.querySelector(".cpu"), percent(w.cpu));
    setText(row.querySelector(".mem"), bytes(w.rss));
    setText(row.querySelector(".uptime"), duration(w.uptime));
    setText(row.querySelector(".restarts"), w.restarts ?? "–");
    const exit = row.querySelector(".last-exit");
    setText(exit, w.failure ? `failed: ${w.failure}` : lastExit(w.last_exit));
    exit.classList.toggle("bad-text", Boolean(w.failure));
    const values = node.history.slice(-120).map((p) => watcherValue(p, w.name, 0));
    sparkline(row.querySelector("canvas"), values, "--c1");
  }

  function drawEvents() {
    const items = node.events.slice(-40).reverse();
    eventList.replaceChildren(...(items.length ? items.map((e) => h("li", {},
      h("time", {}, clock(e.time)), h("span", { class: "mono" }, e.topic), h("span", { class: "muted" }, eventText(e))))
      : [h("li", { class: "muted" }, "Nothing has happened since bigtop-web started.")]));
  }

  return {
    update(kind, which) {
      if (which && which !== nodeName) return;
      const info = node.info;
      const snap = info.snapshot;
      const source = sourceOf(info);
      sub.title = source.title;
      setText(sub, `${info.endpoint || ""}${info.version ? ` · bigtop ${info.version}` : ""}`
        + (source.text ? ` · ${source.text}` : ""));
      setBadge(reach, reachText(info));
      notice.replaceChildren(info.reachable === false ? unreachableNotice(info) : "");
      if (kind === "init") drawEvents();
      if (!snap) return;
      const watchers = snap.watchers;
      const running = watchers.reduce((n, w) => n + (w.running || 0), 0);
      const wanted = watchers.reduce((n, w) => n + (w.wanted || 0), 0);
      const failed = watchers.filter((w) => w.status === "failed").length;
      setText(cards.watchers.value, `${watchers.filter((w) => w.status === "active").length}/${watchers.length}`);
      setText(cards.watchers.hint, failed ? `active / all · ${failed} failed` : "active / all");
      cards.watchers.hint.classList.toggle("failed", failed > 0);
      setText(cards.processes.value, `${running}/${wanted}`);
      setText(cards.processes.hint, "running / wanted");
      setText(cards.cpu.value, percent(watchers.reduce((n, w) => n + w.cpu, 0)));
      setText(cards.cpu.hint, "all processes, with their children");
      setText(cards.memory.value, bytes(watchers.reduce((n, w) => n + w.rss, 0)));
      setText(cards.memory.hint, "resident");
      const d = snap.daemon;
      setText(cards.daemon.value, d ? `${percent(d.cpu)} · ${bytes(d.rss)}` : "–");
      setText(cards.daemon.hint, d ? `pid ${d.pid} · up ${duration(d.age)} · ${d.threads ?? "?"} threads · ${d.fds ?? "?"} fds` : "");
      syncRows(tbody, watchers, (w) => w.name, watcherRow, updateRow);
      if (!watchers.length) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No watchers.")));
      socketPanel.hidden = !snap.sockets.length;
      syncRows(socketBody, snap.sockets, (s) => s.name, () => h("tr", {},
        h("td", { class: "name" }), h("td", { class: "mono addr" }), h("td", { class: "num fd", "data-label": "fd" }),
        h("td", { class: "num backlog", "data-label": "Backlog" }),
        h("td", { class: "num queue", "data-label": "Accept queue" })), (row, s) => {
        setText(row.querySelector(".name"), s.name);
        setText(row.querySelector(".addr"), s.path || `${s.host}:${s.port}`);
        setText(row.querySelector(".fd"), s.fd);
        setText(row.querySelector(".backlog"), s.backlog);
        setText(row.querySelector(".queue"), s.accept_queue ?? "n/a");
      });
      drawCharts();
    },
    onEvents(items) {
      if (items.some((e) => e.node === nodeName)) drawEvents();
    },
    destroy() {
      charts.destroy();
      cpuChart.chart.destroy();
      memChart.chart.destroy();
    },
  };
}

function cpuLabel(v) {
  return `${v < 10 && v !== Math.round(v) ? v.toFixed(1) : Math.round(v)}%`;
}

function eventText(e) {
  const p = e.payload || {};
  if (e.topic === "activity") { // an action taken on the daemon, and by whom
    const by = p.by || {};
    const who = `${by.user || "?"}${by.host ? `@${by.host}` : ""}${by.from ? ` from ${by.from}` : ""}`;
    const target = p.properties && p.properties.name ? ` ${p.properties.name}` : "";
    return `${who}${by.via ? ` (${by.via})` : ""}: ${p.command}${target} · ${p.status === "ok" ? "ok" : `error: ${p.reason}`}`;
  }
  const bits = [];
  if (p.process_pid) bits.push(`pid ${p.process_pid}`);
  if (p.exit_code !== undefined) bits.push(`exit ${p.exit_code}`);
  if (p.done !== undefined) bits.push(`${p.done}/${p.total}`);
  if (p.reason) bits.push(p.reason);
  if (p.delay !== undefined) bits.push(`retry in ${p.delay}s`);
  return bits.join(" · ");
}

function addWatcherDialog(nodeName) {
  return modal(`Add a watcher on ${nodeName}`, (form) => {
    form.append(
      h("label", {}, "Name", h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_][A-Za-z0-9_.@-]*", autocomplete: "off" })),
      h("label", {}, "Command", h("input", { name: "cmd", required: true, placeholder: "python -m http.server", autocomplete: "off" })),
      h("label", {}, "Processes", h("input", { name: "numprocesses", type: "number", min: "0", value: "1" })),
      h("label", {}, "Other options (JSON, as in set)", h("textarea", { name: "options", rows: "2", placeholder: "{\"working_dir\": \"/srv/app\"}" })),
      h("label", { class: "check" }, h("input", { name: "start", type: "checkbox", checked: true }), "Start it now"));
  }, {
    submitLabel: "Add",
    submit: async (form) => {
      const data = new FormData(form);
      let options = {};
      const text = String(data.get("options") || "").trim();
      if (text) {
        try {
          options = JSON.parse(text);
        } catch (err) {
          throw new Error(`Other options: not JSON (${err.message})`);
        }
      }
      options.numprocesses = String(data.get("numprocesses") || "1");
      const body = { name: data.get("name"), cmd: data.get("cmd"), options, start: data.get("start") === "on" };
      const reply = await api(`${nodePath(nodeName)}/watchers`, { method: "POST", body })
        .catch((err) => { throw new Error(err.message); });
      toast(`add ${body.name}: done`, { body: describeReply(reply.reply), details: reply.reply });
      return reply;
    },
  });
}

// -- one watcher ---------------------------------------------------------------------------------

// The watcher option table (GET /api/options), asked once.
let optionTablePromise = null;
function optionTable() {
  if (!optionTablePromise) {
    optionTablePromise = api("/api/options").catch((err) => {
      optionTablePromise = null;
      throw err;
    });
  }
  return optionTablePromise;
}

const SIGNAL_CHOICES = ["HUP", "USR1", "USR2", "INT", "TERM", "QUIT", "KILL", "TTIN", "TTOU", "WINCH"];
const GENTLE_SIGNALS = new Set(["HUP", "USR1", "USR2", "TTIN", "TTOU", "WINCH"]);

function watcherPage(view, nodeName, watcherName) {
  const node = state.nodes.get(nodeName);
  const path = watcherPath(nodeName, watcherName);
  const status = h("span", { class: "badge" });
  const notice = h("div");
  const button = (label, action, extra = "") => h("button", { class: `btn ${extra}`, type: "button", "data-action": action }, label);
  const buttons = {
    start: button("Start", "start"), stop: button("Stop", "stop", "btn-danger"),
    restart: button("Restart", "restart"), reload: button("Rolling reload", "reload"),
    decr: button("− Process", "decr"), incr: button("+ Process", "incr"),
    signal: button("Signal…", "signal"), rm: button("Remove", "rm", "btn-danger"),
  };
  view.append(
    h("div", { class: "crumbs" }, h("a", { href: `#/n/${enc(nodeName)}` }, nodeName), " / watcher"),
    h("div", { class: "page-head" }, h("h1", {}, watcherName), status, h("span", { class: "spacer" }),
      h("div", { class: "actions" }, ...Object.values(buttons))), notice);

  const bar = h("i");
  const progressText = h("span", { class: "muted" });
  const progress = h("section", { class: "panel", hidden: true },
    h("div", { class: "progress" }, h("b", {}, "Reloading"), h("div", { class: "bar" }, bar), progressText));
  view.append(progress);

  const facts = h("div", { class: "facts" });
  view.append(h("section", { class: "panel" }, h("div", { class: "panel-body" }, facts)));

  const cpuChart = chartPanel("CPU by process slot", cpuLabel);
  const memChart = chartPanel("Memory by process slot", bytes, 1 << 20);
  const charts = chartHistory(nodeName, watcherName, () => drawCharts());
  view.append(rangeBar(() => drawCharts()),
    h("div", { class: "grid charts" }, cpuChart.element, memChart.element));

  // A line per slot (wid): a replaced process's successor goes on with it.
  function drawCharts() {
    const w = currentWatcher();
    if (!w) return;
    const range = currentRange();
    const points = charts.points(range);
    const since = Date.now() / 1000 - range.seconds;
    const slots = new Map(); // slot -> pid: its current process, else its last in the points
    for (const p of points) {
      const own = p.w[w.name];
      if (!own || !own[2] || p.t < since) continue;
      for (const [slot, value] of Object.entries(own[2])) slots.set(slot, value[2]);
    }
    for (const p of w.processes) if (p.wid !== null && p.wid !== undefined) slots.set(String(p.wid), p.pid);
    const order = [...slots.keys()].sort((a, b) => (Number(a) || 1e9) - (Number(b) || 1e9) || a.localeCompare(b));
    const label = (slot) => `#${slot}${slots.get(slot) ? ` pid ${slots.get(slot)}` : ""}`;
    cpuChart.set(order.map((slot, i) => ({ name: label(slot), colorIndex: i,
      points: points.map((p) => [p.t, slotValue(p, w.name, slot, 0)]) })), range);
    memChart.set(order.map((slot, i) => ({ name: label(slot), colorIndex: i,
      points: points.map((p) => [p.t, slotValue(p, w.name, slot, 1)]) })), range);
  }

  const procBody = h("tbody");
  view.append(h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", {}, "Processes")),
    h("div", { class: "table-wrap" }, h("table", { class: "processes" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "pid"), h("th", { class: "num" }, "wid"),
        h("th", { class: "num" }, "CPU"), h("th", { class: "num" }, "Memory"), h("th", { class: "num opt" }, "Mem %"),
        h("th", { class: "num" }, "Age"), h("th", { class: "num opt" }, "Children"), h("th", { class: "num opt" }, "Threads"),
        h("th", { class: "num opt" }, "fds"), h("th", {}, ""))),
      procBody))));

  // Logs and options, as two tabs.
  const tabLogs = h("button", { class: "tab", role: "tab", type: "button", "aria-selected": "true" }, "Live log");
  const tabOptions = h("button", { class: "tab", role: "tab", type: "button", "aria-selected": "false" }, "Options");
  const pause = h("button", { class: "btn btn-sm", type: "button", "aria-pressed": "false" }, "Pause");
  const streamSelect = h("select", { "aria-label": "Stream" }, h("option", { value: "" }, "stdout + stderr"),
    h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
  const filter = h("input", { type: "search", placeholder: "Filter (text, or /regex/)", "aria-label": "Filter lines" });
  const clear = h("button", { class: "btn btn-sm", type: "button" }, "Clear");
  const downloadCount = h("select", { "aria-label": "Lines to download" },
    ...[100, 1000, 10000].map((n) => h("option", { value: String(n) }, `last ${n}`)));
  const download = h("a", { class: "btn btn-sm", href: "#", download: "" }, "Download");
  const logStatus = h("span", { class: "log-status" });
  const logBox = h("div", { class: "log", role: "log", "aria-live": "off", tabindex: "0" });
  const logTools = h("div", { class: "log-tools" }, pause, streamSelect, filter, clear, downloadCount, download, logStatus);
  const optionsBody = h("tbody");
  const optionsTable = h("div", { class: "table-wrap", hidden: true },
    h("div", { class: "options-tools" }, h("label", { class: "check" },
      h("input", { type: "checkbox", class: "changed-only" }), "Changed from the default only"),
    h("span", { class: "muted options-count" })),
    h("table", { class: "options" }, h("thead", {}, h("tr", {}, h("th", {}, "Option"), h("th", {}, "Value"),
      h("th", {}, "Default"), h("th", {}, ""))), optionsBody));
  const changedOnly = optionsTable.querySelector(".changed-only");
  changedOnly.addEventListener("change", () => drawOptions());
  view.append(h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("div", { class: "tabs", role: "tablist" }, tabLogs, tabOptions),
      h("span", { class: "spacer" }), logTools),
    logBox, optionsTable));

  let lines = []; // every line received, oldest first, at most LOG_KEEP
  let paused = false;
  let unseen = 0;
  let filterFn = () => true;
  let reloadTotal = 0;
  let destroyed = false;
  let optionValues = null;
  let optionInfo = null;

  function matches(entry) {
    if (streamSelect.value && entry.stream && entry.stream !== streamSelect.value) return false;
    return filterFn(entry.line || "");
  }

  // A piece of a line the process has not finished (partial) comes as a line
  // of its own; the next line of its pid and stream goes on with it.
  function lineElement(entry) {
    return h("div", { class: `log-line ${entry.stream || ""}${entry.partial ? " partial" : ""}`,
      title: entry.partial ? "unfinished: its next line goes on with it" : null },
      h("span", { class: "ts" }, entry.time ? clock(entry.time) : ""),
      h("span", { class: "who" }, entry.pid ? `${entry.stream === "stderr" ? "err" : "out"} ${entry.pid}` : ""),
      h("span", { class: "text" }, entry.line ?? ""));
  }

  function redrawLog() {
    const atBottom = true;
    logBox.replaceChildren(...lines.filter(matches).map(lineElement));
    if (!logBox.children.length) logBox.append(h("div", { class: "log-note" }, "No output yet."));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    unseen = 0;
    showLogStatus();
  }

  function showLogStatus() {
    setText(logStatus, paused ? `paused${unseen ? ` · ${unseen} new lines` : ""}` : `${lines.length} lines`);
  }

  function appendLines(entries) {
    lines.push(...entries);
    const overflow = lines.length - LOG_KEEP;
    if (overflow > 0) lines.splice(0, overflow);
    if (paused) {
      unseen += entries.length;
      showLogStatus();
      return;
    }
    const nearBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
    const note = logBox.querySelector(".log-note");
    if (note) note.remove();
    for (const entry of entries) if (matches(entry)) logBox.append(lineElement(entry));
    while (logBox.children.length > LOG_KEEP) logBox.firstElementChild.remove();
    if (nearBottom) logBox.scrollTop = logBox.scrollHeight;
    showLogStatus();
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    setText(pause, paused ? "Resume" : "Pause");
    if (!paused) redrawLog();
    else showLogStatus();
  });
  streamSelect.addEventListener("change", redrawLog);
  filter.addEventListener("input", () => {
    const text = filter.value.trim();
    filter.classList.remove("bad-text");
    if (!text) filterFn = () => true;
    else if (text.length > 2 && text.startsWith("/") && text.endsWith("/")) {
      try {
        const regex = new RegExp(text.slice(1, -1), "i");
        filterFn = (line) => regex.test(line);
      } catch (err) {
        filter.classList.add("bad-text");
        return;
      }
    } else {
      const needle = text.toLowerCase();
      filterFn = (line) => line.toLowerCase().includes(needle);
    }
    redrawLog();
  });
  clear.addEventListener("click", () => {
    lines = [];
    redrawLog();
  });
  function downloadHref() {
    const stream = streamSelect.value ? `&stream=${streamSelect.value}` : "";
    download.href = `${path}/logs?format=text&lines=${downloadCount.value}${stream}`;
  }
  downloadCount.addEventListener("change", downloadHref);
  streamSelect.addEventListener("change", downloadHref);
  downloadHref();

  function showTab(which) {
    const logs = which === "logs";
    tabLogs.setAttribute("aria-selected", String(logs));
    tabOptions.setAttribute("aria-selected", String(!logs));
    logBox.hidden = !logs;
    logTools.hidden = !logs;
    optionsTable.hidden = logs;
    if (!logs) loadOptions();
  }
  tabLogs.addEventListener("click", () => showTab("logs"));
  tabOptions.addEventListener("click", () => showTab("options"));

  // -- options ------------------------------------------------------------
  // Each option with its doc line and default, from bigtop-web's option
  // table (GET /api/options: the daemon's own declarations), a "changed" mark
  // when the value is not the default, and signals by name.
  const READ_ONLY = new Set(["stdout_stream_conf", "stderr_stream_conf", "hooks"]); // edited in the file

  function shown(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.join(" ");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function signalName(table, value) {
    const name = table && table.signals[String(value)];
    return name || (value === null || value === undefined ? "" : `signal ${value}`);
  }

  // How a value reads: a signal by name, nothing as "none".
  function valueText(table, info, value) {
    if (info && info.signal && typeof value === "number") return signalName(table, value);
    const text = shown(value);
    if (text !== "") return text;
    return Array.isArray(value) || value === null || value === undefined ? "none" : "{}";
  }

  // An option's doc line (the docs' Markdown): `code` as code, links as their text.
  function docText(doc) {
    const plain = doc.replace(/\*\*/g, "").replace(/\[([^\]]+)\]\([^)]*\)/g, "$1");
    return plain.split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
  }

  function defaultText(table, info) {
    if (info.shown) return info.shown.replace(/`/g, "");
    return valueText(table, info, info.default);
  }

  // Equal as JSON with sorted keys (5 and 5.0 are one value).
  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value !== null && typeof value === "object") {
      return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
    }
    return JSON.stringify(value === undefined ? null : value);
  }

  function changed(info, value) {
    return Boolean(info) && info.compare !== false && canonical(info.default) !== canonical(value);
  }

  function parseEdit(original, text) {
    if (original !== null && typeof original === "object" && !Array.isArray(original)) {
      try {
        return JSON.parse(text || "{}");
      } catch (err) {
        throw new Error(`not a JSON object: ${err.message}`);
      }
    }
    if (Array.isArray(original)) return text.split(/[\s,]+/).filter(Boolean);
    return text;
  }

  async function loadOptions() {
    try {
      const [data, table] = await Promise.all([api(`${path}/options`), optionTable()]);
      optionValues = data.reply.options;
      optionInfo = table;
      drawOptions();
    } catch (err) {
      optionsBody.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "bad-text" }, err.message)));
    }
  }

  function drawOptions() {
    if (!optionValues) return;
    const table = optionInfo;
    const entries = Object.entries(optionValues);
    const differ = entries.filter(([key, value]) => changed(table.options[key], value)).length;
    setText(optionsTable.querySelector(".options-count"),
      `${entries.length} options, ${differ} changed from the default`);
    const shownEntries = changedOnly.checked
      ? entries.filter(([key, value]) => changed(table.options[key], value)) : entries;
    optionsBody.replaceChildren(...shownEntries.map(([key, value]) => {
      const info = table.options[key] || null;
      const isChanged = changed(info, value);
      const valueCell = h("td", { class: "val" }, valueText(table, info, value));
      if (info && info.signal && typeof value === "number") valueCell.title = `signal ${value}`;
      const keyCell = h("td", { class: "key" }, h("div", { class: "name" }, h("span", { class: "mono" }, key),
        isChanged ? h("span", { class: "badge badge-changed", title: "Not the default value" }, "changed") : null),
      info ? h("div", { class: "doc" }, ...docText(info.doc)) : null);
      const defaultCell = h("td", { class: "default" },
        info && info.compare !== false ? defaultText(table, info) : (info && info.shown ? info.shown : ""));
      const editable = !READ_ONLY.has(key) && (!info || info.runtime);
      const edit = h("button", { class: "btn btn-sm", type: "button", "data-option": key }, "Edit");
      const row = h("tr", { "data-option": key, class: isChanged ? "changed" : null },
        keyCell, valueCell, defaultCell, h("td", { class: "edit" }, editable ? edit : ""));
      edit.addEventListener("click", () => editOption(row, key, value, info));
      return row;
    }));
  }

  function editOption(row, key, value, info) {
    const valueCell = row.querySelector(".val");
    const multi = value !== null && typeof value === "object" && !Array.isArray(value);
    const text = info && info.signal && typeof value === "number" ? signalName(optionInfo, value) : shown(value);
    const input = multi ? h("textarea", { rows: "3", name: key }, JSON.stringify(value, null, 1))
      : h("input", { name: key, value: text, autocomplete: "off", spellcheck: "false",
        placeholder: info && info.accepts ? info.accepts.replace(/`/g, "") : null });
    const error = h("div", { class: "field-error", role: "alert", hidden: true });
    const save = h("button", { class: "btn btn-sm btn-primary", type: "submit" }, "Save");
    const cancel = h("button", { class: "btn btn-sm", type: "button" }, "Cancel");
    const form = h("form", { class: "option-edit" }, input, error, h("div", { class: "actions" }, save, cancel));
    valueCell.replaceChildren(form);
    row.lastElementChild.replaceChildren();
    input.focus();
    cancel.addEventListener("click", drawOptions);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      let parsed;
      try {
        parsed = parseEdit(value, input.value);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        return;
      }
      save.disabled = true;
      save.classList.add("busy");
      try {
        const data = await api(`${path}/set`, { method: "POST", body: { options: { [key]: parsed } } });
        toast(`set ${watcherName} ${key}: done`, { details: data.reply });
        await loadOptions();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        save.disabled = false;
        save.classList.remove("busy");
      }
    });
  }

  // -- actions ----------------------------------------------------------------
  const go = (action, body = {}) => act(buttons[action], `${action} ${watcherName}`, `${path}/${action}`, body);
  buttons.start.addEventListener("click", guarded(() => go("start")));
  buttons.incr.addEventListener("click", guarded(() => go("incr", { nb: 1 })));
  buttons.decr.addEventListener("click", guarded(() => go("decr", { nb: 1 })));
  buttons.stop.addEventListener("click", guarded(async () => {
    if (await confirmAction(`Stop ${watcherName}?`, `Every process of ${watcherName} on ${nodeName} is stopped.`, "Stop")) await go("stop");
  }));
  buttons.restart.addEventListener("click", guarded(async () => {
    if (await confirmAction(`Restart ${watcherName}?`, "Every process is stopped, then started again.", "Restart")) await go("restart");
  }));
  buttons.reload.addEventListener("click", guarded(async () => {
    if (!(await confirmAction(`Rolling reload of ${watcherName}?`,
      "New processes start one at a time; each old one stops once its replacement is ready. "
      + "If a new one fails, the reload stops and the old processes keep serving.", "Reload"))) return;
    const w = currentWatcher();
    reloadTotal = w ? w.running : 0;
    showProgress(0, reloadTotal);
    try {
      await go("reload", { rolling: true });
      showProgress(reloadTotal, reloadTotal);
    } finally {
      setTimeout(() => { progress.hidden = true; }, 1500);
    }
  }));
  buttons.rm.addEventListener("click", guarded(async () => {
    if (!(await confirmAction(`Remove ${watcherName}?`,
      `${watcherName} is stopped and removed from ${nodeName} (until the next reloadconfig that names it).`, "Remove"))) return;
    await go("rm");
    window.location.hash = `#/n/${enc(nodeName)}`;
  }));
  buttons.signal.addEventListener("click", guarded(() => signalDialog(null)));

  async function signalDialog(pid) {
    let choice = null;
    const result = await modal(pid ? `Signal process ${pid}` : `Signal every process of ${watcherName}`, (form) => {
      form.append(h("label", {}, "Signal", h("select", { name: "signum" },
        ...SIGNAL_CHOICES.map((s) => h("option", { value: s }, `SIG${s}`)))),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "children" }), "Their children too"));
    }, { submitLabel: "Send", danger: true, submit: (form) => {
      const data = new FormData(form);
      choice = { signum: data.get("signum"), children: data.get("children") === "on" };
      return choice;
    } });
    if (!result) return;
    if (!GENTLE_SIGNALS.has(result.signum)
      && !(await confirmAction(`Send SIG${result.signum}?`, "This usually stops the process (it is then replaced).", `Send SIG${result.signum}`))) return;
    const body = { signum: result.signum, children: result.children };
    if (pid) body.pid = pid;
    await act(buttons.signal, `signal ${watcherName}`, `${path}/signal`, body);
  }

  function showProgress(done, total) {
    progress.hidden = false;
    const share = total ? Math.min(1, done / total) : 0;
    bar.style.width = `${Math.round(share * 100)}%`;
    setText(progressText, `${done}/${total || "?"} processes replaced`);
  }

  function currentWatcher() {
    const snap = node.info.snapshot;
    return snap ? snap.watchers.find((w) => w.name.toLowerCase() === watcherName.toLowerCase()) : null;
  }

  function processRow(p) {
    const signal = h("button", { class: "btn btn-sm", type: "button", title: "Send a signal to this process" }, "Signal…");
    signal.addEventListener("click", guarded(() => signalDialog(p.pid)));
    return h("tr", { "data-pid": p.pid }, h("td", { class: "num pid mono" }), h("td", { class: "num wid" }),
      h("td", { class: "num cpu" }), h("td", { class: "num rss" }), h("td", { class: "num opt mem" }),
      h("td", { class: "num age" }), h("td", { class: "num opt kids" }), h("td", { class: "num opt threads" }),
      h("td", { class: "num opt fds" }), h("td", {}, signal));
  }

  function updateProcess(row, p) {
    setText(row.querySelector(".pid"), p.pid);
    setText(row.querySelector(".wid"), p.wid ?? "–");
    setText(row.querySelector(".cpu"), percent(p.cpu));
    setText(row.querySelector(".rss"), bytes(p.rss));
    setText(row.querySelector(".mem"), percent(p.mem));
    setText(row.querySelector(".age"), duration(p.age));
    const kids = row.querySelector(".kids");
    setText(kids, p.children);
    kids.title = (p.child_pids || []).join(", ");
    setText(row.querySelector(".threads"), p.threads ?? "–");
    setText(row.querySelector(".fds"), p.fds ?? "–");
  }

  function fact(label, value, cls = "") {
    return h("div", {}, h("span", {}, label), h("b", { class: cls }, value));
  }

  function subscribe() {
    send({ op: "tail", node: nodeName, watcher: watcherName, lines: 200 });
  }
  subscribe();

  return {
    resubscribe: subscribe,
    update(kind, which) {
      if (which && which !== nodeName) return;
      const info = node.info;
      notice.replaceChildren(info.reachable === false ? unreachableNotice(info) : "");
      const w = currentWatcher();
      if (!w) {
        setBadge(status, info.reachable === false ? "unknown" : "removed");
        return;
      }
      setBadge(status, w.status);
      facts.replaceChildren(...[
        fact("Processes", `${w.running} running / ${w.wanted} wanted`),
        fact("Ready", w.ready ?? "–"),
        fact("CPU", percent(w.cpu)),
        fact("Memory", bytes(w.rss)),
        fact("Uptime", duration(w.uptime)),
        fact("Restarts", w.restarts ?? "–"),
        fact("Last exit", lastExit(w.last_exit)),
        w.failure ? fact("Failure", w.failure, "bad-text") : null,
        w.dropped_lines ? fact("Dropped lines", `${w.dropped_lines} (${bytes(w.dropped_bytes || 0)})`, "bad-text") : null].filter(Boolean));
      syncRows(procBody, w.processes, (p) => p.pid, processRow, updateProcess);
      if (!w.processes.length) procBody.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No process running.")));
      drawCharts();
    },
    onEvents(items) {
      for (const e of items) {
        if (e.node !== nodeName) continue;
        const [, name, event] = e.topic.match(/^watcher\.(.+)\.([a-z_]+)$/) || [];
        if (!name || name !== watcherName.toLowerCase()) continue;
        if (event === "reload_progress") {
          reloadTotal = e.payload.total || reloadTotal;
          showProgress(e.payload.done || 0, reloadTotal);
        } else if (event === "reload_aborted") {
          toast(`reload of ${watcherName} aborted`, { body: e.payload.reason || "", error: true });
        } else if (event === "updated" && optionValues) {
          loadOptions();
        }
      }
    },
    onLog(message) {
      if (destroyed || message.node !== nodeName || message.watcher.toLowerCase() !== watcherName.toLowerCase()) return;
      if (message.reset) {
        lines = (message.lines || []).slice(-LOG_KEEP);
        redrawLog();
        if (message.error) logBox.append(h("div", { class: "log-note" }, message.error));
        return;
      }
      appendLines(message.lines || []);
      if (message.dropped) appendLines([{ line: `… ${message.dropped} lines skipped (too fast to show)`, stream: "" }]);
    },
    destroy() {
      destroyed = true;
      send({ op: "untail" });
      charts.destroy();
      cpuChart.chart.destroy();
      memChart.chart.destroy();
    },
  };
}

// -- start --------------------------------------------------------------------------------------

function setupTheme() {
  const toggle = document.getElementById("theme-toggle");
  const names = { auto: "Theme: system", light: "Theme: light", dark: "Theme: dark" };
  const current = () => document.documentElement.getAttribute("data-theme") || "auto";
  const show = () => {
    toggle.textContent = { auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark" }[current()];
    toggle.title = names[current()];
  };
  toggle.addEventListener("click", () => {
    const next = { auto: "light", light: "dark", dark: "auto" }[current()];
    if (next === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", next);
    try {
      localStorage.setItem("bigtop-theme", next);
    } catch (err) {
      /* private mode: the choice lasts for this page */
    }
    show();
    refresh("theme");
  });
  show();
}

async function start() {
  setupTheme();
  document.getElementById("logout").addEventListener("click", guarded(async () => {
    await api("/logout", { method: "POST" });
    window.location.assign("/login");
  }));
  document.getElementById("node-select").addEventListener("change", (event) => {
    const value = event.target.value;
    window.location.hash = value === "*all" ? "#/all" : `#/n/${enc(value)}`;
  });
  window.addEventListener("hashchange", render);
  const info = await api("/api/session");
  session.csrf = info.csrf;
  // A read-only user is shown no action: the server would refuse them anyway.
  document.body.classList.toggle("read-only", info.role === "read");
  if (info.user) document.getElementById("logout").title = `Log out ${info.user} (${info.role})`;
  if (info.history && info.history.ranges && info.history.ranges.length) {
    RANGES = info.history.ranges;
    if (!RANGES.some((r) => r.name === chosenRange)) chosenRange = RANGES[0].name;
  }
  state.following = Boolean(info.cluster);
  for (const name of info.nodes) nodeState(name);
  fillNodeSelect();
  render();
  connect();
  // Ages, "x ago" and the charts' time axis move on between snapshots too.
  setInterval(() => refresh("tick"), 5000);
}

start().catch((err) => {
  setConn("down", "error");
  document.getElementById("view").append(h("div", { class: "panel panel-body bad-text" }, err.message));
});
