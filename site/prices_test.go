package site_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"gpubroker"
	"gpubroker/site"
)

// build runs the pinned Hugo (tools/go.mod) on a copy of this site whose data/ files change
// passes through, and returns the built site's folder.
func build(t *testing.T, change func(name string, v []map[string]any)) string {
	t.Helper()
	src := t.TempDir()
	for _, d := range []string{"archetypes", "assets", "content", "data", "layouts"} {
		require.NoError(t, os.CopyFS(filepath.Join(src, d), os.DirFS(d)))
	}
	b, err := os.ReadFile("hugo.toml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(src, "hugo.toml"), b, 0o644))
	if change != nil {
		for _, name := range []string{"plans", "gpus"} {
			p := filepath.Join(src, "data", name+".json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			var v []map[string]any
			require.NoError(t, json.Unmarshal(b, &v))
			change(name, v)
			b, err = json.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}
	}
	modfile, err := filepath.Abs(filepath.Join("..", "tools", "go.mod"))
	require.NoError(t, err)
	out := filepath.Join(src, "public")
	cmd := exec.Command("go", "tool", "-modfile="+modfile, "hugo", "--source", src, "--destination", out,
		"--cacheDir", filepath.Join(src, ".cache"), "--minify", "--logLevel", "warn")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hugo: %v\n%s", err, stderr.String())
	}
	return out
}

// amount is a dollar amount as the site writes one: "$49", "$1.79", "$5.0716".
var amount = regexp.MustCompile(`\$\d[\d,]*(\.\d+)?`)

// amounts are the amounts in each page and script of a built site, in order, by path.
func amounts(t *testing.T, dir string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".html", ".js", ".json", ".xml", ".txt":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			// Scripts are fingerprinted: one name for the same script in both builds.
			rel = regexp.MustCompile(`\.[0-9a-f]{64}\.`).ReplaceAllString(rel, ".")
			got[rel] = amount.FindAllString(string(b), -1)
		}
		return nil
	}))
	return got
}

// The site states no price by hand: built with every fee and hourly price of the catalog
// changed, every amount on every page changes too (a "$49" typed into the copy would not).
// Only "$0" amounts, free, stay.
func TestNoHandWrittenPrices(t *testing.T) {
	t.Parallel()
	real := amounts(t, build(t, nil))
	other := amounts(t, build(t, func(name string, v []map[string]any) {
		for _, item := range v {
			switch name {
			case "plans":
				if fee, _ := item["fee_cents"].(float64); fee > 0 {
					item["fee_cents"] = fee + 200
				}
			case "gpus":
				for _, r := range item["regions"].([]any) {
					r := r.(map[string]any)
					r["hourly_cents"] = r["hourly_cents"].(float64) + 7
				}
			}
		}
	}))
	seen := 0
	var fixed []string
	for page, list := range real {
		require.Len(t, other[page], len(list), "%s: the same amounts with other prices: %v, then %v", page, list, other[page])
		for i, a := range list {
			seen++
			if a != other[page][i] || strings.Trim(a, "$0.,") == "" {
				continue
			}
			fixed = append(fixed, fmt.Sprintf("%s: %s (amount %d of %d)", page, a, i+1, len(list)))
		}
	}
	require.Greater(t, seen, 20, "the built site states prices")
	require.Empty(t, fixed, "amounts that stay when the catalog's prices change, typed by hand: write them with the price shortcode or a partial of layouts/ (from data/)")
}

// usd formats cents as the site does: "$49" (whole), "$49.00", "$1.79".
func usd(cents int64, whole bool) string {
	if whole && cents%100 == 0 {
		return fmt.Sprintf("$%d", cents/100)
	}
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}

// text is the words of an HTML page, its tags dropped and spaces folded, and the element
// whose class is class, if any, with its attributes.
func text(t *testing.T, path, class string) (all string, el *html.Node) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	doc, err := html.Parse(f)
	require.NoError(t, err)
	var words func(n *html.Node) string
	words = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style") {
			return ""
		}
		if n.Type == html.ElementNode && el == nil && class != "" && attr(n, "class") == class {
			el = n
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(words(c))
		}
		return b.String()
	}
	return strings.Join(strings.Fields(words(doc)), " "), el
}

