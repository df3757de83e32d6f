package tasks

// An order-keeping editor for gitlab-runner's config.toml: parsed with
// BurntSushi/toml, written back in the file's own key order.

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// tomlDoc is a parsed TOML file that remembers the order of its keys, so
// that writing it back changes only what was changed. Values are what
// BurntSushi/toml decodes (string, int64, float64, bool, time.Time, []any,
// map[string]any, []map[string]any); order maps a table's path, with array
// indexes ("runners[1].docker"), to its keys in file order.
type tomlDoc struct {
	root  map[string]any
	order map[string][]string
}

func parseTOMLDoc(path string, content []byte) (*tomlDoc, error) {
	d := &tomlDoc{root: map[string]any{}, order: map[string][]string{}}
	if len(bytes.TrimSpace(content)) == 0 {
		return d, nil
	}
	md, err := toml.Decode(string(content), &d.root)
	if err != nil {
		return nil, tomlParseError(path, err)
	}
	normalizeTOML(d.root)
	// Keys come in file order; a key of type ArrayHash starts the next
	// element of that array of tables.
	cur := map[string]int{}
	seen := map[string]int{}
	for _, k := range md.Keys() {
		ip := ""
		for i := 0; i < len(k)-1; i++ {
			ip = joinTOMLPath(ip, k[i])
			if md.Type(k[:i+1]...) == "ArrayHash" {
				ip += fmt.Sprintf("[%d]", cur[strings.Join(k[:i+1], "\x00")])
			}
		}
		last := k[len(k)-1]
		if !slices.Contains(d.order[ip], last) {
			d.order[ip] = append(d.order[ip], last)
		}
		if md.Type(k...) == "ArrayHash" {
			ap := joinTOMLPath(ip, last)
			cur[strings.Join(k, "\x00")] = seen[ap]
			seen[ap]++
		}
	}
	if r, ok := d.root["runners"]; ok {
		switch v := r.(type) {
		case []map[string]any:
		case []any:
			if len(v) > 0 {
				return nil, fmt.Errorf("%s: runners is an array of values; gitlab-runner wants [[runners]] tables", path)
			}
			delete(d.root, "runners")
		default:
			return nil, fmt.Errorf("%s: runners is a %s; gitlab-runner wants [[runners]] tables", path, tomlTypeName(v))
		}
	}
	return d, nil
}

func tomlTypeName(v any) string {
	if _, ok := v.(map[string]any); ok {
		return "table ([runners])"
	}
	return fmt.Sprintf("%T", v)
}

// secretKeyRE matches config.toml keys whose values are secrets: runner
// tokens and the cache's cloud credentials.
var secretKeyRE = regexp.MustCompile(`(?i)token|secret|password|accesskey|accountkey|privatekey`)

func isSecretKey(k string) bool {
	return secretKeyRE.MatchString(k) && !strings.HasSuffix(strings.ToLower(k), "_at")
}

var quotedRE = regexp.MustCompile(`"[^"]*"`)

func tomlParseError(path string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &TOMLError{Path: path, Line: 1, Column: 1, Message: "cannot be decoded"}
	}
	msg := pe.Message
	if isSecretKey(pe.LastKey) {
		// The parser quotes the text it choked on: here that may be a token.
		msg = quotedRE.ReplaceAllString(msg, SensitiveValue)
	}
	return &TOMLError{Path: path, Line: pe.Position.Line, Column: max(pe.Position.Col, 1), Message: msg}
}

// normalizeTOML turns arrays of inline tables into arrays of tables, which
// TOML treats alike, so there is one shape to walk.
func normalizeTOML(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			normalizeTOML(x)
		case []map[string]any:
			for _, e := range x {
				normalizeTOML(e)
			}
		case []any:
			if len(x) == 0 {
				continue
			}
			tables := make([]map[string]any, 0, len(x))
			for _, e := range x {
				t, ok := e.(map[string]any)
				if !ok {
					tables = nil
					break
				}
				normalizeTOML(t)
				tables = append(tables, t)
			}
			if tables != nil {
				m[k] = tables
			}
		}
	}
}

