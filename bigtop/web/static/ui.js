// Small helpers shared by the pages: building elements, formatting numbers,
// calling the API, toasts and dialogs.

// h("div", {class: "x", onclick: fn}, child, "text", [more children])
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

// Set text only when it changed (keeps selections and avoids layout work).
export function setText(element, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (element.textContent !== value) element.textContent = value;
}

// -- formatting ---------------------------------------------------------------------

export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function percent(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return `${Number(n).toFixed(Number(n) >= 100 ? 0 : 1)}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  s -= mm * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s}s`;
  return `${s}s`;
}

export function ago(time) {
  if (!time) return "–";
  return `${duration(Date.now() / 1000 - time)} ago`;
}

export function clock(time) {
  if (!time) return "";
  const d = new Date(time * 1000);
  return d.toLocaleTimeString([], { hour12: false });
}

const SIGNALS = { 1: "HUP", 2: "INT", 3: "QUIT", 6: "ABRT", 9: "KILL", 10: "USR1", 12: "USR2",
  13: "PIPE", 14: "ALRM", 15: "TERM" };

export function lastExit(exit) {
  if (!exit) return "–";
  if (exit.reason) return `spawn failed: ${exit.reason}`;
  const code = exit.exit_code;
  let what;
  if (code === null || code === undefined) what = "exited";
  else if (code < 0) what = `killed by SIG${SIGNALS[-code] || -code}`;
  else what = `exit ${code}`;
  const when = exit.time ? `, ${ago(exit.time)}` : "";
  return `${what}${exit.requested ? " (stopped)" : ""}${when}`;
}

// -- the API ------------------------------------------------------------------------

export const session = { csrf: null };

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// waitSeconds: give up (an ApiError) when bigtop-web has not answered by then.
export async function api(path, { method = "GET", body, waitSeconds = null } = {}) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = session.csrf || "";
    options.body = JSON.stringify(body || {});
  }
  let timer = null;
  if (waitSeconds) {
    const controller = new AbortController();
    options.signal = controller.signal;
    timer = setTimeout(() => controller.abort(), waitSeconds * 1000);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    const why = options.signal && options.signal.aborted ? `no answer within ${waitSeconds}s` : err.message;
    throw new ApiError(`bigtop-web did not answer (${why})`, 0, null);
  } finally {
    if (timer) clearTimeout(timer);
  }
  if (response.status === 401) {
    window.location.assign("/login");
    throw new ApiError("login required", 401, null);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok || (data && data.ok === false)) {
    throw new ApiError((data && data.error) || `HTTP ${response.status}`, response.status, data);
  }
  return data;
}

// -- toasts ---------------------------------------------------------------------------

export function toast(title, { body = "", error = false, details = null } = {}) {
  const box = document.getElementById("toasts");
  const close = h("button", { class: "btn btn-ghost btn-sm", type: "button", "aria-label": "Close" }, "✕");
  const item = h("div", { class: `toast${error ? " error" : ""}`, role: error ? "alert" : "status" },
    h("div", { class: "title" }, title), close,
    body ? h("div", { class: "body" }, body) : null,
    details ? h("details", {}, h("summary", {}, "Daemon's reply"),
      h("pre", {}, JSON.stringify(details, null, 2))) : null);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  while (box.children.length > 5) box.firstElementChild.remove();
  if (!error) setTimeout(() => item.remove(), 8000);
  return item;
}

// -- dialogs --------------------------------------------------------------------------

// Show a modal built by build(form); resolves with what submit(form) returns,
// or null when cancelled. submit may throw to keep the dialog open (its
// message is shown in the dialog).
export function modal(title, build, { submitLabel = "OK", danger = false, submit = () => true } = {}) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const error = h("div", { class: "field-error", role: "alert", hidden: true });
    const ok = h("button", { class: `btn ${danger ? "btn-danger btn-solid" : "btn-primary"}`, type: "submit",
      value: "ok" }, submitLabel);
    const cancel = h("button", { class: "btn", type: "button" }, "Cancel");
    const form = h("form", { method: "dialog" }, h("h2", {}, title));
    build(form);
    form.append(error, h("div", { class: "buttons" }, cancel, ok));
    dialog.replaceChildren(form);
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", () => finish(null), { once: true });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      ok.disabled = true;
      ok.classList.add("busy");
      try {
        finish(await submit(form));
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        ok.disabled = false;
        ok.classList.remove("busy");
      }
    });
    dialog.showModal();
    const first = form.querySelector("input, select, textarea");
    (first || ok).focus();
  });
}

export function confirmAction(title, message, label = "Confirm") {
  return modal(title, (form) => form.append(h("p", {}, message)), { submitLabel: label, danger: true });
}
