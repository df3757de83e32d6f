package transport

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	pathpkg "path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dindops/dindops/tasks"
	"golang.org/x/crypto/ssh"
)

// DefaultLockPath is the file whose flock(2) lock marks a host as being
// changed by a dindops run. Its directory is created by root, mode 0755, in
// /run (a root-owned tmpfs on Debian): no other user can create it or
// anything in it, so none can plant the lock file, hold it or point it
// elsewhere (a world-writable /tmp or /var/lock let any local user block
// every run). See Conn.Lock for logins that are not root.
const DefaultLockPath = "/run/dindops/lock"

// userLockFile is the lock file, in the login user's home directory, of a
// login that is neither root nor allowed `sudo -n` (see Conn.Lock).
const userLockFile = ".dindops.lock"

// unsafeExit is the exit status of the lock script when the lock file or
// its directory may not be trusted (a symbolic link, another owner, a
// directory others may write).
const unsafeExit = 76

// lockLauncher runs lockScript ("$s") as root: directly when the login is
// root, else through sudo -n when the login may use it without a password;
// else as the login user (the script then takes the per-user lock). "$1" is
// the connection's sshd's process id, the rest lockScript's arguments.
const lockLauncher = `p=$1
shift
f=$1
shift
if [ "$(id -u)" = 0 ]; then exec sh -c "$s" sh "$f" "$p" "$@"; fi
if command -v sudo >/dev/null 2>&1 && sudo -n -u root true 2>/dev/null; then exec sudo -n -u root -- sh -c "$s" sh "$f" "$p" "$@"; fi
exec sh -c "$s" sh "$f" "$p" "$@"`

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

// lockScript takes the lock: "$1" is the lock file, "$2" the process id of
// the connection's sshd (the parent of the login shell), the rest flock's
// wait flags. It opens the file on descriptor 9, locks it with flock(1),
// says "locked", then holds the lock until its input ends (release, or sshd
// closing the session). Meanwhile it writes a byte every 5 s: a client
// that vanished (host down, network cut, then the network back) never
// closes the session itself, and sshd only notices when it sends
// something, so without this a dead run's lock would last until TCP's
// keepalive, two hours later, and every apply in between would fail.
// Where there is bash, its read with a timeout does both; else the POSIX
// shell's read waits for the end of input and a background loop of sleep
// writes the byte. Only the script holds descriptor 9 (every child closes
// it), so the lock ends with the script.
//
// On the line "detach" it hands the lock to a background process (in a
// session of its own, with setsid, where there is one) that holds
// descriptor 9 for as long as the connection's sshd lives; that process
// says "detached PID" once in its own session, and the script ends,
// freeing the session (a host whose MaxSessions leaves no session beside
// the lock's: see Conn.detachLock).
const lockScript = `f=$1 p=$2
shift 2
command -v flock >/dev/null 2>&1 || exit 127
bad() { echo "$*" >&2; exit 76; }
umask 077
me=$(id -u)
if [ "$me" = 0 ]; then
	d=${f%/*}
	[ -d "$d" ] || mkdir -m 0755 -- "$d" 2>/dev/null || [ -d "$d" ] || bad "cannot create the directory $d"
	echo "using root $f"
else
	d=$HOME f=$HOME/` + userLockFile + `
	echo "using user $f"
fi
[ -L "$d" ] && bad "$d is a symbolic link"
[ -d "$d" ] || bad "$d is not a directory"
du=$(stat -c %u -- "$d") dm=$(stat -c %a -- "$d")
[ "$du" = 0 ] || [ "$du" = "$me" ] || bad "the directory $d belongs to uid $du, not to root"
case $dm in *[2367]? | *[2367]) bad "the directory $d may be written by other users (mode $dm)" ;; esac
[ -L "$f" ] && bad "$f is a symbolic link"
[ ! -e "$f" ] || [ -f "$f" ] || bad "$f is not a regular file"
exec 9>>"$f"
fu=$(stat -L -c %u /proc/$$/fd/9)
[ "$fu" = "$me" ] || bad "$f belongs to uid $fu, not to uid $me (who takes the lock)"
chmod 0600 /proc/$$/fd/9 2>/dev/null || chmod 0600 -- "$f"
flock "$@" -E 75 9 || exit $?
echo locked
if command -v bash >/dev/null 2>&1; then
	bash -c 'while :; do read -r -t 5 l; s=$?; if [ "$s" -gt 128 ]; then echo . || exit 0; elif [ "$s" -ne 0 ]; then exit 0; elif [ "$l" = detach ]; then exit 3; fi; done' 9>&-
	s=$?
else
	(while sleep 5 >/dev/null 2>&1; do echo . || exit; done) 9>&- &
	k=$!
	s=0
	while read -r l; do if [ "$l" = detach ]; then s=3; break; fi; done
	kill $k 2>/dev/null
fi
[ "$s" -eq 3 ] || exit 0
hold='trap "" HUP INT; echo "detached $$"; exec >/dev/null; while kill -0 "$1" 2>/dev/null; do sleep 2 9>&-; done'
if command -v setsid >/dev/null 2>&1; then
	setsid sh -c "$hold" sh "$p" </dev/null 2>/dev/null &
else
	sh -c "$hold" sh "$p" </dev/null 2>/dev/null &
fi
exit 0`