func joinTOMLPath(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

func runnerPath(i int) string { return fmt.Sprintf("runners[%d]", i) }

func (d *tomlDoc) runners() []map[string]any {
	r, _ := d.root["runners"].([]map[string]any)
	return r
}

// findRunner returns the index of the [[runners]] entry named name, or -1.
// Several entries with that name are an error: dindops does not guess.
func (d *tomlDoc) findRunner(path, name string) (int, error) {
	var found []int
	for i, r := range d.runners() {
		if n, _ := r["name"].(string); n == name {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		return -1, nil
	case 1:
		return found[0], nil
	}
	nums := make([]string, len(found))
	for i, f := range found {
		nums[i] = fmt.Sprint(f + 1)
	}
	return -1, fmt.Errorf("%s has %d [[runners]] entries named %q (entries %s): dindops will not guess which one to keep; remove the extra ones by hand (and their runners in GitLab)",
		path, len(found), name, strings.Join(nums, ", "))
}

// addRunner appends a [[runners]] entry and returns its index.
func (d *tomlDoc) addRunner(name string) int {
	rs := append(d.runners(), map[string]any{"name": name})
	d.root["runners"] = rs
	if !slices.Contains(d.order[""], "runners") {
		d.order[""] = append(d.order[""], "runners")
	}
	i := len(rs) - 1
	d.order[runnerPath(i)] = []string{"name", "url", "id", "token", "token_obtained_at", "token_expires_at", "executor", "environment", "docker"}
	return i
}

// removeRunner deletes entry i and renumbers the order of those after it.
func (d *tomlDoc) removeRunner(i int) {
	rs := slices.Delete(slices.Clone(d.runners()), i, i+1)
	d.root["runners"] = rs
	if len(rs) == 0 {
		// No [[runners]] left: no key either (an empty array would be
		// written as "runners = []").
		delete(d.root, "runners")
		d.order[""] = slices.DeleteFunc(slices.Clone(d.order[""]), func(k string) bool { return k == "runners" })
	}
	renamed := map[string][]string{}
	for p, keys := range d.order {
		j, rest, ok := runnerIndex(p)
		switch {
		case !ok:
			renamed[p] = keys
		case j < i:
			renamed[p] = keys
		case j > i:
			renamed[runnerPath(j-1)+rest] = keys
		}
	}
	d.order = renamed
}

// runnerIndex splits "runners[3].docker" into 3 and ".docker".
func runnerIndex(p string) (int, string, bool) {
	if !strings.HasPrefix(p, "runners[") {
		return 0, "", false
	}
	end := strings.IndexByte(p, ']')
	var j int
	if end < 0 {
		return 0, "", false
	}
	if _, err := fmt.Sscanf(p[len("runners["):end], "%d", &j); err != nil {
		return 0, "", false
	}
	return j, p[end+1:], true
}

func (d *tomlDoc) clone() *tomlDoc {
	c := &tomlDoc{root: cloneTOML(d.root).(map[string]any), order: map[string][]string{}}
	for k, v := range d.order {
		c.order[k] = slices.Clone(v)
	}
	return c
}

func cloneTOML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneTOML(e)
		}
		return m
	case []map[string]any:
		s := make([]map[string]any, len(x))
		for i, e := range x {
			s[i] = cloneTOML(e).(map[string]any)
		}
		return s
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = cloneTOML(e)
		}
		return s
	}
	return v
}

// masked returns a copy of d with every secret replaced by SensitiveValue.
func (d *tomlDoc) masked() *tomlDoc {
	c := d.clone()
	var walk func(m map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			switch x := v.(type) {
			case map[string]any:
				walk(x)
			case []map[string]any:
				for _, e := range x {
					walk(e)
				}
			default:
				m[k] = maskValue(k, v)
			}
		}
	}
	walk(c.root)
	return c
}

