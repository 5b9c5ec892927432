package terraformtest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/dynblock"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	tt "gpubroker/terraform/terraformtest"
)

// The checks a plan would make, without Terraform: its providers cannot be downloaded where
// these tests run, so `terraform validate`, `plan` and `test` do not run here (the README says
// how to run them). These read the configuration with HCL and evaluate it as a plan would, with
// the README's example variables and a mocked provider's attributes (ExampleInputs).

const dir = ".."

func load(t *testing.T) (*tt.Module, *tt.Eval) {
	t.Helper()
	m, err := tt.Load(dir)
	require.NoError(t, err)
	e, err := m.Evaluate(tt.ExampleInputs())
	require.NoError(t, err)
	return m, e
}

type taskEnv struct {
	Environment []string `json:"environment"`
	Secrets     []string `json:"secrets"`
}

func readEnvJSON(t *testing.T, path string) map[string]taskEnv {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var tasks map[string]taskEnv
	require.NoError(t, json.Unmarshal(b, &tasks))
	return tasks
}

// taskEnvOf is the environment and secret names the task definition gives task's container.
func taskEnvOf(t *testing.T, e *tt.Eval, task string) taskEnv {
	t.Helper()
	c, err := e.Container("aws_ecs_task_definition."+task, task)
	require.NoError(t, err)
	env, _, err := tt.NameValues(c, "environment")
	require.NoError(t, err)
	secrets, _, err := tt.NameValues(c, "secrets")
	require.NoError(t, err)
	return taskEnv{env, secrets}
}

// Issue 21 item 2: the tasks' environment and secret names come from terraform/env.json, the
// file cmd/gpubroker's TestTerraformEnvironmentStartsEveryMode starts every mode with. A name
// added there reaches the task definition (and its execution role may read a new secret).
func TestTaskEnvironmentComesFromEnvJSON(t *testing.T) {
	m, e := load(t)
	tasks := readEnvJSON(t, filepath.Join(dir, "env.json"))
	require.ElementsMatch(t, []string{"api", "worker", "migrate"}, keys(tasks))
	for task, want := range tasks {
		require.Equal(t, want, taskEnvOf(t, e, task), task)
	}

	// The same configuration with a changed env.json: the task definitions follow it.
	tmp := copyModule(t)
	changed := readEnvJSON(t, filepath.Join(tmp, "terraform", "env.json"))
	api := changed["api"]
	api.Environment = slices.DeleteFunc(slices.Clone(api.Environment), func(n string) bool { return n == "LOG_LEVEL" })
	api.Secrets = slices.DeleteFunc(slices.Clone(api.Secrets), func(n string) bool { return n == "ADMIN_PASSWORD" })
	changed["api"] = api
	b, err := json.Marshal(changed)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "terraform", "env.json"), b, 0o644))
	m2, err := tt.Load(filepath.Join(tmp, "terraform"))
	require.NoError(t, err)
	e2, err := m2.Evaluate(tt.ExampleInputs())
	require.NoError(t, err)
	require.Equal(t, api, taskEnvOf(t, e2, "api"), "the api's task definition follows env.json")

	// Each execution role reads its task's secrets, and the secrets created are those listed.
	secrets := e.Local("task_secrets")
	for task, want := range tasks {
		var got []string
		for it := tt.Get(secrets, task).ElementIterator(); it.Next(); {
			_, v := it.Element()
			got = append(got, v.AsString())
		}
		require.Equal(t, want.Secrets, got, "%s's execution role", task)
	}
	require.Contains(t, tt.References(m.Resources["aws_secretsmanager_secret.app"].Body.Attributes["for_each"].Expr), "local.secret_names")
	var all []string
	for it := e.Local("secret_names").ElementIterator(); it.Next(); {
		_, v := it.Element()
		all = append(all, v.AsString())
	}
	var listed []string
	for _, te := range tasks {
		for _, s := range te.Secrets {
			if !slices.Contains(listed, s) {
				listed = append(listed, s)
			}
		}
	}
	require.ElementsMatch(t, listed, all)
}

