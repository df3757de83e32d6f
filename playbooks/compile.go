package playbooks

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/internal/strictyaml"
	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/tasks"
)

// HostPlay is one play bound to one host: its variables resolved and every
// task decoded for that host.
type HostPlay struct {
	Play     *Play
	Host     *inventory.Host
	Vars     map[string]any
	Tasks    []*Step
	Handlers []*Step
	// Health are the play's health checks, bound to the host.
	Health []*Step
	// Serial and MaxFailPercentage are the play's rollout settings with
	// their templates expanded for this host (see RolloutOf).
	Serial            Serial
	MaxFailPercentage *float64
}

// Step is one task bound to a host.
type Step struct {
	Def    *TaskDef
	Name   string // the task's name with templates expanded
	Become bool
	// Timeout bounds the step (the task's timeout; zero: no limit).
	Timeout time.Duration
	// Warn is the task's warn with templates expanded; empty: none.
	Warn string
	// Task is the task, or nil for a health check (Check).
	Task tasks.Task
	// Check is the health check, for a step of the play's health.
	Check tasks.Checker
}

// CompileOptions are the inputs of Compile besides the play and host.
type CompileOptions struct {
	// ExtraVars override every other variable (the CLI's -e).
	ExtraVars map[string]any
	// Controller is handed to tasks that read secrets or need HTTP.
	Controller tasks.Controller
	// Tags selects the tasks that run (--tags, --skip-tags); tasks it
	// leaves out are not compiled at all. Handlers are always compiled.
	Tags TagSelection
}

