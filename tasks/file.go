package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// File makes a file on the host have the given content, owner, group and
// mode, written atomically. Its content may use the playbook's templates.
//
//	tasks:
//	  - name: runner banner
//	    file:
//	      path: /etc/motd
//	      content: "build server {{ .inventory_hostname }}\n"
//	      mode: "0644"
//
// A path ending in ".json" must hold valid JSON: it is checked when the
// playbook is loaded, before any host is contacted (the fault of
// ReSearchITEng/kubeadm-playbook#98, where a trailing comma reached dockerd).
type File struct {
	Path    string `yaml:"path"`
	Content string `yaml:"content"`
	// Owner and Group are names or numeric ids (default root:root).
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// Mode is the permission bits (default "0644"); see Mode for the forms.
	Mode *Mode `yaml:"mode"`
	// State is "present" (default) or "absent".
	State string `yaml:"state"`
	// Validate is a command run against the new content before it replaces
	// the file, "%s" standing for the temporary file, e.g.
	// [visudo, -cf, "%s"].
	ValidateCmd []string `yaml:"validate"`
	// Sensitive hides the content from plans, diffs and logs.
	Sensitive bool `yaml:"sensitive"`
}

type filePayload struct {
	remove bool
}

// Validate implements Validator.
func (f *File) Validate() error {
	if !path.IsAbs(f.Path) {
		return FieldErrorf("path", "must be an absolute path, got %q", f.Path)
	}
	switch f.State {
	case "", "present", "absent":
	default:
		return FieldErrorf("state", "must be present or absent, got %q", f.State)
	}
	if len(f.ValidateCmd) > 0 && !strings.Contains(strings.Join(f.ValidateCmd, " "), "%s") {
		return FieldErrorf("validate", "must contain %%s, which stands for the file to check")
	}
	if strings.HasSuffix(f.Path, ".json") && f.State != "absent" {
		if err := CheckJSON([]byte(f.Content)); err != nil {
			return FieldErrorf("content", "%s is not valid JSON: %v", f.Path, err)
		}
	}
	return nil
}

func (f *File) perms() (owner, group string, mode fs.FileMode) {
	owner, group, mode = f.Owner, f.Group, 0o644
	if owner == "" {
		owner = "root"
	}
	if group == "" {
		group = "root"
	}
	if f.Mode != nil {
		mode = f.Mode.Perm()
	}
	return
}

// Plan implements Task.
func (f *File) Plan(ctx context.Context, h Host) ([]Change, error) {
	cur, exists, err := ReadFileIfExists(ctx, h, f.Path)
	if err != nil {
		return nil, err
	}
	if f.State == "absent" {
		if !exists {
			return nil, nil
		}
		return []Change{{Action: Delete, Resource: "file", Target: f.Path, Summary: "remove", Payload: filePayload{remove: true}}}, nil
	}
	owner, group, mode := f.perms()
	want := []byte(f.Content)
	if !exists {
		c := Change{Action: Create, Resource: "file", Target: f.Path,
			Summary: fmt.Sprintf("create %s:%s %s", owner, group, Mode(mode)),
			Diff:    f.diff(nil, want)}
		return []Change{c}, nil
	}
	var fields []Field
	if cur.Owner != owner {
		fields = append(fields, Field{Name: "owner", Old: cur.Owner, New: owner})
	}
	if cur.Group != group {
		fields = append(fields, Field{Name: "group", Old: cur.Group, New: group})
	}
	if cur.Mode.Perm() != mode {
		fields = append(fields, Field{Name: "mode", Old: Mode(cur.Mode.Perm()).String(), New: Mode(mode).String()})
	}
	contentDiffers := !bytes.Equal(cur.Content, want)
	if !contentDiffers && len(fields) == 0 {
		return nil, nil
	}
	c := Change{Action: Update, Resource: "file", Target: f.Path, Fields: fields}
	if contentDiffers {
		c.Diff = f.diff(cur.Content, want)
		c.Summary = "content"
		if len(fields) > 0 {
			c.Summary += ", " + FieldNames(fields)
		}
	} else {
		c.Summary = FieldNames(fields)
	}
	return []Change{c}, nil
}

func (f *File) diff(old, new []byte) string {
	if f.Sensitive {
		return "(sensitive value)\n"
	}
	return UnifiedDiff(f.Path, old, new)
}

// Apply implements Task.
func (f *File) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		if p, ok := c.Payload.(filePayload); ok && p.remove {
			if _, err := Exec(ctx, h, "rm", "-f", "--", f.Path); err != nil {
				return err
			}
			continue
		}
		owner, group, mode := f.perms()
		err := h.WriteFile(ctx, f.Path, []byte(f.Content), WriteOptions{
			Mode: mode, Owner: owner, Group: group, Validate: f.ValidateCmd, Sensitive: f.Sensitive,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckJSON reports whether b is exactly one valid JSON value, with the
// line and column of the first problem.
func CheckJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonPosError(b, dec.InputOffset(), err)
	}
	if dec.More() {
		return jsonPosError(b, dec.InputOffset(), fmt.Errorf("unexpected data after the top-level value (two objects concatenated?)"))
	}
	return nil
}

func jsonPosError(b []byte, offset int64, err error) error {
	if se, ok := err.(*json.SyntaxError); ok && se.Offset > 0 {
		offset = se.Offset - 1 // Offset counts the offending byte
	} else {
		// Point at the next value, past whitespace.
		for offset < int64(len(b)) && strings.ContainsRune(" \t\r\n", rune(b[offset])) {
			offset++
		}
	}
	if offset > int64(len(b)) {
		offset = int64(len(b))
	}
	line, col := 1, 1
	for _, c := range b[:offset] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	msg := err.Error()
	if err.Error() == "unexpected EOF" {
		msg = "unexpected end of JSON"
	}
	return fmt.Errorf("line %d, column %d: %s", line, col, msg)
}
