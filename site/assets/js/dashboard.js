// /dashboard/ — account status, pods, Deploy / Terminate, live status and connection details.
import "./header.js";
import { $, api, h, money, dateTime, hms, catalog, regionName, status, busy, fieldError, clearFieldErrors, me, onAccount, logout, param } from "./lib.js";

const cat = catalog();

// The providers customers may read the name of; any other (the simulator "sim", a new one not
// yet named here) is not shown: its internal name means nothing to them.
const PROVIDER_NAME = { runpod: "RunPod", lambda: "Lambda" };
const TRANSIENT = new Set(["deploying", "provisioning", "terminating"]);
const POD_LABEL = {
  configured: "Ready to deploy",
  deploying: "Deploying",
  provisioning: "Starting",
  running: "Running",
  terminating: "Stopping",
  terminated: "Terminated",
  failed: "Failed",
};
// podLabel is the pod's badge: a configured pod is "Ready to deploy" only when the server lets
// Deploy be pressed (deploy_blocked null); its reason is then said beside the disabled button.
const podLabel = (p) => (p.status === "configured" && p.deploy_blocked ? "Not ready to deploy" : POD_LABEL[p.status] || p.status);
const ORDER_LABEL = {
  checkout_pending: "Awaiting payment",
  authorized: "Card authorized (not charged yet)",
  captured: "Paid",
  refunded: "Refunded",
  expired: "Checkout expired",
  released: "Hold released",
  free: "Free trial",
};
const PROGRESS = {
  deploying: "Capturing your payment and queueing your pod…",
  provisioning: "Starting your pod at the provider. This usually takes a few minutes.",
  terminating: "Stopping your pod…",
};

// What the pod's own start-up reported while it boots (keys, sshd, starter project, IDE): shown
// for a starting pod, as peers show their start-up logs. The pod runs, and its time counts,
// only once the service itself has checked that SSH and the IDE answer.
const BOOT_LABEL = { keys: "SSH keys installed", sshd: "SSH server started", workspace: "Starter project unpacked", ide: "IDE started", ready: "Ready" };
function bootSteps(p) {
  const steps = p.boot_steps || [];
  if (p.status !== "provisioning" || steps.length === 0) return null;
  return h(
    "ol",
    { class: "boot-steps", "aria-label": "Start-up steps" },
    ...steps.map((s) => h("li", { class: s.ok ? "ok" : "err", "data-step": s.step }, `${s.ok ? "✓" : "✗"} ${BOOT_LABEL[s.step] || s.step}`, s.detail && !s.ok ? h("span", { class: "muted" }, ` (${s.detail})`) : "")),
  );
}

// The server decides what the page shows about money and Deploy: deploy_blocked (why Deploy
// may not be pressed), refund_if_stopped_cents and _minutes (what Stop gives back now),
// refund_due_cents (owed back, not yet refunded) and extendable_hours. Nothing is computed here.
//
// watched: a pod whose state may still change: one on its way, a running one (its hours run
// out, it is stopped from another tab or dies at the provider), or one with a refund due.
const watched = (p) => TRANSIENT.has(p.status) || p.status === "running" || p.refund_due_cents > 0;

let account = null;
const pods = new Map(); // id → pod
const notes = new Map(); // id → message shown under the pod's buttons
const timers = new Map(); // id → what watches it: its event stream or polling loop ({timer, es})

const podsEl = $("#pods");
const dashStatus = $("#dashboard-status");

