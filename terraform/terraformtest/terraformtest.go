// Package terraformtest reads the Terraform configuration in terraform/ the way a plan would,
// without Terraform or its providers (neither can be downloaded where the tests run): it parses
// the root module with HCL, evaluates every variable and local, and gives resources the
// attributes a test names (as a mocked provider would), every other resource attribute being
// unknown. Tests use it to check the wiring a plan would build: which environment each task
// gets, what the collector scrapes, which file the alert rules come from.
package terraformtest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Module is a Terraform root module: its .tf files, parsed.
type Module struct {
	Dir       string
	Variables map[string]*hclsyntax.Block
	Locals    map[string]*hclsyntax.Attribute
	// Resources and Data are keyed by address: "aws_ecs_task_definition.api",
	// "aws_region.current" (without the "data." prefix).
	Resources map[string]*hclsyntax.Block
	Data      map[string]*hclsyntax.Block
	Outputs   map[string]*hclsyntax.Block
	Files     map[string]*hcl.File
}

// Load parses every .tf file in dir.
func Load(dir string) (*Module, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	m := &Module{Dir: dir, Variables: map[string]*hclsyntax.Block{}, Locals: map[string]*hclsyntax.Attribute{},
		Resources: map[string]*hclsyntax.Block{}, Data: map[string]*hclsyntax.Block{}, Outputs: map[string]*hclsyntax.Block{},
		Files: map[string]*hcl.File{}}
	p := hclparse.NewParser()
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			return nil, diags
		}
		m.Files[filepath.Base(path)] = f
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch {
			case b.Type == "variable" && len(b.Labels) == 1:
				m.Variables[b.Labels[0]] = b
			case b.Type == "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := m.Locals[name]; dup {
						return nil, fmt.Errorf("%s: local.%s is defined twice", path, name)
					}
					m.Locals[name] = a
				}
			case b.Type == "resource" && len(b.Labels) == 2:
				m.Resources[b.Labels[0]+"."+b.Labels[1]] = b
			case b.Type == "data" && len(b.Labels) == 2:
				m.Data[b.Labels[0]+"."+b.Labels[1]] = b
			case b.Type == "output" && len(b.Labels) == 1:
				m.Outputs[b.Labels[0]] = b
			}
		}
	}
	return m, nil
}

// ResourcesOfType returns the addresses of the resources of one type, sorted.
func (m *Module) ResourcesOfType(typ string) []string {
	var out []string
	for addr := range m.Resources {
		if strings.HasPrefix(addr, typ+".") {
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out
}

// Inputs are what a plan knows besides the configuration: the variables a test sets (those
// without a default must be set) and the attributes of resources and data sources, as a mocked
// provider would give them, keyed by address ("aws_sns_topic.alarms", "data.aws_region.current");
// those the module does not declare are left out. Every other resource attribute is unknown.
type Inputs struct {
	Vars      map[string]cty.Value
	Resources map[string]map[string]cty.Value
}

// Eval is the module evaluated with some Inputs.
type Eval struct {
	Module *Module
	Ctx    *hcl.EvalContext
	// LocalErrors holds the locals that could not be evaluated (they are unknown in Ctx).
	LocalErrors map[string]hcl.Diagnostics
}

// Evaluate evaluates the variables and locals with in.
func (m *Module) Evaluate(in Inputs) (*Eval, error) {
	vars := map[string]cty.Value{}
	for name, b := range m.Variables {
		if v, ok := in.Vars[name]; ok {
			vars[name] = v
			continue
		}
		def, ok := b.Body.Attributes["default"]
		if !ok {
			return nil, fmt.Errorf("variable %q has no default: set it in Inputs.Vars", name)
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("variable %q: %w", name, diags)
		}
		vars[name] = v
	}
	for name := range in.Vars {
		if _, ok := m.Variables[name]; !ok {
			return nil, fmt.Errorf("Inputs.Vars sets %q, which the module does not declare", name)
		}
	}
	resources := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for addr := range m.Resources {
		typ, name, _ := strings.Cut(addr, ".")
		if resources[typ] == nil {
			resources[typ] = map[string]cty.Value{}
		}
		resources[typ][name] = objectOrUnknown(in.Resources[addr])
	}
	for addr := range m.Data {
		typ, name, _ := strings.Cut(addr, ".")
		if data[typ] == nil {
			data[typ] = map[string]cty.Value{}
		}
		data[typ][name] = objectOrUnknown(in.Resources["data."+addr])
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var":       cty.ObjectVal(vars),
		"path":      cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.Dir), "root": cty.StringVal(m.Dir), "cwd": cty.StringVal(m.Dir)}),
		"terraform": cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")}),
	}, Functions: m.functions()}
	for typ, byName := range resources {
		ctx.Variables[typ] = cty.ObjectVal(byName)
	}
	dataObj := map[string]cty.Value{}
	for typ, byName := range data {
		dataObj[typ] = cty.ObjectVal(byName)
	}
	ctx.Variables["data"] = cty.ObjectVal(dataObj)

	// Locals may refer to each other in any order: evaluate them all, again and again, until
	// nothing changes (a local whose inputs are still unknown is unknown).
	locals := map[string]cty.Value{}
	for name := range m.Locals {
		locals[name] = cty.DynamicVal
	}
	e := &Eval{Module: m, Ctx: ctx}
	for range len(m.Locals) + 1 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		e.LocalErrors = map[string]hcl.Diagnostics{}
		changed := false
		for name, a := range m.Locals {
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				e.LocalErrors[name] = diags
				v = cty.DynamicVal
			}
			if !v.RawEquals(locals[name]) {
				locals[name], changed = v, true
			}
		}
		if !changed {
			break
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return e, nil
}

