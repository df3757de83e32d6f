package transport

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// A real sshd with a MaxSessions of 1 or 2 and a run in progress: the run
// lock held, then files written (SFTP upload, then a command), files read
// and probed over SFTP, and commands, all at once. Every one succeeds (the
// SFTP session and the lock's make room for the others), the lock keeps a
// second run out the whole time, and a plan-like read after it finds the
// files written.
func TestOpenSSHLowMaxSessionsApply(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("MaxSessions %d", n), func(t *testing.T) {
			cfg := startSSHDWith(t, fmt.Sprintf("MaxSessions %d", n))
			dir := t.TempDir()
			cfg.LockPath = filepath.Join(dir, "dindops.lock")
			c := dial(t, cfg)
			release, err := c.Lock(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			h := c.Host(false)
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 4 {
				p := filepath.Join(dir, fmt.Sprintf("file%d", i))
				wg.Go(func() {
					if err := h.WriteFile(t.Context(), p, []byte(p), tasks.WriteOptions{Mode: 0o640}); err != nil {
						errs <- err
						return
					}
					f, err := h.ReadFile(t.Context(), p)
					if err == nil && string(f.Content) != p {
						err = fmt.Errorf("read %s: %q", p, f.Content)
					}
					errs <- err
				})
				wg.Go(func() {
					out, err := h.Run(t.Context(), tasks.Cmd{Args: []string{"sh", "-c", fmt.Sprintf("sleep 0.1; echo %d", i)}})
					if err == nil && strings.TrimSpace(string(out.Stdout)) != fmt.Sprint(i) {
						err = fmt.Errorf("command %d printed %q", i, out.Stdout)
					}
					errs <- err
				})
				wg.Go(func() {
					_, err := h.(tasks.Prober).Probe(t.Context(), []tasks.Probe{{Path: "/etc/hostname"}, {Args: []string{"test", "-d", dir}}, {Args: []string{"echo", "x"}}})
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			other := dial(t, cfg)
			var locked *LockedError
			if _, err := other.Lock(t.Context()); !errors.As(err, &locked) {
				t.Errorf("a second run's Lock during the run = %v, want *LockedError", err)
			}
			release()
			// Lock does not wait (no LockTimeout): it gets the lock only if
			// release freed it, while c's connection, which a detached
			// holder would outlive otherwise, is still open.
			release2, err := other.Lock(t.Context())
			if err != nil {
				t.Fatalf("Lock after release: %v", err)
			}
			release2()
			for i := range 4 {
				p := filepath.Join(dir, fmt.Sprintf("file%d", i))
				if f, err := c.Host(false).ReadFile(t.Context(), p); err != nil || f.Mode != 0o640 {
					t.Errorf("after the run: %s: mode %o, %v", p, f.Mode, err)
				}
			}
			if c.lost() != nil {
				t.Errorf("connection lost: %v", c.lost())
			}
		})
	}
}
