// /login/ — request a magic link (POST /api/login), or, with ?token=…, confirm it with a button
// (POST /api/login/verify) and go to the dashboard.
import "./header.js";
import { $, api, status, param, busy, setAccount } from "./lib.js";
import { emailForm } from "./email-form.js";

const token = param("token");
const box = $("#login-verify-status");

async function verify() {
  const btn = $("#login-verify-btn");
  busy(btn, true, "Signing in…");
  const res = await api("POST", "/api/login/verify", { token });
  if (res.ok) {
    if (res.data.account) setAccount(res.data.account);
    status(box, "signed-in", "ok", "Signed in. Opening your dashboard…", true);
    location.assign("/dashboard/");
    return;
  }
  busy(btn, false);
  const e = res.data.error;
  let text;
  if (e === "token_expired") text = ["This sign-in link has expired.", "Enter your email below for a new one."];
  else if (e === "token_used") text = ["This sign-in link was already used.", "Enter your email below for a new one."];
  else if (e === "token_invalid" || res.status === 400) text = ["This sign-in link is not valid.", "Enter your email below for a new one."];
  else {
    status(box, "error", "err", [res.data.message, "Please try again."]);
    return;
  }
  $("#login-verify").hidden = true;
  status(box, e ? e.replace("token_", "") : "invalid", "warn", text);
  $("#login-request").hidden = false;
  $("#login-email").focus();
}

if ($("#login-form")) {
  emailForm("login", "/api/login", (email) => [
    `Check your email. If an account exists for ${email}, we sent a sign-in link.`,
    "Open it in this browser to sign in.",
  ]);
  if (token) {
    $("#login-verify").hidden = false;
    $("#login-request").hidden = true;
    $("#login-verify-btn").addEventListener("click", verify);
  }
}
