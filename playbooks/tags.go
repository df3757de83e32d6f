package playbooks

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dindops/dindops/internal/strictyaml"
)

// Special tags, with Ansible's meanings.
const (
	// TagAlways marks a task that runs whatever --tags says (unless
	// --skip-tags names always or one of its tags).
	TagAlways = "always"
	// TagNever marks a task that runs only when --tags names never or
	// another of its tags.
	TagNever = "never"
	// TagAll, TagTagged and TagUntagged are selectors for --tags and
	// --skip-tags: every task (except never), tasks with a tag, tasks
	// without one.
	TagAll      = "all"
	TagTagged   = "tagged"
	TagUntagged = "untagged"
)

// TagSelection says which tasks run, from --tags and --skip-tags. The zero
// value runs every task except those tagged never. Handlers are never
// filtered: they run when notified, whatever their tags.
type TagSelection struct {
	Only []string // --tags: run only tasks with one of these tags (and always)
	Skip []string // --skip-tags: never run tasks with one of these tags
}

// IsZero reports whether the selection is the default one.
func (s TagSelection) IsZero() bool { return len(s.Only) == 0 && len(s.Skip) == 0 }

// Selects reports whether a task with these tags runs.
func (s TagSelection) Selects(tags []string) bool {
	matches := func(sel string) bool {
		switch sel {
		case TagAll:
			return true
		case TagTagged:
			return len(tags) > 0
		case TagUntagged:
			return len(tags) == 0
		}
		return slices.Contains(tags, sel)
	}
	for _, sk := range s.Skip {
		if matches(sk) {
			return false
		}
	}
	if slices.Contains(tags, TagAlways) {
		return true
	}
	never := slices.Contains(tags, TagNever)
	if len(s.Only) == 0 {
		return !never
	}
	for _, o := range s.Only {
		switch o {
		case TagAll, TagTagged, TagUntagged:
			if !never && matches(o) {
				return true
			}
		default:
			if matches(o) {
				return true // named explicitly: runs even when tagged never
			}
		}
	}
	return false
}

// Tags returns every tag used by the playbook's tasks and handlers, sorted.
func (pb *Playbook) Tags() []string {
	seen := map[string]bool{}
	for _, p := range pb.Plays {
		for _, list := range [][]*TaskDef{p.Tasks, p.Handlers} {
			for _, t := range list {
				for _, tag := range t.Tags {
					seen[tag] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// CheckTags returns an error naming each tag of sel that no task of the
// playbook carries (a typo in --skip-tags would otherwise skip nothing,
// silently), with the closest known tag.
func (pb *Playbook) CheckTags(sel TagSelection) error {
	known := pb.Tags()
	var errs []string
	for _, list := range []struct {
		flag string
		tags []string
	}{{"--tags", sel.Only}, {"--skip-tags", sel.Skip}} {
		for _, t := range list.tags {
			switch {
			case t == TagAll || t == TagTagged || t == TagUntagged || t == TagAlways || t == TagNever:
				continue
			case slices.Contains(known, t):
				continue
			}
			msg := fmt.Sprintf("%s %s: no task of %s has this tag", list.flag, t, pb.File)
			if s := strictyaml.Suggest(t, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else if len(known) > 0 {
				msg += "; its tags: " + strings.Join(known, ", ")
			} else {
				msg += " (it has no tags)"
			}
			errs = append(errs, msg)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// SplitTags reads the values of --tags or --skip-tags: repeatable, each a
// comma-separated list.
func SplitTags(values []string) []string {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}
