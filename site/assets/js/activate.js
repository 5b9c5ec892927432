// /activate/?token=… — the page never consumes the token on load (mail scanners follow GET
// links); the visitor presses the button, which POSTs it.
import "./header.js";
import { $, api, h, status, param, busy, setAccount } from "./lib.js";
import { emailForm } from "./email-form.js";

const btn = $("#activate-btn");
const box = $("#activate-status");
const next = $("#activate-next");
const token = param("token");

function offerResend() {
  $("#resend").hidden = false;
}

function failed(state, text, extra) {
  $("#activate-panel").hidden = true;
  status(box, state, state === "error" ? "err" : "warn", text);
  if (extra) {
    next.replaceChildren(extra);
    next.hidden = false;
  }
  offerResend();
}

async function activate() {
  busy(btn, true, "Activating…");
  const res = await api("POST", "/api/activate", { token });
  const d = res.data;
  if (res.ok) {
    history.replaceState(null, "", location.pathname);
    $("#activate-panel").hidden = true;
    $("#resend").hidden = true;
    const email = d.account && d.account.email;
    if (d.account) setAccount(d.account);
    // The lead said what the click would do; now it says what it did and what comes next.
    const lead = $("#activate-lead");
    if (lead) lead.textContent = "Your account is active. Next: open your dashboard and deploy your pod when you are ready.";
    status(box, "active", "ok", [h("p", {}, h("strong", {}, "Your account is active."), email ? ` You are signed in as ${email}.` : ""), "Open your dashboard and press Deploy when you are ready."]);
    next.replaceChildren(h("a", { class: "btn", id: "dashboard-link", href: "/dashboard/" }, "Go to your dashboard"));
    next.hidden = false;
    $("#dashboard-link").focus();
    return;
  }
  busy(btn, false);
  if (d.error === "token_expired") failed("expired", ["This activation link has expired.", "Links are valid for 24 hours — ask for a new one below."]);
  else if (d.error === "token_used")
    failed("used", ["This activation link was already used.", "If you activated your account, sign in. Otherwise ask for a new link below."], h("a", { class: "btn", href: "/login/" }, "Sign in"));
  else if (d.error === "token_invalid" || res.status === 400) failed("invalid", ["This activation link is not valid.", "Make sure you copied the whole link, or ask for a new one below."]);
  else status(box, "error", "err", [d.message, "Please try again."]);
}

if (btn) {
  emailForm("resend", "/api/activation/resend", (email) => [
    `If an account exists for ${email}, we sent a new activation link.`,
    "It can take a minute to arrive. Check your spam folder too.",
  ]);
  if (!token) {
    failed("missing", ["This activation link is incomplete.", "Copy the whole link from the email, or ask for a new one below."]);
  } else {
    btn.addEventListener("click", activate);
  }
}