func objectOrUnknown(attrs map[string]cty.Value) cty.Value {
	if attrs == nil {
		return cty.DynamicVal
	}
	return cty.ObjectVal(attrs)
}

// Local is a local's value (unknown if it could not be evaluated: see LocalErrors).
func (e *Eval) Local(name string) cty.Value {
	locals := e.Ctx.Variables["local"]
	if !locals.Type().HasAttribute(name) {
		return cty.NilVal
	}
	return locals.GetAttr(name)
}

// Value evaluates an expression.
func (e *Eval) Value(expr hcl.Expression) (cty.Value, error) {
	v, diags := expr.Value(e.Ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return v, nil
}

// Attr evaluates the attribute name of the resource at addr ("data." prefixed for a data
// source).
func (e *Eval) Attr(addr, name string) (cty.Value, error) {
	b := e.Module.Block(addr)
	if b == nil {
		return cty.NilVal, fmt.Errorf("no %s in %s", addr, e.Module.Dir)
	}
	a, ok := b.Body.Attributes[name]
	if !ok {
		return cty.NilVal, fmt.Errorf("%s has no %s", addr, name)
	}
	return e.Value(a.Expr)
}

// Block is the resource at addr, or the data source at "data.<type>.<name>"; nil if none.
func (m *Module) Block(addr string) *hclsyntax.Block {
	if d, ok := strings.CutPrefix(addr, "data."); ok {
		return m.Data[d]
	}
	return m.Resources[addr]
}

// References lists what an expression refers to, as addresses: "aws_iam_role.api",
// "data.aws_iam_policy_document.worker", "local.public_url", "var.domain".
func References(expr hcl.Expression) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range expr.Variables() {
		var parts []string
		for _, step := range t {
			switch s := step.(type) {
			case hcl.TraverseRoot:
				parts = append(parts, s.Name)
			case hcl.TraverseAttr:
				parts = append(parts, s.Name)
			}
			if len(parts) == 3 || (len(parts) == 2 && parts[0] != "data") {
				break
			}
		}
		addr := strings.Join(parts, ".")
		if !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}

// functions are Terraform's functions the configuration uses, with Terraform's meaning (file
// paths are read as Terraform reads them, relative to the directory it runs in: the module's).
func (m *Module) functions() map[string]function.Function {
	readFile := func(path string) ([]byte, error) {
		if !filepath.IsAbs(path) {
			path = filepath.Join(m.Dir, path)
		}
		return os.ReadFile(path)
	}
	fns := map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "can": tryfunc.CanFunc, "try": tryfunc.TryFunc,
		"coalesce": coalesceFunc, "compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc,
		"contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc,
		"flatten": stdlib.FlattenFunc, "format": stdlib.FormatFunc, "join": stdlib.JoinFunc,
		"jsondecode": stdlib.JSONDecodeFunc, "jsonencode": stdlib.JSONEncodeFunc, "keys": stdlib.KeysFunc,
		"length": stdlib.LengthFunc, "lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc,
		"max": stdlib.MaxFunc, "merge": stdlib.MergeFunc, "min": stdlib.MinFunc, "regex": stdlib.RegexFunc,
		"slice": stdlib.SliceFunc, "sort": stdlib.SortFunc, "split": stdlib.SplitFunc,
		"trimspace": stdlib.TrimSpaceFunc, "upper": stdlib.UpperFunc, "values": stdlib.ValuesFunc,
		"zipmap":   stdlib.ZipmapFunc,
		"tostring": convertFunc(cty.String), "tonumber": convertFunc(cty.Number), "tobool": convertFunc(cty.Bool),
		"tolist": convertFunc(cty.List(cty.DynamicPseudoType)), "toset": convertFunc(cty.Set(cty.DynamicPseudoType)),
		"tomap": convertFunc(cty.Map(cty.DynamicPseudoType)),
		"urlencode": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "str", Type: cty.String}},
			Type:   function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				return cty.StringVal(url.QueryEscape(args[0].AsString())), nil
			},
		}),
		// replace treats a substring in slashes as a regular expression, as Terraform does.
		"replace": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}, {Name: "replace", Type: cty.String}},
			Type:   function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				s, sub, rep := args[0].AsString(), args[1].AsString(), args[2].AsString()
				if len(sub) > 1 && strings.HasPrefix(sub, "/") && strings.HasSuffix(sub, "/") {
					re, err := regexp.Compile(sub[1 : len(sub)-1])
					if err != nil {
						return cty.NilVal, err
					}
					return cty.StringVal(re.ReplaceAllString(s, rep)), nil
				}
				return cty.StringVal(strings.ReplaceAll(s, sub, rep)), nil
			},
		}),
		"file": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "path", Type: cty.String}},
			Type:   function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				b, err := readFile(args[0].AsString())
				if err != nil {
					return cty.NilVal, err
				}
				return cty.StringVal(string(b)), nil
			},
		}),
		"fileexists": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "path", Type: cty.String}},
			Type:   function.StaticReturnType(cty.Bool),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				_, err := readFile(args[0].AsString())
				return cty.BoolVal(err == nil), nil
			},
		}),
	}
	// templatefile renders a file as a Terraform template with the variables given (and the
	// same functions).
	fns["templatefile"] = function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := readFile(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			tmpl, diags := hclsyntax.ParseTemplate(b, args[0].AsString(), hcl.InitialPos)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			if !args[1].CanIterateElements() {
				return cty.NilVal, errors.New("templatefile: vars must be an object or map")
			}
			vars := map[string]cty.Value{}
			for it := args[1].ElementIterator(); it.Next(); {
				k, v := it.Element()
				vars[k.AsString()] = v
			}
			v, diags := tmpl.Value(&hcl.EvalContext{Variables: vars, Functions: fns})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return convert.Convert(v, cty.String)
		},
	})
	return fns
}

