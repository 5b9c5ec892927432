// The get-started wizard: email & name → plan → workspace → GPU/region/hours → review → Pay.
// The API prices: the total and its lines are POST /api/quote's answer (what checkout charges,
// the Pro fee waived for a signed-in buyer whose own is paid); this page computes no price.
import "./header.js";
import { $, $$, api, h, money, dateTime, catalog, regionName, fieldError, clearFieldErrors, validEmail, busy, param, me, onAccount } from "./lib.js";

const form = $("#get-started-form");
const STORE = "gb-get-started";
const FIELDS = ["email", "name", "plan", "template", "gpu", "region", "hours"];
const STEP_OF = { email: 1, name: 1, ssh_public_key: 1, plan: 2, template: 3, gpu: 4, region: 4, hours: 4 };
const GROUPS = ["plan", "template"];
let cat = catalog();
let step = 1;
// backToReview: the API refused the order at Pay and sent the customer back to a field.
let backToReview = false;
// The signed-in account (GET /api/me), until when its Pro fee is paid, and its SSH keys'
// names (GET /api/me/ssh-keys): an order for the account's own email goes on that account.
let account = null;
let proUntil = "";
let accountKeys = [];

const el = (id) => document.getElementById(id);
const checked = (name) => form.querySelector(`input[name="${name}"]:checked`);
const plan = () => {
  const r = checked("plan");
  return r ? cat.plans.find((p) => p.id === r.value) : null;
};
const template = () => {
  const r = checked("template");
  return r ? cat.templates.find((t) => t.id === r.value) : null;
};
const gpuOf = (id) => cat.gpus.find((g) => g.gpu === id);
// The regions a GPU can be ordered in now (all of them when every one is sold out).
const orderable = (g) => (g.regions.some((r) => r.available) ? g.regions.filter((r) => r.available) : g.regions);
// minRate is the "from" price beside a GPU: its cheapest region that can be ordered, the one
// fillRegions preselects.
const minRate = (g) => Math.min(...orderable(g).map((r) => r.hourly_cents));
const allowed = (p) => cat.gpus.filter((g) => !p || !(p.gpu_classes || []).length || p.gpu_classes.includes(g.gpu));
// free: the chosen plan costs nothing (the free trial): its hour is free, so no hourly price is
// shown beside its $0.00 total.
const free = () => !!(plan() && !plan().payment_required);
// A plan's most hours per pod (max_hours; 0: no limit).
const hoursLimit = (p) => (p && p.max_hours > 0 ? p.max_hours : 0);

function fillGPUs() {
  const sel = el("gpu");
  const cur = sel.value;
  const p = plan();
  const list = allowed(p);
  sel.replaceChildren(...list.map((g) => h("option", { value: g.gpu }, free() ? g.display_name : `${g.display_name} — from ${money(minRate(g))}/h`)));
  if (list.length) sel.value = list.some((g) => g.gpu === cur) ? cur : list[0].gpu;
  if (sel.value !== cur) {
    fillRegions(true);
    return;
  }
  el("gpu-hint").textContent =
    p && (p.gpu_classes || []).length ? `The ${p.name} plan includes ${list.map((g) => g.display_name).join(" and ")}.` : "";
  fillRegions();
}

// fillRegions lists the GPU's regions; cheapest (a GPU just chosen) preselects the cheapest one
// that can be ordered, the price its "from" names, instead of keeping the region chosen before.
function fillRegions(cheapest) {
  const sel = el("region");
  const cur = sel.value;
  const g = gpuOf(el("gpu").value);
  const regions = g ? g.regions : [];
  sel.replaceChildren(
    ...regions.map((r) =>
      h("option", { value: r.region, disabled: !r.available }, `${regionName(cat, r.region)}${free() ? "" : ` — ${money(r.hourly_cents)}/h`}${r.available ? "" : " (sold out)"}`),
    ),
  );
  const ok = (id) => regions.some((r) => r.region === id && r.available);
  const first = g && regions.find((r) => r.available && r.hourly_cents === minRate(g));
  if (ok(cur) && !cheapest) sel.value = cur;
  else if (first) sel.value = first.region;
  fillHours();
}

