// The header knows who is signed in: a Dashboard link and an account menu (the email, links,
// Sign out) instead of "Sign in". Bundled into every page's script (site.js on pages without
// their own).
import { $, logout, me, maybeSignedIn, onAccount } from "./lib.js";

const menu = $("#account-menu");
const btn = $("#account-menu-btn");
const panel = $("#account-menu-panel");
const signIn = $('.site-header li[data-nav="sign-in"]');

function open(on) {
  panel.hidden = !on;
  btn.setAttribute("aria-expanded", on ? "true" : "false");
}

function render(account) {
  const on = !!account;
  menu.hidden = !on;
  menu.closest(".site-header").classList.toggle("signed-in", on);
  $("#nav-dashboard").hidden = !on;
  if (signIn) signIn.hidden = on;
  $("#header-cta").textContent = on ? "Rent a GPU" : "Get started";
  if (!on) return open(false);
  $("#account-menu-email").textContent = account.email || "";
  $("#account-menu-panel-email").textContent = account.email || "";
}

async function signOut(e) {
  const err = await logout(e.currentTarget);
  if (err !== null) {
    $("#account-menu-msg").textContent = err;
    return;
  }
  const link = signIn && signIn.querySelector("a");
  if (link) link.focus();
}

if (menu) {
  onAccount(render);
  btn.addEventListener("click", () => open(panel.hidden));
  $("#account-menu-logout").addEventListener("click", signOut);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !panel.hidden) {
      open(false);
      btn.focus();
    }
  });
  document.addEventListener("click", (e) => {
    if (!panel.hidden && !menu.contains(e.target)) open(false);
  });
  if (maybeSignedIn()) me();
}
