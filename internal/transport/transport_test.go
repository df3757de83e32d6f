package transport

import (
	"github.com/charmbracelet/log"

	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
	"github.com/gofrs/flock"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// run runs args on h and fails the test on an error.
func run(t *testing.T, h tasks.Host, args ...string) tasks.Output {
	t.Helper()
	out, err := h.Run(t.Context(), tasks.Cmd{Args: args})
	if err != nil {
		t.Fatalf("Run %q: %v", args, err)
	}
	return out
}

func TestHostKeyPinnedIsAccepted(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s.config())
	out := run(t, c.Host(false), "echo", "hello")
	if got := string(out.Stdout); got != "hello\n" {
		t.Errorf("stdout = %q, want %q", got, "hello\n")
	}
}

func TestHostKeyUnknown(t *testing.T) {
	s := newServer(t, serverOpts{})
	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts")
	os.WriteFile(empty, []byte("# nothing yet\n"), 0o600)
	missing := filepath.Join(dir, "absent_known_hosts")
	cfg := s.config()
	cfg.KnownHostsFiles = []string{empty, missing}

	_, err := Dial(t.Context(), cfg)
	var hkErr *HostKeyError
	if !errors.As(err, &hkErr) {
		t.Fatalf("Dial err = %v (%T), want *HostKeyError", err, err)
	}
	if hkErr.Changed() {
		t.Errorf("Changed() = true for an unknown host")
	}
	fp := ssh.FingerprintSHA256(s.hostKeys[0].PublicKey())
	msg := err.Error()
	for _, want := range []string{"unknown", fp, "ssh-ed25519", empty, missing, hkErr.KnownHostsLine()} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	// The line the message suggests is exactly what makes the host known.
	os.WriteFile(empty, []byte(hkErr.KnownHostsLine()+"\n"), 0o600)
	c := dial(t, cfg)
	run(t, c.Host(false), "true")
}

func TestHostKeyChanged(t *testing.T) {
	s := newServer(t, serverOpts{})
	old := newEd25519(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	content := "# comment\n" + knownhostsLine(s.addr(), old.PublicKey()) + "\n"
	os.WriteFile(kh, []byte(content), 0o600)
	cfg := s.config()
	cfg.KnownHostsFiles = []string{kh}

	_, err := Dial(t.Context(), cfg)
	var hkErr *HostKeyError
	if !errors.As(err, &hkErr) || !hkErr.Changed() {
		t.Fatalf("Dial err = %v, want a changed-key *HostKeyError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"REMOTE HOST IDENTIFICATION HAS CHANGED",
		ssh.FingerprintSHA256(s.hostKeys[0].PublicKey()), // offered
		ssh.FingerprintSHA256(old.PublicKey()),           // expected
		kh + ":2",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// A host known only by its Ed25519 key is asked for that key, although the
// SSH library would prefer ECDSA when the server offers both.
func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	ed := newEd25519(t)
	s := newServer(t, serverOpts{hostKeys: []ssh.Signer{ed, newECDSA(t)}})
	c := dial(t, s.config()) // known_hosts pins only ed
	run(t, c.Host(false), "true")
}

func TestInsecureIgnoreHostKey(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.KnownHostsFiles = nil
	if _, err := Dial(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("Dial without known_hosts = %v, want an error naming known_hosts", err)
	}
	cfg.InsecureIgnoreHostKey = true
	c := dial(t, cfg)
	run(t, c.Host(false), "true")
}

func TestAuthFailureNamesUserHostAndMethods(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	_, other := writeClientKey(t, t.TempDir(), "id_other")
	cfg.IdentityFiles = []string{other}
	_, err := Dial(t.Context(), cfg)
	var authErr *AuthError
	if !errors.As(err, &authErr) {
		t.Fatalf("Dial err = %v (%T), want *AuthError", err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "tester@testhost") || !strings.Contains(msg, other) {
		t.Errorf("message %q should name tester@testhost and %s", msg, other)
	}
}

func TestEncryptedIdentityFile(t *testing.T) {
	s := newServer(t, serverOpts{})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_locked")
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	cfg := s.config()
	cfg.IdentityFiles = []string{path}

	_, err = Dial(t.Context(), cfg)
	var authErr *AuthError
	var idErr *IdentityError
	if !errors.As(err, &authErr) || !errors.As(err, &idErr) || !idErr.Encrypted {
		t.Fatalf("Dial err = %v, want *AuthError wrapping an encrypted *IdentityError", err)
	}
	want := "identity file " + path + " is passphrase-protected; add it to ssh-agent"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
}

func TestAgentKeysAreOffered(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	s := newServer(t, serverOpts{accept: []ssh.Signer{signer}})
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()
	cfg := s.config()
	cfg.IdentityFiles = nil
	cfg.AgentSocket = sock
	c := dial(t, cfg)
	run(t, c.Host(false), "true")
}

func TestDialUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.Port = port
	_, err := Dial(t.Context(), cfg)
	var unErr *UnreachableError
	if !errors.As(err, &unErr) || unErr.Op != "connect" {
		t.Fatalf("Dial err = %v, want *UnreachableError from connect", err)
	}

	// A host that accepts TCP but never speaks SSH times out in the handshake.
	silent := newServer(t, serverOpts{silent: true})
	cfg = silent.config()
	cfg.ConnectTimeout = 200 * time.Millisecond
	_, err = Dial(t.Context(), cfg)
	if !errors.As(err, &unErr) || unErr.Op != "ssh handshake" {
		t.Fatalf("Dial err = %v, want *UnreachableError from the handshake", err)
	}
}

func TestRunExitCodesAndStreams(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	out := run(t, h, "sh", "-c", "echo out; echo err >&2; exit 3")
	if out.ExitCode != 3 || string(out.Stdout) != "out\n" || string(out.Stderr) != "err\n" {
		t.Errorf("got exit %d stdout %q stderr %q, want 3 %q %q", out.ExitCode, out.Stdout, out.Stderr, "out\n", "err\n")
	}
	if out := run(t, h, "true"); out.ExitCode != 0 {
		t.Errorf("true: exit %d", out.ExitCode)
	}
	_, err := tasks.Exec(t.Context(), h, "false")
	var exitErr *tasks.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode != 1 {
		t.Errorf("tasks.Exec(false) = %v, want *tasks.ExitError with code 1", err)
	}
}

func TestRunArgsAreQuoted(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	args := []string{"a b", "it's", "$HOME", "*", "`id`", "; echo pwned", ""}
	out := run(t, h, append([]string{"printf", "[%s]\n"}, args...)...)
	want := ""
	for _, a := range args {
		want += "[" + a + "]\n"
	}
	if string(out.Stdout) != want {
		t.Errorf("stdout = %q, want %q", out.Stdout, want)
	}
}

func TestRunStdin(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	// Nil stdin is closed at once: cat sees EOF and finishes.
	if out := run(t, h, "cat"); len(out.Stdout) != 0 || out.ExitCode != 0 {
		t.Errorf("cat with nil stdin: exit %d stdout %q", out.ExitCode, out.Stdout)
	}
	in := bytes.Repeat([]byte("line of input\n"), 10000)
	out, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"cat"}, Stdin: in})
	if err != nil || !bytes.Equal(out.Stdout, in) {
		t.Errorf("cat with stdin: err %v, got %d bytes, want %d", err, len(out.Stdout), len(in))
	}
	// A command that does not read its input still finishes.
	out, err = h.Run(t.Context(), tasks.Cmd{Args: []string{"true"}, Stdin: bytes.Repeat([]byte("x"), 1<<20)})
	if err != nil || out.ExitCode != 0 {
		t.Errorf("true with unread stdin: %v, exit %d", err, out.ExitCode)
	}
}

