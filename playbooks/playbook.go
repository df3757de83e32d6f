// Package playbooks loads playbooks (YAML lists of plays) strictly and binds
// their tasks to each host's variables.
//
// A playbook is checked in two steps, both before any host is contacted:
// Parse checks its structure (plays, tasks, handlers, every task kind's
// options); Compile expands the templates of every task for one host and
// decodes them into task values, so type errors and undefined variables are
// found up front, with file:line:column.
package playbooks

import (
	"embed"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/internal/strictyaml"
	"github.com/dindops/dindops/tasks"
)

// Playbook is a parsed playbook file.
type Playbook struct {
	File  string
	Plays []*Play
}

// Play maps a host pattern to tasks and handlers.
type Play struct {
	Name  string
	Hosts string // host pattern (see inventory.Inventory.Select)
	// Become, when set, overrides the inventory's become for every task.
	Become *bool
	// Vars are the play's defaults: inventory group and host vars override
	// them, extra vars (-e) override everything.
	Vars     map[string]any
	Tasks    []*TaskDef
	Handlers []*TaskDef
	// Health are the play's health checks (kinds of tasks.CheckKinds):
	// run after its tasks and handlers in apply, against the current state
	// in plan, and alone by `dindops check`.
	Health []*TaskDef
	// Serial splits the play's hosts into batches that run one after
	// another; empty means one batch of every host.
	Serial Serial
	// MaxFailPercentage, when set, stops the rollout after a batch in
	// which more than this percentage of the hosts failed.
	MaxFailPercentage *float64
	// serialNode and maxFailNode hold a serial or max_fail_percentage
	// written as a template ("{{ .rollout_serial }}"): Compile expands it
	// with each host's variables, and RolloutOf checks the hosts agree.
	serialNode, maxFailNode *yaml.Node
	Line                    int
	Column                  int
}

// TaskDef is a task as written in the playbook, before templates are
// expanded for a host.
type TaskDef struct {
	File string
	Name string // may hold templates
	Kind string // the task kind's key, e.g. "docker_container"
	// Check says Kind is a health check kind (tasks.CheckKinds), listed
	// under the play's health.
	Check  bool
	Notify []string
	Become *bool
	Tags   []string
	// Timeout bounds the task on a host (plan and apply together); zero
	// means no limit.
	Timeout time.Duration
	// Warn, with templates expanded for a host, is a warning that plan and
	// apply show on the task whenever it is not empty: a playbook's word
	// on a setting that works but is risky ("{{ if not .x }}…{{ end }}").
	Warn   string
	Line   int
	Column int

	options *yaml.Node
}

// Pos returns "file:line:column" of the task.
func (t *TaskDef) Pos() string { return fmt.Sprintf("%s:%d:%d", t.File, t.Line, t.Column) }

var playKeys = []string{"name", "hosts", "become", "vars", "tasks", "handlers", "health", "serial", "max_fail_percentage"}

var taskKeys = []string{"name", "notify", "become", "tags", "timeout", "warn"}

//go:embed shipped/*.yml
var shipped embed.FS

// ShippedName is the name of the playbook built into the binary, used when no
// playbook is named on the command line.
const ShippedName = "dind-runner.yml"

// Shipped returns the playbook built into the binary. Its File reads
// "(shipped) dind-runner.yml" so errors say where they come from.
func Shipped() (*Playbook, error) {
	return ShippedFile(ShippedName)
}

// ShippedFile returns one of the shipped playbooks by file name.
func ShippedFile(name string) (*Playbook, error) {
	data, err := shipped.ReadFile("shipped/" + name)
	if err != nil {
		return nil, fmt.Errorf("no shipped playbook %q", name)
	}
	return Parse("(shipped) "+name, data)
}

// ShippedSource returns the text of a shipped playbook, for `dindops show`.
func ShippedSource(name string) ([]byte, error) { return shipped.ReadFile("shipped/" + name) }

// Load reads and parses a playbook file.
func Load(path string) (*Playbook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("playbook: %w", err)
	}
	return Parse(path, data)
}

// Parse checks data as a playbook named file, reporting every structural
// problem (with file:line:column) at once.
func Parse(file string, data []byte) (*Playbook, error) {
	root, err := strictyaml.Parse(file, data)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.SequenceNode {
		return nil, strictyaml.Errorf(file, root, "a playbook is a list of plays (each starting with \"- name:\"), got %s", strictyaml.KindName(root))
	}
	p := &parser{file: file, kinds: tasks.Kinds(), checks: tasks.CheckKinds()}
	pb := &Playbook{File: file}
	for _, n := range root.Content {
		if play := p.play(n); play != nil {
			pb.Plays = append(pb.Plays, play)
		}
	}
	if err := p.errs.Err(); err != nil {
		return nil, err
	}
	if len(pb.Plays) == 0 {
		return nil, strictyaml.Errorf(file, root, "the playbook has no plays")
	}
	return pb, nil
}