// attr is an element's attribute.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// The prices the copy states are the ones the API charges: the plan fee and what it buys on
// the home page's FAQ, the terms and the refund policy, and the refund policy's worked example
// (a first order's total, and what stopping it early refunds) computed by the Go rules.
func TestCopyPricesAreTheCatalogs(t *testing.T) {
	t.Parallel()
	cat, err := site.Catalog()
	require.NoError(t, err)
	var pro gpubroker.Plan
	for _, p := range cat.Plans {
		if p.PaymentRequired && !p.ContactSales && p.FeeCents > 0 {
			pro = p
			break
		}
	}
	require.NotEmpty(t, pro.ID, "a self-serve paid plan")
	dir := build(t, nil)
	page := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p), "index.html") }

	covers := fmt.Sprintf("%s covers %d days from the day it is charged", usd(pro.FeeCents, true), pro.FeePeriodDays)
	home, _ := text(t, page("/"), "")
	require.Contains(t, home, covers, "the home page's FAQ")
	terms, _ := text(t, page("/terms/"), "")
	require.Contains(t, terms, fmt.Sprintf("The %s plan fee covers %d days", pro.Name, pro.FeePeriodDays))
	policy, ex := text(t, page("/refund-policy/"), "example")
	require.Contains(t, policy, fmt.Sprintf("%s’s %s fee covers %d days", pro.Name, usd(pro.FeeCents, true), pro.FeePeriodDays))

	// The worked example, for the order its data-* attributes name.
	require.NotNil(t, ex, "the refund policy's worked example (<p class=example>)")
	var hours, stop, later int
	for key, dst := range map[string]*int{"data-hours": &hours, "data-stop": &stop, "data-later": &later} {
		_, err := fmt.Sscan(attr(ex, key), dst)
		require.NoError(t, err, key)
	}
	q, err := cat.Quote(gpubroker.OrderRequest{Email: "example@example.com", Name: "Example", Plan: pro.ID, Template: cat.Templates[0].ID,
		GPU: attr(ex, "data-gpu"), Region: attr(ex, "data-region"), Hours: hours})
	require.NoError(t, err)
	rate, total := q.HourlyCents, q.AmountCents
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bought := gpubroker.MinutesBought(hours)
	used := gpubroker.MinutesUsed(t0, t0.Add(time.Duration(stop)*time.Minute))
	back := gpubroker.UnusedMinutesCents(bought, used, rate)
	exact := fmt.Sprintf("$%d.%04d", int64(bought-used)*rate/6000, int64(bought-used)*rate*10000/6000%10000)
	if int64(bought-used)*rate*10000%6000 != 0 {
		exact += "…"
	}
	usedLater := gpubroker.MinutesUsed(t0, t0.Add(time.Duration(later)*time.Minute))
	for _, want := range []string{
		fmt.Sprintf("%d hours of an %s in %s at %s an hour on %s (%s + %d × %s = %s)", hours, q.GPU.DisplayName, cat.RegionName(q.Request.Region),
			usd(rate, false), pro.Name, usd(pro.FeeCents, false), hours, usd(rate, false), usd(total, false)),
		fmt.Sprintf("stopped %d minutes in: %d of the %d minutes are used, %d are not, and %d × %s ÷ 60 = %s, so %s comes back and you pay %s.",
			stop, used, bought, bought-used, bought-used, usd(rate, false), exact, usd(back, false), usd(total-back, false)),
		fmt.Sprintf("Stopped %d minutes in, %d minutes come back (%s)", later, bought-usedLater, usd(gpubroker.UnusedMinutesCents(bought, usedLater, rate), false)),
	} {
		require.Contains(t, policy, want)
	}
}
