package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"

	"github.com/dindops/dindops/tasks"
	"github.com/pkg/sftp"
)

// maxReadSize is the largest file ReadFile returns.
const maxReadSize = 256 << 20

// sftpReader returns the SFTP client h reads files and answers test(1)
// probes with, and the done of this use (see sftpClient), or nil when h
// reads with commands: under become (the SFTP server runs as the login
// user, not as the become user), on a host without the SFTP subsystem, or
// when the host refused the SFTP session (then commands read, as before).
// Over SFTP a read starts no process on the host: the connection's one
// sftp-server answers every request. The only error is the loss of the
// connection (or the context's).
func (h *host) sftpReader(ctx context.Context) (*sftp.Client, func(), error) {
	if h.become {
		return nil, nil, nil
	}
	cl, done, err := h.c.sftpClient(ctx)
	if err == nil {
		return cl, done, nil
	}
	if lerr := h.c.lostError("opening sftp"); lerr != nil {
		return nil, nil, lerr
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, nil, cerr
	}
	if !errors.Is(err, errNoSFTP) {
		h.c.log.Debug("no SFTP session: files are read with commands", "err", err)
	}
	return nil, nil, nil
}

// errNeedsShell is a file the SFTP path cannot describe as the shell's
// stat does: its owner or group is not in the host's /etc/passwd or
// /etc/group (a directory service's, known only through NSS).
var errNeedsShell = errors.New("owner or group not in /etc/passwd or /etc/group")

// sftpRead reads p over SFTP with the result and the errors of ReadFile: a
// stat by path (symlinks followed) first, so that a FIFO or a device is
// never opened, then open, fstat of the handle (the mode and owner of the
// very content read), reads to the end (files that report size 0, as
// /proc's do, are read fully) and close. errNeedsShell when the owner's or
// group's name is not in the host's files.
func (h *host) sftpRead(ctx context.Context, cl *sftp.Client, p string) (tasks.RemoteFile, error) {
	type result struct {
		f   tasks.RemoteFile
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := h.sftpReadFile(cl, p)
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && !errors.Is(r.err, errNeedsShell) {
			if lerr := h.c.lostError("reading " + p); lerr != nil {
				r.err = lerr
			}
			return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: r.err}
		}
		return r.f, r.err
	case <-ctx.Done():
		// The request ends on its own on the host; its answer is dropped.
		return tasks.RemoteFile{}, ctx.Err()
	}
}

func (h *host) sftpReadFile(cl *sftp.Client, p string) (tasks.RemoteFile, error) {
	c := h.c
	c.sftpOps.Add(1)
	st, err := cl.Stat(p)
	if err != nil {
		return tasks.RemoteFile{}, h.sftpMissing(cl, p, err)
	}
	if !st.Mode().IsRegular() {
		return tasks.RemoteFile{}, fmt.Errorf("not a regular file: %s", fileType(rawMode(st)))
	}
	c.sftpOps.Add(1)
	f, err := cl.Open(p)
	if err != nil {
		return tasks.RemoteFile{}, h.sftpMissing(cl, p, err)
	}
	defer func() {
		c.sftpOps.Add(1)
		f.Close()
	}()
	c.sftpOps.Add(1)
	st, err = f.Stat()
	if err != nil {
		return tasks.RemoteFile{}, err
	}
	if !st.Mode().IsRegular() {
		return tasks.RemoteFile{}, fmt.Errorf("not a regular file: %s", fileType(rawMode(st)))
	}
	fst, ok := st.Sys().(*sftp.FileStat)
	if !ok {
		return tasks.RemoteFile{}, errNeedsShell
	}
	owner, group, ok := c.accountNames(cl, fst.UID, fst.GID)
	if !ok {
		return tasks.RemoteFile{}, errNeedsShell
	}
	content, err := readAll(c, f, st.Size())
	if err != nil {
		return tasks.RemoteFile{}, err
	}
	rf := tasks.RemoteFile{Content: content, Mode: fs.FileMode(fst.Mode & 0o7777), Owner: owner, Group: group}
	c.log.Debug("read", "path", p, "via", "sftp", "bytes", len(content), "mode", fmt.Sprintf("%04o", uint32(rf.Mode)), "owner", owner, "group", group)
	return rf, nil
}

// rawMode is the st_mode the SFTP server sent for fi.
func rawMode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return uint64(st.Mode)
	}
	return 0
}