type parser struct {
	file   string
	kinds  map[string]func() tasks.Task
	checks map[string]func() tasks.Checker
	errs   strictyaml.Errors
}

// listKind says which list of a play a task is in.
type listKind int

const (
	inTasks listKind = iota
	inHandlers
	inHealth
)

// kindNames are the kinds a list may use, sorted.
func (l listKind) kindNames() []string {
	if l == inHealth {
		return tasks.CheckKindNames()
	}
	return tasks.KindNames()
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, strictyaml.Errorf(p.file, n, format, args...))
}

func (p *parser) play(n *yaml.Node) *Play {
	if err := strictyaml.CheckKeys(p.file, n, "a play", playKeys); err != nil {
		p.errs = append(p.errs, err)
		return nil
	}
	play := &Play{Line: n.Line, Column: n.Column}
	var tasksNode, handlersNode, healthNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "name":
			err = strictyaml.Decode(p.file, v, &play.Name)
		case "hosts":
			err = strictyaml.Decode(p.file, v, &play.Hosts)
		case "become":
			err = strictyaml.Decode(p.file, v, &play.Become)
		case "vars":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "play vars must be a mapping, got %s", strictyaml.KindName(v))
				continue
			}
			err = strictyaml.Decode(p.file, v, &play.Vars)
		case "tasks":
			tasksNode = v
		case "handlers":
			handlersNode = v
		case "health":
			healthNode = v
		case "serial":
			if nodeHasTemplate(v) {
				play.serialNode = v
				continue
			}
			play.Serial, err = parseSerial(p.file, v)
		case "max_fail_percentage":
			if nodeHasTemplate(v) {
				play.maxFailNode = v
				continue
			}
			play.MaxFailPercentage, err = parseMaxFail(p.file, v)
		}
		if err != nil {
			p.errs = append(p.errs, err)
		}
	}
	if strings.TrimSpace(play.Hosts) == "" {
		p.errorf(n, "play %q has no hosts: add \"hosts: all\" or a host pattern", play.Name)
	}
	play.Handlers = p.taskList(handlersNode, "handlers", inHandlers)
	play.Tasks = p.taskList(tasksNode, "tasks", inTasks)
	play.Health = p.taskList(healthNode, "health", inHealth)
	handlerNames := map[string]bool{}
	for _, h := range play.Handlers {
		if handlerNames[h.Name] {
			p.errorf(&yaml.Node{Line: h.Line, Column: h.Column}, "two handlers are named %q; handler names must be unique in a play", h.Name)
		}
		handlerNames[h.Name] = true
	}
	names := make([]string, 0, len(handlerNames))
	for h := range handlerNames {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, t := range play.Tasks {
		for _, nt := range t.Notify {
			if !handlerNames[nt] {
				msg := fmt.Sprintf("task %q notifies %q, but the play has no handler of that name", t.Name, nt)
				if s := strictyaml.Suggest(nt, names); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				} else if len(names) > 0 {
					msg += "; handlers: " + strings.Join(names, ", ")
				}
				p.errorf(&yaml.Node{Line: t.Line, Column: t.Column}, "%s", msg)
			}
		}
	}
	return play
}

func (p *parser) taskList(n *yaml.Node, what string, list listKind) []*TaskDef {
	if n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list of tasks, got %s", what, strictyaml.KindName(n))
		return nil
	}
	var out []*TaskDef
	for _, tn := range n.Content {
		if t := p.task(tn, list); t != nil {
			out = append(out, t)
		}
	}
	return out
}