// fillHours offers 1 to the plan's most hours; a plan of one fixed length (the free trial)
// states it instead of asking.
function fillHours() {
  const input = el("hours");
  const max = hoursLimit(plan());
  const fixed = max === 1;
  if (max) input.max = String(max);
  else input.removeAttribute("max");
  el("hours-hint").textContent = max ? `1 to ${max} hours` : "1 hour or more";
  const n = parseInt(input.value, 10);
  if (max && (n > max || fixed)) input.value = String(max);
  el("hours-field").hidden = fixed;
  el("hours-fixed-field").hidden = !fixed;
  el("hours-fixed").textContent = "1 hour, the free trial's length";
  el("price-note").hidden = !!(plan() && !plan().payment_required);
  updateTotal();
}

// own: the order is for the signed-in account's own email, so it goes on that account: no
// activation, its Pro fee (when paid) is not charged again, its SSH keys go onto the pod.
const own = () => !!(account && el("email").value.trim().toLowerCase() === (account.email || "").toLowerCase());

// signedInCopy words the form for who is ordering: new-customer copy for a visitor, the
// account's state for its own order.
function signedInCopy() {
  const mine = own();
  for (const id of ["lead", "you-text"]) {
    const p = el(id);
    if (!p || !p.dataset.signedIn) continue;
    if (p.dataset.visitor === undefined) p.dataset.visitor = p.textContent;
    p.textContent = account ? p.dataset.signedIn : p.dataset.visitor;
  }
  const waived = mine && proUntil && new Date(proUntil) > new Date();
  for (const p of cat.plans) {
    if (!p.payment_required || !p.fee_cents) continue;
    for (const [sel, text] of [
      [".plan-price", `${p.name} · no plan fee, GPU hours only`],
      [".plan-summary", `${p.name} active until ${dateTime(proUntil)}: this order pays only its GPU time.`],
    ]) {
      const node = form.querySelector(`${sel}[data-plan="${CSS.escape(p.id)}"]`);
      if (!node) continue;
      if (node.dataset.visitor === undefined) node.dataset.visitor = node.textContent;
      node.textContent = waived ? text : node.dataset.visitor;
    }
  }
  if (step === 5) fillReview();
}

const hoursText = (n) => (n === 1 ? "1 hour" : `${n} hours`);

// The quote: the API's answer for the current choices, asked for (debounced) whenever they
// change. quoted is the answer for quoteKey, or null while asking or when the choices are
// incomplete or refused.
let quoted = null;
let quoteKey = "";
let quoteTimer = 0;

function updateTotal(fresh) {
  const v = { ...values(), ssh_public_key: undefined }; // the key is checked at checkout
  const key = v.plan && v.template && v.gpu && v.region && v.hours >= 1 ? JSON.stringify(v) : "";
  if (key === quoteKey && !fresh) return;
  quoteKey = key;
  quoted = null;
  clearTimeout(quoteTimer);
  showQuote();
  if (!key) return;
  quoteTimer = setTimeout(async () => {
    const res = await api("POST", "/api/quote", v);
    if (key !== quoteKey) return; // the choices changed meanwhile
    quoted = res.ok && Array.isArray(res.data.line_items) ? res.data : null;
    showQuote();
  }, 200);
}

