// /account/delete/?token=… — the page never spends the token on load (mail scanners follow GET
// links); the visitor presses the button, which POSTs it to /api/me/delete.
import "./header.js";
import { $, api, h, status, param, busy, setAccount } from "./lib.js";

function confirmPage(btn) {
  const box = $("#delete-status");
  const token = param("token");
  if (!token) {
    btn.hidden = true;
    status(box, "missing", "warn", ["This link is incomplete.", "Copy the whole link from the email, or ask for a new one from your dashboard."]);
    return;
  }
  btn.addEventListener("click", async () => {
    busy(btn, true, "Deleting…");
    const res = await api("POST", "/api/me/delete", { token });
    if (res.ok) {
      history.replaceState(null, "", location.pathname);
      btn.hidden = true;
      setAccount(null);
      const lead = $("#delete-lead");
      if (lead) lead.textContent = "Your account is deleted.";
      status(box, "deleted", "ok", [
        h("p", {}, h("strong", {}, "Your account is deleted."), " Your name, email address, SSH keys and sessions are gone."),
        "Your orders and payments are kept, anonymised, for accounting. You are signed out.",
      ]);
      return;
    }
    busy(btn, false);
    if (res.data.error === "token_used") {
      btn.hidden = true;
      status(box, "used", "warn", ["This link was already used.", "If you followed it before, your account is already deleted."]);
    } else if (res.data.error === "token_expired") {
      btn.hidden = true;
      status(box, "expired", "warn", ["This link has expired.", "Links work for 24 hours: sign in and ask for a new one from your dashboard."]);
    } else if (res.data.error === "token_invalid") {
      btn.hidden = true;
      status(box, "invalid", "err", ["This link is not valid.", "Make sure you copied the whole link from the email."]);
    } else {
      status(box, res.data.error || "error", res.status === 409 ? "warn" : "err", res.data.message);
    }
  });
}

const confirmBtn = $("#delete-confirm-btn");
if (confirmBtn) confirmPage(confirmBtn);
