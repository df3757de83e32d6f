package tasks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A GitLab that hangs costs a run one timeout: later checks of it fail at
// once with the same error; requests that change something are still sent,
// and an answer clears the mark.
func TestGitLabHTTPClientAsksAHangingGitLabOnce(t *testing.T) {
	var hang atomic.Bool
	var requests atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	defer close(release)
	g := newGitLabClient(srv.URL, NewGitLabHTTPClient(200*time.Millisecond))
	ctx := context.Background()

	hang.Store(true)
	if err := g.checkAnswers(ctx); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("first check: %v", err)
	}
	start := time.Now()
	err := g.checkAnswers(ctx)
	if err == nil || !strings.Contains(err.Error(), "earlier in this run") || time.Since(start) > 100*time.Millisecond || requests.Load() != 1 {
		t.Errorf("second check: %v after %s, %d requests", err, time.Since(start), requests.Load())
	}
	// A change is sent all the same.
	_ = g.call(ctx, http.MethodPost, "/api/v4/runners", map[string]any{}, nil, http.StatusCreated, nil)
	if requests.Load() != 2 {
		t.Errorf("a change was not sent: %d requests", requests.Load())
	}
	// GitLab back: an answer clears the mark.
	hang.Store(false)
	_ = g.call(ctx, http.MethodPost, "/api/v4/runners", map[string]any{}, nil, http.StatusCreated, nil)
	if err := g.checkAnswers(ctx); err != nil {
		t.Errorf("check after GitLab answered: %v", err)
	}
	// A check the caller cancelled marks nothing.
	hang.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = g.checkAnswers(cctx)
	hang.Store(false)
	if err := g.checkAnswers(ctx); err != nil {
		t.Errorf("check after a cancelled one: %v", err)
	}
}