// Issue 21 item 4: Amazon Managed Service for Prometheus evaluates ops/alerts.yml, the one
// source of the rules (promtool checks and unit-tests the same file), with its runbook
// placeholder OPS_URL replaced by the site's origin, where CloudFront serves /ops/.
func TestAlertRulesAreOpsAlertsYml(t *testing.T) {
	m, e := load(t)
	require.NotNil(t, m.Resources["aws_prometheus_workspace.main"], "a Prometheus workspace evaluates the rules")
	ns := m.ResourcesOfType("aws_prometheus_rule_group_namespace")
	require.Len(t, ns, 1)
	rules := m.Resources[ns[0]]
	require.Contains(t, tt.References(rules.Body.Attributes["workspace_id"].Expr), "aws_prometheus_workspace.main")
	data, err := e.Attr(ns[0], "data")
	require.NoError(t, err)
	require.True(t, data.IsKnown(), "the rules are known at plan")
	src, err := os.ReadFile(filepath.Join(dir, "..", "ops", "alerts.yml"))
	require.NoError(t, err)
	require.Contains(t, string(src), "OPS_URL")
	require.Equal(t, strings.ReplaceAll(string(src), "OPS_URL", "https://gpubroker.example"), data.AsString())

	// Read from the file, not pasted: another alerts.yml gives other rules.
	tmp := copyModule(t)
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "ops", "alerts.yml"), []byte("groups: []\n"), 0o644))
	m2, err := tt.Load(filepath.Join(tmp, "terraform"))
	require.NoError(t, err)
	e2, err := m2.Evaluate(tt.ExampleInputs())
	require.NoError(t, err)
	data, err = e2.Attr(ns[0], "data")
	require.NoError(t, err)
	require.Equal(t, "groups: []\n", data.AsString())
}

// Issue 21 item 4: a collector in every api and worker task scrapes that task's METRICS_ADDR
// listener (containers of an awsvpc task share 127.0.0.1) and remote-writes to the workspace,
// signing with SigV4; the task role may aps:RemoteWrite there. The collector is not essential:
// its failure must not stop the api or the worker.
func TestCollectorScrapesEveryTask(t *testing.T) {
	m, e := load(t)
	jobs := map[string]bool{}
	for _, task := range []string{"api", "worker"} {
		addr := "aws_ecs_task_definition." + task
		app, err := e.Container(addr, task)
		require.NoError(t, err)
		_, env, err := tt.NameValues(app, "environment")
		require.NoError(t, err)
		metricsAddr := env["METRICS_ADDR"]
		require.True(t, metricsAddr != cty.NilVal && metricsAddr.IsKnown(), "%s serves METRICS_ADDR", task)
		require.Equal(t, "127.0.0.1:9090", metricsAddr.AsString(), task)

		col, err := e.Container(addr, "collector")
		require.NoError(t, err, "%s has a collector sidecar", task)
		require.False(t, tt.Get(col, "essential").True(), "%s: the collector is not essential", task)
		require.Equal(t, e.Ctx.Variables["var"].GetAttr("collector_image"), tt.Get(col, "image"))
		_, colEnv, err := tt.NameValues(col, "environment")
		require.NoError(t, err)
		cfgText := colEnv["AOT_CONFIG_CONTENT"]
		require.True(t, cfgText != cty.NilVal && cfgText.IsKnown(), "%s: the collector's configuration is known at plan", task)
		var cfg collectorConfig
		require.NoError(t, yaml.Unmarshal([]byte(cfgText.AsString()), &cfg), "%s: the collector reads its configuration as YAML", task)

		var targets []string
		for _, sc := range cfg.Receivers.Prometheus.Config.ScrapeConfigs {
			require.False(t, jobs[sc.JobName], "job %s is one task's", sc.JobName)
			jobs[sc.JobName] = true
			for _, st := range sc.StaticConfigs {
				targets = append(targets, st.Targets...)
			}
		}
		require.Equal(t, []string{metricsAddr.AsString()}, targets, "%s: the collector scrapes its own task's METRICS_ADDR", task)
		rw := cfg.Exporters["prometheusremotewrite"]
		require.Equal(t, tt.WorkspaceEndpoint+"api/v1/remote_write", rw.Endpoint, task)
		require.Equal(t, "sigv4auth", rw.Auth.Authenticator, task)
		require.Equal(t, tt.Region, cfg.Extensions.Sigv4auth.Region, task)
		require.Equal(t, "aps", cfg.Extensions.Sigv4auth.Service, task)
		require.Contains(t, cfg.Service.Extensions, "sigv4auth", task)
		p := cfg.Service.Pipelines["metrics"]
		require.Equal(t, []string{"prometheus"}, p.Receivers, task)
		require.Equal(t, []string{"prometheusremotewrite"}, p.Exporters, task)
		for _, proc := range p.Processors {
			require.Contains(t, cfg.Processors, proc, "%s: processor %s is configured", task, proc)
		}
		// Every task scrapes 127.0.0.1:9090: the instance label must tell tasks apart, or two
		// api tasks' counters would be written as one series.
		inst := cfg.Processors["resource/instance"]
		require.NotNil(t, inst, task)
		require.Contains(t, p.Processors, "resource/instance", task)

		// The task role may write to the workspace.
		role := roleOf(t, m, addr)
		require.True(t, mayRemoteWrite(t, m, role), "%s's task role %s may aps:RemoteWrite to the workspace", task, role)
	}
}

