package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// File makes a file on the host have the given content, owner, group and
// mode, written atomically, or makes a directory exist (state: directory).
// Its content may use the playbook's templates.
//
//	tasks:
//	  - name: runner banner
//	    file:
//	      path: /etc/motd
//	      content: "build server {{ .inventory_hostname }}\n"
//	      mode: "0644"
//
// Owner, group and mode are managed only when given: an existing file keeps
// the ones it has, a new file gets mode 0644 and the writer's user (root
// with become). The parent directory must exist; plan says so when it does
// not. A path ending in ".json" must hold valid JSON: it is checked when the
// playbook is loaded, before any host is contacted (the fault of
// ReSearchITEng/kubeadm-playbook#98, where a trailing comma reached dockerd).
type File struct {
	Path    string `yaml:"path"`
	Content string `yaml:"content"`
	// Owner and Group are names or numeric ids.
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// Mode is the permission bits; see Mode for the forms.
	Mode *Mode `yaml:"mode"`
	// State is "present" (default, a regular file), "directory" or "absent".
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
	mkdir  bool
	owner  string // the owner and group to write (kept ones when unmanaged)
	group  string
	mode   fs.FileMode
}

// Validate implements Validator.
func (f *File) Validate() error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) == "/" {
		return FieldErrorf("path", "must be an absolute path below /, got %q", f.Path)
	}
	switch f.State {
	case "", "present", "absent", "directory":
	default:
		return FieldErrorf("state", "must be present, directory or absent, got %q", f.State)
	}
	if f.State == "directory" && (f.Content != "" || len(f.ValidateCmd) > 0) {
		return FieldErrorf("content", "a directory has no content or validate command")
	}
	if len(f.ValidateCmd) > 0 && !strings.Contains(strings.Join(f.ValidateCmd, " "), "%s") {
		return FieldErrorf("validate", "must contain %%s, which stands for the file to check")
	}
	if strings.HasSuffix(f.Path, ".json") && (f.State == "" || f.State == "present") {
		if err := CheckJSON([]byte(f.Content)); err != nil {
			return FieldErrorf("content", "%s is not valid JSON: %v", f.Path, err)
		}
	}
	return nil
}

// permFields compares the managed owner, group and mode with what the host
// has, and returns the differences and what to write.
func (f *File) permFields(curOwner, curGroup string, curMode fs.FileMode) ([]Field, filePayload) {
	p := filePayload{owner: curOwner, group: curGroup, mode: curMode}
	var fields []Field
	if f.Owner != "" && f.Owner != curOwner {
		fields = append(fields, Field{Name: "owner", Old: curOwner, New: f.Owner})
		p.owner = f.Owner
	}
	if f.Group != "" && f.Group != curGroup {
		fields = append(fields, Field{Name: "group", Old: curGroup, New: f.Group})
		p.group = f.Group
	}
	if f.Mode != nil && f.Mode.Perm() != curMode {
		fields = append(fields, Field{Name: "mode", Old: Mode(curMode).String(), New: Mode(f.Mode.Perm()).String()})
		p.mode = f.Mode.Perm()
	}
	return fields, p
}

// newPerms describes what a created file or directory gets.
func (f *File) newPerms(defaultMode fs.FileMode) (string, filePayload) {
	p := filePayload{owner: f.Owner, group: f.Group, mode: defaultMode}
	if f.Mode != nil {
		p.mode = f.Mode.Perm()
	}
	who := "owned by the writing user"
	switch {
	case f.Owner != "" && f.Group != "":
		who = f.Owner + ":" + f.Group
	case f.Owner != "":
		who = "owner " + f.Owner
	case f.Group != "":
		who = "group " + f.Group
	}
	return fmt.Sprintf("create, %s, mode %s", who, Mode(p.mode)), p
}

// Plan implements Task.
func (f *File) Plan(ctx context.Context, h Host) ([]Change, error) {
	if f.State == "directory" {
		return f.planDirectory(ctx, h)
	}
	// One round trip, a single read that also says whether the directory
	// of a missing file exists (ErrNoParentDir).
	cur, err := h.ReadFile(ctx, f.Path)
	return f.planFile(cur, err)
}

