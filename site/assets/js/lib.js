// Shared helpers for the page scripts. Bundled into each page's script by js.Build.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const fallbackMessages = {
  0: "We could not reach GPU Broker. Check your connection and try again.",
  401: "Your session has ended. Please sign in again.",
  429: "Too many attempts. Please wait a minute and try again.",
};

// api calls the GPU Broker API and never throws: it resolves to {status, ok, data}, where
// data.message is always a human-readable text on failure (status 0 = network failure).
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { status: 0, ok: false, data: { error: "network", message: fallbackMessages[0] } };
  }
  let data = null;
  try {
    const text = await res.text();
    if (text && (res.headers.get("Content-Type") || "").includes("json")) data = JSON.parse(text);
  } catch (e) {
    data = null;
  }
  const json = data !== null && typeof data === "object";
  if (!json) data = {};
  if (!res.ok && typeof data.message !== "string") {
    data.message =
      fallbackMessages[res.status] ||
      (!json || res.status >= 500
        ? `GPU Broker is not available right now (HTTP ${res.status}). Please try again in a moment.`
        : `The request failed (HTTP ${res.status}). Please try again.`);
  }
  return { status: res.status, ok: res.ok, data };
}

// h builds an element: h("p", {class: "x", onclick: fn}, "text", child…). Text is never parsed
// as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Intl formatters are costly to create, so each is made once.
const moneyFormats = new Map();

export function money(cents, currency) {
  const cur = String(currency || "usd").toUpperCase();
  const n = Number(cents) / 100;
  try {
    if (!moneyFormats.has(cur)) moneyFormats.set(cur, new Intl.NumberFormat("en-US", { style: "currency", currency: cur }));
    return moneyFormats.get(cur).format(n);
  } catch (e) {
    return `${n.toFixed(2)} ${cur}`;
  }
}

// dateTime is the one format customers read times in, the emails' ("Mon 7 Dec 2026, 20:15
// UTC"): here in the browser's own zone, with the zone named ("Mon 7 Dec 2026, 21:15 CET"). The
// zone's name is the US English one ("EST", "UTC"), else the British ("CET", "BST"), else its
// offset from UTC ("UTC+5:30"). The formatters are made once, on first use.
let timeParts, zoneFormats;
function zoneName(d) {
  zoneFormats = zoneFormats || ["en-US", "en-GB"].map((l) => new Intl.DateTimeFormat(l, { timeZoneName: "short" }));
  let name = "";
  for (const f of zoneFormats) {
    name = (f.formatToParts(d).find((x) => x.type === "timeZoneName") || {}).value || "";
    if (!/^GMT[+\-\u2212]/.test(name)) break;
  }
  return name.replace(/^GMT(?=[+\-\u2212])/, "UTC").replace("\u2212", "-");
}

export function dateTime(s) {
  const d = new Date(s);
  if (!s || isNaN(d)) return "";
  timeParts = timeParts || new Intl.DateTimeFormat("en-US", { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const p = Object.fromEntries(timeParts.formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.weekday} ${p.day} ${p.month} ${p.year}, ${p.hour}:${p.minute} ${zoneName(d)}`;
}

export function param(name) {
  return new URLSearchParams(location.search).get(name) || "";
}

// catalog returns the build-time catalog embedded in the page (partial catalog.html).
export function catalog() {
  try {
    return JSON.parse($("#catalog").textContent);
  } catch (e) {
    return { plans: [], templates: [], gpus: [], regions: [] };
  }
}

export function regionName(cat, id) {
  const r = (cat.regions || []).find((x) => x.id === id);
  return r ? r.name : id;
}

// status fills a status element: state goes to data-state (styling and tests), kind picks the
// alert colour (info, ok, warn, err), content is text or nodes. spinner adds a spinner.
export function status(el, state, kind, content, spinner) {
  el.dataset.state = state;
  el.className = `alert ${kind}${spinner ? " status" : ""}`;
  el.replaceChildren();
  if (spinner) el.append(h("span", { class: "spinner", "aria-hidden": "true" }));
  const body = h("div", {});
  for (const c of [].concat(content)) body.append(typeof c === "string" ? h("p", {}, c) : c);
  el.append(body);
  el.hidden = false;
}

// Field errors: an input #x has its message in #x-error (rendered hidden at build time).
export function fieldError(input, message) {
  const err = document.getElementById(`${input.id}-error`);
  if (message) {
    input.setAttribute("aria-invalid", "true");
    if (err) {
      err.textContent = message;
      err.hidden = false;
    }
  } else {
    input.removeAttribute("aria-invalid");
    if (err) {
      err.textContent = "";
      err.hidden = true;
    }
  }
}

export function clearFieldErrors(form) {
  for (const el of $$("[aria-invalid]", form)) fieldError(el, "");
  for (const el of $$(".field-error", form)) {
    el.textContent = "";
    el.hidden = true;
  }
}

export const validEmail = (s) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s) && s.length <= 254;

// busy disables a button while a request runs and shows a label.
export function busy(btn, on, label) {
  if (on) {
    btn.dataset.label = btn.textContent;
    btn.disabled = true;
    btn.setAttribute("aria-busy", "true");
    btn.textContent = label || "Please wait…";
  } else {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    if (btn.dataset.label) btn.textContent = btn.dataset.label;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Who is signed in. The session cookie is HttpOnly, so pages learn it from GET /api/me, once
// per page load (me() shares the answer). localStorage remembers that this browser has been
// signed in, so the header asks only then: a visitor who never signed in never calls the API
// from the marketing pages.
const SIGNED_IN = "gb-signed-in";
let meAnswer = null;
const accountListeners = [];

// me resolves to GET /api/me's {status, ok, data}; fresh asks again.
export function me(fresh) {
  if (!meAnswer || fresh) {
    meAnswer = api("GET", "/api/me").then((res) => {
      if (res.ok && res.data && res.data.account) setAccount(res.data.account);
      else if (res.status === 401) setAccount(null);
      return res;
    });
  }
  return meAnswer;
}

export function maybeSignedIn() {
  try {
    return localStorage.getItem(SIGNED_IN) === "1";
  } catch (e) {
    return false;
  }
}

// setAccount records who is signed in (null: nobody) and tells every onAccount listener.
export function setAccount(account) {
  try {
    if (account) localStorage.setItem(SIGNED_IN, "1");
    else localStorage.removeItem(SIGNED_IN);
  } catch (e) {}
  if (!account) meAnswer = null;
  for (const fn of accountListeners) fn(account);
}

export function onAccount(fn) {
  accountListeners.push(fn);
}

// logout ends the session from btn (the header's menu or the dashboard). A 401 means it had
// ended already: signed out either way, and setAccount(null) tells every listener. It returns
// null once signed out, or the message saying why not.
export async function logout(btn) {
  busy(btn, true, "Signing out…");
  const res = await api("POST", "/api/logout");
  busy(btn, false);
  if (!res.ok && res.status !== 401) return res.data.message;
  setAccount(null);
  return null;
}

// hms formats a number of seconds as h:mm:ss (a countdown).
export function hms(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
}
