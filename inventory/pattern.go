package inventory

import (
	"fmt"
	"path"
	"strings"

	"github.com/dindops/dindops/internal/strictyaml"
)

// Select returns the hosts matching an Ansible-style host pattern, in
// inventory order.
//
// A pattern is a comma-separated list of terms (":" also separates terms when
// the pattern holds no IPv6 address). A term is "all" or "*", a group name, a
// host name, or a glob over host and group names ("build-*"). Plain terms are
// unioned; "&term" keeps only hosts also in term; "!term" removes term's
// hosts. A term that matches nothing is an error, so a typo never silently
// selects no hosts.
func (inv *Inventory) Select(pattern string) ([]*Host, error) {
	terms := splitPattern(pattern)
	if len(terms) == 0 {
		return nil, fmt.Errorf("empty host pattern")
	}
	var union, inter, excl []string
	for _, t := range terms {
		switch {
		case strings.HasPrefix(t, "&"):
			inter = append(inter, t[1:])
		case strings.HasPrefix(t, "!"):
			excl = append(excl, t[1:])
		default:
			union = append(union, t)
		}
	}
	if len(union) == 0 {
		union = []string{"all"}
	}
	selected := map[string]bool{}
	for _, t := range union {
		m, err := inv.match(t)
		if err != nil {
			return nil, err
		}
		for n := range m {
			selected[n] = true
		}
	}
	for _, t := range inter {
		m, err := inv.match(t)
		if err != nil {
			return nil, err
		}
		for n := range selected {
			if !m[n] {
				delete(selected, n)
			}
		}
	}
	for _, t := range excl {
		m, err := inv.match(t)
		if err != nil {
			return nil, err
		}
		for n := range m {
			delete(selected, n)
		}
	}
	var out []*Host
	for _, h := range inv.Hosts {
		if selected[h.Name] {
			out = append(out, h)
		}
	}
	return out, nil
}

// Host returns the host named name.
func (inv *Inventory) Host(name string) (*Host, bool) {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return nil, false
}

func splitPattern(p string) []string {
	sep := func(r rune) bool { return r == ',' }
	if !strings.Contains(p, "::") && !strings.Contains(p, "[") {
		sep = func(r rune) bool { return r == ',' || r == ':' }
	}
	var out []string
	for _, t := range strings.FieldsFunc(p, sep) {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// match returns the names of hosts matching one term.
func (inv *Inventory) match(term string) (map[string]bool, error) {
	out := map[string]bool{}
	if term == "all" || term == "*" {
		for _, h := range inv.Hosts {
			out[h.Name] = true
		}
		return out, nil
	}
	glob := strings.ContainsAny(term, "*?[")
	if glob {
		if _, err := path.Match(term, ""); err != nil {
			return nil, fmt.Errorf("host pattern %q: %v", term, err)
		}
	}
	for name := range inv.Groups {
		if name == term || glob && matchGlob(term, name) {
			for _, h := range inv.groupHosts(name) {
				out[h] = true
			}
		}
	}
	for _, h := range inv.Hosts {
		if h.Name == term || glob && matchGlob(term, h.Name) {
			out[h.Name] = true
		}
	}
	if len(out) == 0 {
		names := make([]string, 0, len(inv.Groups)+len(inv.Hosts))
		for g := range inv.Groups {
			names = append(names, g)
		}
		for _, h := range inv.Hosts {
			names = append(names, h.Name)
		}
		msg := fmt.Sprintf("host pattern %q matches no host or group in %s", term, inv.File)
		if s := strictyaml.Suggest(term, names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return nil, fmt.Errorf("%s", msg)
	}
	return out, nil
}

func matchGlob(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// groupHosts returns the hosts of a group and of its children, recursively.
func (inv *Inventory) groupHosts(name string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(string)
	walk = func(g string) {
		if seen[g] {
			return
		}
		seen[g] = true
		grp := inv.Groups[g]
		if grp == nil {
			return
		}
		out = append(out, grp.Hosts...)
		for _, c := range grp.Children {
			walk(c)
		}
	}
	walk(name)
	return out
}
