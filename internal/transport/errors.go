package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/dindops/dindops/tasks"
)

// ErrConnectionLost matches (errors.Is) an *UnreachableError raised because
// an established connection died: keepalives went unanswered or the peer
// closed it. What a command running at that moment did is unknown.
var ErrConnectionLost = errors.New("connection lost")

// UnreachableError is a host that could not be reached or stopped answering:
// the TCP connection failed or timed out, the SSH handshake failed (other
// than for host key or authentication reasons), or an established connection
// was lost. The runner reports such a host as "unreachable".
type UnreachableError struct {
	// Host is the host's display name (Config.Name, or its address).
	Host string
	// Op is what was being done: "connect", "ssh handshake", or, for a lost
	// connection, "running <command>" / "opening a session" / "sftp".
	Op string
	// Lost is true when an established connection died (see
	// ErrConnectionLost).
	Lost bool
	// Err is the underlying cause.
	Err error
}

func (e *UnreachableError) Error() string {
	if e.Lost {
		return fmt.Sprintf("%s: connection lost while %s: %v", e.Host, e.Op, e.Err)
	}
	return fmt.Sprintf("%s unreachable: %s: %v", e.Host, e.Op, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Unreachable reports true: the runner counts the host as unreachable.
func (e *UnreachableError) Unreachable() bool { return true }

// Is makes errors.Is(err, ErrConnectionLost) true for a lost connection.
func (e *UnreachableError) Is(target error) bool { return target == ErrConnectionLost && e.Lost }

// AuthError is a login that the host refused, or that could not be
// attempted because no usable key was found.
type AuthError struct {
	User string
	Host string
	// Methods lists what was offered, e.g. "ssh-agent (2 keys)",
	// "/home/me/.ssh/id_ed25519 (ssh-ed25519 SHA256:…)".
	Methods []string
	// Skipped lists identity files that could not be used and why.
	Skipped []*IdentityError
	// Err is the underlying cause (the SSH library's error, or the first
	// *IdentityError when nothing could be offered).
	Err error
}

func (e *AuthError) Error() string {
	if len(e.Methods) == 0 {
		if e.Err != nil {
			return fmt.Sprintf("%s@%s: cannot log in: %v", e.User, e.Host, e.Err)
		}
		return fmt.Sprintf("%s@%s: cannot log in: no identity file or ssh-agent key to offer", e.User, e.Host)
	}
	msg := fmt.Sprintf("%s@%s: authentication failed (tried %s)", e.User, e.Host, strings.Join(e.Methods, ", "))
	for _, s := range e.Skipped {
		msg += "; " + s.Error()
	}
	return msg
}

func (e *AuthError) Unwrap() error { return e.Err }

// Unreachable reports true: as in Ansible's recap, a host that cannot be
// logged in to counts as unreachable (the error says why).
func (e *AuthError) Unreachable() bool { return true }

// IdentityError is an identity file that could not be used.
type IdentityError struct {
	Path string
	// Encrypted is true when the key needs a passphrase, which dindops never
	// asks for: load it into ssh-agent instead.
	Encrypted bool
	Err       error
}

func (e *IdentityError) Error() string {
	if e.Encrypted {
		return fmt.Sprintf("identity file %s is passphrase-protected; add it to ssh-agent (ssh-add %s)", e.Path, e.Path)
	}
	return fmt.Sprintf("identity file %s: %v", e.Path, e.Err)
}

func (e *IdentityError) Unwrap() error { return e.Err }

// BecomeError is privilege escalation with sudo that could not happen. The
// command was never run.
type BecomeError struct {
	// User is the login user that ran sudo; Become is the target user.
	User   string
	Become string
	Host   string
	// Reason is "password" (sudo wants one and none was given),
	// "wrong password" (sudo rejected the one given), "requiretty",
	// "no prompt" (sudo neither asked for the password nor ran the command),
	// "missing" (no sudo), or empty (Stderr says why).
	Reason string
	// Stderr is what sudo (or the shell) printed.
	Stderr []byte
}

func (e *BecomeError) Error() string {
	switch e.Reason {
	case "password":
		return fmt.Sprintf("sudo requires a password for %s on %s: give it with --ask-become-pass, allow NOPASSWD for this user (e.g. \"%s ALL=(ALL) NOPASSWD: ALL\" in /etc/sudoers.d/%s), or log in as %s", e.User, e.Host, e.User, e.User, e.Become)
	case "wrong password":
		return fmt.Sprintf("sudo rejected the become password for %s on %s (it is not sent to this host again in this run)", e.User, e.Host)
	case "no prompt":
		return fmt.Sprintf("sudo on %s neither asked for the password nor ran the command: %s", e.Host, orNothing(tasks.LastLine(e.Stderr)))
	case "requiretty":
		return fmt.Sprintf("sudo on %s requires a tty (requiretty) and this command sends input, which a tty would mangle: add \"Defaults:%s !requiretty\" to /etc/sudoers.d/%s", e.Host, e.User, e.User)
	case "missing":
		return fmt.Sprintf("sudo is not installed on %s: install it, or log in as %s", e.Host, e.Become)
	}
	return fmt.Sprintf("sudo as %s on %s failed: %s", e.Become, e.Host, tasks.LastLine(e.Stderr))
}

func orNothing(s string) string {
	if s == "" {
		return "it printed nothing"
	}
	return s
}

// CommandError is a command whose outcome is unknown or abnormal: it was
// killed by a signal, or the host closed its session without an exit status.
// (A plain non-zero exit is not an error: see tasks.Output.ExitCode.)
type CommandError struct {
	Host string
	Cmd  string
	// Signal is the signal name without "SIG" ("KILL", "TERM") when the
	// command was killed by one; empty otherwise.
	Signal string
	Stdout []byte
	Stderr []byte
	Err    error
}

func (e *CommandError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("%s: killed by signal %s", e.Cmd, e.Signal)
	}
	return fmt.Sprintf("%s: %v", e.Cmd, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ValidateError is a WriteFile whose validate command rejected the new
// content. The file was left as it was. Err is a *tasks.ExitError holding the
// validator's exit code and output.
type ValidateError struct {
	Path string
	Err  error
}

func (e *ValidateError) Error() string {
	return fmt.Sprintf("rejected by the validate command: %v", e.Err)
}

func (e *ValidateError) Unwrap() error { return e.Err }

// notExistError is a message that matches fs.ErrNotExist without repeating
// its text.
type notExistError struct{ msg string }

func (e *notExistError) Error() string        { return e.msg }
func (e *notExistError) Is(target error) bool { return target == fs.ErrNotExist }

// BastionError is a host that could not be reached because one of its
// bastions (jump hosts) failed: it was unreachable, refused the login, or
// its host key did not pass. Err is that hop's *UnreachableError,
// *AuthError or *HostKeyError, whose messages name it "bastion NAME".
type BastionError struct {
	// Host is the display name of the host behind the bastion.
	Host string
	// Bastion is the hop's display name ("bastion NAME").
	Bastion string
	// Hop is the hop's position in the chain (1 is dialed first) of Hops.
	Hop, Hops int
	Err       error
}

func (e *BastionError) Error() string {
	if e.Hops > 1 {
		return fmt.Sprintf("%s unreachable through jump host %d of %d: %v", e.Host, e.Hop, e.Hops, e.Err)
	}
	return fmt.Sprintf("%s unreachable: %v", e.Host, e.Err)
}

func (e *BastionError) Unwrap() error { return e.Err }

// Unreachable reports true: a host whose bastion fails counts as unreachable.
func (e *BastionError) Unreachable() bool { return true }