// readAll reads f to its end, in requests of at most 32 KiB (counted),
// whatever size f reported: a file that reports its size is read in one
// request and the request that finds its end. More than maxReadSize is an
// error.
func readAll(c *Conn, f *sftp.File, size int64) ([]byte, error) {
	first := size + 1 // one more, to see the end in the same request
	if size <= 0 {
		first = 4 << 10
	}
	buf := make([]byte, 0, min(first, maxReadSize+1))
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4<<10))
		}
		chunk := min(cap(buf)-len(buf), 32<<10)
		n, err := f.Read(buf[len(buf) : len(buf)+chunk])
		// One request, and one more when the data came short of the
		// chunk and pkg/sftp asked again, to be told it was the end.
		c.sftpOps.Add(1)
		if n > 0 && n < chunk {
			c.sftpOps.Add(1)
		}
		buf = buf[:len(buf)+n]
		if len(buf) > maxReadSize {
			return nil, fmt.Errorf("larger than %d MiB", maxReadSize>>20)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// sftpMissing turns the failure of a stat or open of p into ReadFile's
// errors: fs.ErrNotExist, tasks.ErrNoParentDir when p's directory is
// missing too, fs.ErrPermission.
func (h *host) sftpMissing(cl *sftp.Client, p string, err error) error {
	if !errors.Is(err, os.ErrNotExist) {
		if errors.Is(err, os.ErrPermission) {
			return fs.ErrPermission
		}
		return err
	}
	h.c.sftpOps.Add(1)
	if _, derr := cl.Stat(path.Dir(p)); errors.Is(derr, os.ErrNotExist) {
		return tasks.ErrNoParentDir
	}
	return fs.ErrNotExist
}

// isTestProbe reports whether args is "test -d|-e|-f PATH" with PATH
// absolute, which sftpTest answers.
func isTestProbe(args []string) bool {
	return len(args) == 3 && args[0] == "test" && path.IsAbs(args[2]) &&
		(args[1] == "-d" || args[1] == "-e" || args[1] == "-f")
}

// sftpTest answers a test probe (isTestProbe) with one SFTP stat: the
// status test(1) would give (symlinks followed; a path that cannot be
// looked up is false, as for test). Errors: the loss of the connection.
func (h *host) sftpTest(cl *sftp.Client, args []string) (tasks.Output, error) {
	h.c.sftpOps.Add(1)
	st, err := cl.Stat(args[2])
	var status *sftp.StatusError
	switch {
	case err == nil:
		ok := args[1] == "-e" || args[1] == "-d" && st.IsDir() || args[1] == "-f" && st.Mode().IsRegular()
		if ok {
			return tasks.Output{}, nil
		}
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.As(err, &status):
	default:
		if lerr := h.c.lostError("sftp stat " + args[2]); lerr != nil {
			return tasks.Output{}, lerr
		}
		return tasks.Output{}, err
	}
	return tasks.Output{ExitCode: 1}, nil
}

// accountNames names uid and gid as the host's /etc/passwd and /etc/group
// do (read once per connection over SFTP); ok is false when one is not
// there.
func (c *Conn) accountNames(cl *sftp.Client, uid, gid uint32) (owner, group string, ok bool) {
	c.accountsOnce.Do(func() {
		c.users = readIDNames(c, cl, "/etc/passwd")
		c.groups = readIDNames(c, cl, "/etc/group")
	})
	owner, ok1 := c.users[uid]
	group, ok2 := c.groups[gid]
	return owner, group, ok1 && ok2
}

// readIDNames maps the ids of a passwd(5) or group(5) file (third field)
// to their first name; nil when it cannot be read.
func readIDNames(c *Conn, cl *sftp.Client, file string) map[uint32]string {
	c.sftpOps.Add(1)
	f, err := cl.Open(file)
	if err != nil {
		return nil
	}
	defer func() {
		c.sftpOps.Add(1)
		f.Close()
	}()
	b, err := readAll(c, f, 0)
	if err != nil {
		return nil
	}
	names := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := bytes.SplitN(sc.Bytes(), []byte(":"), 4)
		if len(fields) < 4 || len(fields[0]) == 0 || fields[0][0] == '+' || fields[0][0] == '-' || fields[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(string(fields[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, seen := names[uint32(id)]; !seen {
			names[uint32(id)] = string(fields[0])
		}
	}
	return names
}