// Compile binds play to host: play vars (defaults) < inventory vars < extra
// vars, plus inventory_hostname and group_names; every template in the
// tasks' options is expanded (an undefined variable is an error) and the
// result is decoded strictly and validated. Errors carry file:line:column.
func Compile(play *Play, host *inventory.Host, opts CompileOptions) (*HostPlay, error) {
	vars := map[string]any{}
	origin := map[string]string{}
	for _, layer := range []struct {
		vars map[string]any
		from string
	}{{play.Vars, "the play's vars"}, {host.Vars, "the inventory"}, {opts.ExtraVars, "-e"}} {
		for k, v := range layer.vars {
			vars[k], origin[k] = v, layer.from
		}
	}
	vars["inventory_hostname"] = host.Name
	groups := append([]string{}, host.Groups...)
	gl := make([]any, len(groups))
	for i, g := range groups {
		gl[i] = g
	}
	vars["group_names"] = gl
	if err := resolveVars(vars); err != nil {
		return nil, fmt.Errorf("play %q: %w", play.Name, err)
	}
	if err := boolOverrides(play.Vars, vars, origin); err != nil {
		return nil, fmt.Errorf("play %q: %w", play.Name, err)
	}
	hp := &HostPlay{Play: play, Host: host, Vars: vars, Serial: play.Serial, MaxFailPercentage: play.MaxFailPercentage}
	var errs strictyaml.Errors
	if err := hp.expandRollout(origin); err != nil {
		errs = append(errs, err)
	}
	become := host.Become
	if play.Become != nil {
		become = *play.Become
	}
	for _, list := range []struct {
		defs []*TaskDef
		out  *[]*Step
	}{{play.Tasks, &hp.Tasks}, {play.Handlers, &hp.Handlers}, {play.Health, &hp.Health}} {
		for _, d := range list.defs {
			if list.out == &hp.Tasks && !opts.Tags.Selects(d.Tags) {
				continue
			}
			b := &binder{file: d.File, vars: vars, origin: origin, subs: map[int][]string{}}
			s, err := b.compileTask(d, become, opts.Controller)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			*list.out = append(*list.out, s)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return hp, nil
}

// boolOverrides makes a variable whose default in the play is a boolean a
// boolean where the inventory or -e set it as text: "no", "off" or
// "false" would otherwise be a non-empty string, which templates take for
// true (YAML 1.2, and so -e and go.yaml.in/yaml/v3, reads only true and
// false as booleans, where Ansible's YAML 1.1 also reads yes/no/on/off).
// Other text is an error naming the variable.
func boolOverrides(defaults, vars map[string]any, origin map[string]string) error {
	for k, def := range defaults {
		if _, isBool := def.(bool); !isBool {
			continue
		}
		str, ok := vars[k].(string)
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(str)) {
		case "true", "yes", "on", "1":
			vars[k] = true
		case "false", "no", "off", "0":
			vars[k] = false
		default:
			return fmt.Errorf("variable %s (set in %s) must be true or false, as its default in the play is, got %q", k, origin[k], str)
		}
	}
	return nil
}

// binder expands one task's templates for one host and remembers where a
// variable's value was put, so a type error in it names the variable.
type binder struct {
	file   string
	vars   map[string]any
	origin map[string]string // top-level variable → where it was set
	subs   map[int][]string  // line → variables whose values were put there
}

// annotate adds "(the value of variable X, set in Y)" to errors on lines
// where a variable's value was put in place of a template.
func (b *binder) annotate(err error) error {
	switch e := err.(type) {
	case strictyaml.Errors:
		out := make(strictyaml.Errors, len(e))
		for i, x := range e {
			out[i] = b.annotate(x)
		}
		return out
	case *strictyaml.Error:
		names := b.subs[e.Line]
		if len(names) == 0 {
			return e
		}
		var notes []string
		for _, n := range names {
			top := strings.SplitN(n, ".", 2)[0]
			if from := b.origin[top]; from != "" {
				notes = append(notes, fmt.Sprintf("variable %s, set in %s", n, from))
			} else {
				notes = append(notes, "variable "+n)
			}
		}
		c := *e
		c.Msg += " (the value of " + strings.Join(notes, "; ") + ")"
		return &c
	}
	return err
}

func (b *binder) compileTask(d *TaskDef, become bool, ctl tasks.Controller) (*Step, error) {
	vars := b.vars
	at := &yaml.Node{Line: d.Line, Column: d.Column}
	name, err := expandString(d.Name, vars)
	if err != nil {
		return nil, strictyaml.Errorf(d.File, at, "task name: %v", err)
	}
	warn, err := expandString(d.Warn, vars)
	if err != nil {
		return nil, strictyaml.Errorf(d.File, at, "task warn: %v", err)
	}
	s := &Step{Def: d, Name: name, Become: become, Timeout: d.Timeout, Warn: strings.TrimSpace(warn)}
	if d.Become != nil {
		s.Become = *d.Become
	}
	task := newKind(d)
	if d.options != nil && !(d.options.Kind == yaml.ScalarNode && d.options.Tag == "!!null") {
		expanded, err := b.expandNode(d.options)
		if err != nil {
			return nil, taskErr(d, err)
		}
		if err := strictyaml.Decode(d.File, expanded, task); err != nil {
			return nil, taskErr(d, b.annotate(prefixed(d.Kind, err)))
		}
	}
	if v, ok := task.(tasks.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, taskErr(d, b.annotate(fieldErr(d, err)))
		}
	}
	if p, ok := task.(tasks.Preparer); ok {
		if err := p.Prepare(ctl); err != nil {
			return nil, taskErr(d, b.annotate(fieldErr(d, err)))
		}
	}
	if c, ok := task.(tasks.Checker); ok && d.Check {
		s.Check = c
	} else {
		s.Task = task.(tasks.Task)
	}
	return s, nil
}

// TaskError is a problem with one task, found before any host is contacted.
type TaskError struct {
	Task *TaskDef
	Err  error
}