// Issue 21 item 4: the workspace's Alertmanager sends every alert to the alarms topic (SigV4
// in the topic's region), which AMP may publish to, and which mails ops.
func TestAlertsReachOpsByEmail(t *testing.T) {
	m, e := load(t)
	defs := m.ResourcesOfType("aws_prometheus_alert_manager_definition")
	require.Len(t, defs, 1)
	require.Contains(t, tt.References(m.Resources[defs[0]].Body.Attributes["workspace_id"].Expr), "aws_prometheus_workspace.main")
	def, err := e.Attr(defs[0], "definition")
	require.NoError(t, err)
	require.True(t, def.IsKnown())
	var outer struct {
		AlertmanagerConfig string `yaml:"alertmanager_config"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(def.AsString()), &outer))
	var am struct {
		Route struct {
			Receiver string `yaml:"receiver"`
			Routes   []any  `yaml:"routes"`
		} `yaml:"route"`
		Receivers []struct {
			Name       string `yaml:"name"`
			SNSConfigs []struct {
				TopicARN string `yaml:"topic_arn"`
				SigV4    struct {
					Region string `yaml:"region"`
				} `yaml:"sigv4"`
			} `yaml:"sns_configs"`
		} `yaml:"receivers"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(outer.AlertmanagerConfig), &am), outer.AlertmanagerConfig)
	require.Empty(t, am.Route.Routes, "every alert goes to the one receiver")
	require.Len(t, am.Receivers, 1)
	require.Equal(t, am.Route.Receiver, am.Receivers[0].Name)
	require.Len(t, am.Receivers[0].SNSConfigs, 1)
	require.Equal(t, tt.AlarmsTopicARN, am.Receivers[0].SNSConfigs[0].TopicARN)
	require.Equal(t, tt.Region, am.Receivers[0].SNSConfigs[0].SigV4.Region)

	// AMP may publish to the topic, only from our workspace.
	pol := m.ResourcesOfType("aws_sns_topic_policy")
	var found bool
	for _, addr := range pol {
		if !slices.Contains(tt.References(m.Resources[addr].Body.Attributes["arn"].Expr), "aws_sns_topic.alarms") {
			continue
		}
		for _, doc := range tt.References(m.Resources[addr].Body.Attributes["policy"].Expr) {
			for _, st := range statements(t, m, doc) {
				if slices.Contains(st.principals, "aps.amazonaws.com") && slices.Contains(st.actions, "sns:Publish") &&
					slices.Contains(st.conditionRefs, "aws_prometheus_workspace.main") {
					found = true
				}
			}
		}
	}
	require.True(t, found, "the alarms topic's policy lets the workspace publish")

	// The topic mails ops: always (the address is required), to var.alarm_email.
	var subscribed bool
	for _, addr := range m.ResourcesOfType("aws_sns_topic_subscription") {
		b := m.Resources[addr]
		if !slices.Contains(tt.References(b.Body.Attributes["topic_arn"].Expr), "aws_sns_topic.alarms") {
			continue
		}
		proto, err := e.Attr(addr, "protocol")
		require.NoError(t, err)
		if proto.AsString() != "email" {
			continue
		}
		require.NotContains(t, b.Body.Attributes, "count", "the subscription always exists")
		require.NotContains(t, b.Body.Attributes, "for_each")
		endpoint, err := e.Attr(addr, "endpoint")
		require.NoError(t, err)
		require.Equal(t, "ops@gpubroker.example", endpoint.AsString())
		subscribed = true
	}
	require.True(t, subscribed, "ops are subscribed to the alarms topic by email")
	require.NotContains(t, m.Variables["alarm_email"].Body.Attributes, "default", "alarm_email is required")
}