// Lock takes an exclusive lock on the host for as long as a run changes it,
// so that two dindops runs (two pipelines, two people) never change one host
// at once: two applies would each register the runner, and GitLab would keep
// an orphan. The lock is flock(1) on Config.LockPath, held by a session that
// lasts until release is called or the connection drops, so a dindops that
// dies leaves nothing behind on the host.
//
// The lock is taken as root (see lockLauncher): directly by a root login,
// through sudo -n by a login that may use it, so that runs as root and as
// deploy with become share one lock file. A login that may not gets a lock
// of its own in its home directory, and a warning. The lock script trusts
// only a directory owned by root (or that user) that others may not write,
// and a regular file of its own: anything else fails with what to do.
//
// The lock's session counts against the host's MaxSessions. When the host
// allows no other session beside it (MaxSessions 1), the lock is handed to
// a process on the host that holds it for as long as this connection's
// sshd process lives (see detachLock), and its session ends.
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
	// $PPID, expanded by the login shell, is the connection's sshd.
	launcher := "s=" + tasks.ShellJoin([]string{lockScript}) + "\n" + lockLauncher
	line := tasks.ShellJoin([]string{"sh", "-c", launcher, "sh"}) + ` "$PPID" ` + tasks.ShellJoin(append([]string{c.cfg.LockPath}, wait...))
	c.log.Debug("lock", "path", c.cfg.LockPath)
	if err := sess.Start(line); err != nil {
		sess.Close()
		freeSlot()
		return nil, fmt.Errorf("%s: lock: start: %w", c.name, err)
	}
	got := make(chan lockStart, 1)
	detached := make(chan string, 1)
	go readLockOutput(bufio.NewReader(stdout), got, detached)
	fail := func(err error) (func(), error) {
		stdin.Close()
		sess.Close()
		freeSlot()
		return nil, err
	}
	var st lockStart
	select {
	case st = <-got:
		path := cmp.Or(st.path, c.cfg.LockPath)
		if !st.locked {
			werr := sess.Wait()
			var exit interface{ ExitStatus() int }
			switch {
			case errors.As(werr, &exit) && exit.ExitStatus() == lockedExit:
				return fail(&LockedError{Host: c.name, Path: path, Waited: c.cfg.LockTimeout})
			case errors.As(werr, &exit) && exit.ExitStatus() == unsafeExit:
				return fail(fmt.Errorf("%s: the run lock %s cannot be trusted: %s; if no dindops run uses it, remove it as root (rm -f %s; for the directory, rm -rf %s) and run again",
					c.name, path, tasks.LastLine([]byte(stderr.String())), path, pathpkg.Dir(path)))
			case errors.As(werr, &exit) && exit.ExitStatus() == 127:
				c.log.Warn("flock is not installed: this host is not locked against a second dindops run", "host", c.name)
				fail(nil)
				return func() {}, nil
			}
			if lerr := c.lostError("taking the lock"); lerr != nil {
				return fail(lerr)
			}
			return fail(fmt.Errorf("%s: lock %s: %v %s", c.name, path, werr, strings.TrimSpace(stderr.String())))
		}
		if st.user {
			c.log.Warn("the run lock is this login's own, not the host's: "+c.cfg.User+" is not root and may not use sudo -n; runs that log in as another user are not kept out (log in as root, or give this login passwordless sudo)", "host", c.name, "path", path)
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(c.cfg.ConnectTimeout + c.cfg.LockTimeout):
		return fail(fmt.Errorf("%s: lock %s: no answer within %s", c.name, c.cfg.LockPath, c.cfg.ConnectTimeout+c.cfg.LockTimeout))
	}
	hl := &heldLock{sess: sess, stdin: stdin, detached: detached, free: freeSlot}
	c.lockMu.Lock()
	c.lock = hl
	c.lockMu.Unlock()
	return func() { c.releaseLock(hl) }, nil
}

