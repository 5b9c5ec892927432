// Live GPU price table: the table is rendered at build time from data/gpus.json; if
// /offers.json (published by the worker) loads, matching cells get the live price and
// availability. Any failure leaves the build-time prices in place, silently.
import "./header.js";
import { $$, money, dateTime } from "./lib.js";

async function refresh() {
  const table = document.querySelector("[data-offers]");
  if (!table) return;
  let doc;
  try {
    const res = await fetch("/offers.json", { credentials: "same-origin", cache: "no-cache" });
    if (!res.ok) return;
    doc = await res.json();
  } catch (e) {
    return;
  }
  if (!doc || !Array.isArray(doc.offers)) return;
  const cells = new Map($$("td[data-gpu]", table).map((td) => [`${td.dataset.gpu}/${td.dataset.region}`, td]));
  let n = 0;
  for (const o of doc.offers) {
    const td = o && cells.get(`${o.gpu}/${o.region}`);
    if (!td || !Number.isInteger(o.hourly_cents) || o.hourly_cents < 0) continue;
    const available = o.available !== false;
    td.querySelector(".amt").textContent = money(o.hourly_cents, o.currency);
    td.querySelector(".st").textContent = available ? "per hour" : "sold out";
    td.classList.toggle("na", !available);
    n++;
  }
  const when = dateTime(doc.updated_at);
  const note = document.getElementById("prices-updated");
  if (n && note && when) {
    const t = document.createElement("time");
    t.dateTime = doc.updated_at;
    t.textContent = when;
    note.replaceChildren("Live prices per hour, updated ", t, ".");
    note.dataset.live = "true";
  }
}

refresh();

// A table wider than the screen (phones) says it scrolls sideways; where it fits, it does not.
function scrollHints() {
  for (const hint of $$(".scroll-hint")) {
    const box = hint.nextElementSibling;
    if (box) hint.hidden = box.scrollWidth <= box.clientWidth + 1;
  }
}
scrollHints();
addEventListener("resize", scrollHints);
