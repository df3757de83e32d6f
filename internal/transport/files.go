package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/dindops/dindops/tasks"
	"github.com/pkg/sftp"
)

// readFunction defines the shell function r: it prints "RAWMODE UID GID
// USER GROUP" of the file "$1" (symlinks followed) and, when it is a
// regular file, its content. The path is only ever "$1": it is never part
// of the script's text. Status 10: missing; 13: missing, and so is its
// parent directory (the shell's own test, no process started); 11: stat
// failed; 12: not a regular file. An existing file costs two processes on
// the host (stat and cat), a missing one in a directory it may search none
// (otherwise a stat says why it cannot be read); the probe batch calls r in
// its own shell.
const readFunction = `r() {
	if [ -e "$1" ]; then
		stat -L -c '%f %u %g %U %G' -- "$1" || { [ -e "$1" ] || return 10; return 11; }
		[ -f "$1" ] || return 12
		cat -- "$1"
		return
	fi
	d=${1%/*}
	if [ -d "${d:-/}" ] && [ -x "${d:-/}" ]; then return 10; fi
	h=$(stat -L -c '%f %u %g %U %G' -- "$1" 2>&1) || {
		case $h in *"No such file or directory"*) d=${1%/*}; [ -d "${d:-/}" ] || return 13; return 10;; esac
		printf '%s\n' "$h" >&2
		return 11
	}
	printf '%s\n' "$h"
	[ -f "$1" ] || return 12
	cat -- "$1"
}
`

// readScript reads the file "$1" with readFunction.
const readScript = "export LC_ALL=C\n" + readFunction + `r "$1"`