const gpuName = (id) => (cat.gpus.find((g) => g.gpu === id) || {}).display_name || id;
const templateName = (id) => (cat.templates.find((t) => t.id === id) || {}).name || id;
const safeURL = (u) => {
  if (typeof u !== "string" || !u) return "";
  try {
    const url = new URL(u, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : "";
  } catch (e) {
    return "";
  }
};

function copyButton(text, what) {
  return h(
    "button",
    {
      type: "button",
      class: "btn small secondary copy-btn",
      "data-copy": text,
      "aria-label": `Copy ${what}`,
      onclick: (e) => copy(e.currentTarget, text),
    },
    "Copy",
  );
}

async function copy(btn, text) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) {
    const ta = h("textarea", { class: "sr-only", readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand("copy");
    } catch (e2) {}
    ta.remove();
    btn.focus();
  }
  btn.textContent = ok ? "Copied" : "Copy failed";
  setTimeout(() => (btn.textContent = "Copy"), 2000);
}

function fact(label, value, cls) {
  if (value === "" || value === null || value === undefined) return null;
  return h("div", {}, h("dt", {}, label), h("dd", { class: cls }, value));
}

// failedNote is what a failed pod without an error of its own says: one that had started ran
// and then stopped working at its provider (the server's words for it are in its error); one
// that never started could not be started.
function failedNote(p) {
  if (p.started_at) return "Your pod stopped working at its provider and was terminated. Every paid minute it did not use is refunded; we email you the amount.";
  return p.refund_due_cents > 0 ? "We could not start this pod. Your refund is pending." : "We could not start this pod.";
}

// paymentLabel says what the card was charged, as the receipts do: "Paid" only when the server
// counts a payment (paid_cents, each one a receipt); a hold is "Card authorized (not charged
// yet)"; an order captured at Stripe whose payment is not yet in the ledger has no receipt yet.
const unrecorded = (p) => p.paid_cents <= 0 && (p.order_status === "captured" || p.order_status === "refunded");
function paymentLabel(p) {
  const due = p.refund_due_cents > 0 ? `, ${money(p.refund_due_cents, p.currency)} refund pending` : "";
  if (unrecorded(p)) return `Charged, receipt pending${due}`;
  if (p.paid_cents > 0 && due) return `Paid${due}`;
  return ORDER_LABEL[p.order_status] || p.order_status;
}

// netPaid is what the pod cost in the end: the server's paid less its refunded, nothing else
// (the one subtraction TestBrowserScriptsComputeNoMoney allows).
const netPaid = (p) => p.paid_cents - p.refunded_cents;