func (e *TaskError) Error() string {
	var se *strictyaml.Error
	if errors.As(e.Err, &se) {
		return fmt.Sprintf("%s: task %q: %s", posOf(se), e.Task.Name, se.Msg)
	}
	return fmt.Sprintf("%s: task %q: %v", e.Task.Pos(), e.Task.Name, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

func posOf(e *strictyaml.Error) string {
	c := *e
	c.Msg = ""
	return strings.TrimSuffix(c.Error(), ": ")
}

func taskErr(d *TaskDef, err error) error {
	if es, ok := err.(strictyaml.Errors); ok {
		out := make(strictyaml.Errors, len(es))
		for i, e := range es {
			out[i] = &TaskError{Task: d, Err: e}
		}
		return out
	}
	return &TaskError{Task: d, Err: err}
}

// fieldErr points a *tasks.FieldError at its option's line.
func fieldErr(d *TaskDef, err error) error {
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || d.options == nil {
		return err
	}
	n := d.options
	for _, part := range strings.Split(fe.Field, ".") {
		// "runners[1]" is item 1 of the list under runners.
		key, index := part, -1
		if k, rest, ok := strings.Cut(part, "["); ok && strings.HasSuffix(rest, "]") {
			if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil {
				key, index = k, i
			}
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i]
					v := n.Content[i+1]
					switch {
					case index >= 0 && v.Kind == yaml.SequenceNode && index < len(v.Content):
						next = v.Content[index]
					case index < 0 && v.Kind == yaml.MappingNode:
						next = v
					}
					break
				}
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return strictyaml.Errorf(d.File, n, "%s: %v", d.Kind+"."+fe.Field, fe.Err)
}

// wholeVar matches a scalar that is exactly one variable reference, such as
// "{{ .dind_env }}": it stands for the variable's value with its own type
// (a map, a list, a bool), not its text.
var varRef = regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`)

var wholeVar = regexp.MustCompile(`^\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*-?\}\}$`)

// expandNode returns a copy of n with every template in its scalars expanded.
func (b *binder) expandNode(n *yaml.Node) (*yaml.Node, error) {
	file, vars := b.file, b.vars
	c := *n
	switch n.Kind {
	case yaml.AliasNode:
		return b.expandNode(n.Alias)
	case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
		c.Content = make([]*yaml.Node, len(n.Content))
		var errs strictyaml.Errors
		for i, ch := range n.Content {
			e, err := b.expandNode(ch)
			if err != nil {
				errs = append(errs, err)
				e = ch
			}
			c.Content[i] = e
		}
		return &c, errs.Err()
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "{{") || n.Tag != "" && n.Tag != "!!str" {
			return &c, nil
		}
		if m := wholeVar.FindStringSubmatch(n.Value); m != nil {
			v, err := lookup(vars, m[1])
			if err != nil {
				return nil, strictyaml.Errorf(file, n, "%v", err)
			}
			b.subs[n.Line] = append(b.subs[n.Line], m[1])
			return valueNode(v, n)
		}
		v, err := expandTyped(n.Value, vars)
		if err != nil {
			return nil, strictyaml.Errorf(file, n, "%v", err)
		}
		for _, m := range varRef.FindAllStringSubmatch(n.Value, -1) {
			b.subs[n.Line] = append(b.subs[n.Line], m[1])
		}
		s, ok := v.(string)
		if !ok {
			// A function's list (funcs) stands for the whole scalar.
			return valueNode(v, n)
		}
		c.Value, c.Tag, c.Style = s, "!!str", yaml.DoubleQuotedStyle
		return &c, nil
	}
	return &c, nil
}

// valueNode encodes a variable's value as a node placed at at's position.
func valueNode(v any, at *yaml.Node) (*yaml.Node, error) {
	if s, ok := v.(string); ok {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle, Line: at.Line, Column: at.Column}, nil
	}
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	var place func(*yaml.Node)
	place = func(x *yaml.Node) {
		x.Line, x.Column = at.Line, at.Column
		x.Style &^= yaml.FlowStyle
		for _, c := range x.Content {
			place(c)
		}
	}
	place(&n)
	return &n, nil
}

func lookup(vars map[string]any, path string) (any, error) {
	var cur any = vars
	parts := strings.Split(path, ".")
	for i, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("variable %q is not a mapping, so it has no %q", strings.Join(parts[:i], "."), p)
		}
		v, ok := m[p]
		if !ok {
			return nil, undefined(strings.Join(parts[:i+1], "."), m)
		}
		cur = v
	}
	return cur, nil
}

func undefined(name string, scope map[string]any) error {
	keys := make([]string, 0, len(scope))
	for k := range scope {
		keys = append(keys, k)
	}
	last := name[strings.LastIndex(name, ".")+1:]
	msg := fmt.Sprintf("undefined variable %q", name)
	if s := strictyaml.Suggest(last, keys); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += "; define it in the play's vars, the inventory, or with -e"
	}
	return errors.New(msg)
}

var missingKey = regexp.MustCompile(`executing ".*" at <\.([^>]*)>: map has no entry for key "([^"]*)"`)

// expandString executes s as a text/template over vars; a missing variable
// is an error, and so is a list (see funcs) where text is wanted.
func expandString(s string, vars map[string]any) (string, error) {
	v, err := expandTyped(s, vars)
	if err != nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("template %q gives a list where text is wanted", s)
	}
	return str, nil
}

