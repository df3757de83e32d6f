package transport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
)

// becomeWithPassword dials a server whose (fake) sudo is in mode, with a
// password configured, and a debug log.
func becomeWithPassword(t *testing.T, mode, password string) (*Conn, *syncBuffer, string) {
	t.Helper()
	env, logFile := fakeSudo(t, mode)
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.BecomePassword = password
	cfg.TempDir = t.TempDir()
	var logs syncBuffer
	cfg.Logger = debugLogger(&logs)
	return dial(t, cfg), &logs, logFile
}

func attempts(t *testing.T, logFile string) int {
	b, _ := os.ReadFile(logFile + ".attempts")
	return strings.Count(string(b), "attempt")
}

// --ask-become-pass: the password answers sudo's prompt on stdin, the
// command's own input follows untouched, and the password appears in no
// argv, output or log.
func TestBecomePassword(t *testing.T) {
	c, logs, logFile := becomeWithPassword(t, "askpass", fakeSudoPassword)
	h := c.Host(true)
	out, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"sh", "-c", "cat; echo err >&2"}, Stdin: []byte("the input\n")})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Stdout) != "the input\n" || string(out.Stderr) != "err\n" || out.ExitCode != 0 {
		t.Errorf("got stdout %q stderr %q exit %d", out.Stdout, out.Stderr, out.ExitCode)
	}
	out = run(t, h, "sh", "-c", "exit 3")
	if out.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", out.ExitCode)
	}
	// A file written under become, content through SFTP and sudo's copy.
	p := filepath.Join(t.TempDir(), "f")
	if err := h.WriteFile(t.Context(), p, []byte("content\n"), tasks.WriteOptions{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "content\n", 0o600)
	argv, _ := os.ReadFile(logFile)
	for what, text := range map[string]string{"sudo argv": string(argv), "log": logs.String(),
		"stdout": string(out.Stdout), "stderr": string(out.Stderr)} {
		if strings.Contains(text, "s3cret") {
			t.Errorf("the password appears in the %s:\n%s", what, text)
		}
	}
	if strings.Contains(logs.String(), "dindops-sudo-") {
		t.Errorf("sudo's prompt leaked into the log:\n%s", logs.String())
	}
	if n := attempts(t, logFile); n != 3 {
		t.Errorf("%d password reads, want 3 (one per sudo)", n)
	}
}

// sudo that does not ask (NOPASSWD, a cached ticket): the password is not
// sent, so it never reaches the command's input.
func TestBecomePasswordNotAsked(t *testing.T) {
	c, _, logFile := becomeWithPassword(t, "nopasswd", fakeSudoPassword)
	out, err := c.Host(true).Run(t.Context(), tasks.Cmd{Args: []string{"cat"}, Stdin: []byte("only this")})
	if err != nil || string(out.Stdout) != "only this" {
		t.Errorf("Run = %q, %v", out.Stdout, err)
	}
	if n := attempts(t, logFile); n != 0 {
		t.Errorf("%d password reads, want 0", n)
	}
}

// A wrong password is sent once, then never again on that connection; the
// command never runs.
func TestBecomeWrongPassword(t *testing.T) {
	c, _, logFile := becomeWithPassword(t, "askpass", "wrong")
	h := c.Host(true)
	marker := filepath.Join(t.TempDir(), "ran")
	start := time.Now()
	_, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"touch", marker}})
	var bErr *BecomeError
	if !errors.As(err, &bErr) || bErr.Reason != "wrong password" || !strings.Contains(err.Error(), "sudo rejected the become password for tester on testhost") {
		t.Fatalf("Run = %v, want a rejected password", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran")
	}
	if n := attempts(t, logFile); n != 1 {
		t.Errorf("%d password attempts, want 1", n)
	}
	if _, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"true"}}); !errors.As(err, &bErr) || bErr.Reason != "wrong password" {
		t.Errorf("second Run = %v", err)
	}
	if n := attempts(t, logFile); n != 1 {
		t.Errorf("%d password attempts after a second command, want still 1", n)
	}
}

// requiretty with a password: retried with a pty, the password typed there.
func TestBecomePasswordRequiretty(t *testing.T) {
	c, logs, logFile := becomeWithPassword(t, "requiretty", fakeSudoPassword)
	out := run(t, c.Host(true), "echo", "tty ok")
	if string(out.Stdout) != "tty ok\n" {
		t.Errorf("stdout = %q", out.Stdout)
	}
	if !strings.Contains(logs.String(), "requiretty") {
		t.Errorf("the retry is not logged:\n%s", logs.String())
	}
	if n := attempts(t, logFile); n != 1 {
		t.Errorf("%d password reads, want 1", n)
	}
}

// A sudo that neither prompts nor runs the command is given up on after
// the connect timeout, never waited for forever.
func TestBecomePasswordSilentSudo(t *testing.T) {
	env, _ := fakeSudo(t, "silent")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.BecomePassword = "x"
	cfg.ConnectTimeout = time.Second
	start := time.Now()
	_, err := dial(t, cfg).Host(true).Run(t.Context(), tasks.Cmd{Args: []string{"true"}})
	var bErr *BecomeError
	if !errors.As(err, &bErr) || bErr.Reason != "no prompt" {
		t.Fatalf("Run = %v, want a silent sudo", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}
