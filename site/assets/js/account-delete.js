// Deletion on request, the dashboard's part (included by its layout beside dashboard.js): a
// confirm dialog, then DELETE /api/me, which emails a one-time link that opens
// /account/delete/ (account-delete-page.js).
import { $, api, h, status, busy } from "./lib.js";

function dashboard(btn) {
  const dialog = $("#delete-dialog");
  const box = $("#delete-account-status");
  btn.addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") return;
    busy(btn, true, "Sending the link…");
    const res = await api("DELETE", "/api/me");
    busy(btn, false);
    if (res.ok) {
      status(box, "sent", "ok", [
        h("p", {}, h("strong", {}, "Check your email."), " We sent you a link that confirms the deletion."),
        "It works once, for 24 hours. Nothing is deleted until you follow it.",
      ]);
    } else {
      status(box, res.data.error || "error", res.status === 409 ? "warn" : "err", res.data.message);
    }
  });
}

const dashBtn = $("#delete-account-btn");
if (dashBtn) dashboard(dashBtn);