// coalesceFunc is Terraform's coalesce: the first argument that is neither null nor an empty
// string (cty's skips nulls only).
var coalesceFunc = function.New(&function.Spec{
	VarParam: &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		types := make([]cty.Type, len(args))
		for i, a := range args {
			types[i] = a.Type()
		}
		t, _ := convert.UnifyUnsafe(types)
		if t == cty.NilType {
			return cty.NilType, errors.New("coalesce: the arguments must be of one type")
		}
		return t, nil
	},
	Impl: func(args []cty.Value, ret cty.Type) (cty.Value, error) {
		for _, a := range args {
			if !a.IsKnown() {
				return cty.UnknownVal(ret), nil
			}
			if a.IsNull() {
				continue
			}
			v, err := convert.Convert(a, ret)
			if err != nil {
				return cty.NilVal, err
			}
			if v.Type() == cty.String && v.AsString() == "" {
				continue
			}
			return v, nil
		}
		return cty.NilVal, errors.New("coalesce: no non-null, non-empty argument")
	},
})

func convertFunc(to cty.Type) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowNull: true}},
		Type: func(args []cty.Value) (cty.Type, error) {
			if !args[0].IsKnown() {
				return to, nil
			}
			v, err := convert.Convert(args[0], to)
			if err != nil {
				return cty.NilType, err
			}
			return v.Type(), nil
		},
		Impl: func(args []cty.Value, ret cty.Type) (cty.Value, error) {
			return convert.Convert(args[0], ret)
		},
	})
}

// Account, Region and WorkspaceEndpoint are what ExampleInputs' mocked provider reports.
const (
	Account           = "123456789012"
	Region            = "us-east-1"
	WorkspaceID       = "ws-0123456789abcdef"
	WorkspaceEndpoint = "https://aps-workspaces." + Region + ".amazonaws.com/workspaces/" + WorkspaceID + "/"
	AlarmsTopicARN    = "arn:aws:sns:" + Region + ":" + Account + ":gpubroker-alarms"
)

