// /payment/success/?session_id=cs_… — poll GET /api/checkout/verify about once a second
// until the webhook job has created the account (202 → keep waiting, 200 → done); a browser
// that is then signed in goes on to its dashboard.
import "./header.js";
import { $, api, h, status, param, sleep, me, setAccount } from "./lib.js";

const box = $("#verify-status");
const actions = $("#verify-actions");
const sessionID = param("session_id");
const LIMIT_MS = 3 * 60 * 1000;
const REDIRECT_MS = 1500;

const titles = {
  authorized: "Payment authorized",
  expired: "Checkout expired",
  released: "Payment cancelled",
  unknown: "Payment not found",
  missing: "Payment not found",
};

function title(state) {
  const t = titles[state] || "Confirming your payment";
  $("#verify-title").textContent = t;
  document.title = document.title.replace(/^[^·]+/, `${t} `);
}

function links(...items) {
  actions.replaceChildren(...items);
  actions.hidden = items.length === 0;
}

async function poll() {
  links();
  title("waiting");
  if (!sessionID) {
    title("missing");
    status(box, "missing", "err", "This page needs the payment reference from Stripe. If you paid, check your email for the activation link.");
    links(h("a", { class: "btn", href: "/dashboard/" }, "Open your dashboard"));
    return;
  }
  const started = Date.now();
  let failures = 0;
  for (;;) {
    const res = await api("GET", `/api/checkout/verify?session_id=${encodeURIComponent(sessionID)}`);
    const d = res.data;
    if (res.status === 200) {
      const email = (d.account && d.account.email) || "your inbox";
      const active = d.account && d.account.status === "active";
      // Only the browser that paid (it holds the checkout cookie) or one signed in to the
      // account reads the account; any other gets the status alone. signed_in false: this
      // answer opened no session (the order went to an existing account, or this is not the
      // paying browser). The browser may be signed in to that account already; otherwise the
      // dashboard needs an emailed sign-in link.
      let signedIn = d.signed_in === true;
      if (signedIn && d.account) setAccount(d.account);
      else if (d.account) {
        const who = await me();
        signedIn = !!(who.ok && who.data.account && who.data.account.id === d.account.id);
      }
      status(box, "authorized", "ok", [
        h("p", {}, h("strong", {}, "Payment authorized"), active ? " — your account is ready." : " — check your email ", active ? "" : h("strong", { id: "verify-email" }, email), active ? "" : " to activate your account."),
        h("p", {}, "You will be charged only when you deploy."),
      ]);
      links(
        signedIn
          ? h("a", { class: "btn", id: "dashboard-link", href: "/dashboard/" }, "Go to your dashboard")
          : h("a", { class: "btn", id: "dashboard-link", href: "/login/" }, "Sign in to your dashboard"),
      );
      title("authorized");
      // Signed in (the paying browser, or one already signed in to this account): straight to
      // the dashboard, after a moment to read why. Anyone else stays here with the status.
      if (signedIn) {
        box.querySelector("div").append(h("p", { id: "verify-redirect" }, "Taking you to your dashboard…"));
        setTimeout(() => location.replace("/dashboard/"), REDIRECT_MS);
      }
      return;
    }
    if (res.status === 410) {
      const state = d.error === "released" ? "released" : "expired";
      status(box, state, "warn", [d.message || "This checkout expired before it was paid. Nothing was charged.", "Start again to pick your GPU."]);
      links(h("a", { class: "btn", href: "/get-started/" }, "Start again"));
      title(state);
      return;
    }
    if (res.status === 404) {
      // The API's message names its lookup ("order not found"): say it for people instead.
      status(box, "unknown", "err", ["We could not find this payment.", "Check that you opened the whole link. If you paid, your email has the activation link; or contact us."]);
      links(h("a", { class: "btn", href: "/get-started/" }, "Start again"), h("a", { class: "btn secondary", href: "/contact/" }, "Contact us"));
      title("unknown");
      return;
    }
    const elapsed = Date.now() - started;
    if (res.status === 202) {
      failures = 0;
      const slow = elapsed > 20000;
      status(box, "waiting", "info", [
        d.message || "Payment received. Creating your account…",
        slow ? "This is taking longer than usual. You can close this page — we will email you as soon as your account is ready." : "",
      ].filter(Boolean), true);
    } else {
      failures++;
      if (failures >= 3) status(box, "waiting", "warn", ["Still checking… " + (d.message || ""), "Your payment is safe; we keep trying."], true);
    }
    if (elapsed > LIMIT_MS) {
      status(box, "error", "warn", ["We have not been able to confirm your payment yet.", "You will get an email as soon as your account is ready. You can also check again."]);
      links(h("button", { class: "btn", type: "button", id: "verify-retry", onclick: poll }, "Check again"));
      return;
    }
    await sleep(res.status === 202 || failures < 3 ? 1000 : Math.min(1000 * failures, 5000));
  }
}

poll();
