// Package tasktest provides an in-memory tasks.Host for unit tests of task
// kinds, and the idempotency check every task kind must pass.
package tasktest

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// Handler fakes one program on the host. It gets the whole argv and stdin and
// may change h (its files, its own state) unless h.Frozen().
type Handler func(h *Host, args []string, stdin []byte) tasks.Output

// Host is an in-memory host: files, directories and fake programs.
// It is safe for concurrent use.
type Host struct {
	mu       sync.Mutex
	files    map[string]tasks.RemoteFile
	dirs     map[string]bool
	dirMeta  map[string]tasks.RemoteFile // mode, owner, group of directories
	handlers map[string]Handler
	frozen   bool
	docker   *Docker // the Docker Engine, once installed
	dial     func(ctx context.Context, address string) (net.Conn, error)

	// Commands records every command run, in order, and every call of the
	// Docker Engine API as {"API", method, args...}.
	Commands [][]string
	// Writes records every path written, in order.
	Writes []string

	// roundTrips counts the calls a real host would answer over the
	// network: each Run, ReadFile and WriteFile, and each Probe batch once.
	roundTrips int
}

// RoundTrips returns how many round trips the host has answered (each Run,
// ReadFile, WriteFile, and each Probe batch as one) and starts counting
// anew.
func (h *Host) RoundTrips() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.roundTrips
	h.roundTrips = 0
	return n
}

// Engine returns the Docker engine installed on h, or nil.
func (h *Host) Engine() *Docker {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.docker
}

// Docker implements tasks.DockerHost once a Docker engine is installed
// (InstallDocker); without one it returns tasks.ErrNoDockerAPI.
func (h *Host) Docker(ctx context.Context) (tasks.DockerEngine, error) {
	h.mu.Lock()
	d := h.docker
	h.mu.Unlock()
	if d == nil {
		return nil, tasks.ErrNoDockerAPI
	}
	return engine{d: d, h: h}, nil
}

// Probe implements tasks.Prober as the SSH transport does: the whole batch
// is one round trip.
func (h *Host) Probe(ctx context.Context, probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.roundTrips++
	h.mu.Unlock()
	results := make([]tasks.ProbeResult, len(probes))
	for i, pr := range probes {
		r := &results[i]
		if pr.Path == "" {
			r.Output, r.Err = h.run(ctx, tasks.Cmd{Args: pr.Args})
			continue
		}
		*r = tasks.FileResult(h.read(pr.Path))
	}
	return results, nil
}

// New returns an empty host with "/" and the usual programs "test", "true",
// "false", "mkdir", "rm", "chmod", "chown" and "stat -L -c %F|%a|%U|%G".
// Directories are 0755 root:root unless chmod or chown changed them.
func New() *Host {
	h := &Host{files: map[string]tasks.RemoteFile{}, dirs: map[string]bool{"/": true}, dirMeta: map[string]tasks.RemoteFile{}, handlers: map[string]Handler{}}
	h.Handle("test", testProgram)
	h.Handle("true", func(*Host, []string, []byte) tasks.Output { return tasks.Output{} })
	h.Handle("false", func(*Host, []string, []byte) tasks.Output { return tasks.Output{ExitCode: 1} })
	h.Handle("mkdir", mkdirProgram)
	h.Handle("rm", rmProgram)
	h.Handle("stat", statProgram)
	h.Handle("chmod", chProgram)
	h.Handle("chown", chProgram)
	return h
}

// Handle installs fn as the program named prog (argv[0]).
func (h *Host) Handle(prog string, fn Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handlers[prog] = fn
}

// Freeze makes the host read-only: WriteFile fails and Frozen reports true so
// handlers refuse to change state. Plan must pass on a frozen host.
func (h *Host) Freeze() { h.mu.Lock(); h.frozen = true; h.mu.Unlock() }

// Thaw undoes Freeze.
func (h *Host) Thaw() { h.mu.Lock(); h.frozen = false; h.mu.Unlock() }