// maskValue hides the value of a secret key, and the values of secret-looking
// variables in an environment list.
func maskValue(key string, v any) any {
	if s, ok := v.(string); ok && s != "" && isSecretKey(key) {
		return SensitiveValue
	}
	if l, ok := v.([]any); ok && key == "environment" {
		out := make([]any, len(l))
		for i, e := range l {
			if s, ok := e.(string); ok {
				out[i] = maskEnvEntry(s)
			} else {
				out[i] = e
			}
		}
		return out
	}
	return v
}

func maskEnvEntry(e string) string {
	if k, _, ok := strings.Cut(e, "="); ok && isSecretKey(k) {
		return k + "=" + SensitiveValue
	}
	return e
}

// keepsLayout reports whether writing d back gives exactly content.
func (d *tomlDoc) keepsLayout(content []byte) bool {
	b, err := d.encode()
	return err == nil && bytes.Equal(b, content)
}

func maskedDiff(path string, old, new *tomlDoc) (string, error) {
	o, err := old.masked().encode()
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	n, err := new.masked().encode()
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	return UnifiedDiff(path, o, n), nil
}

// encode writes d in gitlab-runner's layout: keys in their order, tables
// after plain keys, two spaces of indent per level, a blank line before
// each top-level table.
func (d *tomlDoc) encode() ([]byte, error) {
	var b bytes.Buffer
	if err := d.encodeTable(&b, nil, "", d.root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (d *tomlDoc) orderedKeys(ip string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for _, k := range d.order[ip] {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(keys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

func isTOMLTable(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return true
	case []map[string]any:
		return len(x) > 0
	}
	return false
}

func (d *tomlDoc) encodeTable(b *bytes.Buffer, path []string, ip string, m map[string]any) error {
	keys := d.orderedKeys(ip, m)
	indent := strings.Repeat("  ", len(path))
	for _, k := range keys {
		if isTOMLTable(m[k]) {
			continue
		}
		v, err := tomlValue(m[k])
		if err != nil {
			return fmt.Errorf("key %s: %v", strings.Join(append(slices.Clone(path), k), "."), err)
		}
		fmt.Fprintf(b, "%s%s = %s\n", indent, tomlKey(k), v)
	}
	for _, k := range keys {
		if !isTOMLTable(m[k]) {
			continue
		}
		cp := append(slices.Clone(path), k)
		header := make([]string, len(cp))
		for i, p := range cp {
			header[i] = tomlKey(p)
		}
		cip := joinTOMLPath(ip, k)
		switch x := m[k].(type) {
		case map[string]any:
			if len(path) == 0 && b.Len() > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(b, "%s[%s]\n", indent, strings.Join(header, "."))
			if err := d.encodeTable(b, cp, cip, x); err != nil {
				return err
			}
		case []map[string]any:
			for i, e := range x {
				if len(path) == 0 && b.Len() > 0 {
					b.WriteString("\n")
				}
				fmt.Fprintf(b, "%s[[%s]]\n", indent, strings.Join(header, "."))
				if err := d.encodeTable(b, cp, fmt.Sprintf("%s[%d]", cip, i), e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

var bareKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKeyRE.MatchString(k) {
		return k
	}
	s, err := tomlValue(k)
	if err != nil {
		return fmt.Sprintf("%q", k)
	}
	return s
}

// tomlValue renders one value (never a table) with BurntSushi/toml's own
// encoder, so strings, numbers and dates are written as the decoder reads
// them.
func tomlValue(v any) (string, error) {
	if err := checkNoTables(v); err != nil {
		return "", err
	}
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	s, ok := strings.CutPrefix(s, "v = ")
	if !ok || strings.Contains(s, "\n") {
		return "", fmt.Errorf("cannot write %T as one TOML value", v)
	}
	return s, nil
}

func checkNoTables(v any) error {
	switch x := v.(type) {
	case map[string]any, []map[string]any:
		return fmt.Errorf("a table inside an array of values is not supported")
	case []any:
		for _, e := range x {
			if err := checkNoTables(e); err != nil {
				return err
			}
		}
	}
	return nil
}
