// Counts this page view for the ops funnel (POST /api/pageviews): the path alone, after the
// page has loaded, with no cookie sent or set and nothing about the visitor.
function count() {
  fetch("/api/pageviews", {
    method: "POST",
    keepalive: true,
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path: location.pathname }),
  }).catch(() => {});
}

if (document.readyState === "complete") count();
else addEventListener("load", count, { once: true });