// Frozen reports whether the host is read-only now. Handlers that change
// state must check it and fail (exit 99) when it is.
func (h *Host) Frozen() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.frozen }

// SetFile creates or replaces a file (and its parent directories).
func (h *Host) SetFile(p, content string, mode fs.FileMode, owner, group string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setFileLocked(p, tasks.RemoteFile{Content: []byte(content), Mode: mode, Owner: owner, Group: group})
}

func (h *Host) setFileLocked(p string, f tasks.RemoteFile) {
	h.files[p] = f
	for d := path.Dir(p); ; d = path.Dir(d) {
		h.dirs[d] = true
		if d == "/" || d == "." {
			break
		}
	}
}

// RemoveFile deletes a file.
func (h *Host) RemoveFile(p string) { h.mu.Lock(); delete(h.files, p); h.mu.Unlock() }

// MkdirAll creates a directory and its parents.
func (h *Host) MkdirAll(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for d := path.Clean(p); ; d = path.Dir(d) {
		h.dirs[d] = true
		if d == "/" || d == "." {
			break
		}
	}
}

// IsDir reports whether p is a directory.
func (h *Host) IsDir(p string) bool { h.mu.Lock(); defer h.mu.Unlock(); return h.dirs[path.Clean(p)] }

// File returns a file's current state.
func (h *Host) File(p string) (tasks.RemoteFile, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[p]
	return f, ok
}

// Paths lists all files, sorted.
func (h *Host) Paths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := make([]string, 0, len(h.files))
	for p := range h.files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Ran reports whether a command whose argv starts with prefix was run.
func (h *Host) Ran(prefix ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.Commands {
		if len(c) >= len(prefix) && strings.Join(c[:len(prefix)], "\x00") == strings.Join(prefix, "\x00") {
			return true
		}
	}
	return false
}

// Run implements tasks.Host.
func (h *Host) Run(ctx context.Context, c tasks.Cmd) (tasks.Output, error) {
	h.mu.Lock()
	h.roundTrips++
	h.mu.Unlock()
	return h.run(ctx, c)
}

func (h *Host) run(ctx context.Context, c tasks.Cmd) (tasks.Output, error) {
	if err := ctx.Err(); err != nil {
		return tasks.Output{}, err
	}
	if len(c.Args) == 0 {
		return tasks.Output{}, fmt.Errorf("empty command")
	}
	h.mu.Lock()
	h.Commands = append(h.Commands, append([]string(nil), c.Args...))
	fn := h.handlers[c.Args[0]]
	h.mu.Unlock()
	if fn == nil {
		return tasks.Output{ExitCode: 127, Stderr: []byte("sh: 1: " + c.Args[0] + ": not found\n")}, nil
	}
	return fn(h, c.Args, c.Stdin), nil
}

// ReadFile implements tasks.Host.
func (h *Host) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	if err := ctx.Err(); err != nil {
		return tasks.RemoteFile{}, err
	}
	h.mu.Lock()
	h.roundTrips++
	h.mu.Unlock()
	return h.read(p)
}

func (h *Host) read(p string) (tasks.RemoteFile, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[p]
	if !ok {
		if !h.dirs[path.Dir(p)] {
			return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: tasks.ErrNoParentDir}
		}
		return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	f.Content = append([]byte(nil), f.Content...)
	return f, nil
}

