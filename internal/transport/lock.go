package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dindops/dindops/tasks"
)

// DefaultLockPath is the file whose flock(2) lock marks a host as being
// changed by a dindops run. /tmp is used because every user can create a
// file there on every distribution; the lock, not the file, is what matters.
const DefaultLockPath = "/tmp/dindops.lock"

// lockedExit is the exit status flock(1) reports when the lock is taken.
const lockedExit = 75

// LockedError says another dindops run is changing the host.
type LockedError struct {
	Host string
	Path string
	// Waited is how long Lock waited for it (Config.LockTimeout).
	Waited time.Duration
}

func (e *LockedError) Error() string {
	if e.Waited > 0 {
		return fmt.Sprintf("%s: another dindops run is changing this host (it held the lock on %s for the %s --lock-timeout allowed); wait for it to finish and run again, or give a longer --lock-timeout", e.Host, e.Path, e.Waited)
	}
	return fmt.Sprintf("%s: another dindops run is changing this host (it holds the lock on %s); wait for it to finish and run again, or give --lock-timeout to wait for it", e.Host, e.Path)
}

// lockScript runs under flock -o (only flock itself holds the lock): it
// says "locked", then holds the lock until its input ends (release, or
// sshd closing the session). Meanwhile it writes a byte every 5 s: a
// client that vanished (host down, network cut, then the network back)
// never closes the session itself, and sshd only notices when it sends
// something, so without this a dead run's lock would last until TCP's
// keepalive, two hours later, and every apply in between would fail.
// Where there is bash, its read with a timeout does both (no process
// started beside it); else the POSIX shell's read waits for the end of
// input and a background loop of sleep writes the byte. That sleep gets
// no handle on the session's output: sshd ends a session only when every
// process holding its output has let go, so a sleep left running after
// release would hold the session (and the run) up to 5 s.
const lockScript = `echo locked
if command -v bash >/dev/null 2>&1; then
	exec bash -c 'while :; do read -r -t 5 _; s=$?; if [ "$s" -gt 128 ]; then echo . || exit 0; elif [ "$s" -ne 0 ]; then exit 0; fi; done'
fi
(while sleep 5 >/dev/null 2>&1; do echo . || exit; done) &
while read -r _; do :; done
kill $! 2>/dev/null
exit 0`

// Lock takes an exclusive lock on the host for as long as a run changes it,
// so that two dindops runs (two pipelines, two people) never change one host
// at once: two applies would each register the runner, and GitLab would keep
// an orphan. The lock is flock(1) on Config.LockPath, held by a session that lasts
// until release is called or the connection drops, so a dindops that dies
// leaves nothing behind on the host.
//
// A host without flock(1) (util-linux) is not locked: Lock logs a warning
// and returns a release that does nothing. Errors: *LockedError when another
// run holds the lock, the errors of a lost connection, the context's.
func (c *Conn) Lock(ctx context.Context) (release func(), err error) {
	if err := c.lostError("locking"); err != nil {
		return nil, err
	}
	sess, freeSlot, err := c.newSession(ctx, "the run lock", true)
	if err != nil {
		return nil, err
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	var stderr strings.Builder
	sess.Stderr = &stderr
	if err := errors.Join(err1, err2); err != nil {
		sess.Close()
		freeSlot()
		return nil, fmt.Errorf("%s: lock: %w", c.name, err)
	}
	// flock -w waits on the host for another run's lock, up to
	// LockTimeout (fractional seconds); -n does not wait.
	wait := []string{"-n"}
	if c.cfg.LockTimeout > 0 {
		wait = []string{"-w", strconv.FormatFloat(c.cfg.LockTimeout.Seconds(), 'f', -1, 64)}
	}
	argv := append([]string{"flock"}, wait...)
	argv = append(argv, "-o", "-E", fmt.Sprint(lockedExit), c.cfg.LockPath, "sh", "-c", lockScript)
	line := tasks.ShellJoin(argv)
	c.log.Debug("lock", "path", c.cfg.LockPath)
	if err := sess.Start(line); err != nil {
		sess.Close()
		freeSlot()
		return nil, fmt.Errorf("%s: lock: start: %w", c.name, err)
	}
	got := make(chan bool, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		got <- l == "locked\n"
		io.Copy(io.Discard, stdout)
	}()
	fail := func(err error) (func(), error) {
		stdin.Close()
		sess.Close()
		freeSlot()
		return nil, err
	}
	select {
	case ok := <-got:
		if !ok {
			werr := sess.Wait()
			var exit interface{ ExitStatus() int }
			switch {
			case errors.As(werr, &exit) && exit.ExitStatus() == lockedExit:
				return fail(&LockedError{Host: c.name, Path: c.cfg.LockPath, Waited: c.cfg.LockTimeout})
			case errors.As(werr, &exit) && exit.ExitStatus() == 127:
				c.log.Warn("flock is not installed: this host is not locked against a second dindops run", "host", c.name)
				stdin.Close()
				sess.Close()
				freeSlot()
				return func() {}, nil
			}
			if lerr := c.lostError("taking the lock"); lerr != nil {
				return fail(lerr)
			}
			return fail(fmt.Errorf("%s: lock %s: %v %s", c.name, c.cfg.LockPath, werr, strings.TrimSpace(stderr.String())))
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(c.cfg.ConnectTimeout + c.cfg.LockTimeout):
		return fail(fmt.Errorf("%s: lock %s: no answer within %s", c.name, c.cfg.LockPath, c.cfg.ConnectTimeout+c.cfg.LockTimeout))
	}
	var released bool
	return func() {
		if released {
			return
		}
		released = true
		stdin.Close()
		done := make(chan struct{})
		go func() { sess.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.log.Warn("the lock's session did not end within 5s of its release; closing it")
		}
		sess.Close()
		freeSlot()
	}, nil
}