func (p *parser) task(n *yaml.Node, list listKind) *TaskDef {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "a task must be a mapping with a name and one task kind, got %s", strictyaml.KindName(n))
		return nil
	}
	t := &TaskDef{File: p.file, Line: n.Line, Column: n.Column, Check: list == inHealth}
	kindNames := list.kindNames()
	var kindKeys []*yaml.Node
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "name":
			err = strictyaml.Decode(p.file, v, &t.Name)
		case "notify":
			if list == inHandlers {
				p.errorf(k, "handlers cannot notify other handlers in dindops; notify both from the task")
				ok = false
				continue
			}
			if list == inHealth {
				p.errorf(k, "health checks change nothing, so they cannot notify handlers")
				ok = false
				continue
			}
			t.Notify, err = stringOrList(p.file, v)
		case "become":
			err = strictyaml.Decode(p.file, v, &t.Become)
		case "tags":
			t.Tags, err = stringOrList(p.file, v)
		case "timeout":
			t.Timeout, err = parseTimeout(p.file, v)
		case "warn":
			err = strictyaml.Decode(p.file, v, &t.Warn)
		default:
			if p.isKind(list, k.Value) {
				t.Kind = k.Value
				t.options = v
				kindKeys = append(kindKeys, k)
				continue
			}
			if list == inHealth && p.isKind(inTasks, k.Value) {
				p.errorf(k, "%s is a task kind, not a health check: move it to the play's tasks (health checks: %s)", k.Value, strings.Join(kindNames, ", "))
				ok = false
				continue
			}
			if list != inHealth && p.isKind(inHealth, k.Value) {
				p.errorf(k, "%s is a health check, not a task: list it under the play's health:", k.Value)
				ok = false
				continue
			}
			known := append(append([]string(nil), taskKeys...), kindNames...)
			msg := fmt.Sprintf("unknown field %q in a task", k.Value)
			if s := strictyaml.Suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else if list == inHealth {
				msg += "; health checks: " + strings.Join(kindNames, ", ")
			} else {
				msg += "; task kinds: " + strings.Join(kindNames, ", ")
			}
			p.errorf(k, "%s", msg)
			ok = false
			continue
		}
		if err != nil {
			p.errs = append(p.errs, err)
			ok = false
		}
	}
	switch {
	case len(kindKeys) == 0 && ok:
		p.errorf(n, "task %q has no task kind; add one of: %s", t.Name, strings.Join(kindNames, ", "))
		return nil
	case len(kindKeys) > 1:
		p.errorf(kindKeys[1], "task %q has two task kinds (%s and %s); split it into two tasks", t.Name, kindKeys[0].Value, kindKeys[1].Value)
		return nil
	}
	if strings.TrimSpace(t.Name) == "" && ok {
		p.errorf(n, "every task needs a name (it is what plans and reports show)")
		ok = false
	}
	if !ok || t.Kind == "" {
		return nil
	}
	// Unknown option keys are found now, before any host's vars are known;
	// value types are checked per host by Compile, once templates expand.
	task := newKind(t)
	if t.options.Kind == yaml.ScalarNode && t.options.Tag == "!!null" {
		return t
	}
	if t.options.Kind != yaml.MappingNode {
		p.errorf(t.options, "%s options must be a mapping, got %s", t.Kind, strictyaml.KindName(t.options))
		return nil
	}
	if err := strictyaml.CheckType(p.file, t.options, reflect.TypeOf(task)); err != nil {
		p.errs = append(p.errs, prefixed(t.Kind, err))
		return nil
	}
	// Options without templates are the same for every host: decode and
	// validate them now, so `playbook check` finds a bare mode 644 too.
	if !nodeHasTemplate(t.options) {
		if err := strictyaml.Decode(p.file, t.options, task); err != nil {
			p.errs = append(p.errs, taskErr(t, prefixed(t.Kind, err)))
			return nil
		}
		if v, ok := task.(tasks.Validator); ok {
			if err := v.Validate(); err != nil {
				p.errs = append(p.errs, taskErr(t, fieldErr(t, err)))
				return nil
			}
		}
	}
	return t
}

func (p *parser) isKind(list listKind, name string) bool {
	if list == inHealth {
		_, ok := p.checks[name]
		return ok
	}
	_, ok := p.kinds[name]
	return ok
}

// newKind returns a new zero value of t's kind (a tasks.Task, or a
// tasks.Checker for a health check).
func newKind(t *TaskDef) any {
	if t.Check {
		return tasks.CheckKinds()[t.Kind]()
	}
	return tasks.Kinds()[t.Kind]()
}

func nodeHasTemplate(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		return strings.Contains(n.Value, "{{")
	}
	if n.Kind == yaml.AliasNode {
		return nodeHasTemplate(n.Alias)
	}
	for _, c := range n.Content {
		if nodeHasTemplate(c) {
			return true
		}
	}
	return false
}

// prefixed rewrites "this mapping" in strict errors as the task kind's name.
func prefixed(kind string, err error) error {
	rewrite := func(e error) error {
		if se, ok := e.(*strictyaml.Error); ok {
			c := *se
			c.Msg = strings.Replace(c.Msg, "in this mapping", "in "+kind+" options", 1)
			return &c
		}
		return e
	}
	if es, ok := err.(strictyaml.Errors); ok {
		out := make(strictyaml.Errors, len(es))
		for i, e := range es {
			out[i] = rewrite(e)
		}
		return out
	}
	return rewrite(err)
}

func stringOrList(file string, n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := strictyaml.Decode(file, n, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var l []string
	if err := strictyaml.Decode(file, n, &l); err != nil {
		return nil, err
	}
	return l, nil
}