// WriteFile implements tasks.Host, atomically as the real transport does:
// the validate command sees a temporary file, and a failure leaves p as it was.
func (h *Host) WriteFile(ctx context.Context, p string, content []byte, o tasks.WriteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	h.roundTrips++
	if h.frozen {
		h.mu.Unlock()
		return fmt.Errorf("write %s on a frozen host (during plan?)", p)
	}
	if !h.dirs[path.Dir(p)] {
		h.mu.Unlock()
		return &fs.PathError{Op: "write", Path: p, Err: fs.ErrNotExist}
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	owner, group := o.Owner, o.Group
	if owner == "" {
		owner = "root"
	}
	if group == "" {
		group = "root"
	}
	f := tasks.RemoteFile{Content: append([]byte(nil), content...), Mode: mode, Owner: owner, Group: group}
	tmp := path.Join(path.Dir(p), ".dindops-tmp-"+path.Base(p))
	h.files[tmp] = f
	h.mu.Unlock()

	if len(o.Validate) > 0 {
		args := make([]string, len(o.Validate))
		for i, a := range o.Validate {
			args[i] = strings.ReplaceAll(a, "%s", tmp)
		}
		out, err := h.run(ctx, tasks.Cmd{Args: args})
		if err == nil && out.ExitCode != 0 {
			err = &tasks.ExitError{Cmd: tasks.ShellJoin(args), ExitCode: out.ExitCode, Stderr: out.Stderr}
		}
		if err != nil {
			h.RemoveFile(tmp)
			return fmt.Errorf("validate %s: %w", p, err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.files, tmp)
	h.files[p] = f
	h.Writes = append(h.Writes, p)
	return nil
}

func testProgram(h *Host, args []string, _ []byte) tasks.Output {
	if len(args) != 3 {
		return tasks.Output{ExitCode: 2, Stderr: []byte("test: fake supports only: test -e|-f|-d PATH\n")}
	}
	h.mu.Lock()
	_, isFile := h.files[args[2]]
	isDir := h.dirs[path.Clean(args[2])]
	h.mu.Unlock()
	ok := false
	switch args[1] {
	case "-e":
		ok = isFile || isDir
	case "-f":
		ok = isFile
	case "-d":
		ok = isDir
	default:
		return tasks.Output{ExitCode: 2, Stderr: []byte("test: fake does not support " + args[1] + "\n")}
	}
	if ok {
		return tasks.Output{}
	}
	return tasks.Output{ExitCode: 1}
}

func mkdirProgram(h *Host, args []string, _ []byte) tasks.Output {
	if h.Frozen() {
		return tasks.Output{ExitCode: 99, Stderr: []byte("mkdir on a frozen host\n")}
	}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		switch a := rest[i]; {
		case a == "-m" || a == "--mode":
			i++ // the mode's value
		case strings.HasPrefix(a, "-"):
		default:
			h.MkdirAll(a)
		}
	}
	return tasks.Output{}
}

func rmProgram(h *Host, args []string, _ []byte) tasks.Output {
	if h.Frozen() {
		return tasks.Output{ExitCode: 99, Stderr: []byte("rm on a frozen host\n")}
	}
	force := false
	for _, a := range args[1:] {
		switch {
		case a == "-f":
			force = true
		case strings.HasPrefix(a, "-"):
		default:
			if _, ok := h.File(a); !ok && !force {
				return tasks.Output{ExitCode: 1, Stderr: []byte("rm: cannot remove '" + a + "': No such file or directory\n")}
			}
			h.RemoveFile(a)
		}
	}
	return tasks.Output{}
}

// meta returns the mode, owner and group of a file or directory.
func (h *Host) meta(p string) (tasks.RemoteFile, string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.files[p]; ok {
		return f, "regular file", true
	}
	if h.dirs[path.Clean(p)] {
		m, ok := h.dirMeta[path.Clean(p)]
		if !ok {
			m = tasks.RemoteFile{Mode: 0o755, Owner: "root", Group: "root"}
		}
		return m, "directory", true
	}
	return tasks.RemoteFile{}, "", false
}

func statProgram(h *Host, args []string, _ []byte) tasks.Output {
	if len(args) != 6 || args[1] != "-L" || args[2] != "-c" || args[3] != "%F|%a|%U|%G" || args[4] != "--" {
		return tasks.Output{ExitCode: 2, Stderr: []byte("stat: fake supports only: stat -L -c %F|%a|%U|%G -- PATH\n")}
	}
	m, kind, ok := h.meta(args[5])
	if !ok {
		return tasks.Output{ExitCode: 1, Stderr: []byte("stat: cannot statx '" + args[5] + "': No such file or directory\n")}
	}
	return tasks.Output{Stdout: []byte(fmt.Sprintf("%s|%o|%s|%s\n", kind, uint32(m.Mode), m.Owner, m.Group))}
}

// chProgram is chmod MODE -- PATH and chown OWNER[:GROUP] -- PATH.
func chProgram(h *Host, args []string, _ []byte) tasks.Output {
	if h.Frozen() {
		return tasks.Output{ExitCode: 99, Stderr: []byte(args[0] + " on a frozen host\n")}
	}
	if len(args) != 4 || args[2] != "--" {
		return tasks.Output{ExitCode: 2, Stderr: []byte(args[0] + ": fake supports only: " + args[0] + " VALUE -- PATH\n")}
	}
	m, kind, ok := h.meta(args[3])
	if !ok {
		return tasks.Output{ExitCode: 1, Stderr: []byte(args[0] + ": cannot access '" + args[3] + "': No such file or directory\n")}
	}
	if args[0] == "chmod" {
		var mode uint32
		fmt.Sscanf(args[1], "%o", &mode)
		m.Mode = fs.FileMode(mode)
	} else {
		owner, group, hasGroup := strings.Cut(args[1], ":")
		if owner != "" {
			m.Owner = owner
		}
		if hasGroup && group != "" {
			m.Group = group
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if kind == "directory" {
		h.dirMeta[path.Clean(args[3])] = m
	} else {
		h.files[args[3]] = m
	}
	return tasks.Output{}
}

// Converge is the idempotency check every task kind passes: on h, a plan
// (on the frozen host, so it cannot change anything) reports changes, apply
// makes them, and a second plan reports none (or skips: a guard now holds)
// in at most one round trip (a no-op run costs one remote command or read
// per task: tasks.RunProbes batches them). It returns the first plan's
// changes for further assertions.
func Converge(t testing.TB, task tasks.Task, h *Host) []tasks.Change {
	t.Helper()
	ctx := context.Background()
	h.Freeze()
	changes, err := task.Plan(ctx, h)
	h.Thaw()
	if err != nil {
		t.Fatalf("first plan: %v", err)
	}
	if len(changes) == 0 {
		t.Fatalf("first plan reported no changes; the test host is already converged")
	}
	if err := task.Apply(ctx, h, changes); err != nil {
		t.Fatalf("apply: %v", err)
	}
	h.Freeze()
	defer h.Thaw()
	h.RoundTrips()
	h.mu.Lock()
	d := h.docker
	h.mu.Unlock()
	if d != nil {
		d.Requests()
	}
	again, err := task.Plan(ctx, h)
	if n := h.RoundTrips(); n > 1 {
		t.Errorf("plan on the converged host took %d round trips, want at most 1 (batch the reads with tasks.RunProbes)", n)
	}
	// A container and its image are two Engine API requests, sent at once.
	if d != nil {
		if n := d.Requests(); n > 2 {
			t.Errorf("plan on the converged host made %d Docker Engine API requests, want at most 2", n)
		}
	}
	if _, skipped := tasks.IsSkip(err); err != nil && !skipped {
		t.Fatalf("plan after apply: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("plan after apply still reports %d change(s): %+v", len(again), again)
	}
	return changes
}

// SetDialer gives h the tasks.TCPDialer ability: DialTCP calls dial (a
// test points it at its own listeners). Nil takes the ability away again.
func (h *Host) SetDialer(dial func(ctx context.Context, address string) (net.Conn, error)) {
	h.mu.Lock()
	h.dial = dial
	h.mu.Unlock()
}

// DialTCP implements tasks.TCPDialer when SetDialer gave h a dialer.
func (h *Host) DialTCP(ctx context.Context, address string) (net.Conn, error) {
	h.mu.Lock()
	dial := h.dial
	h.mu.Unlock()
	if dial == nil {
		return nil, tasks.ErrNoTCPDialer
	}
	return dial(ctx, address)
}