// quoteLines words the quote's lines: [{label, cents, waived}] and a one-line summary.
function quoteLines(q) {
  const p = plan();
  const g = gpuOf(el("gpu").value);
  if (!q || !p || !g) return null;
  const what = `${g.display_name}, ${regionName(cat, el("region").value)}`;
  if (!p.payment_required) return { lines: [{ label: `Free trial: ${hoursText(q.hours)} of ${what}`, cents: 0 }], text: "Free trial, no card needed" };
  const period = p.fee_period_days ? ` (${p.fee_period_days} days)` : "";
  const lines = [];
  const text = [];
  if (q.plan_fee_waived_until) {
    lines.push({ label: `${p.name} plan fee: Pro active until ${dateTime(q.plan_fee_waived_until)}, nothing to pay`, cents: 0, waived: true });
    text.push("no plan fee (Pro active)");
  }
  for (const li of q.line_items) {
    const rate = `${hoursText(li.quantity)} × ${money(li.unit_amount_cents, q.currency)}`;
    lines.push({ label: li.kind === "plan_fee" ? `${p.name} plan fee${period}` : `${rate} (${what})`, cents: li.amount_cents });
    text.push(li.kind === "plan_fee" ? `${p.name} plan${period} ${money(li.amount_cents, q.currency)}` : rate);
  }
  return { lines, text: text.join(" + ") };
}

function showQuote() {
  const w = quoteLines(quoted);
  el("total").textContent = w ? money(quoted.amount_cents, quoted.currency) : "—";
  el("total-breakdown").textContent = w ? w.text : "";
  if (step === 5) fillReview();
}

