package tasks

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// NewGitLabHTTPClient returns the HTTP client of one dindops run for the
// GitLab API: each request times out after timeout, and a GitLab that did
// not answer a read-only check (no connection, a timeout) fails the run's
// later checks of it at once with the same error, so a GitLab that hangs
// costs one timeout per run, not two per host and batch. Requests that
// change something in GitLab are always sent.
func NewGitLabHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &checkMemo{next: http.DefaultTransport, down: map[string]error{}}}
}

// checkKey marks a context whose GitLab requests are read-only checks.
type checkKey struct{}

// asCheck marks ctx's GitLab requests as read-only checks (see
// NewGitLabHTTPClient).
func asCheck(ctx context.Context) context.Context { return context.WithValue(ctx, checkKey{}, true) }

// checkMemo is the transport of NewGitLabHTTPClient: it passes requests
// on, and remembers the hosts that did not answer a check (call marks
// them: only it knows whether its own context was cancelled).
type checkMemo struct {
	next http.RoundTripper
	mu   sync.Mutex
	down map[string]error // by URL host
}

func (m *checkMemo) RoundTrip(req *http.Request) (*http.Response, error) {
	return m.next.RoundTrip(req)
}

// memoOf returns c's memo, or nil for a client without one.
func memoOf(c *http.Client) *checkMemo {
	m, _ := c.Transport.(*checkMemo)
	return m
}

// before returns the error a check of host got earlier in the run, or nil.
func (m *checkMemo) before(ctx context.Context, host string) error {
	if m == nil {
		return nil
	}
	if check, _ := ctx.Value(checkKey{}).(bool); !check {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.down[host]; err != nil {
		return fmt.Errorf("%w (when asked earlier in this run; not asked again)", err)
	}
	return nil
}

// after records how a request to host went: err a transport error (nil
// for any answer). Only checks mark a host down, and only when the caller
// did not cancel them.
func (m *checkMemo) after(ctx context.Context, host string, err error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	check, _ := ctx.Value(checkKey{}).(bool)
	switch {
	case err == nil:
		delete(m.down, host)
	case check && ctx.Err() == nil:
		m.down[host] = err
	}
}