// expandTyped executes s as a text/template over vars, with the functions
// of funcs; a missing variable is an error. Its value is the text, or the
// list a function gave when that list is the whole output.
func expandTyped(s string, vars map[string]any) (any, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	var o typedOutput
	t, err := template.New("").Option("missingkey=error").Funcs(funcs(&o)).Parse(s)
	if err != nil {
		return nil, fmt.Errorf("template %q: %v", s, strings.TrimPrefix(err.Error(), "template: :"))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, vars); err != nil {
		if m := missingKey.FindStringSubmatch(err.Error()); m != nil {
			scope := vars
			if i := strings.LastIndex(m[1], "."); i > 0 {
				if v, e := lookup(vars, m[1][:i]); e == nil {
					if mm, ok := v.(map[string]any); ok {
						scope = mm
					}
				}
			}
			return nil, undefined(m[1], scope)
		}
		return nil, fmt.Errorf("template %q: %v", s, strings.TrimPrefix(err.Error(), "template: :"))
	}
	return o.resolve(s, b.String())
}

// resolveVars expands templates inside variable values until none is left,
// so vars may refer to other vars. A loop is an error naming the variables.
func resolveVars(vars map[string]any) error {
	for pass := 0; pass < 10; pass++ {
		changed := false
		snapshot := maps.Clone(vars)
		for k, v := range vars {
			nv, err := expandValue(v, snapshot)
			if err != nil {
				return fmt.Errorf("variable %q: %w", k, err)
			}
			if !equalValue(nv, v) {
				vars[k] = nv
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	var loop []string
	for k, v := range vars {
		if hasTemplate(v) {
			loop = append(loop, k)
		}
	}
	if len(loop) == 0 {
		return nil
	}
	sort.Strings(loop)
	return fmt.Errorf("variables refer to each other in a loop: %s", strings.Join(loop, ", "))
}

func expandValue(v any, vars map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return x, nil
		}
		if m := wholeVar.FindStringSubmatch(x); m != nil {
			return lookup(vars, m[1])
		}
		return expandTyped(x, vars)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ne, err := expandValue(e, vars)
			if err != nil {
				return nil, err
			}
			out[k] = ne
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ne, err := expandValue(e, vars)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	}
	return v, nil
}

func hasTemplate(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "{{")
	case map[string]any:
		for _, e := range x {
			if hasTemplate(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasTemplate(e) {
				return true
			}
		}
	}
	return false
}

func equalValue(a, b any) bool {
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// expandRollout expands a templated serial or max_fail_percentage with the
// host's variables.
func (hp *HostPlay) expandRollout(origin map[string]string) error {
	play := hp.Play
	file := ""
	if len(play.Tasks) > 0 {
		file = play.Tasks[0].File
	}
	b := &binder{file: file, vars: hp.Vars, origin: origin, subs: map[int][]string{}}
	if n := play.serialNode; n != nil {
		e, err := b.expandNode(n)
		if err == nil {
			hp.Serial, err = parseSerial(file, e)
		}
		if err != nil {
			return b.annotate(err)
		}
	}
	if n := play.maxFailNode; n != nil {
		e, err := b.expandNode(n)
		if err == nil {
			hp.MaxFailPercentage, err = parseMaxFail(file, e)
		}
		if err != nil {
			return b.annotate(err)
		}
	}
	return nil
}

// RolloutOf returns the rollout settings of a play run on hps: one serial
// and one max_fail_percentage for the whole play, so every host must give
// the same (set a templated one in the play's vars, the inventory's all
// group or -e, not per host).
func RolloutOf(play *Play, hps []*HostPlay) (Serial, *float64, error) {
	if len(hps) == 0 {
		return play.Serial, play.MaxFailPercentage, nil
	}
	first := hps[0]
	for _, hp := range hps[1:] {
		if hp.Serial.String() != first.Serial.String() {
			return nil, nil, fmt.Errorf("play %q: serial is %s for %s but %s for %s: a play has one serial; set it for all hosts (the play's vars, the inventory's all group, or -e)",
				play.Name, orNone(first.Serial.String()), first.Host.Name, orNone(hp.Serial.String()), hp.Host.Name)
		}
		if fmtPct(hp.MaxFailPercentage) != fmtPct(first.MaxFailPercentage) {
			return nil, nil, fmt.Errorf("play %q: max_fail_percentage is %s for %s but %s for %s: a play has one; set it for all hosts (the play's vars, the inventory's all group, or -e)",
				play.Name, fmtPct(first.MaxFailPercentage), first.Host.Name, fmtPct(hp.MaxFailPercentage), hp.Host.Name)
		}
	}
	return first.Serial, first.MaxFailPercentage, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func fmtPct(p *float64) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%g", *p)
}