// keyProblem checks the optional SSH key as the server's ParseSSHKey (sshkey.go) does, so that
// a key it would refuse is refused here, on the details step, before Pay: one OpenSSH public key
// line of type ed25519, ecdsa (nistp256/384/521) or rsa of 2048 bits or more, whose base64 blob
// decodes and names the same type; no private key, options, certificate or second key.
const KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
const NOT_A_KEY = "This is not an OpenSSH public key. It should look like: ssh-ed25519 AAAA… you@laptop.";
function keyProblem(key) {
  if (!key) return "";
  if (key.length > 16384) return "This is longer than any public key (16 KiB at most). Paste the one line of your .pub file.";
  if (key.includes("PRIVATE KEY")) return "This is a private key: never share it. Paste the public key instead, the one line in the .pub file (cat ~/.ssh/id_ed25519.pub).";
  if (/[\r\n]/.test(key)) return "Paste one key here; add more on the dashboard.";
  const [type, b64] = key.split(/[ \t]+/);
  if (/-cert-v01@openssh\.com$/.test(type)) return "SSH certificates are not accepted: paste the plain public key.";
  if (/^(ssh-dss|sk-|ssh-ed448)/.test(type)) return `Keys of type ${type} are not supported: use ed25519, ecdsa or rsa (2048 bits or more). Make one with: ssh-keygen -t ed25519`;
  if (!KEY_TYPES.includes(type)) {
    if (KEY_TYPES.some((t) => key.includes(` ${t} `))) return "Remove the authorized_keys options before the key type: paste only the key line.";
    return NOT_A_KEY;
  }
  let blob;
  try {
    if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return NOT_A_KEY;
    blob = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch (e) {
    return NOT_A_KEY;
  }
  // The blob is SSH wire strings: a 4-byte big-endian length, then that many bytes.
  let at = 0;
  const str = () => {
    if (at + 4 > blob.length) throw new Error("short");
    const n = ((blob[at] << 24) | (blob[at + 1] << 16) | (blob[at + 2] << 8) | blob[at + 3]) >>> 0;
    at += 4;
    if (at + n > blob.length) throw new Error("short");
    const v = blob.subarray(at, at + n);
    at += n;
    return v;
  };
  const text = (b) => String.fromCharCode(...b);
  try {
    if (text(str()) !== type) return NOT_A_KEY;
    if (type === "ssh-ed25519") {
      if (str().length !== 32) return NOT_A_KEY;
    } else if (type.startsWith("ecdsa-")) {
      if (text(str()) !== type.slice("ecdsa-sha2-".length)) return NOT_A_KEY;
      const point = str();
      if (!point.length || point[0] !== 4) return NOT_A_KEY;
    } else {
      str(); // e
      const n = str();
      let i = 0;
      while (i < n.length && n[i] === 0) i++;
      const bits = i < n.length ? (n.length - i - 1) * 8 + (32 - Math.clz32(n[i])) : 0;
      if (bits < 2048) return "RSA keys must have at least 2048 bits. Make a new key with: ssh-keygen -t ed25519";
    }
    if (at !== blob.length) return NOT_A_KEY;
  } catch (e) {
    return NOT_A_KEY;
  }
  return "";
}

function validate(n) {
  const e = {};
  if (n === 1) {
    const email = el("email").value.trim();
    const name = el("name").value.trim();
    if (!validEmail(email)) e.email = "Enter a valid email address.";
    if (!name) e.name = "Enter your name.";
    else if (name.length > 100) e.name = "Use at most 100 characters.";
    const key = keyProblem(el("ssh_public_key").value.trim());
    if (key) e.ssh_public_key = key;
  } else if (n === 2) {
    if (!plan()) e.plan = "Choose a plan.";
  } else if (n === 3) {
    if (!template()) e.template = "Choose a workspace template.";
  } else if (n === 4) {
    const p = plan();
    const g = gpuOf(el("gpu").value);
    const hours = el("hours").value.trim();
    const n = Number(hours);
    if (!g) e.gpu = "Choose a GPU type.";
    else if (!allowed(p).includes(g)) e.gpu = `This GPU is not part of the ${p.name} plan.`;
    const r = g && g.regions.find((x) => x.region === el("region").value);
    if (g && !r) e.region = "Choose a region where this GPU is offered.";
    else if (r && !r.available) e.region = "This GPU is sold out in this region.";
    if (!/^\d+$/.test(hours)) e.hours = "Enter a whole number of hours.";
    else if (n < 1) e.hours = "Book at least one hour.";
    else if (hoursLimit(p) && n > hoursLimit(p)) e.hours = `The ${p.name} plan allows at most ${hoursLimit(p)} hours.`;
  }
  return e;
}

// setError shows a message next to a field (or radio group); unknown names are returned.
function setError(name, msg) {
  if (GROUPS.includes(name)) {
    for (const r of $$(`input[name="${name}"]`, form)) r.setAttribute("aria-invalid", "true");
    const err = el(`${name}-error`);
    err.textContent = msg;
    err.hidden = false;
    return true;
  }
  const input = STEP_OF[name] && el(name);
  if (!input) return false;
  fieldError(input, msg);
  return true;
}

function showErrors(errors) {
  const other = [];
  for (const [k, v] of Object.entries(errors)) if (!setError(k, v)) other.push(v);
  return other;
}

function focusFirstInvalid() {
  const first = $(`#step-${step} [aria-invalid="true"]`);
  if (first) first.focus();
}

function formError(content) {
  const box = el("form-error");
  box.replaceChildren(...[].concat(content).map((c) => (typeof c === "string" ? h("p", {}, c) : c)));
  box.hidden = false;
  box.focus();
}

function hideFormError() {
  el("form-error").hidden = true;
}

function go(n, focus = true) {
  step = n;
  for (const fs of $$("fieldset.step", form)) fs.hidden = Number(fs.dataset.step) !== n;
  for (const li of $$("#stepper li")) {
    const s = Number(li.dataset.step);
    li.classList.toggle("done", s < n);
    if (s === n) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }
  if (n === 5) {
    backToReview = false;
    fillReview();
  }
  if (focus) {
    const heading = $(`#step-${n} h2`);
    heading.focus({ preventScroll: true });
    const top = el("stepper").getBoundingClientRect().top;
    if (top < 0) el("stepper").scrollIntoView();
  }
}

function next() {
  clearFieldErrors($(`#step-${step}`));
  const errors = validate(step);
  if (Object.keys(errors).length) {
    showErrors(errors);
    focusFirstInvalid();
    return;
  }
  hideFormError();
  // Sent back from Pay to fix one field: Continue returns to the review once every step holds,
  // not through each step again.
  if (backToReview && [1, 2, 3, 4].every((n) => !Object.keys(validate(n)).length)) go(5);
  else go(step + 1);
  save();
}

function fillReview() {
  const p = plan();
  const t = template();
  const g = gpuOf(el("gpu").value);
  const q = quoted;
  const w = quoteLines(q);
  el("review-email").textContent = el("email").value.trim();
  el("review-name").textContent = el("name").value.trim();
  const key = el("ssh_public_key").value.trim().split(/\s+/);
  const typed = key[0] ? `${key[0]} key${key[2] ? " " + key.slice(2).join(" ") : ""}` : "";
  const mine = own() && accountKeys.length ? `your account's ${accountKeys.length === 1 ? "key" : "keys"} ${accountKeys.join(", ")}` : "";
  el("review-ssh_public_key").textContent =
    typed && mine ? `${typed}, and ${mine}` : typed || (mine ? mine[0].toUpperCase() + mine.slice(1) : "None: you can add one on the dashboard");
  el("review-plan").textContent = p ? p.name : "";
  el("review-template").textContent = t ? t.name : "";
  el("review-gpu").textContent = g ? g.display_name : "";
  el("review-region").textContent = regionName(cat, el("region").value);
  el("review-hours").textContent = el("hours").value;
  el("review-total").textContent = w ? money(q.amount_cents, q.currency) : "—";
  el("review-breakdown").replaceChildren(
    ...(w ? w.lines : []).map((l) =>
      h("li", { class: l.waived ? "waived" : null }, h("span", {}, l.label), h("span", { class: "amt" }, money(l.cents, q.currency))),
    ),
  );
  const free = p && !p.payment_required;
  const note = el("pay-note");
  note.textContent = free ? (own() && note.dataset.signedInFree) || note.dataset.free : note.dataset.paid;
  const title = el("review-title");
  title.textContent = free ? title.dataset.free : title.dataset.paid;
  el("pay").textContent = free ? "Start my free trial" : `Pay ${w ? money(q.amount_cents, q.currency) : ""}`.trim();
}

function values() {
  return {
    email: el("email").value.trim(),
    name: el("name").value.trim(),
    plan: (checked("plan") || {}).value || "",
    template: (checked("template") || {}).value || "",
    gpu: el("gpu").value,
    region: el("region").value,
    hours: parseInt(el("hours").value, 10) || 0,
    ssh_public_key: el("ssh_public_key").value.trim() || undefined,
  };
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify(values()));
  } catch (e) {}
}