// ExampleInputs are the variables of the README's terraform.tfvars example and what a mocked
// provider reports for the resources the checks read (tests/plan.tftest.hcl mocks the same).
func ExampleInputs() Inputs {
	s := cty.StringVal
	return Inputs{
		Vars: map[string]cty.Value{
			"domain":                     s("gpubroker.example"),
			"cloudfront_certificate_arn": s("arn:aws:acm:us-east-1:" + Account + ":certificate/site"),
			"api_origin_domain":          s("origin.gpubroker.example"),
			"alb_certificate_arn":        s("arn:aws:acm:us-east-1:" + Account + ":certificate/origin"),
			"api_image":                  s(Account + ".dkr.ecr.us-east-1.amazonaws.com/gpubroker:1.0.0"),
			"sales_email":                s("sales@gpubroker.example"),
			"alarm_email":                s("ops@gpubroker.example"),
			"db_password":                s("correct-horse-battery-staple"),
		},
		Resources: map[string]map[string]cty.Value{
			"data.aws_region.current":               {"name": s(Region), "region": s(Region)},
			"data.aws_caller_identity.current":      {"account_id": s(Account)},
			"data.aws_partition.current":            {"partition": s("aws")},
			"data.aws_availability_zones.available": {"names": cty.ListVal([]cty.Value{s("us-east-1a"), s("us-east-1b"), s("us-east-1c")})},
			"aws_prometheus_workspace.main": {
				"id": s(WorkspaceID), "arn": s("arn:aws:aps:" + Region + ":" + Account + ":workspace/" + WorkspaceID),
				"prometheus_endpoint": s(WorkspaceEndpoint),
			},
			"aws_sns_topic.alarms": {"arn": s(AlarmsTopicARN), "id": s(AlarmsTopicARN), "name": s("gpubroker-alarms")},
		},
	}
}

// Containers evaluates the container definitions of the ECS task definition at addr (the
// argument of its jsonencode): one object per container, attributes that come from resources
// unknown.
func (e *Eval) Containers(addr string) ([]cty.Value, error) {
	b := e.Module.Block(addr)
	if b == nil {
		return nil, fmt.Errorf("no %s", addr)
	}
	a, ok := b.Body.Attributes["container_definitions"]
	if !ok {
		return nil, fmt.Errorf("%s has no container_definitions", addr)
	}
	call, ok := a.Expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "jsonencode" || len(call.Args) != 1 {
		return nil, fmt.Errorf("%s: container_definitions is not jsonencode(…)", addr)
	}
	v, err := e.Value(call.Args[0])
	if err != nil {
		return nil, err
	}
	if !v.IsKnown() || !v.CanIterateElements() {
		return nil, fmt.Errorf("%s: the container definitions are not known at plan: %#v", addr, v)
	}
	var out []cty.Value
	for it := v.ElementIterator(); it.Next(); {
		_, c := it.Element()
		out = append(out, c)
	}
	return out, nil
}

// Container is the container of the task definition at addr whose name is name.
func (e *Eval) Container(addr, name string) (cty.Value, error) {
	cs, err := e.Containers(addr)
	if err != nil {
		return cty.NilVal, err
	}
	for _, c := range cs {
		if n := Get(c, "name"); n.IsKnown() && n.Type() == cty.String && n.AsString() == name {
			return c, nil
		}
	}
	return cty.NilVal, fmt.Errorf("%s has no container named %q", addr, name)
}

// Get is the attribute or element key of an object or map v, or cty.NilVal.
func Get(v cty.Value, key string) cty.Value {
	if v == cty.NilVal || !v.IsKnown() || v.IsNull() {
		return cty.NilVal
	}
	switch {
	case v.Type().IsObjectType():
		if v.Type().HasAttribute(key) {
			return v.GetAttr(key)
		}
	case v.Type().IsMapType():
		if k := cty.StringVal(key); v.HasIndex(k).True() {
			return v.Index(k)
		}
	}
	return cty.NilVal
}

// NameValues reads a container's "environment" (name, value) or "secrets" (name, valueFrom)
// list: the names in order, and each one's value.
func NameValues(container cty.Value, list string) ([]string, map[string]cty.Value, error) {
	l := Get(container, list)
	if l == cty.NilVal {
		return nil, nil, nil
	}
	if !l.IsKnown() || !l.CanIterateElements() {
		return nil, nil, fmt.Errorf("%s is not known at plan", list)
	}
	field := "value"
	if list == "secrets" {
		field = "valueFrom"
	}
	var names []string
	values := map[string]cty.Value{}
	for it := l.ElementIterator(); it.Next(); {
		_, item := it.Element()
		n := Get(item, "name")
		if n == cty.NilVal || !n.IsKnown() || n.Type() != cty.String {
			return nil, nil, fmt.Errorf("%s: an entry without a known name", list)
		}
		if _, dup := values[n.AsString()]; dup {
			return nil, nil, fmt.Errorf("%s: %s twice", list, n.AsString())
		}
		names = append(names, n.AsString())
		values[n.AsString()] = Get(item, field)
	}
	return names, values, nil
}