function renderPod(p) {
  const reason = p.deploy_blocked ? p.deploy_blocked.message : "";
  // Deploy, and why it may not be pressed, only before it is pressed: a starting pod shows its
  // progress instead (not a disabled Deploy), and a running or ended pod has no Deploy button
  // to explain (a pod that ran and died is not one that "could not be started").
  const deployable = p.status === "configured";
  const c = p.connection || {};
  const conn = [];
  if (c.ssh) {
    conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "SSH"), h("code", { class: "conn-ssh" }, c.ssh), copyButton(c.ssh, "SSH command")));
    conn.push(h("p", { class: "hint conn-hint" }, "Add -i ~/.ssh/<your key> if it is not your default key."));
    const fps = p.ssh_key_fingerprints || [];
    if (fps.length) conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "Keys on it"), h("code", { class: "pod-keys" }, fps.join("\n"))));
  } else if (p.connection)
    conn.push(h("p", { class: "hint conn-no-ssh" }, "SSH is off on this pod: it was started without a key of yours. Add a key below for your next pod; the browser IDE works without one."));
  const jup = safeURL(c.jupyter_url);
  if (jup) conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "JupyterLab"), h("a", { class: "conn-jupyter", href: jup, target: "_blank", rel: "noopener" }, "Open JupyterLab"), copyButton(jup, "JupyterLab link")));
  const cs = safeURL(c.code_server_url);
  if (cs) {
    conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "VS Code"), h("a", { class: "conn-code-server", href: cs, target: "_blank", rel: "noopener" }, "Open VS Code"), copyButton(cs, "VS Code link")));
    if (c.ide_secret) conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "Password"), h("code", { class: "conn-password" }, c.ide_secret), copyButton(c.ide_secret, "VS Code password")));
  }
  if (p.connection && p.starter_project)
    conn.push(h("div", { class: "conn-row" }, h("span", { class: "k" }, "Starter project"), h("code", { class: "conn-starter" }, p.starter_project.path)));

  const price = p.amount_cents > 0 ? money(p.amount_cents, p.currency) : p.order_status === "free" ? "Free" : money(p.amount_cents || 0, p.currency);
  // What was bought and paid, extensions included (the order alone before it is charged).
  const total = p.hours_total || p.hours;
  const hours = total > p.hours ? `${total} (${p.hours} + ${total - p.hours} extended)` : p.hours;
  const paid = p.paid_cents > 0 ? money(p.paid_cents, p.currency) : "";
  const titleId = `pod-${p.id}-title`;
  return h(
    "article",
    { class: "card pod", id: `pod-${p.id}`, "data-status": p.status, "data-order-status": p.order_status, "aria-labelledby": titleId },
    h(
      "div",
      { class: "pod-head" },
      h("h3", { id: titleId, tabindex: "-1" }, gpuName(p.gpu), h("span", { class: "muted" }, ` · ${regionName(cat, p.region)}`)),
      h("span", { class: "badge pod-status", "data-status": p.status }, podLabel(p)),
    ),
    h(
      "dl",
      { class: "facts" },
      fact("Workspace", templateName(p.template)),
      fact("Hours", hours, "pod-hours"),
      paid ? fact("Paid", paid, "pod-price") : fact("Price", price, "pod-price"),
      fact("Payment", paymentLabel(p), "order-status"),
      p.order_status === "authorized" ? fact("Deploy by", dateTime(p.deploy_by), "hold-expiry") : null,
      fact("Started", dateTime(p.started_at)),
      p.terminated_at ? fact("Ended", dateTime(p.terminated_at)) : fact("Stops at", p.status === "running" ? dateTime(p.ends_at) : ""),
      p.status === "running" && p.ends_at ? fact("Time left", countdown(p), "pod-countdown-fact") : null,
      p.refunded_cents > 0 ? fact("Refunded", money(p.refunded_cents, p.currency), "pod-refunded") : null,
      p.paid_cents > 0 && p.refunded_cents > 0 ? fact("Net paid", money(netPaid(p), p.currency), "pod-net") : null,
      PROVIDER_NAME[p.provider] ? fact("Provider", PROVIDER_NAME[p.provider]) : null,
      fact("Ordered", dateTime(p.created_at)),
    ),
    TRANSIENT.has(p.status)
      ? h("p", { class: "alert warn status pod-progress", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", {}, PROGRESS[p.status]))
      : null,
    bootSteps(p),
    p.status === "failed"
      ? h("p", { class: "alert err pod-error" }, p.error || failedNote(p))
      : p.status === "configured" && p.error
        ? h("p", { class: "alert warn pod-error" }, p.error)
        : null,
    conn.length ? h("div", { class: "conn" }, ...conn) : null,
    h(
      "div",
      { class: "pod-actions" },
      !deployable ? null : h(
        "button",
        {
          type: "button",
          class: "btn deploy-btn",
          disabled: reason !== "",
          "aria-describedby": reason ? `pod-${p.id}-reason` : null,
          onclick: () => deploy(p.id),
        },
        p.status === "configured" && p.amount_cents > 0 ? `Deploy — charge ${price}` : "Deploy",
      ),
      reason && deployable ? h("p", { class: "deploy-reason", id: `pod-${p.id}-reason` }, reason) : null,
      p.extendable_hours !== 0 ? extendControl(p) : p.status === "running" && p.order_status === "captured" ? h("p", { class: "hint extend-max" }, "This pod has its plan's most hours.") : null,
      p.status === "running" ? h("button", { type: "button", class: "btn danger terminate-btn", onclick: () => confirmTerminate(p.id) }, "Terminate") : null,
      ENDED.has(p.status) ? h("a", { class: "btn secondary rent-again", href: rentAgainURL(p) }, "Rent again") : null,
    ),
    h("p", { class: "pod-msg", role: "status" }, notes.get(p.id) || ""),
  );
}

// rentAgainURL opens the order form filled in as the pod was (get-started.js reads these
// parameters); a free trial's plan is not offered again, so the form picks the plan.
const ENDED = new Set(["terminated", "failed"]);
function rentAgainURL(p) {
  const q = new URLSearchParams({ template: p.template, gpu: p.gpu, region: p.region, hours: String(p.hours) });
  if (p.plan && p.plan !== "free") q.set("plan", p.plan);
  return `/get-started/?${q}`;
}

// extendControl sells more hours on a running pod, up to extendable_hours (null: no limit):
// the button shows what the API quotes for the hours chosen (GET /api/pods/{id}/extend) and
// opens the extension's Stripe Checkout.
const extensionQuotes = new Map(); // "<pod> <hours>" → the API's answer (a promise)
function extendControl(p) {
  const id = `pod-${p.id}-extend-hours`;
  const most = p.extendable_hours;
  const input = h("input", { type: "number", id, class: "extend-hours", min: "1", max: most ? String(most) : null, step: "1", value: "1", inputmode: "numeric" });
  const btn = h("button", { type: "button", class: "btn secondary extend-btn", onclick: () => extend(p.id, Number(input.value), btn) }, "Extend");
  let timer = 0;
  const label = () => {
    const key = `${p.id} ${input.value}`;
    clearTimeout(timer);
    btn.textContent = "Extend";
    const ask = () => {
      if (!extensionQuotes.has(key)) extensionQuotes.set(key, api("GET", `/api/pods/${encodeURIComponent(p.id)}/extend?hours=${encodeURIComponent(input.value)}`));
      extensionQuotes.get(key).then((q) => {
        if (!q.ok) extensionQuotes.delete(key); // asked again next time
        if (`${p.id} ${input.value}` === key && q.ok) btn.textContent = `Extend — ${money(q.data.amount_cents, q.data.currency)}`;
      });
    };
    if (extensionQuotes.has(key)) ask();
    else timer = setTimeout(ask, 200);
  };
  input.addEventListener("input", label);
  label();
  return h("div", { class: "extend" }, h("label", { for: id }, "More hours"), input, btn);
}

async function extend(id, hours, btn) {
  busy(btn, true, "Opening checkout…");
  const res = await api("POST", `/api/pods/${encodeURIComponent(id)}/extend`, { hours });
  if (res.status === 401) return signedOut();
  if (res.status === 201 && res.data.checkout_url) {
    location.assign(res.data.checkout_url);
    return;
  }
  busy(btn, false);
  note(id, (res.data.fields && res.data.fields.hours) || res.data.message || "We could not extend this pod.");
  if (res.status === 409) refreshPod(id);
}

// Back from an extension's checkout: /dashboard/?extended=<pod>&hours=<n>&ends=<unix s> (the
// pod's end once this extension is paid, from the API). Stripe's webhook moves the end, often a
// moment after the customer is back: until the server shows the new end the page says the
// extension is being applied and asks again every 2 s, then confirms it with the new end.
const extended = { pod: param("extended"), hours: Number(param("hours")) || 0, ends: Number(param("ends")) * 1000 || 0, tries: 0, timer: 0 };
function showExtended() {
  const el = $("#extension-status");
  const p = extended.pod && pods.get(extended.pod);
  if (!p) {
    el.hidden = true;
    return;
  }
  clearTimeout(extended.timer);
  const end = Date.parse(p.ends_at || "");
  const applied = end > 0 && (extended.ends ? end >= extended.ends - 1000 : (p.hours_total || 0) > p.hours);
  const said = (cls, text) => {
    el.className = `alert ${cls} extension-status`;
    el.textContent = text;
    el.hidden = false;
  };
  if (applied) return said("ok", `Extension paid: ${extended.hours > 0 ? `+${extended.hours} h, ` : ""}your pod now ends at ${dateTime(p.ends_at)}.`);
  if (p.status !== "running") return said("warn", "This pod stopped before the extension was applied, so no hours were added. If you paid for them, the payment is refunded in full (see Receipts).");
  if (extended.tries >= 60)
    return said("warn", "Your extension is taking longer than usual to apply. It shows here, and under Receipts, once Stripe confirms the payment: reload this page to check.");
  said("info", "Extension being applied… This page updates when Stripe confirms your payment.");
  extended.timer = setTimeout(async () => {
    extended.tries++;
    const res = await api("GET", `/api/pods/${encodeURIComponent(p.id)}`);
    if (res.status === 401) return signedOut();
    if (res.ok && res.data && res.data.id) update(res.data);
    showExtended();
  }, 2000);
}

// countdown is a running pod's time left, ticking every second from the server's seconds_left
// (so a wrong clock on the visitor's machine does not change it).
function countdown(p) {
  const el = h("span", { class: "pod-countdown", "data-deadline": String(Date.now() + (p.seconds_left || 0) * 1000) }, "");
  tickCountdown(el);
  return el;
}

function tickCountdown(el) {
  const left = Math.max(0, Math.round((Number(el.dataset.deadline) - Date.now()) / 1000));
  el.textContent = hms(left);
  el.dataset.secondsLeft = String(left);
}

setInterval(() => document.querySelectorAll(".pod-countdown").forEach(tickCountdown), 1000);

// update re-renders one pod in place, keeping keyboard focus on the same control if possible.
// A change in what the pod paid or got back is a new or changed receipt.
function update(p) {
  const was = pods.get(p.id);
  if (was && (was.paid_cents !== p.paid_cents || was.refunded_cents !== p.refunded_cents || was.order_status !== p.order_status)) refreshReceipts();
  pods.set(p.id, p);
  const old = document.getElementById(`pod-${p.id}`);
  const node = renderPod(p);
  if (!old) return podsEl.append(node);
  const active = document.activeElement;
  const cls = old.contains(active) ? [...active.classList].find((c) => /-btn$/.test(c)) : null;
  old.replaceWith(node);
  if (old.contains(active)) {
    const same = cls && node.querySelector(`.${cls}:not([disabled])`);
    (same || node.querySelector("h3")).focus();
  }
}

function note(id, text) {
  notes.set(id, text);
  const p = pods.get(id);
  if (p) update(p);
}

// poll watches a pod: pushed by its event stream where the browser has EventSource, else by
// asking every few seconds (pollLoop).
function poll(id) {
  const loop = timers.get(id);
  if (loop && loop.es && loop.es.readyState !== EventSource.CLOSED) return; // the stream pushes the change
  if (streams.broken || [...timers.values()].filter((l) => l.es && l.es.readyState !== EventSource.CLOSED).length >= MAX_STREAMS) pollLoop(id);
  else stream(id);
}

// Over HTTP/1.1 a browser opens at most 6 connections to a site, and each stream holds one:
// a few streams leave the page room for its own requests; further pods are polled.
const MAX_STREAMS = 3;

// stream follows a pod through GET /api/pods/{id}/events: the pod at once, then on every
// change, until it needs no watching. EventSource reconnects by itself after a dropped
// connection (the server ends each stream after a while); a refused stream (401, 404, 503), one
// failing again and again, or one that says nothing (a proxy holding it back) falls back to
// polling, and after two such failures every pod polls.
const streams = { broken: typeof EventSource !== "function", failed: 0 };
function stream(id) {
  clearTimeout(timers.get(id)?.timer);
  timers.get(id)?.es?.close();
  const es = new EventSource(`/api/pods/${encodeURIComponent(id)}/events`);
  const loop = { timer: 0, es };
  timers.set(id, loop);
  let errors = 0;
  const fail = () => {
    es.close();
    if (timers.get(id) !== loop) return;
    streams.broken = ++streams.failed >= 2;
    pollLoop(id);
  };
  loop.timer = setTimeout(fail, 10000); // the server sends the pod at once
  es.addEventListener("pod", (e) => {
    if (timers.get(id) !== loop) return es.close(); // replaced (or signed out)
    clearTimeout(loop.timer);
    errors = 0;
    let p;
    try {
      p = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    if (!p || !p.id) return;
    if (p.status !== "configured") notes.delete(id);
    update(p);
    if (!watched(p)) {
      es.close();
      timers.delete(id);
    }
  });
  es.addEventListener("error", () => {
    if (timers.get(id) !== loop) return es.close();
    if (es.readyState === EventSource.CLOSED || ++errors >= 3) {
      clearTimeout(loop.timer);
      fail();
    }
  });
}

// pollLoop watches a pod by asking again in 2 s. A newer call replaces the running loop: after a
// click (Deploy, Terminate) the pod changes soon, and the old loop may be waiting 15 s.
function pollLoop(id) {
  clearTimeout(timers.get(id)?.timer);
  timers.get(id)?.es?.close();
  const loop = { timer: 0 };
  timers.set(id, loop);
  let failures = 0;
  const tick = async () => {
    const res = await api("GET", `/api/pods/${encodeURIComponent(id)}`);
    if (timers.get(id) !== loop) return; // replaced (or signed out) while asking
    if (res.status === 401) return signedOut();
    if (res.ok && res.data && res.data.id) {
      failures = 0;
      if (res.data.status !== "configured") notes.delete(id);
      update(res.data);
    } else failures++;
    const p = pods.get(id);
    if (p && watched(p)) loop.timer = setTimeout(tick, p.status === "running" ? 15000 : failures > 2 ? 5000 : TRANSIENT.has(p.status) ? 2000 : 3000);
    else timers.delete(id);
  };
  loop.timer = setTimeout(tick, 2000);
}

async function refreshPod(id) {
  const res = await api("GET", `/api/pods/${encodeURIComponent(id)}`);
  if (res.ok && res.data && res.data.id) update(res.data);
  const p = pods.get(id);
  if (p && watched(p)) poll(id);
}

async function deploy(id) {
  const btn = $(`#pod-${CSS.escape(id)} .deploy-btn`);
  busy(btn, true, "Deploying…");
  notes.delete(id);
  const res = await api("POST", `/api/pods/${encodeURIComponent(id)}/deploy`);
  if (res.status === 401) return signedOut();
  if (res.status === 202 || res.ok) {
    update({ ...pods.get(id), status: res.data.status || "deploying" });
    // The pressed button is gone (the card shows the progress): focus stays on the card.
    const head = document.getElementById(`pod-${id}-title`);
    if (head && (!document.activeElement || document.activeElement === document.body)) head.focus();
    poll(id);
    return;
  }
  busy(btn, false);
  const e = res.data.error;
  if (e === "account_inactive") {
    account = { ...account, status: account.status === "active" ? "pending" : account.status };
    renderAccount();
  }
  note(id, res.data.message || "We could not deploy this pod.");
  if (res.status === 409 || res.status === 403) refreshPod(id);
}

// confirmTerminate says what stopping means before it happens: the disk goes, and the unused
// minutes are refunded: the amount as of now, the pod's refund_if_stopped_cents asked afresh.
async function confirmTerminate(id) {
  const dlg = $("#terminate-dialog");
  const btn = $(`#pod-${CSS.escape(id)} .terminate-btn`);
  busy(btn, true, "One moment…");
  const res = await api("GET", `/api/pods/${encodeURIComponent(id)}`);
  busy(btn, false);
  if (res.status === 401) return signedOut();
  if (res.ok && res.data && res.data.id) update(res.data);
  const p = pods.get(id);
  if (!p || p.status !== "running") return; // ended meanwhile: nothing to stop
  const kept = p.plan_fee_cents > 0 ? "; the plan fee is kept" : "";
  const n = p.refund_if_stopped_minutes;
  $("#terminate-refund").textContent =
    p.refund_if_stopped_cents > 0
      ? `You have ${n === 1 ? "1 unused minute" : `${n} unused minutes`}: ${money(p.refund_if_stopped_cents, p.currency)} goes back to your card (each at ${money(p.hourly_cents, p.currency)} an hour, rounded down to the cent${kept}). A minute counts as used once it has begun.`
      : p.order_status === "captured"
        ? `Nothing is left to refund: every minute you paid for has begun, or what is left comes to less than a cent. (Unused minutes are refunded${kept}.)`
        : "This pod is free: there is nothing to refund.";
  dlg.returnValue = "";
  dlg.onclose = () => {
    if (dlg.returnValue === "terminate") terminate(id);
    else $(`#pod-${CSS.escape(id)} .terminate-btn`)?.focus();
  };
  dlg.showModal();
}

async function terminate(id) {
  const btn = $(`#pod-${CSS.escape(id)} .terminate-btn`);
  busy(btn, true, "Terminating…");
  const res = await api("POST", `/api/pods/${encodeURIComponent(id)}/terminate`);
  if (res.status === 401) return signedOut();
  if (res.ok) {
    notes.delete(id);
    update({ ...pods.get(id), status: "terminating" });
    poll(id);
    return;
  }
  busy(btn, false);
  note(id, res.data.message || "We could not terminate this pod.");
  if (res.status === 409) refreshPod(id);
}

// Receipts: one per payment (GET /api/me's receipts), newest first, linking to Stripe's.
function renderReceipts(list) {
  const none = $("#no-receipts");
  none.hidden = list.length > 0;
  none.textContent = [...pods.values()].some(unrecorded) ? "Your payment is being recorded: its receipt appears here shortly." : "No payments yet.";
  $("#receipts").replaceChildren(
    ...list.map((r) => {
      const amount = money(r.amount_cents, r.currency);
      const paidAt = dateTime(r.paid_at);
      return h(
        "li",
        { class: "card receipt", "data-kind": r.kind, "data-pod": r.pod_id },
        h("p", { class: "receipt-what" }, r.description),
        h("p", { class: "receipt-amount" }, amount),
        h(
          "p",
          { class: "receipt-meta" },
          h("span", {}, `Paid ${paidAt}`),
          r.refunded_cents > 0 ? h("span", { class: "receipt-refunded" }, `${money(r.refunded_cents, r.currency)} refunded`) : null,
          h("a", { class: "receipt-link", href: r.receipt_url }, "Stripe receipt", h("span", { class: "sr-only" }, ` for ${amount} paid ${paidAt}`)),
        ),
      );
    }),
  );
}

let receiptsTimer = null;
function refreshReceipts() {
  clearTimeout(receiptsTimer);
  receiptsTimer = setTimeout(async () => {
    const res = await me(true);
    if (res.ok && Array.isArray(res.data.receipts)) renderReceipts(res.data.receipts);
  }, 300);
}

function renderAccount() {
  $("#account-email").textContent = account.email || "";
  const active = account.status === "active";
  const badge = $("#account-status");
  badge.textContent = active ? "Active" : account.status === "pending" ? "Email not confirmed" : account.status || "";
  badge.dataset.status = active ? "running" : "deploying";
  $("#pending-banner").hidden = active;
  $("#pending-email").textContent = account.email || "your email";
  for (const p of pods.values()) update(p);
}

function signedOut() {
  for (const loop of timers.values()) {
    clearTimeout(loop.timer);
    loop.es?.close();
  }
  timers.clear();
  dashStatus.hidden = true;
  $("#account").hidden = true;
  $("#signed-out").hidden = false;
}

async function load(fresh) {
  status(dashStatus, "loading", "info", "Loading your account…", true);
  const res = await me(fresh === true);
  if (res.status === 401) return signedOut();
  if (!res.ok || !res.data.account) {
    status(dashStatus, "error", "err", [res.data.message || "We could not load your account.", h("button", { type: "button", class: "btn small secondary", id: "retry", onclick: () => load(true) }, "Try again")]);
    return;
  }
  dashStatus.hidden = true;
  account = res.data.account;
  const list = Array.isArray(res.data.pods) ? res.data.pods : [];
  podsEl.replaceChildren();
  pods.clear();
  for (const p of list) update(p);
  $("#no-pods").hidden = list.length > 0;
  renderReceipts(Array.isArray(res.data.receipts) ? res.data.receipts : []);
  renderAccount();
  $("#account").hidden = false;
  for (const p of list) if (watched(p)) poll(p.id);
  showExtended();
  loadKeys();
}

// SSH keys: every key of the account goes onto every pod deployed after it is added.
const keysEl = $("#ssh-keys");
const keyForm = $("#add-key-form");

function renderKeys(list) {
  $("#no-keys").hidden = list.length > 0;
  keysEl.replaceChildren(
    ...list.map((k) =>
      h(
        "li",
        { class: "key", "data-fingerprint": k.fingerprint },
        h("span", { class: "key-name" }, k.name),
        h("code", { class: "key-fp" }, `${k.type} ${k.fingerprint}`),
        h("button", { type: "button", class: "btn small secondary delete-key-btn", "aria-label": `Delete key ${k.name}`, onclick: (e) => deleteKey(e.currentTarget, k.id) }, "Delete"),
      ),
    ),
  );
}

async function loadKeys() {
  const res = await api("GET", "/api/me/ssh-keys");
  if (res.ok) renderKeys(res.data.ssh_keys || []);
}

async function deleteKey(btn, id) {
  busy(btn, true, "Deleting…");
  const res = await api("DELETE", `/api/me/ssh-keys/${encodeURIComponent(id)}`);
  busy(btn, false);
  if (res.ok || res.status === 404) loadKeys();
  else $("#add-key-status").textContent = res.data.message || "We could not delete this key.";
}

keyForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#key-public");
  clearFieldErrors(keyForm);
  const btn = $("#add-key-btn");
  busy(btn, true, "Adding…");
  const res = await api("POST", "/api/me/ssh-keys", { name: $("#key-name").value.trim(), public_key: input.value.trim() });
  busy(btn, false);
  if (res.status === 201) {
    keyForm.reset();
    $("#add-key-status").textContent = `Added ${res.data.name} (${res.data.fingerprint}). It goes onto every pod you deploy from now on.`;
    loadKeys();
    return;
  }
  const f = (res.data && res.data.fields) || {};
  fieldError(f.name ? $("#key-name") : input, f.public_key || f.name || res.data.message || "We could not add this key.");
  $("#add-key-status").textContent = "";
});

$("#logout").addEventListener("click", async (e) => {
  const err = await logout(e.currentTarget); // the header too; signedOut() follows (onAccount below)
  if (err === null) $("#login-link").focus();
  else status(dashStatus, "error", "err", err);
});

// Signed out anywhere on the page (the header's menu, an expired session): show it.
onAccount((a) => {
  if (!a) signedOut();
});

$("#resend-activation").addEventListener("click", async (e) => {
  const btn = e.currentTarget;
  busy(btn, true, "Sending…");
  const res = await api("POST", "/api/activation/resend", { email: account.email });
  busy(btn, false);
  $("#resend-activation-status").textContent = res.ok ? `We sent a new activation link to ${account.email}.` : res.data.message;
});

load();
