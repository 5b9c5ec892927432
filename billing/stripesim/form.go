package stripesim

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// form is a Stripe form-encoded body decoded into a tree: "a[b][0][c]=v" becomes
// {"a": {"b": {"0": {"c": "v"}}}}. Leaves are strings; lists are nodes with numeric keys,
// which is how Stripe's own decoder (and stripe-go's encoder) treats them.
type form map[string]any

// parseForm builds the tree from decoded values. "a[]" appends, as Stripe accepts it.
func parseForm(vals url.Values) (form, *apiError) {
	root := form{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic "[]" appends and error messages
	for _, k := range keys {
		segs, ok := splitKey(k)
		if !ok {
			return nil, invalidParam(k, "Invalid parameter name: "+k)
		}
		for _, v := range vals[k] {
			if err := root.insert(segs, k, v); err != nil {
				return nil, err
			}
		}
	}
	return root, nil
}

// splitKey turns "a[b][]" into ["a", "b", ""].
func splitKey(k string) ([]string, bool) {
	i := strings.IndexByte(k, '[')
	if i < 0 {
		return []string{k}, k != ""
	}
	if i == 0 {
		return nil, false
	}
	segs := []string{k[:i]}
	rest := k[i:]
	for rest != "" {
		if rest[0] != '[' {
			return nil, false
		}
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return nil, false
		}
		segs = append(segs, rest[1:j])
		rest = rest[j+1:]
	}
	return segs, true
}

func (f form) insert(segs []string, full, v string) *apiError {
	node := f
	for i, seg := range segs {
		if seg == "" { // "[]": the next index
			seg = strconv.Itoa(len(node))
		}
		last := i == len(segs)-1
		if last {
			if _, isNode := node[seg].(form); isNode {
				return invalidParam(full, "Invalid parameter: "+full+" cannot be both a value and a hash")
			}
			node[seg] = v
			return nil
		}
		switch child := node[seg].(type) {
		case nil:
			n := form{}
			node[seg] = n
			node = n
		case form:
			node = child
		default:
			return invalidParam(full, "Invalid parameter: "+full+" cannot be both a value and a hash")
		}
	}
	return nil
}

// str returns a leaf value.
func (f form) str(key string) (string, bool) {
	s, ok := f[key].(string)
	return s, ok
}

// sub returns a nested hash; a leaf where a hash is expected is an error. An empty string is
// Stripe's way of unsetting a hash and counts as absent.
func (f form) sub(key, param string) (form, *apiError) {
	switch v := f[key].(type) {
	case nil:
		return nil, nil
	case form:
		return v, nil
	case string:
		if v == "" {
			return nil, nil
		}
	}
	return nil, invalidParam(param, fmt.Sprintf("Invalid object: %s must be a hash", param))
}

// list returns the elements of an array parameter in index order.
func (f form) list(key, param string) ([]any, *apiError) {
	switch v := f[key].(type) {
	case nil:
		return nil, nil
	case form:
		idx := make([]int, 0, len(v))
		for k := range v {
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 {
				return nil, invalidParam(param, fmt.Sprintf("Invalid array: %s must be an array", param))
			}
			idx = append(idx, n)
		}
		sort.Ints(idx)
		out := make([]any, 0, len(idx))
		for _, n := range idx {
			out = append(out, v[strconv.Itoa(n)])
		}
		return out, nil
	case string:
		if v == "" {
			return nil, nil
		}
	}
	return nil, invalidParam(param, fmt.Sprintf("Invalid array: %s must be an array", param))
}

// strings returns an array of strings (e.g. expand[]).
func (f form) strings(key, param string) ([]string, *apiError) {
	items, err := f.list(key, param)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, invalidParam(fmt.Sprintf("%s[%d]", param, i), fmt.Sprintf("Invalid string: %s[%d]", param, i))
		}
		out = append(out, s)
	}
	return out, nil
}

// int returns an integer leaf; present reports whether it was given.
func (f form) int(key, param string) (n int64, present bool, aerr *apiError) {
	v, ok := f[key]
	if !ok {
		return 0, false, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, true, &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_invalid_integer", Param: param,
			Message: fmt.Sprintf("Invalid integer: %s must be an integer", param)}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, true, &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_invalid_integer", Param: param,
			Message: "Invalid integer: " + s}
	}
	return n, true, nil
}

// metadata returns a metadata hash, checked against Stripe's limits.
func (f form) metadata(key, param string) (map[string]string, *apiError) {
	m, err := f.sub(key, param)
	if err != nil || m == nil {
		return map[string]string{}, err
	}
	if len(m) > 50 {
		return nil, invalidParam(param, "You can specify up to 50 keys in metadata.")
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, invalidParam(param+"["+k+"]", "Invalid metadata value: metadata values must be strings")
		}
		if len(k) > 40 {
			return nil, invalidParam(param+"["+k+"]", "Metadata keys can have up to 40 characters.")
		}
		if len(s) > 500 {
			return nil, invalidParam(param+"["+k+"]", "Metadata values can have up to 500 characters.")
		}
		out[k] = s
	}
	return out, nil
}

// unknown returns the parameter_unknown error for the first key not in allowed, like Stripe.
func (f form) unknown(prefix string, allowed ...string) *apiError {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			name := k
			if prefix != "" {
				name = prefix + "[" + k + "]"
			}
			return &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_unknown", Param: name,
				Message: "Received unknown parameter: " + name}
		}
	}
	return nil
}
