// Shared by /activate/ (resend) and /login/: an email form that POSTs {email} and always
// answers 202 (the API never reveals whether an account exists).
import { $, api, status, fieldError, validEmail, busy } from "./lib.js";

export function emailForm(id, path, done) {
  const form = $(`#${id}-form`);
  const input = $(`#${id}-email`);
  const box = $(`#${id}-status`);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = input.value.trim();
    fieldError(input, "");
    if (!validEmail(email)) {
      fieldError(input, "Enter a valid email address.");
      input.focus();
      return;
    }
    const btn = $(`#${id}-btn`);
    busy(btn, true, "Sending…");
    const res = await api("POST", path, { email });
    busy(btn, false);
    if (res.ok) status(box, "sent", "ok", done(email));
    else if (res.status === 422 && res.data.fields && res.data.fields.email) {
      fieldError(input, res.data.fields.email);
      input.focus();
    } else status(box, "error", "err", res.data.message);
  });
}