// planFile plans a regular file (or its removal) from what reading it
// gave: the file, or the read's error (fs.ErrNotExist, ErrNoParentDir).
// Tasks that batch their reads (RunProbes) plan their files with it.
func (f *File) planFile(cur RemoteFile, err error) ([]Change, error) {
	exists := err == nil
	noDir := errors.Is(err, ErrNoParentDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if f.State == "absent" {
		if !exists {
			return nil, nil
		}
		return []Change{{Action: Delete, Resource: "file", Target: f.Path, Summary: "remove", Payload: filePayload{remove: true}}}, nil
	}
	want := []byte(f.Content)
	if !exists {
		if noDir {
			dir := path.Dir(f.Path)
			return nil, fmt.Errorf("parent directory %s does not exist: add a task before this one with file: {path: %s, state: directory}", dir, dir)
		}
		summary, p := f.newPerms(0o644)
		return []Change{{Action: Create, Resource: "file", Target: f.Path, Summary: summary, Diff: f.diff(nil, want), Payload: p}}, nil
	}
	fields, p := f.permFields(cur.Owner, cur.Group, cur.Mode.Perm())
	contentDiffers := !bytes.Equal(cur.Content, want)
	if !contentDiffers && len(fields) == 0 {
		return nil, nil
	}
	c := Change{Action: Update, Resource: "file", Target: f.Path, Fields: fields, Payload: p}
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

// planDirectory plans state: directory.
func (f *File) planDirectory(ctx context.Context, h Host) ([]Change, error) {
	out, err := h.Run(ctx, Cmd{Args: []string{"stat", "-L", "-c", "%F|%a|%U|%G", "--", f.Path}})
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		if !strings.Contains(string(out.Stderr), "No such file") {
			return nil, (&ExitError{Cmd: "stat " + f.Path, ExitCode: out.ExitCode, Stderr: out.Stderr})
		}
		summary, p := f.newPerms(0o755)
		p.mkdir = true
		return []Change{{Action: Create, Resource: "directory", Target: f.Path, Summary: strings.Replace(summary, "create", "create with parents", 1), Payload: p}}, nil
	}
	parts := strings.Split(strings.TrimSpace(string(out.Stdout)), "|")
	if len(parts) != 4 {
		return nil, fmt.Errorf("unexpected stat output for %s: %q", f.Path, out.Stdout)
	}
	if parts[0] != "directory" {
		return nil, fmt.Errorf("%s exists and is a %s, not a directory; remove it first", f.Path, parts[0])
	}
	var m uint32
	fmt.Sscanf(parts[1], "%o", &m)
	fields, p := f.permFields(parts[2], parts[3], fs.FileMode(m)&0o7777)
	if len(fields) == 0 {
		return nil, nil
	}
	return []Change{{Action: Update, Resource: "directory", Target: f.Path, Summary: FieldNames(fields), Fields: fields, Payload: p}}, nil
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
		p, _ := c.Payload.(filePayload)
		switch {
		case p.remove:
			if _, err := Exec(ctx, h, "rm", "-f", "--", f.Path); err != nil {
				return err
			}
		case f.State == "directory":
			if p.mkdir {
				if _, err := Exec(ctx, h, "mkdir", "-p", "--", f.Path); err != nil {
					return err
				}
			}
			if _, err := Exec(ctx, h, "chmod", fmt.Sprintf("%04o", uint32(p.mode)), "--", f.Path); err != nil {
				return err
			}
			if p.owner != "" || p.group != "" {
				spec := p.owner
				if p.group != "" {
					spec += ":" + p.group
				}
				if _, err := Exec(ctx, h, "chown", spec, "--", f.Path); err != nil {
					return err
				}
			}
		default:
			err := h.WriteFile(ctx, f.Path, []byte(f.Content), WriteOptions{
				Mode: p.mode, Owner: p.owner, Group: p.group, Validate: f.ValidateCmd, Sensitive: f.Sensitive,
			})
			if err != nil {
				return err
			}
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
