package gpubroker

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Plan is a purchasable plan. Marketers edit plans in site/data/plans.json.
type Plan struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	FeeCents        int64  `json:"fee_cents"`
	Currency        string `json:"currency"`
	PaymentRequired bool   `json:"payment_required"`
	// FeePeriodDays is what the fee buys, stated wherever the fee is shown: PlanFeePeriod in
	// days (a test keeps the two equal).
	FeePeriodDays int      `json:"fee_period_days,omitempty"`
	MaxHours      int      `json:"max_hours"`
	GPUClasses    []string `json:"gpu_classes"` // GPU ids allowed; empty means all
	ContactSales  bool     `json:"contact_sales,omitempty"`
	Summary       string   `json:"summary,omitempty"`
	Features      []string `json:"features,omitempty"`
}

// Template is a workspace template (the "track"): what runs on the pod.
type Template struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Tools []string `json:"tools"`
	// StarterProject is the starter project's title, shown on the site.
	StarterProject string `json:"starter_project"`
	// Workspace is where the starter project (workspaces/<id>/) lands on the pod.
	Workspace TemplateWorkspace `json:"workspace"`
	// Image is the workspace image, repo:tag@sha256:… once `make images` has pushed it.
	Image   string `json:"image"`
	IDE     string `json:"ide"` // "jupyter" or "code-server"
	Summary string `json:"summary,omitempty"`
}

// TemplateWorkspace names a template's starter project and the folder it is unpacked into
// (the pod JSON's starter_project).
type TemplateWorkspace struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// RegionPrice is the hourly price of a GPU type in one region.
type RegionPrice struct {
	Region      string `json:"region"`
	HourlyCents int64  `json:"hourly_cents"`
	Available   bool   `json:"available"`
}

// GPU is a GPU type we rent, with the regions it is sold in.
type GPU struct {
	GPU         string        `json:"gpu"`
	DisplayName string        `json:"display_name"`
	VRAMGB      int           `json:"vram_gb"`
	Regions     []RegionPrice `json:"regions"`
}

// Region is where GPUs run, with the name people read ("US West") for its id ("us-west").
type Region struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Place string `json:"place"`
}

// Catalog is everything a visitor can buy. One copy is rendered by Hugo and read by the API, so
// the API charges exactly what the site shows.
type Catalog struct {
	Plans     []Plan     `json:"plans"`
	Templates []Template `json:"templates"`
	GPUs      []GPU      `json:"gpus"`
	Regions   []Region   `json:"regions"`
}

// Region returns the region with the given id.
func (c *Catalog) Region(id string) (Region, bool) {
	for _, r := range c.Regions {
		if r.ID == id {
			return r, true
		}
	}
	return Region{}, false
}

// RegionName is a region's name for people ("US West"), or the id when the catalog has none.
func (c *Catalog) RegionName(id string) string {
	if r, ok := c.Region(id); ok && r.Name != "" {
		return r.Name
	}
	return id
}

// PlanFeeLine names a plan's fee with what it buys, as receipts and Stripe's line items say it:
// "Pro plan (30 days)".
func PlanFeeLine(p Plan) string {
	if p.FeePeriodDays > 0 {
		return p.Name + " plan (" + strconv.Itoa(p.FeePeriodDays) + " days)"
	}
	return p.Name + " plan"
}

// Plan returns the plan with the given id.
func (c *Catalog) Plan(id string) (Plan, bool) {
	for _, p := range c.Plans {
		if p.ID == id {
			return p, true
		}
	}
	return Plan{}, false
}

// Template returns the template with the given id.
func (c *Catalog) Template(id string) (Template, bool) {
	for _, t := range c.Templates {
		if t.ID == id {
			return t, true
		}
	}
	return Template{}, false
}

// GPUType returns the GPU type with the given id.
func (c *Catalog) GPUType(id string) (GPU, bool) {
	for _, g := range c.GPUs {
		if g.GPU == id {
			return g, true
		}
	}
	return GPU{}, false
}

// OrderRequest is what a visitor asks for on the get-started page. It carries no price: the
// API computes every price.
type OrderRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Plan     string `json:"plan"`
	Template string `json:"template"`
	GPU      string `json:"gpu"`
	Region   string `json:"region"`
	Hours    int    `json:"hours"`
	// SSHPublicKey is an optional OpenSSH public key line, saved on the account the order
	// lands on (see ParseSSHKey).
	SSHPublicKey string `json:"ssh_public_key,omitempty"`
}

