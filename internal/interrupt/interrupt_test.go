package interrupt

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestStages(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	s := Watch(context.Background(), sigs)
	defer s.Stop()
	s.SetGrace(50 * time.Millisecond)
	if FromContext(s.Context()) != s {
		t.Fatal("the context does not carry its Stopper")
	}
	sigs <- syscall.SIGTERM
	<-s.Stopping()
	if s.Context().Err() != nil {
		t.Fatal("the first signal cancelled the steps at once; they get the grace period")
	}
	select {
	case <-s.Context().Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the grace period did not end")
	}
	if s.Force().Err() != nil {
		t.Fatal("forced without a second signal")
	}
	if s.ExitCode() != 143 {
		t.Errorf("exit code %d, want 143 for SIGTERM", s.ExitCode())
	}
	sigs <- os.Interrupt
	select {
	case <-s.Force().Done():
	case <-time.After(2 * time.Second):
		t.Fatal("a second signal does not force")
	}
	if s.ExitCode() != 143 {
		t.Errorf("exit code %d: the first signal decides it", s.ExitCode())
	}
}

func TestSecondSignalForcesDuringGrace(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	s := Watch(context.Background(), sigs)
	defer s.Stop()
	s.SetGrace(time.Hour)
	sigs <- os.Interrupt
	sigs <- os.Interrupt
	select {
	case <-s.Context().Done():
	case <-time.After(2 * time.Second):
		t.Fatal("a second signal does not cancel the steps")
	}
	if s.ExitCode() != 130 {
		t.Errorf("exit code %d, want 130 for SIGINT", s.ExitCode())
	}
}
