package transport

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The run lock refuses what another user may have planted: a symbolic
// link, a file another user owns, a directory others may write. The error
// names the host, the path and what to do; the planted file is untouched.
// (The tests run the lock as root, as a root login or sudo -n does.)
func TestLockRefusesAnUntrustedFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("skipping: the host's lock is taken as root; run the tests as root")
	}
	nobody := func(t *testing.T, p string) {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Skip(err)
		}
	}
	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, dir, lock string)
	}{
		{"symlink", "is a symbolic link", func(t *testing.T, dir, lock string) {
			os.Symlink(filepath.Join(dir, "elsewhere"), lock)
		}},
		{"owned by another user", "belongs to uid 65534", func(t *testing.T, dir, lock string) {
			os.WriteFile(lock, nil, 0o644)
			nobody(t, lock)
		}},
		{"directory of another user", "belongs to uid 65534, not to root", func(t *testing.T, dir, lock string) {
			nobody(t, dir)
		}},
		{"directory others may write", "may be written by other users (mode 1777)", func(t *testing.T, dir, lock string) {
			os.Chmod(dir, os.ModeSticky|0o777)
		}},
		{"not a file", "is not a regular file", func(t *testing.T, dir, lock string) {
			os.Mkdir(lock, 0o700)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, serverOpts{})
			cfg := s.config()
			dir := filepath.Join(t.TempDir(), "dindops")
			os.Mkdir(dir, 0o755)
			cfg.LockPath = filepath.Join(dir, "lock")
			tc.plant(t, dir, cfg.LockPath)
			_, err := dial(t, cfg).Lock(t.Context())
			if err == nil {
				t.Fatal("Lock took a planted lock file")
			}
			for _, w := range []string{cfg.Name + ": the run lock " + cfg.LockPath + " cannot be trusted", tc.want, "remove it as root"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Lock error lacks %q:\n%v", w, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err == nil {
				t.Error("the lock created the file a symbolic link points to")
			}
		})
	}
}

// The lock creates its directory and file where neither exists, root's
// only (0755, 0600): another local user cannot open the file to hold it.
func TestLockCreatesItsFileRootOnly(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("skipping: the host's lock is taken as root; run the tests as root")
	}
	s := newServer(t, serverOpts{})
	cfg := s.config()
	cfg.LockPath = filepath.Join(t.TempDir(), "run", "dindops", "lock")
	os.Mkdir(filepath.Dir(filepath.Dir(cfg.LockPath)), 0o755)
	release, err := dial(t, cfg).Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for p, want := range map[string]os.FileMode{filepath.Dir(cfg.LockPath): os.ModeDir | 0o755, cfg.LockPath: 0o600} {
		st, err := os.Lstat(p)
		if err != nil || st.Mode() != want {
			t.Errorf("%s: %v %v, want %v", p, st.Mode(), err, want)
		}
	}
	// flock(1) as another user cannot open it.
	if _, err := exec.LookPath("setpriv"); err == nil {
		out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "flock", "-n", cfg.LockPath, "true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "ermission denied") {
			t.Errorf("another user's flock on the lock file: %v %s, want permission denied", err, out)
		}
	}
}
