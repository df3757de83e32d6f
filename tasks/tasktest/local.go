package tasktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
)

// LocalHost is a tasks.Host that runs commands on this machine with os/exec
// (no shell) and reads and writes its files. Tests use it to run tasks
// against real programs, such as a local docker engine.
type LocalHost struct {
	// Programs maps argv[0] to the executable to run instead, e.g.
	// "docker" → "/usr/bin/docker" to test a particular docker CLI.
	Programs map[string]string
	// Commands records every command run, in order.
	Commands [][]string
	// DockerHost is the local daemon's address for the Docker Engine API
	// ("unix:///var/run/docker.sock" when empty).
	DockerHost string

	dockerOnce sync.Once
	docker     *client.Client
	dockerErr  error
}

// Docker implements tasks.DockerHost with one client of the local daemon
// (https://pkg.go.dev/github.com/moby/moby/client), its API version
// negotiated.
func (l *LocalHost) Docker(ctx context.Context) (tasks.DockerEngine, error) {
	l.dockerOnce.Do(func() {
		host := l.DockerHost
		if host == "" {
			host = "unix:///var/run/docker.sock"
		}
		l.docker, l.dockerErr = client.New(client.WithHost(host))
	})
	if l.dockerErr != nil {
		return nil, l.dockerErr
	}
	return l.docker, nil
}

// Close closes the Docker client, if one was made.
func (l *LocalHost) Close() error {
	if l.docker != nil {
		return l.docker.Close()
	}
	return nil
}

// Run implements tasks.Host.
func (l *LocalHost) Run(ctx context.Context, c tasks.Cmd) (tasks.Output, error) {
	if len(c.Args) == 0 {
		return tasks.Output{}, fmt.Errorf("empty command")
	}
	l.Commands = append(l.Commands, append([]string(nil), c.Args...))
	prog := c.Args[0]
	if p, ok := l.Programs[prog]; ok {
		prog = p
	}
	cmd := exec.CommandContext(ctx, prog, c.Args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	err := cmd.Run()
	o := tasks.Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		o.ExitCode = ee.ExitCode()
	case errors.Is(err, exec.ErrNotFound):
		o.ExitCode = 127
		o.Stderr = append(o.Stderr, []byte(prog+": not found\n")...)
	case err != nil:
		return o, err
	}
	return o, nil
}

// ReadFile implements tasks.Host.
func (l *LocalHost) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	if err := ctx.Err(); err != nil {
		return tasks.RemoteFile{}, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if st, derr := os.Stat(filepath.Dir(p)); derr != nil || !st.IsDir() {
			return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: tasks.ErrNoParentDir}
		}
	}
	if err != nil {
		return tasks.RemoteFile{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return tasks.RemoteFile{}, err
	}
	f := tasks.RemoteFile{Content: b, Mode: st.Mode().Perm()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		f.Owner = strconv.Itoa(int(sys.Uid))
		f.Group = strconv.Itoa(int(sys.Gid))
		if u, err := user.LookupId(f.Owner); err == nil {
			f.Owner = u.Username
		}
		if g, err := user.LookupGroupId(f.Group); err == nil {
			f.Group = g.Name
		}
	}
	return f, nil
}

// WriteFile implements tasks.Host: a temporary file in the same directory,
// owner, group and mode, the validate command, then rename.
func (l *LocalHost) WriteFile(ctx context.Context, p string, content []byte, o tasks.WriteOptions) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".dindops-tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err = os.Chmod(tmp.Name(), mode.Perm()); err != nil {
		return err
	}
	if o.Owner != "" || o.Group != "" {
		uid, gid := -1, -1
		if o.Owner != "" {
			if uid, err = lookupID(o.Owner, true); err != nil {
				return err
			}
		}
		if o.Group != "" {
			if gid, err = lookupID(o.Group, false); err != nil {
				return err
			}
		}
		if err = os.Chown(tmp.Name(), uid, gid); err != nil {
			return err
		}
	}
	if len(o.Validate) > 0 {
		args := make([]string, len(o.Validate))
		for i, a := range o.Validate {
			args[i] = strings.ReplaceAll(a, "%s", tmp.Name())
		}
		var out tasks.Output
		out, err = l.Run(ctx, tasks.Cmd{Args: args})
		if err == nil && out.ExitCode != 0 {
			err = &tasks.ExitError{Cmd: tasks.ShellJoin(args), ExitCode: out.ExitCode, Stdout: out.Stdout, Stderr: out.Stderr}
		}
		if err != nil {
			return fmt.Errorf("validate %s: %w", p, err)
		}
	}
	return os.Rename(tmp.Name(), p)
}

func lookupID(name string, isUser bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	var id string
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	}
	return strconv.Atoi(id)
}

var _ tasks.Host = (*LocalHost)(nil)
