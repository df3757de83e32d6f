package tasks

import (
	"maps"

	"go.yaml.in/yaml/v3"
)

// MergedMap is a map of strings (a container's env) written as one mapping
// or as a list of mappings merged in order, a later mapping's key winning.
// The list lets a playbook give its own settings first and a user's
// variable after them (`- "{{ .dind_env }}"`), which adds keys or overrides
// the playbook's. A null item adds nothing.
type MergedMap map[string]string

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *MergedMap) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		var one map[string]string
		if err := n.Decode(&one); err != nil {
			return err
		}
		*m = one
		return nil
	}
	out := MergedMap{}
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode && c.Tag == "!!null" {
			continue
		}
		var part map[string]string
		if err := c.Decode(&part); err != nil {
			return err
		}
		maps.Copy(out, part)
	}
	*m = out
	return nil
}

// StringList is a list of strings whose items may themselves be lists,
// flattened in order, and in which an empty string is left out: a playbook
// can add its own items to a user's list variable
// (`["{{ .dind_volumes }}", "certs:/certs/ca"]`) and write an item that is
// there only under a condition (`"{{ if .dind_tls }}certs:/certs/ca{{ end }}"`).
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	var out StringList
	var add func(n *yaml.Node) error
	add = func(n *yaml.Node) error {
		switch {
		case n.Kind == yaml.SequenceNode:
			for _, c := range n.Content {
				if err := add(c); err != nil {
					return err
				}
			}
		case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		default:
			var s string
			if err := n.Decode(&s); err != nil {
				return err
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		var s []string
		return n.Decode(&s) // the decoder's own error, with the line
	}
	if err := add(n); err != nil {
		return err
	}
	*l = out
	return nil
}
