package tasks

// daemon.json as a JSON object edited in place: keys keep their order and
// values their exact text, so a merge changes only what it must.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// jsonObject is a JSON object that keeps its keys' order and its values'
// exact text, so a merge changes only what it must.
type jsonObject struct {
	keys    []string
	values  map[string]json.RawMessage
	touched map[string]bool // values set by dindops, formatted on encode
	indent  string
}

func parseJSONObject(b []byte) (*jsonObject, error) {
	if err := CheckJSON(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("the top-level value is not a JSON object")
	}
	o := &jsonObject{values: map[string]json.RawMessage{}, indent: detectIndent(b)}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if _, dup := o.values[k]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		o.keys = append(o.keys, k)
		o.values[k] = raw
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, err
	}
	return o, nil
}

func detectIndent(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, `"`) && len(trimmed) < len(line) {
			return line[:len(line)-len(trimmed)]
		}
	}
	return "  "
}

func (o *jsonObject) get(k string) (json.RawMessage, bool) {
	v, ok := o.values[k]
	return v, ok
}

func (o *jsonObject) set(k string, v json.RawMessage) {
	if o.values == nil {
		o.values = map[string]json.RawMessage{}
	}
	if _, ok := o.values[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.values[k] = v
	if o.touched == nil {
		o.touched = map[string]bool{}
	}
	o.touched[k] = true
}

// remove deletes k and reports whether it was there.
func (o *jsonObject) remove(k string) bool {
	if _, ok := o.values[k]; !ok {
		return false
	}
	delete(o.values, k)
	o.keys = slices.DeleteFunc(o.keys, func(s string) bool { return s == k })
	return true
}

func (o *jsonObject) encode() []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range o.keys {
		key, _ := json.Marshal(k)
		// Values already in the file keep their exact text.
		var val bytes.Buffer
		if !o.touched[k] || json.Indent(&val, o.values[k], o.indent, o.indent) != nil {
			val.Reset()
			val.Write(o.values[k])
		}
		fmt.Fprintf(&b, "%s%s: %s", o.indent, key, val.Bytes())
		if i < len(o.keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// jsonable converts YAML-decoded values (map[string]any, []any, ints) to
// values encoding/json accepts, recursively.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

func pathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}