function restore() {
  let v = {};
  try {
    v = JSON.parse(sessionStorage.getItem(STORE) || "{}") || {};
  } catch (e) {}
  for (const k of FIELDS) if (param(k)) v[k] = param(k);
  if (v.email) el("email").value = v.email;
  if (v.name) el("name").value = v.name;
  if (v.ssh_public_key) el("ssh_public_key").value = v.ssh_public_key;
  for (const g of GROUPS) {
    const r = v[g] && form.querySelector(`input[name="${g}"][value="${CSS.escape(v[g])}"]`);
    if (r) r.checked = true;
  }
  fillGPUs();
  if (v.gpu && [...el("gpu").options].some((o) => o.value === v.gpu)) {
    el("gpu").value = v.gpu;
    fillRegions(true);
  }
  if (v.region && [...el("region").options].some((o) => o.value === v.region && !o.disabled)) el("region").value = v.region;
  if (v.hours) el("hours").value = String(v.hours);
  fillHours();
}

async function submit() {
  for (let n = 1; n <= 4; n++) {
    const errors = validate(n);
    if (Object.keys(errors).length) {
      clearFieldErrors(form);
      go(n);
      showErrors(errors);
      focusFirstInvalid();
      return;
    }
  }
  hideFormError();
  const body = values();
  const free = !plan().payment_required;
  const pay = el("pay");
  busy(pay, true, free ? "Starting your trial…" : "Opening secure checkout…");
  const res = await api("POST", "/api/checkout", body);
  const d = res.data;
  if (res.status === 201 && d.checkout_url) {
    save();
    let url;
    try {
      url = new URL(d.checkout_url, location.href);
    } catch (e) {}
    if (url && (url.protocol === "https:" || url.protocol === "http:")) {
      location.assign(url.href);
      return;
    }
  } else if (res.status === 201) {
    try {
      sessionStorage.removeItem(STORE);
    } catch (e) {}
    el("check-email-address").textContent = body.email;
    el("wizard").hidden = true;
    el("check-email").hidden = false;
    el("check-email").focus();
    return;
  }
  busy(pay, false);
  if (res.status === 422 && d.fields && Object.keys(d.fields).length) {
    clearFieldErrors(form);
    const other = showErrors(d.fields);
    const first = Math.min(...Object.keys(d.fields).map((k) => STEP_OF[k] || 5));
    go(first, false);
    backToReview = first < 5;
    formError([d.message || "Some fields need attention.", ...other]);
    return;
  }
  if (res.status === 409 && d.error === "trial_used") {
    const msg = d.message || "This email address has already used its free trial.";
    go(2, false);
    setError("plan", "Choose Pro, or use another email address.");
    formError(h("p", {}, msg, " Choose the Pro plan, or ", h("a", { href: "/login/" }, "sign in"), " to see your pods."));
    return;
  }
  if (res.status === 201) {
    formError("The payment page could not be opened. Please try again.");
    return;
  }
  formError(d.message);
}