// Quote is the priced, validated form of an OrderRequest.
type Quote struct {
	Request     OrderRequest
	Plan        Plan
	Template    Template
	GPU         GPU
	HourlyCents int64
	// LineItems sum to AmountCents; they become the Checkout Session's line items.
	LineItems   []LineItem
	AmountCents int64
}

// LineItem is one priced line of an order.
type LineItem struct {
	Name           string `json:"name"`
	UnitAmountCent int64  `json:"unit_amount_cents"`
	Quantity       int64  `json:"quantity"`
}

// Quote validates a request against the catalog and prices it. Problems are returned as one
// EINVALID error with a message per field.
func (c *Catalog) Quote(r OrderRequest) (*Quote, error) {
	return c.QuoteFor(r, time.Time{}, time.Time{})
}

// QuoteFor is Quote for a buyer whose plan fee for r.Plan is paid until feePaidUntil (zero:
// never): while it is after now, the fee is not charged again (PlanFeePeriod).
func (c *Catalog) QuoteFor(r OrderRequest, feePaidUntil, now time.Time) (*Quote, error) {
	r.Email = NormalizeEmail(r.Email)
	r.Name = strings.TrimSpace(r.Name)
	fields := map[string]string{}
	if !ValidEmail(r.Email) {
		fields["email"] = "Enter a valid email address."
	}
	if r.Name == "" {
		fields["name"] = "Enter your name."
	} else if len(r.Name) > 100 {
		fields["name"] = "Use at most 100 characters."
	}
	q := &Quote{Request: r}
	plan, ok := c.Plan(r.Plan)
	switch {
	case !ok:
		fields["plan"] = "Choose a plan."
	case plan.ContactSales:
		fields["plan"] = "This plan is sold by our sales team: use the contact form."
	}
	q.Plan = plan
	if tpl, ok := c.Template(r.Template); ok {
		q.Template = tpl
	} else {
		fields["template"] = "Choose a workspace template."
	}
	gpu, gpuOK := c.GPUType(r.GPU)
	if !gpuOK {
		fields["gpu"] = "Choose a GPU type."
	} else if ok && !plan.ContactSales && len(plan.GPUClasses) > 0 && !slices.Contains(plan.GPUClasses, gpu.GPU) {
		fields["gpu"] = "This GPU is not part of the " + plan.Name + " plan."
	}
	q.GPU = gpu
	if gpuOK {
		found := false
		for _, rp := range gpu.Regions {
			if rp.Region == r.Region {
				found = true
				q.HourlyCents = rp.HourlyCents
				if !rp.Available {
					fields["region"] = "This GPU is sold out in this region."
				}
			}
		}
		if !found {
			fields["region"] = "Choose a region where this GPU is offered."
		}
	}
	if strings.TrimSpace(r.SSHPublicKey) != "" {
		if _, _, err := ParseSSHKey(r.SSHPublicKey); err != nil {
			fields["ssh_public_key"] = ErrorMessage(err)
		}
	}
	if r.Hours < 1 {
		fields["hours"] = "Book at least one hour."
	} else if ok && plan.MaxHours > 0 && r.Hours > plan.MaxHours {
		fields["hours"] = "The " + plan.Name + " plan allows at most " + strconv.Itoa(plan.MaxHours) + " hours."
	}
	if len(fields) > 0 {
		return nil, &Error{Code: EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: fields}
	}
	if plan.PaymentRequired {
		if plan.FeeCents > 0 && !feePaidUntil.After(now) {
			q.LineItems = append(q.LineItems, LineItem{Name: PlanFeeLine(plan), UnitAmountCent: plan.FeeCents, Quantity: 1})
		}
		q.LineItems = append(q.LineItems, LineItem{Name: gpu.DisplayName + " in " + c.RegionName(r.Region) + " (per hour)", UnitAmountCent: q.HourlyCents, Quantity: int64(r.Hours)})
		for _, li := range q.LineItems {
			q.AmountCents += li.UnitAmountCent * li.Quantity
		}
	}
	return q, nil
}
