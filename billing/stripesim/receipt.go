package stripesim

import (
	"html/template"
	"net/http"
	"slices"
	"time"
)

type receiptData struct {
	Merchant    string
	ChargeID    string
	Email       string
	Description string
	Date        string
	Card        string
	Items       []pageItem
	Amount      string // what the charge is for
	Status      string // "Paid", "Authorized, not charged", "Released, not charged"
	Paid        bool
	Refunded    string // refunded so far, empty when nothing
	Net         string // paid minus refunded
	Refunds     []receiptRefund
}

type receiptRefund struct {
	Date   string
	Amount string
}

// handleReceipt is GET {prefix}/receipts/{charge id}: the page a charge's receipt_url opens, as
// Stripe's receipt is kept up to date with the charge: what was paid, for what, and every
// refund made of it.
func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ch, ok := s.charges[r.PathValue("id")]
	var d receiptData
	if ok {
		d = s.receiptLocked(ch)
	}
	s.mu.Unlock()
	if !ok {
		s.renderPage(w, http.StatusNotFound, receiptTemplate, receiptData{Merchant: "GPU Broker"})
		return
	}
	s.renderPage(w, http.StatusOK, receiptTemplate, d)
}

func (s *Server) receiptLocked(ch *Charge) receiptData {
	day := func(unix int64) string { return time.Unix(unix, 0).UTC().Format("2 January 2006, 15:04 UTC") }
	d := receiptData{
		Merchant: "GPU Broker", ChargeID: ch.ID, Date: day(ch.Created),
		Card:   ch.PaymentMethodDetails.Card.Brand + " ending in " + ch.PaymentMethodDetails.Card.Last4,
		Amount: formatMoney(ch.Amount, ch.Currency), Paid: ch.Captured,
	}
	// Every charge is made with its intent, whose receipt_email is the session's customer email.
	if pi := s.intents[ch.PaymentIntent]; pi != nil && pi.ReceiptEmail != nil {
		d.Email = *pi.ReceiptEmail
	}
	if ch.Description != nil {
		d.Description = *ch.Description
	}
	d.Items = pageItems(ch.items)
	switch {
	case ch.Captured:
		d.Status = "Paid"
		d.Amount = formatMoney(ch.AmountCaptured, ch.Currency)
	case ch.Refunded:
		d.Status = "Released, not charged"
	default:
		d.Status = "Authorized, not charged"
	}
	var refunded int64
	for _, re := range slices.Backward(s.refundsLocked("", ch.ID)) { // oldest first
		refunded += re.Amount
		d.Refunds = append(d.Refunds, receiptRefund{Date: day(re.Created), Amount: formatMoney(re.Amount, re.Currency)})
	}
	if refunded > 0 {
		d.Refunded = formatMoney(refunded, ch.Currency)
		d.Net = formatMoney(ch.AmountCaptured-refunded, ch.Currency)
	}
	return d
}

var receiptTemplate = template.Must(template.New("receipt").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if .ChargeID}}Receipt from {{.Merchant}}{{else}}Receipt not found{{end}}</title>
<style>
  :root { --ink:#1a1f36; --muted:#697386; --line:#e3e8ee; --accent:#635bff; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color:var(--ink); background:#f6f9fc; }
  main { max-width:520px; margin:40px auto; background:#fff; border:1px solid var(--line); border-radius:8px; padding:32px; }
  .merchant { display:flex; align-items:center; gap:10px; font-weight:600; }
  .logo { width:28px; height:28px; border-radius:50%; background:var(--accent); color:#fff; display:grid; place-items:center; font-size:13px; }
  .test { font-size:11px; font-weight:700; color:#b3591e; background:#ffde92; border-radius:4px; padding:2px 6px; }
  h1 { font-size:22px; margin:24px 0 4px; }
  .muted { color:var(--muted); }
  dl { display:grid; grid-template-columns:auto 1fr; gap:6px 16px; margin:20px 0; }
  dt { color:var(--muted); } dd { margin:0; text-align:right; font-variant-numeric:tabular-nums; }
  table { width:100%; border-collapse:collapse; margin-top:20px; }
  td { padding:10px 0; border-bottom:1px solid var(--line); vertical-align:top; }
  td.amt { text-align:right; white-space:nowrap; }
  .qty { color:var(--muted); font-size:13px; }
  tr.sum td { font-weight:600; } tfoot td { border-bottom:0; }
</style>
</head>
<body>
<main>
  <div class="merchant"><span class="logo" aria-hidden="true">G</span>{{.Merchant}} <span class="test">TEST MODE</span></div>
  {{if .ChargeID}}
  <h1>Receipt from {{.Merchant}}</h1>
  <p class="muted">Receipt for {{.ChargeID}}{{with .Email}} · sent to {{.}}{{end}}</p>
  <dl>
    <dt>Status</dt><dd data-testid="status">{{.Status}}</dd>
    <dt>Amount {{if .Paid}}paid{{else}}authorized{{end}}</dt><dd data-testid="amount">{{.Amount}}</dd>
    <dt>Date</dt><dd>{{.Date}}</dd>
    <dt>Payment method</dt><dd>{{.Card}}</dd>
    {{with .Refunded}}<dt>Refunded</dt><dd data-testid="refunded">{{.}}</dd>{{end}}
    {{with .Net}}<dt>Net paid</dt><dd>{{.}}</dd>{{end}}
  </dl>
  {{with .Description}}<p>{{.}}</p>{{end}}
  {{if .Items}}
  <table>
    <caption class="muted">Summary</caption>
    <tbody>
    {{range .Items}}<tr><td>{{.Name}}<div class="qty">Qty {{.Quantity}} &times; {{.Unit}}</div></td><td class="amt">{{.Total}}</td></tr>
    {{end}}<tr class="sum"><td>Amount {{if .Paid}}paid{{else}}authorized{{end}}</td><td class="amt">{{.Amount}}</td></tr>
    {{range .Refunds}}<tr><td>Refund, {{.Date}}</td><td class="amt">&minus;{{.Amount}}</td></tr>
    {{end}}</tbody>
    {{with .Net}}<tfoot><tr class="sum"><td>Net paid</td><td class="amt">{{.}}</td></tr></tfoot>{{end}}
  </table>
  {{end}}
  {{else}}
  <h1>Receipt not found</h1>
  <p class="muted">There is no charge with this receipt.</p>
  {{end}}
</main>
</body>
</html>
`))
