package tasks

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mode is a file's permission bits as written in a playbook.
//
// Accepted: a quoted octal string ("0644" or "644"), an unquoted number with a
// leading zero (0644) or the YAML 1.2 octal form (0o644), and symbolic modes
// ("u=rw,g=r,o=r"). A bare unquoted number such as 644 is rejected: YAML reads
// it as the decimal 644, which is almost never what was meant (the fault of
// ansible/ansible#18321).
type Mode fs.FileMode

// UnmarshalYAML implements yaml.Unmarshaler.
// Errors are *yaml.TypeError values carrying the node's line and column.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return NodeError(n, fmt.Errorf("mode must be a quoted octal string such as \"0644\""))
	}
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
	v, err := ParseMode(n.Value, quoted)
	if err != nil {
		return NodeError(n, err)
	}
	*m = v
	return nil
}

// ParseMode parses s as a mode. quoted says whether the playbook quoted it;
// an unquoted decimal-looking number is ambiguous and rejected.
func ParseMode(s string, quoted bool) (Mode, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, fmt.Errorf("empty mode: write an octal string such as \"0644\"")
	case strings.ContainsRune(s, '='):
		return parseSymbolic(s)
	case strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0O"):
		s = s[2:]
	case strings.HasPrefix(s, "0"):
		// leading zero: octal, unambiguous
	case !quoted:
		return 0, fmt.Errorf("ambiguous mode %s: quote it or write 0%s", s, s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q: want octal digits such as \"0644\"", s)
	}
	return Mode(v), nil
}

// parseSymbolic parses "u=rw,g=r,o=r" (only "=" assignments: there is no
// existing mode to add to or take from).
func parseSymbolic(s string) (Mode, error) {
	var m Mode
	for _, clause := range strings.Split(s, ",") {
		who, perms, ok := strings.Cut(clause, "=")
		if !ok || who == "" {
			return 0, fmt.Errorf("invalid symbolic mode %q: use assignments such as u=rw,g=r,o=r", s)
		}
		var bits Mode
		for _, p := range perms {
			switch p {
			case 'r':
				bits |= 4
			case 'w':
				bits |= 2
			case 'x':
				bits |= 1
			default:
				return 0, fmt.Errorf("invalid symbolic mode %q: unknown permission %q", s, p)
			}
		}
		for _, w := range who {
			switch w {
			case 'u':
				m |= bits << 6
			case 'g':
				m |= bits << 3
			case 'o':
				m |= bits
			case 'a':
				m |= bits<<6 | bits<<3 | bits
			default:
				return 0, fmt.Errorf("invalid symbolic mode %q: unknown class %q", s, w)
			}
		}
	}
	return m, nil
}

// Perm returns the mode as fs.FileMode permission bits.
func (m Mode) Perm() fs.FileMode { return fs.FileMode(m) & 0o7777 }

// String renders the mode as octal and symbolic: "0644 (rw-r--r--)".
func (m Mode) String() string {
	return fmt.Sprintf("%04o (%s)", uint32(m), fs.FileMode(m).Perm().String()[1:])
}

// NodeError wraps err as a *yaml.TypeError at n's line and column, the form
// in which go.yaml.in/yaml/v3 keeps positions for errors raised by custom
// unmarshalers (a plain error would lose them).
func NodeError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %v", n.Line, n.Column, err)}}
}