// Issue 21 item 5: CloudFront caches error answers (400, 403, 404, 405, 414, 416, 500–504) for
// 10 s by default, and a custom error response's TTL applies to every behaviour: the 60 s of
// the site's 404 page held an API 404 (a pod, an order not there yet) for a minute, for everyone
// asking the same URL. Custom error responses are per distribution, so every code CloudFront
// caches gets 0 s; the 404 page is kept, for 404 alone (S3's answer for a missing page).
func TestEdgeCachesNoErrors(t *testing.T) {
	m, e := load(t)
	dist := m.Resources["aws_cloudfront_distribution.site"]
	require.NotNil(t, dist)
	body := dynblock.Expand(dist.Body, e.Ctx)
	content, _, diags := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "custom_error_response"}}})
	require.False(t, diags.HasErrors(), diags.Error())
	got := map[int64]map[string]cty.Value{}
	for _, b := range content.Blocks {
		// Content, not JustAttributes: only it gives a dynamic block's iterator to the
		// expressions.
		c, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "error_code", Required: true}, {Name: "error_caching_min_ttl"}, {Name: "response_code"}, {Name: "response_page_path"},
		}})
		require.False(t, diags.HasErrors(), diags.Error())
		vals := map[string]cty.Value{}
		for name, a := range c.Attributes {
			v, diags := a.Expr.Value(e.Ctx)
			require.False(t, diags.HasErrors(), diags.Error())
			vals[name] = v
		}
		code, _ := vals["error_code"].AsBigFloat().Int64()
		require.NotContains(t, got, code, "one response per code")
		got[code] = vals
	}
	for _, code := range []int64{400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504} {
		r, ok := got[code]
		require.True(t, ok, "%d has a custom error response", code)
		ttl := r["error_caching_min_ttl"]
		require.True(t, ttl != cty.NilVal && ttl.IsKnown() && !ttl.IsNull(), "%d: error_caching_min_ttl is set", code)
		require.True(t, ttl.Equals(cty.Zero).True(), "%d: errors are not cached at the edge", code)
		page, resp := r["response_page_path"], r["response_code"]
		if code == 404 {
			require.Equal(t, "/404.html", page.AsString(), "the site keeps its 404 page")
			require.True(t, resp.Equals(cty.NumberIntVal(404)).True(), "…with its status")
			continue
		}
		require.True(t, page == cty.NilVal || page.IsNull(), "%d keeps the origin's answer", code)
		require.True(t, resp == cty.NilVal || resp.IsNull(), "%d keeps the origin's status", code)
	}
	require.Len(t, got, 11)
}

// terraform fmt -check where Terraform is installed; elsewhere HCL's own formatter, which
// terraform fmt applies (it also rewrites some legacy syntax this configuration has none of).
func TestTerraformFmt(t *testing.T) {
	if bin, err := exec.LookPath("terraform"); err == nil {
		out, err := exec.Command(bin, "-chdir="+dir, "fmt", "-check", "-recursive", "-diff").CombinedOutput()
		require.NoError(t, err, string(out))
		return
	}
	t.Log("terraform is not installed: checking with hclwrite.Format")
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	require.NoError(t, err)
	tests, err := filepath.Glob(filepath.Join(dir, "tests", "*.tftest.hcl"))
	require.NoError(t, err)
	for _, f := range append(files, tests...) {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Equal(t, string(hclwrite.Format(src)), string(src), "%s is not formatted as terraform fmt formats it", f)
	}
}