// C26: large output on both streams at once is drained concurrently, and
// memory stays bounded: head and tail are kept, the middle is noted.
func TestRunLargeOutputBothStreams(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s.config())
	const n = 50 << 20
	script := fmt.Sprintf(`(yes B | head -c %d; printf ENDERR) >&2 & yes A | head -c %d; printf ENDOUT; wait`, n, n)
	out := run(t, c.Host(false), "sh", "-c", script)
	for _, st := range []struct {
		name, head, end string
		b               []byte
	}{{"stdout", "A\nA\n", "ENDOUT", out.Stdout}, {"stderr", "B\nB\n", "ENDERR", out.Stderr}} {
		if len(st.b) > 2*DefaultOutputLimit+100 {
			t.Errorf("%s kept %d bytes, want at most 2 MiB and a note", st.name, len(st.b))
		}
		omitted := n + len(st.end) - 2*DefaultOutputLimit
		note := fmt.Sprintf("[… %d bytes omitted by dindops …]", omitted)
		if !bytes.HasPrefix(st.b, []byte(st.head)) || !bytes.HasSuffix(st.b, []byte(st.end)) || !bytes.Contains(st.b, []byte(note)) {
			t.Errorf("%s: want head %q, note %q and end %q; got %d bytes", st.name, st.head, note, st.end, len(st.b))
		}
	}
}

func TestCaptureKeepsHeadAndTail(t *testing.T) {
	for _, writes := range [][]int{{3}, {10}, {11}, {4, 4, 4, 4, 4}, {1, 25, 1}, {7, 3, 9, 2}, {30}, {10, 10, 1}} {
		c := newCapture(10)
		var all []byte
		for i, n := range writes {
			p := bytes.Repeat([]byte{byte('a' + i)}, n)
			for j := range p {
				p[j] += byte(j % 3) // make order visible
			}
			all = append(all, p...)
			c.Write(p)
		}
		var want []byte
		if len(all) <= 20 {
			want = all
		} else {
			want = append(append(append([]byte{}, all[:10]...), fmt.Sprintf("\n[… %d bytes omitted by dindops …]\n", len(all)-20)...), all[len(all)-10:]...)
		}
		if got := c.Bytes(); !bytes.Equal(got, want) {
			t.Errorf("writes %v: got %q, want %q", writes, got, want)
		}
	}
}

