package stripesim

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handlePage is GET {prefix}/checkout/{id}: the look-alike hosted checkout page.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	swept := s.sweepLocked()
	cs, ok := s.sessions[id]
	var snap *CheckoutSession
	if ok {
		snap = cs.clone()
	}
	s.mu.Unlock()
	s.dispatchAll(swept)
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageTemplate, pageData{Title: "Checkout not found",
			Notice: "This checkout session does not exist. Start again from the site."})
		return
	}
	s.renderPage(w, http.StatusOK, pageTemplate, s.pageFor(snap, "", ""))
}

// handlePay is POST {prefix}/checkout/{id}/pay with a form or JSON {"card": "…"}. Browsers get
// a 303 to the success URL or the page again with the error; JSON callers get
// 200 {"redirect": url} or {"error": code, "message": text} with 402, 400, 404 or 409.
func (s *Server) handlePay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	asJSON := ct == "application/json"
	var card string
	if asJSON {
		var body struct {
			Card string `json:"card"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
			writeDevJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "Body must be JSON {\"card\": \"4242424242424242\"}."})
			return
		}
		card = body.Card
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		card = r.PostForm.Get("card")
	}

	res, err := s.Pay(r.Context(), id, card)
	if err == nil {
		if asJSON {
			writeDevJSON(w, http.StatusOK, map[string]string{"redirect": res.RedirectURL})
			return
		}
		http.Redirect(w, r, res.RedirectURL, http.StatusSeeOther)
		return
	}

	status, code, msg := http.StatusInternalServerError, "internal", err.Error()
	switch {
	case errors.Is(err, ErrCardDeclined):
		status, code, msg = http.StatusPaymentRequired, "card_declined", "Your card was declined."
	case errors.Is(err, ErrInvalidCard):
		status, code, msg = http.StatusBadRequest, "invalid_card",
			"Your card number is not a test card. Use 4242 4242 4242 4242, or 4000 0000 0000 0002 to see a decline."
	case errors.Is(err, ErrSessionNotOpen):
		status, code, msg = http.StatusConflict, "session_not_open", "This checkout session can no longer be paid."
	case errors.Is(err, ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", "This checkout session does not exist."
	}
	if asJSON {
		writeDevJSON(w, status, map[string]string{"error": code, "message": msg})
		return
	}
	cs := s.Session(id)
	if cs == nil {
		s.renderPage(w, status, pageTemplate, pageData{Title: "Checkout not found", Notice: msg})
		return
	}
	s.renderPage(w, status, pageTemplate, s.pageFor(cs, msg, card))
}

func writeDevJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type pageItem struct {
	Name     string
	Quantity int64
	Unit     string
	Total    string
}

type pageData struct {
	Title      string
	Merchant   string
	PayAction  string
	Email      string
	Items      []pageItem
	Total      string
	Manual     bool
	CancelURL  string
	SuccessURL string
	Error      string
	Notice     string
	Open       bool
	Card       string
	ExpiresIn  string
}

// pageItems are line items as the checkout page and the receipt show them.
func pageItems(items []LineItem) []pageItem {
	var out []pageItem
	for _, li := range items {
		out = append(out, pageItem{Name: li.Name, Quantity: li.Quantity,
			Unit: formatMoney(li.UnitAmount, li.Currency), Total: formatMoney(li.UnitAmount*li.Quantity, li.Currency)})
	}
	return out
}

func (s *Server) pageFor(cs *CheckoutSession, errMsg, card string) pageData {
	d := pageData{
		Title:     "Pay GPU Broker",
		Merchant:  "GPU Broker",
		PayAction: s.prefix + "/checkout/" + cs.ID + "/pay",
		Total:     formatMoney(cs.AmountTotal, cs.Currency),
		Manual:    cs.CaptureMethod == "manual",
		Error:     errMsg,
		Card:      card,
		Open:      cs.Status == statusOpen,
	}
	if cs.CustomerEmail != nil {
		d.Email = *cs.CustomerEmail
	}
	if cs.CancelURL != nil {
		d.CancelURL = *cs.CancelURL
	}
	d.Items = pageItems(cs.LineItems)
	switch cs.Status {
	case statusComplete:
		d.Notice = "This checkout is already paid."
		d.SuccessURL = strings.ReplaceAll(cs.SuccessURL, "{CHECKOUT_SESSION_ID}", cs.ID)
	case statusExpired:
		d.Notice = "This checkout session has expired. Start again from the site."
	default:
		if left := s.expiresIn(cs); left > 0 {
			d.ExpiresIn = humanDuration(left)
		}
	}
	return d
}

func (s *Server) expiresIn(cs *CheckoutSession) time.Duration {
	return time.Unix(cs.ExpiresAt, 0).Sub(s.now())
}

// humanDuration renders "23 h 59 min" or "29 min".
func humanDuration(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	if m >= 60 {
		return strconv.Itoa(m/60) + " h " + strconv.Itoa(m%60) + " min"
	}
	return strconv.Itoa(m) + " min"
}

// renderPage answers one of the stand-in's HTML pages (the checkout page, the receipt).
func (s *Server) renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		s.log.Error("render "+t.Name()+" page", "err", err)
	}
}

// formatMoney renders minor units for people: $1,234.56 for usd, 12.34 EUR otherwise.
func formatMoney(cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	amount := b.String() + "." + strconv.FormatInt(cents%100+100, 10)[1:]
	sign := ""
	if neg {
		sign = "-"
	}
	switch strings.ToLower(currency) {
	case "usd":
		return sign + "$" + amount
	case "eur":
		return sign + "€" + amount
	case "gbp":
		return sign + "£" + amount
	}
	return sign + amount + " " + strings.ToUpper(currency)
}

var pageTemplate = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
  :root { --ink:#1a1f36; --muted:#697386; --line:#e3e8ee; --accent:#635bff; --bad:#df1b41; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color:var(--ink); background:#fff; }
  .wrap { display:flex; flex-wrap:wrap; min-height:100vh; }
  .summary { flex:1 1 380px; background:#f6f9fc; padding:56px 48px; border-right:1px solid var(--line); }
  .pay { flex:1 1 380px; padding:56px 48px; max-width:520px; }
  .merchant { display:flex; align-items:center; gap:10px; font-weight:600; }
  .merchant .logo { width:28px; height:28px; border-radius:50%; background:var(--accent); color:#fff; display:grid; place-items:center; font-size:13px; }
  .test { font-size:11px; font-weight:700; letter-spacing:.04em; color:#b3591e; background:#ffde92; border-radius:4px; padding:2px 6px; }
  .label { color:var(--muted); margin:32px 0 4px; }
  .total { font-size:36px; font-weight:600; letter-spacing:-.02em; margin:0; }
  table { width:100%; border-collapse:collapse; margin-top:28px; }
  td { padding:10px 0; border-bottom:1px solid var(--line); vertical-align:top; }
  td.amt { text-align:right; white-space:nowrap; }
  .qty { color:var(--muted); font-size:13px; }
  tfoot td { font-weight:600; border-bottom:0; }
  h2 { font-size:20px; margin:0 0 24px; }
  label { display:block; font-size:13px; color:#3c4257; margin:16px 0 6px; }
  input { width:100%; font:inherit; padding:10px 12px; border:1px solid #d5dbe1; border-radius:6px; box-shadow:0 1px 1px rgba(0,0,0,.03); }
  input:focus { outline:none; border-color:var(--accent); box-shadow:0 0 0 3px rgba(99,91,255,.25); }
  input[readonly] { background:#f6f9fc; color:var(--muted); }
  .row { display:flex; gap:12px; } .row > div { flex:1; }
  button.primary { width:100%; margin-top:24px; padding:12px; font:inherit; font-weight:600; color:#fff; background:var(--accent); border:0; border-radius:6px; cursor:pointer; }
  button.primary:hover { filter:brightness(.95); }
  .error { color:var(--bad); background:#fff0f3; border:1px solid #ffd1db; border-radius:6px; padding:10px 12px; margin:16px 0 0; }
  .notice { background:#f6f9fc; border:1px solid var(--line); border-radius:6px; padding:16px; }
  .hints { margin-top:28px; font-size:13px; color:var(--muted); border:1px dashed #d5dbe1; border-radius:6px; padding:12px 14px; }
  .hints button { font:12px ui-monospace, Menlo, monospace; border:1px solid var(--line); background:#fff; border-radius:4px; padding:2px 6px; cursor:pointer; }
  .hints ul { margin:6px 0 0; padding-left:18px; }
  .fine { font-size:12px; color:var(--muted); margin-top:12px; }
  a { color:var(--accent); text-decoration:none; }
  .back { display:inline-block; margin-bottom:32px; color:var(--muted); font-size:14px; }
</style>
</head>
<body>
<div class="wrap">
  <section class="summary" aria-label="Order summary">
    {{if .CancelURL}}<a class="back" href="{{.CancelURL}}">&larr; Back to {{.Merchant}}</a>{{end}}
    <div class="merchant"><span class="logo" aria-hidden="true">G</span>{{.Merchant}} <span class="test">TEST MODE</span></div>
    {{if .Items}}
    <p class="label">Pay {{.Merchant}}</p>
    <p class="total" data-testid="total">{{.Total}}</p>
    <table>
      <tbody>
      {{range .Items}}<tr><td>{{.Name}}<div class="qty">Qty {{.Quantity}} &times; {{.Unit}}</div></td><td class="amt">{{.Total}}</td></tr>
      {{end}}</tbody>
      <tfoot><tr><td>Total due</td><td class="amt">{{.Total}}</td></tr></tfoot>
    </table>
    {{end}}
  </section>
  <section class="pay" aria-label="Payment">
    {{if .Open}}
    <h2>Pay with card</h2>
    <form method="post" action="{{.PayAction}}" autocomplete="off">
      <label for="email">Email</label>
      <input id="email" type="email" value="{{.Email}}" readonly>
      <label for="card">Card number</label>
      <input id="card" name="card" inputmode="numeric" autocomplete="cc-number" placeholder="1234 1234 1234 1234" value="{{.Card}}" required autofocus>
      <div class="row">
        <div><label for="exp">Expiry</label><input id="exp" name="exp" placeholder="MM / YY"></div>
        <div><label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric" placeholder="CVC"></div>
      </div>
      {{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
      <button class="primary" type="submit">Pay {{.Total}}</button>
      {{if .Manual}}<p class="fine">The amount is authorized on your card now and charged later by {{.Merchant}}.</p>{{end}}
      {{if .ExpiresIn}}<p class="fine">This page expires in {{.ExpiresIn}}.</p>{{end}}
    </form>
    <div class="hints">
      <strong>Test cards</strong> (any future expiry, any CVC):
      <ul>
        <li><button type="button" data-card="4242 4242 4242 4242">4242 4242 4242 4242</button> authorizes the payment</li>
        <li><button type="button" data-card="4000 0000 0000 0002">4000 0000 0000 0002</button> is declined</li>
      </ul>
    </div>
    <script>
      document.querySelectorAll("[data-card]").forEach(function (b) {
        b.addEventListener("click", function () { var c = document.getElementById("card"); c.value = b.dataset.card; c.focus(); });
      });
    </script>
    {{else}}
    <div class="notice" role="status">
      <p>{{.Notice}}</p>
      {{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
      {{if .SuccessURL}}<p><a href="{{.SuccessURL}}">Continue</a></p>{{else if .CancelURL}}<p><a href="{{.CancelURL}}">Return to {{.Merchant}}</a></p>{{end}}
    </div>
    {{end}}
  </section>
</div>
</body>
</html>
`))
