// Enterprise / sales contact form → POST /api/contact.
import "./header.js";
import { $, api, fieldError, clearFieldErrors, validEmail, busy } from "./lib.js";

const form = $("#contact-form");
const val = (id) => document.getElementById(`contact-${id}`).value.trim();

function showError(msg) {
  const box = $("#contact-error");
  box.textContent = msg;
  box.hidden = false;
}

// mark shows each field's message; it reports whether any field was marked.
function mark(errors) {
  let any = false;
  for (const [k, v] of Object.entries(errors || {})) {
    const input = document.getElementById(`contact-${k}`);
    if (input) {
      fieldError(input, v);
      any = true;
    }
  }
  return any;
}

const focusInvalid = () => form.querySelector('[aria-invalid="true"]').focus();

async function submit(e) {
  e.preventDefault();
  clearFieldErrors(form);
  $("#contact-error").hidden = true;
  const body = { name: val("name"), email: val("email"), company: val("company"), message: val("message") };
  const errors = {};
  if (!body.name) errors.name = "Enter your name.";
  if (!validEmail(body.email)) errors.email = "Enter a valid email address.";
  if (!body.message) errors.message = "Tell us a little about what you need.";
  if (mark(errors)) return focusInvalid();
  const btn = $("#contact-submit");
  busy(btn, true, "Sending…");
  const res = await api("POST", "/api/contact", body);
  busy(btn, false);
  if (res.ok) {
    form.hidden = true;
    $("#contact-thanks").hidden = false;
    $("#contact-thanks").focus();
    return;
  }
  if (res.status === 422 && mark(res.data.fields)) {
    showError(res.data.message || "Some fields need attention.");
    return focusInvalid();
  }
  showError(res.data.message);
  $("#contact-error").focus();
}

if (form) form.addEventListener("submit", submit);