// C25: bytes that are not UTF-8 come back unchanged.
func TestRunKeepsRawBytes(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	out := run(t, h, "printf", `\377\376caf\351`)
	if want := []byte{0xff, 0xfe, 'c', 'a', 'f', 0xe9}; !bytes.Equal(out.Stdout, want) {
		t.Errorf("stdout = %q, want %q", out.Stdout, want)
	}
}

func TestRunContextCancelStopsCommand(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-s.execs
		cancel()
	}()
	_, err := h.Run(ctx, tasks.Cmd{Args: []string{"sleep", "60"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	// The connection is still usable.
	run(t, h, "true")
}

func TestRunKilledBySignal(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	_, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"kill", "-KILL", "0"}})
	var cmdErr *CommandError
	if !errors.As(err, &cmdErr) || cmdErr.Signal != "KILL" {
		t.Fatalf("Run = %v, want *CommandError with signal KILL", err)
	}
}

func TestOneConnectionForEverything(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s.config())
	h := c.Host(false)
	dir := t.TempDir()
	for i := range 20 {
		run(t, h, "echo", strconv.Itoa(i))
	}
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := h.WriteFile(t.Context(), p, []byte("x"), tasks.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.ReadFile(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
	st := c.Stats()
	// 20 runs, 3 finalize commands; the reads are SFTP requests.
	if st.Commands != 23 {
		t.Errorf("Stats().Commands = %d, want 23", st.Commands)
	}
	// Each write: create, chmod, write, close (12). Each read: stat, open,
	// fstat, read, read to the end, close (18). Once: /etc/passwd and
	// /etc/group, each open, read, read to the end, close (8).
	if st.SFTPOps != 38 {
		t.Errorf("Stats().SFTPOps = %d, want 38", st.SFTPOps)
	}
}

func currentUser(t *testing.T) (name, group string) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return u.Username, g.Name
}

func TestReadFile(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	dir := t.TempDir()
	name, group := currentUser(t)

	// An awkward name: quotes, spaces and a command substitution that must
	// never run.
	p := filepath.Join(dir, "it's a $(touch pwned) file")
	content := []byte("secret\xff\n")
	os.WriteFile(p, content, 0o600)
	os.Chmod(p, 0o600)
	f, err := h.ReadFile(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Content, content) || f.Mode != 0o600 || f.Owner != name || f.Group != group {
		t.Errorf("ReadFile = %q %04o %s:%s, want %q 0600 %s:%s", f.Content, f.Mode, f.Owner, f.Group, content, name, group)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Errorf("the path was interpreted by a shell")
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if f, err := h.ReadFile(t.Context(), empty); err != nil || len(f.Content) != 0 {
		t.Errorf("empty file: %v, %q", err, f.Content)
	}

	_, err = h.ReadFile(t.Context(), filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, tasks.ErrNoParentDir) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist (its directory exists)", err)
	}
	_, err = h.ReadFile(t.Context(), filepath.Join(dir, "no-such-dir", "missing"))
	if !errors.Is(err, tasks.ErrNoParentDir) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file in a missing directory: err = %v, want tasks.ErrNoParentDir (and fs.ErrNotExist)", err)
	}
	_, err = h.ReadFile(t.Context(), dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "not a regular file: directory") {
		t.Errorf("directory: err = %v, want 'not a regular file: directory'", err)
	}
	_, err = h.ReadFile(t.Context(), "relative/path")
	if err == nil {
		t.Errorf("relative path: no error")
	}
}

// Files in /proc report size 0 but have content.
func TestReadFileProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	f, err := h.ReadFile(t.Context(), "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(f.Content, []byte("Name:")) {
		t.Errorf("/proc/self/status read as %q", f.Content)
	}
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func checkFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if string(b) != content || st.Mode().Perm() != mode {
		t.Errorf("%s = %q %04o, want %q %04o", p, b, st.Mode().Perm(), content, mode)
	}
}

// C28 without become: atomic replace with mode, owner and group; nothing
// left behind.
func TestWriteFile(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	dir := t.TempDir()
	p := filepath.Join(dir, "it's daemon.json")
	name, group := currentUser(t)

	if err := h.WriteFile(t.Context(), p, []byte("one\n"), tasks.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "one\n", 0o644)
	err := h.WriteFile(t.Context(), p, []byte("two\xff\n"), tasks.WriteOptions{Mode: 0o600, Owner: name, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "two\xff\n", 0o600)
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q, want only the file", got)
	}
	f, err := h.ReadFile(t.Context(), p)
	if err != nil || f.Owner != name || f.Group != group || f.Mode != 0o600 {
		t.Errorf("ReadFile after write = %+v, %v", f, err)
	}

	// Setuid and friends reach chmod.
	if err := h.WriteFile(t.Context(), filepath.Join(dir, "tool"), []byte("x"), tasks.WriteOptions{Mode: 0o4755}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "tool")); st.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("mode = %v, want setuid", st.Mode())
	}
}

