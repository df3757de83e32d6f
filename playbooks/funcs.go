package playbooks

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// Templates may call these functions besides text/template's own
// (https://pkg.go.dev/text/template#hdr-Functions):
//
//	prefix P LIST   the list with P before each item: a list, so it must
//	                be a whole value ("{{ prefix "--registry-mirror=" .mirrors }}"),
//	                which then keeps its type as a variable reference does.
//	                LIST is a list of strings, or one string (one item;
//	                "" is none).
//
// A function that gives a list cannot give text: its value is put in place
// of the whole scalar, so it is refused inside other text.

// listMark starts the placeholder that stands, in a template's output, for
// a list a function returned; NUL never appears in a playbook's text.
const listMark = "\x00list#"

// typedOutput collects the lists the functions of one template's execution
// return, each written into the text as a placeholder.
type typedOutput struct{ lists [][]string }

func (o *typedOutput) mark(l []string) string {
	o.lists = append(o.lists, l)
	return listMark + strconv.Itoa(len(o.lists)-1) + "\x00"
}

// funcs are the template functions; with o nil they only let a template
// parse (see varReader).
func funcs(o *typedOutput) template.FuncMap {
	return template.FuncMap{
		"prefix": func(p string, list any) (string, error) {
			items, err := stringItems(list)
			if err != nil {
				return "", fmt.Errorf("prefix: %v", err)
			}
			out := make([]string, len(items))
			for i, s := range items {
				out[i] = p + s
			}
			if o == nil {
				return "", nil
			}
			return o.mark(out), nil
		},
	}
}

// stringItems reads a list variable's value: a list of strings, or one
// string.
func stringItems(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		if x == "" {
			return nil, nil
		}
		return []string{x}, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d is %s, not a string", i+1, describeType(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, not %s", describeType(v))
}

func describeType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// resolve returns a template's output (out, of template s): its text, or
// the list a function gave when the output is exactly that list.
func (o *typedOutput) resolve(s, out string) (any, error) {
	if !strings.Contains(out, listMark) {
		return out, nil
	}
	for i, l := range o.lists {
		if out == listMark+strconv.Itoa(i)+"\x00" {
			// As a list decoded from YAML is.
			items := make([]any, len(l))
			for j, s := range l {
				items[j] = s
			}
			return items, nil
		}
	}
	return nil, fmt.Errorf("template %q: a function there gives a list, which cannot be part of other text: make it the whole value, as in \"{{ prefix \\\"--flag=\\\" .list }}\"", s)
}
