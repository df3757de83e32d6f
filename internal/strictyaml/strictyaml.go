// Package strictyaml decodes YAML nodes into Go values strictly: an unknown or
// misspelled key is an error naming file:line:column, the key, and the closest
// known key. Errors from go.yaml.in/yaml/v3 ("line 12: cannot unmarshal ...")
// are rewritten to carry the file name too.
//
// Strictness is checked by walking the node against the target type, so it
// holds however many times a node is decoded (yaml.Node.Decode alone ignores
// KnownFields).
package strictyaml

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a problem at a position in a YAML file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

// Errorf returns an *Error at n's position.
func Errorf(file string, n *yaml.Node, format string, args ...any) error {
	e := &Error{File: file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// Errors is several problems, reported together so a user fixes them in one go.
type Errors []error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error { return es }

// Err returns nil for no errors, the error itself for one, es otherwise.
func (es Errors) Err() error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	}
	return es
}

// Parse reads data as one YAML document and returns its root content node.
func Parse(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, rewrite(file, nil, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "file is empty"}
	}
	var errs Errors
	duplicates(file, doc.Content[0], &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return doc.Content[0], nil
}

// duplicates reports every mapping key that appears twice in the same
// mapping: YAML forbids it, and a decoder that lets the last one win hides a
// mistake (two "tasks:" lists, one silently dropped).
func duplicates(file string, n *yaml.Node, errs *Errors) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if first, ok := seen[k.Value]; ok {
					*errs = append(*errs, Errorf(file, k, "key %q appears twice in this mapping (first at line %d); keep one", k.Value, first.Line))
				} else {
					seen[k.Value] = k
				}
			}
		}
	}
	for _, c := range n.Content {
		duplicates(file, c, errs)
	}
}

// Decode checks n against out's type (unknown keys are errors) and decodes it.
// out must be a non-nil pointer.
func Decode(file string, n *yaml.Node, out any) error {
	t := reflect.TypeOf(out)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("strictyaml.Decode: out must be a pointer, got %T", out)
	}
	var errs Errors
	check(file, n, t.Elem(), &errs)
	if err := errs.Err(); err != nil {
		return err
	}
	if err := n.Decode(out); err != nil {
		return rewrite(file, n, err)
	}
	return nil
}

// CheckType reports every key of n that has no field in type t (a struct,
// or a pointer, map or slice of one), without decoding anything. Scalars
// standing where t wants a mapping or list are left for the decoder.
func CheckType(file string, n *yaml.Node, t reflect.Type) error {
	var errs Errors
	check(file, n, t, &errs)
	return errs.Err()
}

// CheckKeys reports keys of mapping node n not in known, with a suggestion.
func CheckKeys(file string, n *yaml.Node, what string, known []string) error {
	if n.Kind != yaml.MappingNode {
		return Errorf(file, n, "%s must be a mapping, got %s", what, KindName(n))
	}
	var errs Errors
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !contains(known, k.Value) {
			errs = append(errs, unknownKey(file, k, what, known))
		}
	}
	return errs.Err()
}

func unknownKey(file string, k *yaml.Node, what string, known []string) error {
	msg := fmt.Sprintf("unknown field %q in %s", k.Value, what)
	if s := Suggest(k.Value, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(known) > 0 && len(known) <= 20 {
		sorted := append([]string(nil), known...)
		sort.Strings(sorted)
		msg += "; valid fields: " + strings.Join(sorted, ", ")
	}
	return Errorf(file, k, "%s", msg)
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	nodeType            = reflect.TypeFor[yaml.Node]()
)

// check walks n against t, appending unknown-key errors.
func check(file string, n *yaml.Node, t reflect.Type, errs *Errors) {
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type error with its line
		}
		fields := structFields(t)
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, unknownKey(file, k, "this mapping", names))
				continue
			}
			check(file, v, ft, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 1; i < len(n.Content); i += 2 {
			check(file, n.Content[i], t.Elem(), errs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for _, c := range n.Content {
			check(file, c, t.Elem(), errs)
		}
	}
}

// structFields maps YAML keys to field types, following yaml tags and
// ",inline" embedding.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

var lineRe = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)

// rewrite turns yaml.v3 errors into *Error values naming the file.
func rewrite(file string, n *yaml.Node, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs Errors
		for _, m := range te.Errors {
			errs = append(errs, lineError(file, n, m))
		}
		return errs.Err()
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return lineError(file, n, msg)
}

func lineError(file string, n *yaml.Node, msg string) error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		e := &Error{File: file, Msg: m[3]}
		fmt.Sscan(m[1], &e.Line)
		if m[2] != "" {
			fmt.Sscan(m[2], &e.Column)
		}
		return e
	}
	e := &Error{File: file, Msg: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// KindName names a node's kind for messages: "a mapping", "a list", ...
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// Suggest returns the candidate closest to s, or "" when none is close.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
