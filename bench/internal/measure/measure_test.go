package measure

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// peakrss builds bench/cmd/peakrss for the test.
func peakrss(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "peakrss")
	cmd := exec.Command("go", "build", "-o", out, "../../cmd/peakrss")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build peakrss: %v\n%s", err, b)
	}
	return out
}

func TestRunCountsOrphans(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Skip(err)
	}
	r := Runner{PeakRSS: peakrss(t)}
	ctx := context.Background()
	// The shell leaves a busy orphan behind (as ssh leaves a ControlPersist
	// master): its CPU time must be counted, and it must be stopped.
	cmd := exec.CommandContext(ctx, "sh", "-c", `(while :; do :; done) & sleep 0.3`)
	s, err := r.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 0 {
		t.Fatalf("exit code %d", s.ExitCode)
	}
	if s.Wall < 300*time.Millisecond || s.Wall > 5*time.Second {
		t.Errorf("wall %v, want about 0.3 s", s.Wall)
	}
	// The orphan spun for the 0.3 s at least (on a busy machine, less than
	// that of CPU; a tenth is enough to tell it was counted).
	if s.CPU() < 30*time.Millisecond {
		t.Errorf("CPU %v: the orphan's time was not counted", s.CPU())
	}
	if s.MaxRSS <= 0 {
		t.Errorf("MaxRSS %d", s.MaxRSS)
	}
	if kids := children(os.Getpid()); len(kids) > 0 {
		t.Errorf("children left running: %v", kids)
	}
}

func TestRunExitCode(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Skip(err)
	}
	r := Runner{PeakRSS: peakrss(t)}
	s, err := r.Run(context.Background(), exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 3 {
		t.Fatalf("exit code %d, want 3", s.ExitCode)
	}
}