type collectorConfig struct {
	Extensions struct {
		Sigv4auth struct {
			Region  string `yaml:"region"`
			Service string `yaml:"service"`
		} `yaml:"sigv4auth"`
	} `yaml:"extensions"`
	Receivers struct {
		Prometheus struct {
			Config struct {
				ScrapeConfigs []struct {
					JobName       string `yaml:"job_name"`
					StaticConfigs []struct {
						Targets []string `yaml:"targets"`
					} `yaml:"static_configs"`
				} `yaml:"scrape_configs"`
			} `yaml:"config"`
		} `yaml:"prometheus"`
	} `yaml:"receivers"`
	Processors map[string]any `yaml:"processors"`
	Exporters  map[string]struct {
		Endpoint string `yaml:"endpoint"`
		Auth     struct {
			Authenticator string `yaml:"authenticator"`
		} `yaml:"auth"`
	} `yaml:"exporters"`
	Service struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// roleOf is the IAM role a task definition's task_role_arn names ("aws_iam_role.x").
func roleOf(t *testing.T, m *tt.Module, taskDef string) string {
	t.Helper()
	a, ok := m.Resources[taskDef].Body.Attributes["task_role_arn"]
	require.True(t, ok, "%s has a task role", taskDef)
	for _, ref := range tt.References(a.Expr) {
		if strings.HasPrefix(ref, "aws_iam_role.") {
			return ref
		}
	}
	t.Fatalf("%s: task_role_arn names no aws_iam_role", taskDef)
	return ""
}

// mayRemoteWrite tells whether an inline policy of role grants aps:RemoteWrite on the
// workspace.
func mayRemoteWrite(t *testing.T, m *tt.Module, role string) bool {
	t.Helper()
	for _, addr := range m.ResourcesOfType("aws_iam_role_policy") {
		b := m.Resources[addr]
		var refs []string
		for _, name := range []string{"role", "for_each"} {
			if a, ok := b.Body.Attributes[name]; ok {
				refs = append(refs, tt.References(a.Expr)...)
			}
		}
		if !slices.Contains(refs, role) {
			continue
		}
		for _, doc := range tt.References(b.Body.Attributes["policy"].Expr) {
			for _, st := range statements(t, m, doc) {
				if slices.Contains(st.actions, "aps:RemoteWrite") && slices.Equal(st.resourceRefs, []string{"aws_prometheus_workspace.main"}) {
					return true
				}
			}
		}
	}
	return false
}

type statement struct {
	actions, principals, resourceRefs, conditionRefs []string
}

// statements reads the statements of the aws_iam_policy_document at ref
// ("data.aws_iam_policy_document.x"); other references have none.
func statements(t *testing.T, m *tt.Module, ref string) []statement {
	t.Helper()
	if !strings.HasPrefix(ref, "data.aws_iam_policy_document.") {
		return nil
	}
	b := m.Block(ref)
	require.NotNil(t, b, ref)
	strs := func(a *hclsyntax.Attribute) []string {
		if a == nil {
			return nil
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || !v.CanIterateElements() {
			return nil
		}
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, s := it.Element()
			out = append(out, s.AsString())
		}
		return out
	}
	var out []statement
	for _, sb := range b.Body.Blocks {
		if sb.Type != "statement" {
			continue
		}
		st := statement{actions: strs(sb.Body.Attributes["actions"])}
		if a := sb.Body.Attributes["resources"]; a != nil {
			st.resourceRefs = tt.References(a.Expr)
		}
		for _, nb := range sb.Body.Blocks {
			switch nb.Type {
			case "principals":
				st.principals = append(st.principals, strs(nb.Body.Attributes["identifiers"])...)
			case "condition":
				if a := nb.Body.Attributes["values"]; a != nil {
					st.conditionRefs = append(st.conditionRefs, tt.References(a.Expr)...)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// copyModule copies terraform/ (its .tf files and env.json) and ops/alerts.yml to a temporary
// directory laid out as the repository is, and returns that directory.
func copyModule(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(tmp, "terraform"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(tmp, "ops"), 0o755))
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	require.NoError(t, err)
	for _, f := range append(files, filepath.Join(dir, "env.json"), filepath.Join(dir, "..", "ops", "alerts.yml")) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		to := filepath.Join(tmp, "terraform", filepath.Base(f))
		if filepath.Base(f) == "alerts.yml" {
			to = filepath.Join(tmp, "ops", "alerts.yml")
		}
		require.NoError(t, os.WriteFile(to, b, 0o644))
	}
	return tmp
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Issue 20.6: the starter projects' tarballs existed only if someone had run make site-deploy
// for exactly this binary. The api serves them (content-addressed), and the edge sends
// /workspaces/* to it, cached as the immutable files they are; issue 20.1: the bootstrap the
// pods fetch at boot (/boot/*) likewise.
func TestWorkspacesComeFromTheAPI(t *testing.T) {
	m, e := load(t)
	dist := m.Resources["aws_cloudfront_distribution.site"]
	require.NotNil(t, dist)
	content, _, diags := dist.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "ordered_cache_behavior"}}})
	require.False(t, diags.HasErrors(), diags.Error())
	for _, want := range []string{"/workspaces/*", "/boot/*"} {
		found := false
		for _, b := range content.Blocks {
			attrs, diags := b.Body.JustAttributes()
			require.False(t, diags.HasErrors(), diags.Error())
			pattern, diags := attrs["path_pattern"].Expr.Value(e.Ctx)
			require.False(t, diags.HasErrors(), diags.Error())
			if pattern.AsString() != want {
				continue
			}
			found = true
			origin, diags := attrs["target_origin_id"].Expr.Value(e.Ctx)
			require.False(t, diags.HasErrors(), diags.Error())
			require.Equal(t, e.Ctx.Variables["local"].GetAttr("api_origin").AsString(), origin.AsString(), "%s served by the api", want)
			methods, diags := attrs["allowed_methods"].Expr.Value(e.Ctx)
			require.False(t, diags.HasErrors(), diags.Error())
			require.Equal(t, 2, methods.LengthInt(), "%s: GET and HEAD only", want)
		}
		require.True(t, found, "%s has a behaviour", want)
	}
}