// lockStart is what the lock script said before holding the lock: the file
// it locks, whether it is the per-user one, whether it got it.
type lockStart struct {
	path         string
	user, locked bool
}

// readLockOutput reads the lock script's output: the "using root|user PATH"
// and "locked" lines, then the process id of a "detached PID" line.
func readLockOutput(r *bufio.Reader, got chan<- lockStart, detached chan<- string) {
	var st lockStart
	l, _ := r.ReadString('\n')
	if rest, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), "using "); ok {
		who, path, _ := strings.Cut(rest, " ")
		st.path, st.user = path, who == "user"
		l, _ = r.ReadString('\n')
	}
	st.locked = l == "locked\n"
	got <- st
	for {
		l, err := r.ReadString('\n')
		if pid, ok := strings.CutPrefix(l, "detached "); ok {
			detached <- strings.TrimSpace(pid)
		}
		if err != nil {
			close(detached)
			return
		}
	}
}

// heldLock is the run lock once taken.
type heldLock struct {
	mu       sync.Mutex
	sess     *ssh.Session // nil once detached or released
	stdin    io.WriteCloser
	detached <-chan string // the lock script's "detached PID" answer
	free     func()        // frees the session's (permanent) slot
	pid      string        // the process holding the lock once detached
	released bool
}

// detachLock hands the run lock to a process on the host and ends the
// lock's session, for a host whose MaxSessions leaves no session beside
// it: the process (a shell loop started by the lock script, holding the
// lock file open) lives as long as this connection's sshd process, checked
// every 2 s, or until release kills it. A client that vanishes without its
// connection closing then keeps the lock until sshd drops the connection
// (its ClientAliveInterval, else TCP's keepalive), instead of within 5 s.
// It says whether it freed the session's slot.
func (c *Conn) detachLock() bool {
	c.lockMu.Lock()
	hl := c.lock
	c.lockMu.Unlock()
	if hl == nil {
		return false
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if hl.sess == nil || hl.released {
		return false
	}
	if _, err := io.WriteString(hl.stdin, "detach\n"); err != nil {
		c.log.Warn("cannot hand the run lock to the host: its session takes no input", "err", err)
		return false
	}
	var pid string
	select {
	case pid = <-hl.detached:
	case <-time.After(c.cfg.ConnectTimeout):
	}
	if _, err := strconv.Atoi(pid); err != nil {
		c.log.Warn("the host did not take over the run lock: sessions wait for the lock's to end")
		return false
	}
	hl.stdin.Close()
	endSession(c, hl.sess)
	hl.sess, hl.pid = nil, pid
	hl.free()
	c.log.Info("the host allows no session beside the run lock's (MaxSessions 1): the lock is now held by a process on the host for as long as this connection lasts", "pid", pid)
	return true
}

// releaseLock ends the lock: closes its session, or kills the process that
// holds it on the host once detached. Later calls do nothing.
func (c *Conn) releaseLock(hl *heldLock) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if hl.released {
		return
	}
	hl.released = true
	if hl.sess != nil {
		hl.stdin.Close()
		endSession(c, hl.sess)
		hl.free()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ConnectTimeout)
	defer cancel()
	// The holder runs as root when the lock is the host's (sudo -n).
	kill := tasks.ShellJoin([]string{"kill", hl.pid})
	out, err := c.exec(ctx, kill+" 2>/dev/null || sudo -n "+kill, nil, execOpts{display: "release the run lock"})
	if err == nil && out.ExitCode != 0 {
		err = fmt.Errorf("kill %s: exit %d: %s", hl.pid, out.ExitCode, strings.TrimSpace(string(out.Stderr)))
	}
	if err != nil {
		// The process ends with the connection anyway.
		c.log.Debug("the release of the run lock's process failed; it ends with the connection", "err", err)
	}
}

// endSession waits up to 5 s for a session whose input was closed to end,
// then closes it.
func endSession(c *Conn, sess *ssh.Session) {
	done := make(chan struct{})
	go func() { sess.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.log.Warn("the lock's session did not end within 5s of its release; closing it")
	}
	sess.Close()
}
