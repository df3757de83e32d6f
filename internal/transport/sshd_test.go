package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dindops/dindops/tasks"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// lockedBuffer collects sshd's log for failure reports.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startSSHD runs a real OpenSSH sshd on 127.0.0.1 with throwaway host and
// client keys, for the current user, and returns a Config that trusts it.
// It skips the test when sshd or ssh-keygen is not installed.
func startSSHD(t *testing.T) Config {
	t.Helper()
	return startSSHDWith(t, "")
}

// startSSHDWith is startSSHD with extra sshd_config lines.
func startSSHDWith(t *testing.T, extra string) Config {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("skipping: OpenSSH sshd not found at %s (install openssh-server to run these tests)", sshdPath)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("skipping: ssh-keygen not found (install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		// sshd refuses to start as root without its privilege separation
		// directory, which the system service normally creates.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Skipf("skipping: cannot create /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	clientSigner, clientKey := writeClientKey(t, dir, "id_ed25519")
	authorized := filepath.Join(dir, "authorized_keys")
	os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o600)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cfgFile := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel VERBOSE
%s
`, port, hostKey, authorized, extra)
	os.WriteFile(cfgFile, []byte(conf), 0o600)

	var logs lockedBuffer
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	// Wait until it listens (or dies).
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	for i := 0; ; i++ {
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", logs.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatalf("sshd does not listen on %s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{addr}, hk)+"\n"), 0o600)
	return Config{
		Name:            "sshd",
		Address:         "127.0.0.1",
		Port:            port,
		User:            u.Username,
		IdentityFiles:   []string{clientKey},
		KnownHostsFiles: []string{knownHosts},
	}
}

func TestOpenSSH(t *testing.T) {
	cfg := startSSHD(t)
	c := dial(t, cfg)
	h := c.Host(false)
	ctx := t.Context()

	t.Run("run", func(t *testing.T) {
		out := run(t, h, "sh", "-c", "echo out; printf '\\377' >&2; exit 7")
		if out.ExitCode != 7 || string(out.Stdout) != "out\n" || !bytes.Equal(out.Stderr, []byte{0xff}) {
			t.Errorf("got exit %d stdout %q stderr %q", out.ExitCode, out.Stdout, out.Stderr)
		}
		if out := run(t, h, "cat"); len(out.Stdout) != 0 {
			t.Errorf("cat with nil stdin printed %q", out.Stdout)
		}
		out, err := h.Run(ctx, tasks.Cmd{Args: []string{"cat"}, Stdin: []byte("in")})
		if err != nil || string(out.Stdout) != "in" {
			t.Errorf("cat with stdin: %q %v", out.Stdout, err)
		}
		args := []string{"a b", "it's", "$HOME", "*"}
		out = run(t, h, append([]string{"printf", "[%s]"}, args...)...)
		if string(out.Stdout) != "[a b][it's][$HOME][*]" {
			t.Errorf("quoting: %q", out.Stdout)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(200 * time.Millisecond); cancel() }()
		if _, err := h.Run(ctx, tasks.Cmd{Args: []string{"sleep", "60"}}); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		run(t, h, "true")
	})

	t.Run("read", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "secret")
		os.WriteFile(p, []byte("s\n"), 0o600)
		os.Chmod(p, 0o600)
		name, group := currentUser(t)
		f, err := h.ReadFile(ctx, p)
		if err != nil || string(f.Content) != "s\n" || f.Mode != 0o600 || f.Owner != name || f.Group != group {
			t.Errorf("ReadFile = %+v, %v", f, err)
		}
		if _, err := h.ReadFile(ctx, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, tasks.ErrNoParentDir) {
			t.Errorf("missing: %v", err)
		}
		if _, err := h.ReadFile(ctx, filepath.Join(dir, "nodir", "missing")); !errors.Is(err, tasks.ErrNoParentDir) {
			t.Errorf("missing, in a missing directory: %v", err)
		}
		if f, err := h.ReadFile(ctx, "/proc/self/status"); err != nil || !bytes.Contains(f.Content, []byte("Name:")) {
			t.Errorf("/proc/self/status: %q %v", f.Content, err)
		}
	})

	// Without become, reads are SFTP requests to sshd's sftp-server: no
	// command, the same answers as the shell's stat and cat.
	t.Run("read over sftp", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		big := bytes.Repeat([]byte("0123456789abcdef"), 10<<10) // 160 KiB: several requests
		os.WriteFile(p, big, 0o640)
		syscall.Chmod(p, 0o4750) // raw bits: os.Chmod would drop the setuid bit
		link := filepath.Join(dir, "link")
		os.Symlink(p, link)
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		before := c.Stats().Commands
		for _, q := range []string{p, link} {
			f, err := h.ReadFile(ctx, q)
			if err != nil || !bytes.Equal(f.Content, big) || f.Mode != 0o4750 {
				t.Errorf("ReadFile(%s) = %d bytes mode %04o, %v", q, len(f.Content), f.Mode, err)
			}
		}
		// A FIFO is never opened (that would wait for a writer).
		if _, err := h.ReadFile(ctx, fifo); err == nil || !strings.Contains(err.Error(), "not a regular file: named pipe") {
			t.Errorf("ReadFile(fifo) = %v", err)
		}
		if _, err := h.ReadFile(ctx, dir); err == nil || !strings.Contains(err.Error(), "not a regular file: directory") {
			t.Errorf("ReadFile(dir) = %v", err)
		}
		if n := c.Stats().Commands - before; n != 0 {
			t.Errorf("%d commands for reads over SFTP, want 0", n)
		}
		if os.Getuid() != 0 {
			return
		}
		// An owner that /etc/passwd does not name is asked of the shell,
		// whose stat knows every name service (here: none, so numeric).
		if err := os.Chown(p, 54321, 54322); err != nil {
			t.Fatal(err)
		}
		before = c.Stats().Commands
		f, err := h.ReadFile(ctx, p)
		if err != nil || f.Owner != "54321" || f.Group != "54322" || !bytes.Equal(f.Content, big) {
			t.Errorf("ReadFile(unnamed owner) = %s:%s %d bytes, %v", f.Owner, f.Group, len(f.Content), err)
		}
		if n := c.Stats().Commands - before; n != 1 {
			t.Errorf("%d commands for a file of an unnamed owner, want 1 (the shell's read)", n)
		}
		// In a batch of probes too: that file alone goes to the shell.
		before = c.Stats().Commands
		res, err := tasks.RunProbes(ctx, h, tasks.ReadProbe(p), tasks.ReadProbe(link+"-missing"), tasks.RunProbe("test", "-d", dir))
		if err != nil || res[0].File.Owner != "54321" || !bytes.Equal(res[0].File.Content, big) || res[1].Exists || res[2].Output.ExitCode != 0 {
			t.Errorf("probes with an unnamed owner: %v %+v", err, res[1:])
		}
		if n := c.Stats().Commands - before; n != 1 {
			t.Errorf("%d commands for the batch, want 1 (the unnamed owner's read)", n)
		}
	})

	t.Run("write", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "config.toml")
		os.WriteFile(p, []byte("old\n"), 0o644)
		name, group := currentUser(t)
		opts := tasks.WriteOptions{Mode: 0o600, Owner: name, Group: group}
		if os.Getuid() == 0 {
			opts.Owner, opts.Group = "root", "root"
		}
		if err := h.WriteFile(ctx, p, []byte("new\n"), opts); err != nil {
			t.Fatal(err)
		}
		checkFile(t, p, "new\n", 0o600)
		f, err := h.ReadFile(ctx, p)
		if err != nil || f.Owner != opts.Owner || f.Group != opts.Group {
			t.Errorf("owner %s:%s, want %s:%s (%v)", f.Owner, f.Group, opts.Owner, opts.Group, err)
		}
		opts.Validate = []string{"grep", "-q", "valid", "%s"}
		var vErr *ValidateError
		if err := h.WriteFile(ctx, p, []byte("nope\n"), opts); !errors.As(err, &vErr) {
			t.Errorf("WriteFile = %v, want *ValidateError", err)
		}
		checkFile(t, p, "new\n", 0o600)
		if got := entries(t, dir); len(got) != 1 {
			t.Errorf("directory holds %q", got)
		}
		if c.Stats().SFTPOps == 0 {
			t.Errorf("no SFTP operation counted")
		}
	})

	// A real sshd refuses keepalive@openssh.com requests; a refusal is an
	// answer, so a slow command on a healthy connection is not cut off.
	t.Run("keepalive", func(t *testing.T) {
		kcfg := cfg
		kcfg.KeepaliveInterval = 100 * time.Millisecond
		kcfg.KeepaliveCountMax = 5
		run(t, dial(t, kcfg).Host(false), "sleep", "1")
	})

	// The pty used for sudo's requiretty: a real terminal, and no carriage
	// returns added to the output.
	t.Run("pty", func(t *testing.T) {
		out, err := c.exec(ctx, "tty; echo done </dev/null", nil, execOpts{display: "tty", pty: true})
		if err != nil || !strings.HasPrefix(string(out.Stdout), "/dev/pts/") || strings.Contains(string(out.Stdout), "\r") {
			t.Errorf("tty under a pty: %q %v", out.Stdout, err)
		}
	})

	t.Run("unknown host key", func(t *testing.T) {
		ucfg := cfg
		ucfg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")}
		_, err := Dial(ctx, ucfg)
		var hkErr *HostKeyError
		if !errors.As(err, &hkErr) || hkErr.Changed() || !strings.Contains(err.Error(), "SHA256:") {
			t.Errorf("Dial = %v, want an unknown-host *HostKeyError", err)
		}
	})
}

// MaxSessions (10 by default): more commands at once than the host allows
// on one connection queue; with the default limit they never reach it, and
// with a lower MaxSessions the refused ones wait and then run.
func TestOpenSSHMaxSessions(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
	}{{"default", ""}, {"MaxSessions 3", "MaxSessions 3"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, startSSHDWith(t, tc.conf))
			h := c.Host(false)
			var wg sync.WaitGroup
			errs := make(chan error, 12)
			for i := range 12 { // more than MaxSessions and than our limit of 8
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"sh", "-c", fmt.Sprintf("sleep 0.2; echo %d", i)}})
					if err == nil && strings.TrimSpace(string(out.Stdout)) != fmt.Sprint(i) {
						err = fmt.Errorf("command %d printed %q", i, out.Stdout)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if c.lost() != nil {
				t.Errorf("connection lost: %v", c.lost())
			}
		})
	}
}

// MaxStartups: many logins at once to one sshd. The pool's per-endpoint
// limit keeps them under the default 10:30:100; beyond a tighter
// MaxStartups the dropped ones are retried with backoff.
func TestOpenSSHMaxStartups(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		pool       *Pool
		n          int
	}{
		{"default", "", NewPool(), 30},
		{"MaxStartups 2 and 6 handshakes at once", "MaxStartups 2", &Pool{MaxHandshakes: 6}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := startSSHDWith(t, tc.conf)
			var logs syncBuffer
			cfg.Logger = debugLogger(&logs)
			var wg sync.WaitGroup
			errs := make(chan error, tc.n)
			for i := range tc.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					hcfg := cfg
					hcfg.Name = fmt.Sprintf("alias-%d", i)
					c, err := tc.pool.Dial(t.Context(), hcfg)
					if err == nil {
						c.Close()
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			t.Logf("retries: %d", strings.Count(logs.String(), "retrying"))
		})
	}
}
