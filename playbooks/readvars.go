package playbooks

import (
	"strings"
	"text/template"
	"text/template/parse"

	"go.yaml.in/yaml/v3"
)

// ReadVars returns the variables the playbook's templates read: the first
// name of every {{ .name }}, {{ .name.field }}, {{ $.name }} and
// {{ index . "name" }} in the plays' task and handler names and options and
// in the values of the plays' vars. all is true when some template reads
// the variables in a way that cannot be listed (the whole "." given to a
// function, index with a computed key): then any variable may be read.
// Templates that do not parse are skipped (Compile reports them).
func (pb *Playbook) ReadVars() (names map[string]bool, all bool) {
	r := &varReader{names: map[string]bool{}}
	for _, p := range pb.Plays {
		for _, v := range p.Vars {
			r.value(v)
		}
		for _, n := range []*yaml.Node{p.serialNode, p.maxFailNode} {
			if n != nil {
				r.node(n)
			}
		}
		for _, list := range [][]*TaskDef{p.Tasks, p.Handlers, p.Health} {
			for _, t := range list {
				r.text(t.Name)
				r.text(t.Warn)
				r.node(t.options)
			}
		}
	}
	return r.names, r.all
}

type varReader struct {
	names map[string]bool
	all   bool
	inner int // inside range or with, where "." is not the variables
}

func (r *varReader) value(v any) {
	switch v := v.(type) {
	case string:
		r.text(v)
	case []any:
		for _, e := range v {
			r.value(e)
		}
	case map[string]any:
		for _, e := range v {
			r.value(e)
		}
	}
}

func (r *varReader) node(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		r.text(n.Value)
	}
	for _, c := range n.Content {
		r.node(c)
	}
}

func (r *varReader) text(s string) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := template.New("").Funcs(funcs(nil)).Parse(s)
	if err != nil || t.Tree == nil {
		return
	}
	r.walk(t.Tree.Root)
}

func (r *varReader) walk(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			r.walk(c)
		}
	case *parse.ActionNode:
		r.walk(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			r.walk(c)
		}
	case *parse.CommandNode:
		if len(n.Args) == 3 {
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" {
				if _, ok := n.Args[1].(*parse.DotNode); ok {
					if key, ok := n.Args[2].(*parse.StringNode); ok {
						r.names[key.Text] = true
						return
					}
				}
			}
		}
		for _, a := range n.Args {
			r.walk(a)
		}
	case *parse.FieldNode:
		r.names[n.Ident[0]] = true
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			r.names[n.Ident[1]] = true
		} else if len(n.Ident) == 1 && n.Ident[0] == "$" {
			r.all = true
		}
	case *parse.ChainNode:
		r.walk(n.Node)
	case *parse.DotNode:
		if r.inner == 0 {
			r.all = true
		}
	case *parse.IfNode:
		r.branch(&n.BranchNode, 0)
	case *parse.RangeNode:
		r.branch(&n.BranchNode, 1)
	case *parse.WithNode:
		r.branch(&n.BranchNode, 1)
	}
}

// branch reads an if, range or with: inside range and with the dot is the
// element, so their names are the element's fields; counting them as read
// only spares a warning.
func (r *varReader) branch(b *parse.BranchNode, scope int) {
	r.walk(b.Pipe)
	r.inner += scope
	r.walk(b.List)
	if b.ElseList != nil {
		r.walk(b.ElseList)
	}
	r.inner -= scope
}
