package scale

import (
	"bufio"
	"context"
	"crypto/md5"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

func md5sum(b []byte) [16]byte { return md5.Sum(b) }

// logEntry starts an auto_explain entry of the server log (log_line_prefix '%m|%a|').
var logEntry = regexp.MustCompile(`^\d{4}-\d\d-\d\d [\d:.]+ \S+\|([^|]*)\|LOG:  duration: ([\d.]+) ms  plan:$`)

// isRiver tells River's own statements (sqlc's "-- name:" header) from ours.
func isRiver(query string) bool { return strings.HasPrefix(strings.TrimSpace(query), "-- name:") }

// slowStatements reads auto_explain's plans of the statements over SlowMS from the server's
// log since offset, one per distinct query (its slowest run), slowest first, with the number
// of calls pg_stat_statements counted for it.
func slowStatements(ctx context.Context, pool *pgxpool.Pool, logPath string, offset int64) ([]Statement, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	var all []Statement
	var cur *Statement
	inPlan := false
	flush := func() {
		if cur != nil {
			all = append(all, *cur)
		}
		cur, inPlan = nil, false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := logEntry.FindStringSubmatch(line); m != nil {
			flush()
			msv, _ := strconv.ParseFloat(m[2], 64)
			cur = &Statement{App: m[1], MS: msv}
			continue
		}
		if cur == nil {
			continue
		}
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			flush()
			continue
		}
		t := strings.TrimPrefix(line, "\t")
		switch {
		case strings.HasPrefix(t, "Query Text: "):
			cur.Query = strings.TrimPrefix(t, "Query Text: ")
		case !inPlan && cur.Plan == "" && looksLikePlan(t):
			inPlan = true
			cur.Plan = t + "\n"
		case inPlan:
			cur.Plan += t + "\n"
		default:
			cur.Query += "\n" + t
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// The slowest run of each query.
	best := map[string]Statement{}
	for _, s := range all {
		s.River = isRiver(s.Query)
		k := strings.Join(strings.Fields(s.Query), " ")
		if b, ok := best[k]; !ok || s.MS > b.MS {
			best[k] = s
		}
	}
	out := make([]Statement, 0, len(best))
	for _, s := range best {
		_ = pool.QueryRow(ctx, `SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements WHERE regexp_replace(query, '\s+', ' ', 'g') = regexp_replace($1, '\s+', ' ', 'g')`, s.Query).Scan(&s.Calls)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MS > out[j].MS })
	return out, nil
}

// looksLikePlan is the first line of a plan: a node name followed by its costs.
func looksLikePlan(s string) bool { return strings.Contains(s, "(cost=") }