// ReadFile implements tasks.Host: over the connection's SFTP session when
// there is no become (no process on the host; see sftpReader), else with
// one remote command (under sudo with become). It returns the content,
// permission bits, owner and group of the regular file path (symlinks
// followed; files such as /proc's that report size 0 are read fully).
// Errors wrap fs.ErrNotExist for a missing file, fs.ErrPermission when
// access is denied; a directory or other non-regular file is an error;
// content over 256 MiB is an error.
func (h *host) ReadFile(ctx context.Context, p string) (tasks.RemoteFile, error) {
	fail := func(err error) (tasks.RemoteFile, error) {
		return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	if !path.IsAbs(p) {
		return fail(errors.New("path must be absolute"))
	}
	cl, done, err := h.sftpReader(ctx)
	if err != nil {
		return fail(err)
	}
	if cl != nil {
		f, err := h.sftpRead(ctx, cl, p)
		done()
		if !errors.Is(err, errNeedsShell) {
			return f, err
		}
	}
	args := []string{"sh", "-c", readScript, "sh", p}
	out, err := h.run(ctx, args, nil, false, execOpts{display: "read " + p, whole: true})
	if err != nil {
		return fail(err)
	}
	return h.readResult(p, out)
}

// readResult turns the output of readScript for p into a file or an error
// (see ReadFile).
func (h *host) readResult(p string, out tasks.Output) (tasks.RemoteFile, error) {
	fail := func(err error) (tasks.RemoteFile, error) {
		return tasks.RemoteFile{}, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	errText := out.Stderr
	if len(errText) == 0 {
		errText = out.Stdout
	}
	switch out.ExitCode {
	case 0, 12:
	case 10:
		return fail(fs.ErrNotExist)
	case 13:
		return fail(tasks.ErrNoParentDir)
	default:
		return fail(commandFailure(out.ExitCode, errText))
	}
	header, content, ok := bytes.Cut(out.Stdout, []byte("\n"))
	fields := strings.Fields(string(header))
	if !ok || len(fields) != 5 {
		return fail(fmt.Errorf("unexpected stat output %q", header))
	}
	raw, err := strconv.ParseUint(fields[0], 16, 32)
	if err != nil {
		return fail(fmt.Errorf("unexpected stat output %q", header))
	}
	if out.ExitCode == 12 {
		return fail(fmt.Errorf("not a regular file: %s", fileType(raw)))
	}
	f := tasks.RemoteFile{Content: content, Mode: fs.FileMode(raw & 0o7777), Owner: fields[3], Group: fields[4]}
	if f.Owner == "UNKNOWN" {
		f.Owner = fields[1]
	}
	if f.Group == "UNKNOWN" {
		f.Group = fields[2]
	}
	h.c.log.Debug("read", "path", p, "bytes", len(content), "mode", fmt.Sprintf("%04o", raw&0o7777), "owner", f.Owner, "group", f.Group)
	return f, nil
}

// commandFailure turns a helper script's failure into an error, wrapping
// fs.ErrPermission when access was denied.
func commandFailure(code int, stderr []byte) error {
	msg := tasks.LastLine(stderr)
	if strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Operation not permitted") {
		return fmt.Errorf("%s: %w", msg, fs.ErrPermission)
	}
	if msg == "" {
		return fmt.Errorf("exit status %d", code)
	}
	return errors.New(msg)
}

// fileType names the type in a raw st_mode.
func fileType(raw uint64) string {
	switch raw & 0o170000 {
	case 0o040000:
		return "directory"
	case 0o020000:
		return "character device"
	case 0o060000:
		return "block device"
	case 0o010000:
		return "named pipe"
	case 0o140000:
		return "socket"
	}
	return fmt.Sprintf("type %06o", raw&0o170000)
}

// finalizeScript installs a new file. Arguments: HOW SRC TMP PATH OWNER
// GROUP MODE [VALIDATE...]. HOW is
//
//	inplace  TMP was uploaded in PATH's directory already (SRC = TMP);
//	copy     SRC is a private upload; TMP is created (O_EXCL, 0600) and
//	         filled from it, then SRC and its directory are removed;
//	stdin    TMP is created and filled from standard input.
//
// Then TMP gets OWNER and GROUP (when not empty) and MODE, VALIDATE runs
// (its argv already names TMP), and TMP is renamed onto PATH. On any failure
// TMP (and SRC in copy mode) are removed and PATH is untouched. Every path is
// a positional argument, never part of the script's text.
// Exit codes: 19 no parent directory, 20 temp file, 21 owner, 22 group,
// 23 mode, 24 rename, 25 PATH is a directory, 30 validation failed (the
// validator's status follows validateMarker on stdout).
const finalizeScript = `how=$1 s=$2 t=$3 p=$4 o=$5 g=$6 m=$7
shift 7
made=
clean() {
	if [ -n "$made" ]; then rm -f -- "$t"; fi
	if [ "$how" = copy ]; then rm -f -- "$s"; rmdir -- "${s%/*}" 2>/dev/null; fi
	return 0
}
die() { clean; exit "$1"; }
trap 'die 1' HUP INT TERM
if [ "$how" = inplace ]; then
	made=1
else
	d=${t%/*}
	[ -d "${d:-/}" ] || die 19
	(umask 077 && set -C && : > "$t") || die 20
	made=1
	if [ "$how" = copy ]; then cat -- "$s" > "$t" || die 20
	else cat > "$t" || die 20
	fi
fi
if [ -d "$p" ]; then echo "$p is a directory" >&2; die 25; fi
if [ -n "$o" ]; then chown -- "$o" "$t" || die 21; fi
if [ -n "$g" ]; then chgrp -- "$g" "$t" || die 22; fi
chmod -- "$m" "$t" || die 23
if [ $# -gt 0 ]; then
	"$@"
	rc=$?
	if [ $rc -ne 0 ]; then printf '\n` + validateMarker + `%d\n' $rc; die 30; fi
fi
mv -f -- "$t" "$p" || die 24
made=
clean
exit 0`

const validateMarker = "dindops-validate-status:"

// WriteFile implements tasks.Host: it replaces the file p atomically with
// content, owned by opts.Owner:opts.Group (when given) with opts.Mode
// (0644 when zero), after opts.Validate accepted it.
//
// Without become the content is uploaded by SFTP to a temporary file
// ".NAME.dindops-RANDOM" in p's directory (created exclusively, mode 0600
// before any byte is written), then one command sets owner, group and mode,
// validates and renames it onto p. With become (to root) the upload goes to
// a private directory under Config.TempDir instead, and the command, under
// sudo, copies it into the temporary file in p's directory; becoming a user
// other than root, who could not read that upload, sends the content on the
// command's standard input instead (as does any write on a host without the
// SFTP subsystem). On any failure p is left as it was and the temporary
// files are removed.
//
// Errors are *fs.PathError with Op "write"; a missing parent directory
// wraps fs.ErrNotExist; a rejected validation wraps *ValidateError (and
// *tasks.ExitError); other causes as for Run. The content is never logged.
func (h *host) WriteFile(ctx context.Context, p string, content []byte, opts tasks.WriteOptions) error {
	fail := func(err error) error { return &fs.PathError{Op: "write", Path: p, Err: err} }
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fail(errors.New("path must be absolute and clean, naming a file"))
	}
	if content == nil {
		content = []byte{}
	}
	c := h.c
	dir, base := path.Split(p)
	tmp := dir + "." + base + ".dindops-" + randomHex()
	validate := make([]string, len(opts.Validate))
	for i, a := range opts.Validate {
		validate[i] = strings.ReplaceAll(a, "%s", tmp)
	}
	w := &write{h: h, path: p, tmp: tmp, content: content, opts: opts, validate: validate}

	how := "inplace"
	if h.become {
		how = "copy"
		if c.cfg.BecomeUser != "root" && c.cfg.BecomeUser != "0" {
			how = "stdin"
		}
	}
	if how != "stdin" {
		// Open (or find) the SFTP session now, to know whether there is one.
		_, done, err := c.sftpClient(ctx)
		if errors.Is(err, errNoSFTP) {
			how = "stdin"
		} else if err != nil {
			return fail(err)
		} else {
			done()
		}
	}
	c.log.Debug("write", "path", p, "bytes", len(content), "mode", modeString(opts.Mode), "owner", opts.Owner, "group", opts.Group,
		"validate", tasks.ShellJoin(opts.Validate), "how", how, "sensitive", opts.Sensitive)
	var err error
	switch how {
	case "inplace":
		err = w.inplace(ctx)
	case "copy":
		err = w.copy(ctx)
	default:
		err = w.finalize(ctx, "stdin", "-", content)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// write is one WriteFile call in progress.
type write struct {
	h        *host
	path     string
	tmp      string // the temporary file in path's directory
	content  []byte
	opts     tasks.WriteOptions
	validate []string // opts.Validate with %s replaced by tmp
}

// withSFTP runs f with the connection's SFTP client, held only for f (the
// finalizing command must not run while it is held: see sftpClient).
func (w *write) withSFTP(ctx context.Context, f func(cl *sftp.Client) error) error {
	cl, done, err := w.h.c.sftpClient(ctx)
	if err != nil {
		return err
	}
	defer done()
	return f(cl)
}

// inplace uploads to the temporary file in the target directory, then
// finalizes it.
func (w *write) inplace(ctx context.Context) error {
	if err := w.withSFTP(ctx, func(cl *sftp.Client) error { return w.upload(cl, w.tmp) }); err != nil {
		return err
	}
	if err := w.finalize(ctx, "inplace", w.tmp, nil); err != nil {
		w.cleanup(w.tmp, "")
		return err
	}
	return nil
}

// copy uploads to a private directory, then finalizes (under sudo) by
// copying into the temporary file in the target directory.
func (w *write) copy(ctx context.Context) error {
	c := w.h.c
	pdir := path.Join(c.cfg.TempDir, ".dindops-"+randomHex())
	src := path.Join(pdir, path.Base(w.path))
	err := w.withSFTP(ctx, func(cl *sftp.Client) error {
		c.sftpOps.Add(1)
		if err := cl.Mkdir(pdir); err != nil {
			return fmt.Errorf("create private upload directory %s: %w", pdir, err)
		}
		c.sftpOps.Add(1)
		if err := cl.Chmod(pdir, 0o700); err != nil {
			w.remove(cl, pdir, true)
			return fmt.Errorf("chmod private upload directory %s: %w", pdir, err)
		}
		if err := w.upload(cl, src); err != nil {
			w.remove(cl, pdir, true)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.finalize(ctx, "copy", src, nil); err != nil {
		// The script removes both on its own failures; not when sudo
		// refused to run it or the command never completed.
		w.cleanup(src, pdir)
		return err
	}
	return nil
}

// cleanup removes the file name and then the directory dir (when not
// empty) by SFTP, best effort, after a failed finalize.
func (w *write) cleanup(name, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), w.h.c.cfg.ConnectTimeout)
	defer cancel()
	err := w.withSFTP(ctx, func(cl *sftp.Client) error {
		w.remove(cl, name, false)
		if dir != "" {
			w.remove(cl, dir, true)
		}
		return nil
	})
	if err != nil {
		w.h.c.log.Debug("cleanup failed", "path", name, "err", err)
	}
}

// upload creates name exclusively, makes it 0600 before writing anything,
// then writes the content. On failure name is removed.
func (w *write) upload(cl *sftp.Client, name string) error {
	c := w.h.c
	c.sftpOps.Add(1)
	f, err := cl.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		d := path.Dir(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return &notExistError{"parent directory " + d + " does not exist"}
		case errors.Is(err, fs.ErrPermission) && !w.h.become:
			return fmt.Errorf("%s may not create files in %s (use become?): %w", c.cfg.User, d, fs.ErrPermission)
		}
		return fmt.Errorf("create temporary file in %s: %w", d, err)
	}
	c.sftpOps.Add(3) // chmod, write, close
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(w.content)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.remove(cl, name, false)
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// remove deletes a file or an empty directory by SFTP, best effort.
func (w *write) remove(cl *sftp.Client, name string, isDir bool) {
	c := w.h.c
	c.sftpOps.Add(1)
	var err error
	if isDir {
		err = cl.RemoveDirectory(name)
	} else {
		err = cl.Remove(name)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Debug("cleanup failed", "path", name, "err", err)
	}
}

// finalize runs finalizeScript (under sudo with become).
func (w *write) finalize(ctx context.Context, how, src string, stdin []byte) error {
	args := append([]string{"sh", "-c", finalizeScript, "sh", how, src, w.tmp, w.path,
		w.opts.Owner, w.opts.Group, modeString(w.opts.Mode)}, w.validate...)
	out, err := w.h.run(ctx, args, stdin, w.opts.Sensitive, execOpts{display: "install " + w.path})
	if err != nil {
		return err
	}
	errText := out.Stderr
	if len(errText) == 0 {
		errText = out.Stdout // with a pty, stderr arrives there
	}
	switch out.ExitCode {
	case 0:
		return nil
	case 19:
		return &notExistError{"parent directory " + path.Dir(w.path) + " does not exist"}
	case 20:
		return fmt.Errorf("create temporary file: %w", commandFailure(out.ExitCode, errText))
	case 21:
		return fmt.Errorf("set owner %s: %w", w.opts.Owner, commandFailure(out.ExitCode, errText))
	case 22:
		return fmt.Errorf("set group %s: %w", w.opts.Group, commandFailure(out.ExitCode, errText))
	case 23:
		return fmt.Errorf("set mode %s: %w", modeString(w.opts.Mode), commandFailure(out.ExitCode, errText))
	case 24:
		return fmt.Errorf("rename into place: %w", commandFailure(out.ExitCode, errText))
	case 25:
		return errors.New("is a directory")
	case 30:
		stdout, status := out.Stdout, 1
		if i := bytes.LastIndex(stdout, []byte("\n"+validateMarker)); i >= 0 {
			status, _ = strconv.Atoi(strings.TrimSpace(string(stdout[i+1+len(validateMarker):])))
			stdout = stdout[:i]
		}
		return &ValidateError{Path: w.path, Err: &tasks.ExitError{
			Cmd: tasks.ShellJoin(w.opts.Validate), ExitCode: status, Stdout: stdout, Stderr: out.Stderr}}
	}
	return commandFailure(out.ExitCode, errText)
}

// modeString renders m for chmod: "0644" (0644 when m is zero), with the
// setuid, setgid and sticky bits whether given raw (0o4000) or as
// fs.ModeSetuid and friends.
func modeString(m fs.FileMode) string {
	if m == 0 {
		m = 0o644
	}
	b := uint32(m & 0o7777)
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return fmt.Sprintf("%04o", b)
}

// randomHex returns 16 random hex digits for temporary names.
func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