function init() {
  restore();
  form.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.hasAttribute("data-next")) next();
    else if (b.hasAttribute("data-back")) go(step - 1);
    else if (b.dataset.goto) go(Number(b.dataset.goto));
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (step < 5) next();
    else submit();
  });
  form.addEventListener("change", (e) => {
    const n = e.target.name;
    if (n === "plan") fillGPUs();
    else if (n === "gpu") fillRegions(true);
    else if (n === "region" || n === "hours" || n === "template") updateTotal();
    // Text fields clear their error while typing (input event below): clearing it on blur
    // would move the Continue button under a pending click.
    if (e.target.getAttribute("aria-invalid") && (GROUPS.includes(n) || e.target.tagName === "SELECT")) {
      if (GROUPS.includes(n)) {
        for (const r of $$(`input[name="${n}"]`, form)) r.removeAttribute("aria-invalid");
        el(`${n}-error`).hidden = true;
      } else fieldError(e.target, "");
    }
    save();
  });
  form.addEventListener("input", (e) => {
    if (e.target.name === "hours") updateTotal();
    if (e.target.tagName === "INPUT" && e.target.type !== "radio" && e.target.getAttribute("aria-invalid")) fieldError(e.target, "");
  });
  go(1, false);
  // Signed in ("Rent another GPU"): the form starts with the account's email and name, and the
  // quote (asked with the session) has no Pro fee while it is paid.
  me().then((res) => {
    if (!res.ok || !res.data || !res.data.account) return;
    account = res.data.account;
    proUntil = res.data.pro_active_until || "";
    if (!el("email").value && !el("name").value) {
      el("email").value = res.data.account.email || "";
      el("name").value = res.data.account.name || "";
    }
    signedInCopy();
    updateTotal(true);
    api("GET", "/api/me/ssh-keys").then((k) => {
      if (!k.ok || !Array.isArray(k.data.ssh_keys)) return;
      accountKeys = k.data.ssh_keys.map((x) => x.name || x.type);
      if (step === 5) fillReview();
    });
  });
  onAccount((a) => {
    if (a) return;
    account = null;
    proUntil = "";
    accountKeys = [];
    signedInCopy();
    updateTotal(true);
  });
  form.addEventListener("change", (e) => {
    if (e.target.name === "email") {
      signedInCopy();
      updateTotal();
    }
  });
  // Refresh prices and availability from the API; the build-time catalog stays on failure.
  api("GET", "/api/catalog").then((res) => {
    const d = res.data;
    if (res.ok && Array.isArray(d.plans) && Array.isArray(d.gpus) && d.gpus.length) {
      cat = { ...cat, plans: d.plans, gpus: d.gpus, templates: Array.isArray(d.templates) ? d.templates : cat.templates };
      fillGPUs();
    }
  });
}

if (form) init();