func TestWriteFileValidate(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	os.WriteFile(p, []byte("good old\n"), 0o640)
	validate := []string{"sh", "-c", `grep -q good "$1" || { echo "invalid: no good in $1" >&2; exit 4; }`, "sh", "%s"}

	err := h.WriteFile(t.Context(), p, []byte("bad new\n"), tasks.WriteOptions{Mode: 0o600, Validate: validate})
	var vErr *ValidateError
	var exitErr *tasks.ExitError
	if !errors.As(err, &vErr) || !errors.As(err, &exitErr) || exitErr.ExitCode != 4 || !strings.Contains(string(exitErr.Stderr), "invalid: no good in "+dir+"/.config.toml.dindops-") {
		t.Fatalf("WriteFile = %v, want *ValidateError with the validator's exit 4 and stderr naming the temp file", err)
	}
	checkFile(t, p, "good old\n", 0o640)
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q after a failed validation, want only the old file", got)
	}

	if err := h.WriteFile(t.Context(), p, []byte("good new\n"), tasks.WriteOptions{Mode: 0o600, Validate: validate}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "good new\n", 0o600)
}

func TestWriteFileFailuresLeaveNothing(t *testing.T) {
	s := newServer(t, serverOpts{})
	h := dial(t, s.config()).Host(false)
	dir := t.TempDir()

	err := h.WriteFile(t.Context(), filepath.Join(dir, "nodir", "f"), []byte("x"), tasks.WriteOptions{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "parent directory") {
		t.Errorf("missing dir: err = %v, want fs.ErrNotExist naming the parent directory", err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	err = h.WriteFile(t.Context(), sub, []byte("x"), tasks.WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("write onto a directory: err = %v", err)
	}
	err = h.WriteFile(t.Context(), filepath.Join(dir, "f"), []byte("x"), tasks.WriteOptions{Owner: "no-such-user-dindops"})
	if err == nil || !strings.Contains(err.Error(), "set owner") {
		t.Errorf("unknown owner: err = %v", err)
	}
	if got := entries(t, dir); len(got) != 1 || len(entries(t, sub)) != 0 {
		t.Errorf("left behind: %q and %q", got, entries(t, sub))
	}
}

// Commands, file reads and the install step of writes go through sudo -n,
// argv intact.
func fakeSudo(t *testing.T, mode string) (env []string, logFile string) {
	t.Helper()
	bin := t.TempDir()
	logFile = filepath.Join(t.TempDir(), "sudo.log")
	script := `#!/bin/sh
# fake sudo: checks the arguments dindops must pass, then runs the command.
# "sudo -n -u USER -- CMD" never prompts; "sudo -S -p PROMPT -u USER -- CMD"
# prompts on stderr and reads the password from stdin, as the real one.
printf '%s\n' "$@" "--end--" >> "$FAKE_SUDO_LOG"
if [ "$1" = -S ]; then
	[ "$2" = -p ] && [ "$4" = -u ] && [ "$6" = -- ] || { echo "fake sudo: bad arguments: $*" >&2; exit 99; }
	prompt=$3
	shift 6
	case $FAKE_SUDO_MODE in
	requiretty*) [ -n "$DINDOPS_TEST_PTY" ] || { echo "sudo: sorry, you must have a tty to run sudo" >&2; exit 1; } ;;
	silent) sleep 60; exit 1 ;;
	esac
	case $FAKE_SUDO_MODE in
	*nopasswd) ;;
	*)
		tries=0
		while :; do
			printf '%s' "$prompt" >&2
			IFS= read -r pw || { echo "sudo: no password was provided" >&2; exit 1; }
			echo attempt >> "$FAKE_SUDO_LOG.attempts"
			[ "$pw" = "$FAKE_SUDO_PASSWORD" ] && break
			tries=$((tries + 1))
			[ $tries -lt 3 ] || { echo "sudo: 3 incorrect password attempts" >&2; exit 1; }
			echo "Sorry, try again." >&2
		done ;;
	esac
	exec "$@"
fi
[ "$1" = -n ] && [ "$2" = -u ] && [ "$4" = -- ] || { echo "fake sudo: bad arguments: $*" >&2; exit 99; }
shift 4
case $FAKE_SUDO_MODE in
password) echo "sudo: a password is required" >&2; exit 1 ;;
requiretty) [ -n "$DINDOPS_TEST_PTY" ] || { echo "sudo: sorry, you must have a tty to run sudo" >&2; exit 1; } ;;
esac
exec "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_SUDO_LOG=" + logFile, "FAKE_SUDO_MODE=" + mode,
		"FAKE_SUDO_PASSWORD=" + fakeSudoPassword}, logFile
}

const fakeSudoPassword = "s3cret pass'word"

func TestBecomeRunsThroughSudo(t *testing.T) {
	env, logFile := fakeSudo(t, "")
	s := newServer(t, serverOpts{env: env})
	c := dial(t, s.config())
	args := []string{"a b", "it's", "$HOME", "*", ""}
	out := run(t, c.Host(true), append([]string{"printf", "[%s]\n"}, args...)...)
	if want := "[a b]\n[it's]\n[$HOME]\n[*]\n[]\n"; string(out.Stdout) != want {
		t.Errorf("stdout = %q, want %q", out.Stdout, want)
	}
	logged, _ := os.ReadFile(logFile)
	want := "-n\n-u\nroot\n--\nprintf\n[%s]\n\na b\nit's\n$HOME\n*\n\n--end--\n"
	if string(logged) != want {
		t.Errorf("sudo got argv %q, want %q", logged, want)
	}
	// Without become, sudo is not used.
	run(t, c.Host(false), "true")
	if again, _ := os.ReadFile(logFile); len(again) != len(logged) {
		t.Errorf("sudo ran for a command without become")
	}
	// Logged in as the become user: no sudo either.
	cfg := s.config()
	cfg.BecomeUser = cfg.User
	run(t, dial(t, cfg).Host(true), "true")
	if again, _ := os.ReadFile(logFile); len(again) != len(logged) {
		t.Errorf("sudo ran although the login user is the become user")
	}
}

// C28 with become: upload to a private directory, install under sudo with
// owner, group and mode; no temporary file anywhere afterwards.
func TestBecomeWriteFile(t *testing.T) {
	env, logFile := fakeSudo(t, "")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.TempDir = t.TempDir()
	c := dial(t, cfg)
	h := c.Host(true)
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	name, group := currentUser(t)
	validate := []string{"grep", "-q", "concurrent", "%s"}

	err := h.WriteFile(t.Context(), p, []byte("concurrent = 4\n"), tasks.WriteOptions{Mode: 0o600, Owner: name, Group: group, Validate: validate})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "concurrent = 4\n", 0o600)
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("target directory holds %q", got)
	}
	if got := entries(t, cfg.TempDir); len(got) != 0 {
		t.Errorf("private upload left behind: %q", got)
	}
	if logged, _ := os.ReadFile(logFile); !bytes.HasPrefix(logged, []byte("-n\n-u\nroot\n--\nsh\n-c\n")) {
		t.Errorf("install did not go through sudo: %q", logged)
	}
	if c.Stats().SFTPOps == 0 {
		t.Errorf("the upload did not use SFTP")
	}

	// A failed validation leaves the old file and no temporary file.
	err = h.WriteFile(t.Context(), p, []byte("broken\n"), tasks.WriteOptions{Mode: 0o644, Validate: validate})
	var vErr *ValidateError
	if !errors.As(err, &vErr) {
		t.Fatalf("WriteFile = %v, want *ValidateError", err)
	}
	checkFile(t, p, "concurrent = 4\n", 0o600)
	if got, tmp := entries(t, dir), entries(t, cfg.TempDir); len(got) != 1 || len(tmp) != 0 {
		t.Errorf("left behind: %q and %q", got, tmp)
	}

	// Missing parent directory.
	err = h.WriteFile(t.Context(), filepath.Join(dir, "nodir", "f"), []byte("x"), tasks.WriteOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir under become: %v, want fs.ErrNotExist", err)
	}
	if tmp := entries(t, cfg.TempDir); len(tmp) != 0 {
		t.Errorf("private upload left behind: %q", tmp)
	}

	f, err := h.ReadFile(t.Context(), p)
	if err != nil || string(f.Content) != "concurrent = 4\n" {
		t.Errorf("ReadFile under become = %q, %v", f.Content, err)
	}
}

// Becoming a user other than root, who could not read the login user's
// private upload, sends the content on stdin instead.
func TestBecomeOtherUserWritesThroughStdin(t *testing.T) {
	env, logFile := fakeSudo(t, "")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.BecomeUser = "gitlab-runner"
	c := dial(t, cfg)
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := c.Host(true).WriteFile(t.Context(), p, []byte("via stdin\n"), tasks.WriteOptions{Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "via stdin\n", 0o640)
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q", got)
	}
	if n := c.Stats().SFTPOps; n != 0 {
		t.Errorf("SFTPOps = %d, want 0", n)
	}
	if logged, _ := os.ReadFile(logFile); !bytes.HasPrefix(logged, []byte("-n\n-u\ngitlab-runner\n--\n")) {
		t.Errorf("sudo argv %q", logged)
	}
}

// C21: sudo wanting a password fails at once with a clear, typed error.
func TestBecomePasswordRequired(t *testing.T) {
	env, _ := fakeSudo(t, "password")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.TempDir = t.TempDir()
	h := dial(t, cfg).Host(true)
	dir := t.TempDir()

	_, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"true"}})
	var bErr *BecomeError
	if !errors.As(err, &bErr) || bErr.Reason != "password" {
		t.Fatalf("Run = %v, want *BecomeError for a password", err)
	}
	if want := "sudo requires a password for tester on testhost: give it with --ask-become-pass, allow NOPASSWD"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	if _, err := h.ReadFile(t.Context(), "/etc/hostname"); !errors.As(err, &bErr) {
		t.Errorf("ReadFile = %v, want *BecomeError", err)
	}
	err = h.WriteFile(t.Context(), filepath.Join(dir, "f"), []byte("x"), tasks.WriteOptions{})
	if !errors.As(err, &bErr) {
		t.Errorf("WriteFile = %v, want *BecomeError", err)
	}
	if got, tmp := entries(t, dir), entries(t, cfg.TempDir); len(got) != 0 || len(tmp) != 0 {
		t.Errorf("left behind: %q and %q", got, tmp)
	}
}

// C20: requiretty is recognised and the command retried once with a pty
// (said in the debug log); later commands use a pty from the start.
func TestBecomeRequiretty(t *testing.T) {
	env, _ := fakeSudo(t, "requiretty")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	var logs syncBuffer
	cfg.Logger = debugLogger(&logs)
	c := dial(t, cfg)
	h := c.Host(true)

	out := run(t, h, "echo", "with a tty")
	if string(out.Stdout) != "with a tty\n" {
		t.Errorf("stdout = %q", out.Stdout)
	}
	if n := c.Stats().Commands; n != 2 {
		t.Errorf("Commands = %d, want 2 (the refused try and the pty retry)", n)
	}
	if !strings.Contains(logs.String(), "requiretty") {
		t.Errorf("debug log does not mention the retry:\n%s", logs.String())
	}
	// Commands that wait for input get EOF under a pty too.
	run(t, h, "cat")
	if n := c.Stats().Commands; n != 3 {
		t.Errorf("Commands = %d, want 3 (pty used at once)", n)
	}
	// Input cannot go through a pty: a fix-it error instead.
	_, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"cat"}, Stdin: []byte("x")})
	var bErr *BecomeError
	if !errors.As(err, &bErr) || bErr.Reason != "requiretty" || !strings.Contains(err.Error(), "!requiretty") {
		t.Errorf("Run with stdin = %v, want a requiretty *BecomeError", err)
	}
	// Writes as root need no input: they work.
	cfg2 := s.config()
	cfg2.TempDir = t.TempDir()
	dir := t.TempDir()
	if err := dial(t, cfg2).Host(true).WriteFile(t.Context(), filepath.Join(dir, "f"), []byte("x"), tasks.WriteOptions{}); err != nil {
		t.Errorf("WriteFile with requiretty: %v", err)
	}
}

// C27: a host that stops answering is detected by keepalives; the running
// command fails with "connection lost" instead of hanging.
func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.KeepaliveInterval = 50 * time.Millisecond
	cfg.KeepaliveCountMax = 3
	c := dial(t, cfg)
	go func() {
		<-s.execs
		s.stall.Store(true)
	}()
	// If keepalives did not work, this would return sleep's success after 30s.
	_, err := c.Host(false).Run(t.Context(), tasks.Cmd{Args: []string{"sleep", "30"}})
	var unErr *UnreachableError
	if !errors.Is(err, ErrConnectionLost) || !errors.As(err, &unErr) {
		t.Fatalf("Run = %v, want *UnreachableError matching ErrConnectionLost", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "connection lost while running sleep 30") || !strings.Contains(msg, "keepalive") {
		t.Errorf("message %q", msg)
	}
	// Everything after fails the same way, at once.
	if _, err := c.Host(false).Run(t.Context(), tasks.Cmd{Args: []string{"true"}}); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("next Run = %v, want ErrConnectionLost", err)
	}
}

// A healthy but slow command is not mistaken for a dead peer.
func TestKeepaliveKeepsHealthyConnection(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.KeepaliveInterval = 100 * time.Millisecond
	cfg.KeepaliveCountMax = 5
	h := dial(t, cfg).Host(false)
	run(t, h, "sleep", "1")
}

func TestConnectionDroppedByHost(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.KeepaliveInterval = -1
	c := dial(t, cfg)
	go func() {
		<-s.execs
		s.dropAll()
	}()
	_, err := c.Host(false).Run(t.Context(), tasks.Cmd{Args: []string{"sleep", "30"}})
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Run = %v, want ErrConnectionLost", err)
	}
}

func TestIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	ln.Close()
	s := newServer(t, serverOpts{listen: "[::1]:0"})
	if kh, _ := os.ReadFile(s.knownHosts); !strings.Contains(string(kh), "[::1]:") {
		t.Fatalf("known_hosts %q should name [::1]:port", kh)
	}
	cfg := s.config()
	if cfg.Address != "::1" {
		t.Fatalf("address %q", cfg.Address)
	}
	h := dial(t, cfg).Host(false)
	run(t, h, "true")
	cfg.Address = "[::1]"
	if _, err := Dial(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "without brackets") {
		t.Errorf("bracketed address: %v", err)
	}
}

func TestWriteFileWithoutSFTPSubsystem(t *testing.T) {
	s := newServer(t, serverOpts{noSFTP: true})
	c := dial(t, s.config())
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := c.Host(false).WriteFile(t.Context(), p, []byte("no sftp\n"), tasks.WriteOptions{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, "no sftp\n", 0o600)
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q", got)
	}
}

// Secrets given as sensitive stdin or content never reach the log.
func TestSecretsNeverLogged(t *testing.T) {
	env, _ := fakeSudo(t, "")
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	var logs syncBuffer
	cfg.Logger = debugLogger(&logs)
	c := dial(t, cfg)
	for _, h := range []tasks.Host{c.Host(false), c.Host(true)} {
		if _, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"cat"}, Stdin: []byte("stdin-s3cret"), SensitiveStdin: true}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "token")
		if err := h.WriteFile(t.Context(), p, []byte("content-s3cret"), tasks.WriteOptions{Sensitive: true}); err != nil {
			t.Fatal(err)
		}
	}
	if l := logs.String(); strings.Contains(l, "s3cret") || !strings.Contains(l, "(sensitive)") {
		t.Errorf("log shows a secret or lacks the sensitive marker:\n%s", l)
	}
}

func keyBase64(k ssh.PublicKey) string {
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))[len(k.Type())+1:]
}

func knownhostsLine(addr string, k ssh.PublicKey) string {
	host, port, _ := net.SplitHostPort(addr)
	if port != "22" {
		host = "[" + host + "]:" + port
	}
	return host + " " + k.Type() + " " + keyBase64(k)
}

// C18: accept-new for many hosts at once records every key exactly once, in
// whole lines; afterwards the hosts are known and checked strictly.
func TestAcceptNewHostKeysInParallel(t *testing.T) {
	const n = 40
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts") // neither exists yet
	servers := make([]*testServer, n)
	for i := range servers {
		servers[i] = newServer(t, serverOpts{})
	}
	// Each host is dialed twice at once: its key must still be added once.
	errs := make(chan error, 2*n)
	for _, s := range append(servers, servers...) {
		go func() {
			cfg := s.config()
			cfg.KnownHostsFiles = []string{kh}
			cfg.AcceptNewHostKey = true
			c, err := Dial(t.Context(), cfg)
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Errorf("Dial with accept-new: %v", err)
		}
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != n {
		t.Errorf("known_hosts has %d lines, want %d:\n%s", len(lines), n, b)
	}
	for _, s := range servers {
		want := knownhostsLine(s.addr(), s.hostKeys[0].PublicKey())
		if c := strings.Count(string(b), want+"\n"); c != 1 {
			t.Errorf("line for %s appears %d times, want 1", s.addr(), c)
		}
		cfg := s.config()
		cfg.KnownHostsFiles = []string{kh}
		dial(t, cfg).Close()
	}
}

// accept-new never accepts a changed key.
func TestAcceptNewRefusesChangedKey(t *testing.T) {
	s := newServer(t, serverOpts{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhostsLine(s.addr(), newEd25519(t).PublicKey())), 0o600) // no final newline
	cfg := s.config()
	cfg.KnownHostsFiles = []string{kh}
	cfg.AcceptNewHostKey = true
	_, err := Dial(t.Context(), cfg)
	var hkErr *HostKeyError
	if !errors.As(err, &hkErr) || !hkErr.Changed() {
		t.Fatalf("Dial = %v, want a changed-key *HostKeyError", err)
	}
	if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 0 {
		t.Errorf("known_hosts was written: %q", b)
	}
}

// accept-new appends under the known_hosts file's lock (the one other
// dindops processes take), so it waits while someone else holds it.
func TestAcceptNewWaitsForTheLock(t *testing.T) {
	s := newServer(t, serverOpts{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	lock := flock.New(kh)
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	cfg := s.config()
	cfg.KnownHostsFiles = []string{kh}
	cfg.AcceptNewHostKey = true
	done := make(chan error, 1)
	go func() {
		c, err := Dial(t.Context(), cfg)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Dial finished (%v) while known_hosts was locked", err)
	case <-time.After(300 * time.Millisecond):
	}
	lock.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(kh); string(b) != knownhostsLine(s.addr(), s.hostKeys[0].PublicKey())+"\n" {
		t.Errorf("known_hosts = %q", b)
	}
}

// Two runs never change one host at once: the second Lock fails with
// *LockedError while the first holds it, and succeeds once it is released.
// TestLockIsExclusive takes the lock on a host with bash (its read with a
// timeout keeps the session alive) and on one without (sh's read and a
// loop of sleep: PATH holds only sh, flock and sleep).
func TestLockIsExclusive(t *testing.T) {
	t.Run("bash", func(t *testing.T) { testLockIsExclusive(t, nil) })
	t.Run("sh", func(t *testing.T) {
		bin := t.TempDir()
		for _, prog := range []string{"sh", "flock", "sleep"} {
			p, err := exec.LookPath(prog)
			if err != nil {
				t.Skip(err)
			}
			if err := os.Symlink(p, filepath.Join(bin, prog)); err != nil {
				t.Fatal(err)
			}
		}
		testLockIsExclusive(t, []string{"PATH=" + bin})
	})
}

func testLockIsExclusive(t *testing.T, env []string) {
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.LockPath = filepath.Join(t.TempDir(), "dindops.lock")
	var logs syncBuffer
	cfg.Logger = log.New(&logs)
	first, second := dial(t, cfg), dial(t, cfg)
	release, err := first.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Lock(t.Context())
	var locked *LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), "another dindops run is changing this host") {
		t.Fatalf("second lock: %v, want *LockedError", err)
	}
	// The first connection still runs commands while it holds the lock.
	if out := run(t, first.Host(false), "echo", "busy"); string(out.Stdout) != "busy\n" {
		t.Fatalf("run under lock: %q", out.Stdout)
	}
	release()
	release() // twice is harmless
	release2, err := second.Lock(t.Context())
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
	if strings.Contains(logs.String(), "did not end") {
		t.Errorf("release waited for the lock's session to time out:\n%s", logs.String())
	}
}

// TestLockTimeoutWaits: with LockTimeout, a second run waits on the host
// (flock -w) and gets the lock once the first releases it; a lock held
// longer than LockTimeout is a *LockedError that says how long it waited.
func TestLockTimeoutWaits(t *testing.T) {
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.LockPath = filepath.Join(t.TempDir(), "dindops.lock")
	first := dial(t, cfg)
	cfg.LockTimeout = 5 * time.Second
	second := dial(t, cfg)
	release, err := first.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, release)
	start := time.Now()
	release2, err := second.Lock(t.Context())
	if err != nil {
		t.Fatalf("second lock, waiting up to 5s for a release after 300ms: %v", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("second lock taken after %s, before the first was released", waited)
	}
	release2()

	release, err = first.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cfg.LockTimeout = 200 * time.Millisecond
	third := dial(t, cfg)
	_, err = third.Lock(t.Context())
	var locked *LockedError
	if !errors.As(err, &locked) || locked.Waited != 200*time.Millisecond || !strings.Contains(err.Error(), "for the 200ms --lock-timeout allowed") {
		t.Fatalf("lock held past the timeout: %v, want *LockedError after 200ms", err)
	}
}

// TestProbeIsOneRoundTrip runs a batch of probes with and without the
// SFTP subsystem: without it, every probe runs in one remote shell; with
// it, files and test(1) of a path are SFTP requests and only the other
// commands start a shell.
func TestProbeIsOneRoundTrip(t *testing.T) {
	for _, sftpOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("sftp=%v", sftpOn), func(t *testing.T) {
			s := newServer(t, serverOpts{noSFTP: !sftpOn})
			c := dial(t, s.config())
			dir := t.TempDir()
			file := filepath.Join(dir, "daemon.json")
			if err := os.WriteFile(file, []byte("{\"a\": 1}\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			before := c.Stats().Commands
			res, err := tasks.RunProbes(t.Context(), c.Host(false),
				tasks.ReadProbe(file),
				tasks.ReadProbe(filepath.Join(dir, "missing")),
				tasks.RunProbe("sh", "-c", "printf '\\377\\376 out'; echo err >&2; exit 3"),
				tasks.RunProbe("test", "-d", dir),
				tasks.RunProbe("test", "-d", file),
				tasks.RunProbe("test", "-e", filepath.Join(dir, "missing")),
				tasks.RunProbe("test", "-f", file),
				tasks.RunProbe("cat"), // stdin is closed: EOF, not a hang
			)
			if err != nil {
				t.Fatal(err)
			}
			if n := c.Stats().Commands - before; n != 1 {
				t.Errorf("%d remote commands for 8 probes, want 1", n)
			}
			if !res[0].Exists || string(res[0].File.Content) != "{\"a\": 1}\n" || res[0].File.Mode != 0o640 {
				t.Errorf("file probe = %+v", res[0])
			}
			if res[1].Exists || res[1].Err != nil {
				t.Errorf("missing file probe = %+v", res[1])
			}
			if o := res[2].Output; o.ExitCode != 3 || string(o.Stdout) != "\xff\xfe out" || string(o.Stderr) != "err\n" {
				t.Errorf("command probe = %+v", o)
			}
			for i, want := range map[int]int{3: 0, 4: 1, 5: 1, 6: 0, 7: 0} {
				if got := res[i].Output.ExitCode; got != want || res[i].Err != nil {
					t.Errorf("probe %d = %+v (exit status %d), want exit status %d", i, res[i], got, want)
				}
			}
			// A single probe is that one command, as Run or ReadFile would
			// run it; a file is no command at all over SFTP.
			before = c.Stats().Commands
			res, err = tasks.RunProbes(t.Context(), c.Host(false), tasks.ReadProbe(file))
			if err != nil || !res[0].Exists || string(res[0].File.Content) != "{\"a\": 1}\n" {
				t.Errorf("single file probe: %v %+v", err, res)
			}
			res, err = tasks.RunProbes(t.Context(), c.Host(false), tasks.RunProbe("sh", "-c", "echo out; exit 4"))
			if err != nil || res[0].Output.ExitCode != 4 || string(res[0].Output.Stdout) != "out\n" {
				t.Errorf("single command probe: %v %+v", err, res)
			}
			want := int64(2)
			if sftpOn {
				want = 1
			}
			if n := c.Stats().Commands - before; n != want {
				t.Errorf("%d remote commands for 2 single probes, want %d", n, want)
			}
			// A directory read as a file is that probe's error, not the batch's.
			res, err = tasks.RunProbes(t.Context(), c.Host(false), tasks.ReadProbe(dir), tasks.RunProbe("true"))
			if err == nil || res[0].Err == nil || res[1].Err != nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("directory probe: err %v, results %+v", err, res)
			}
		})
	}
}
