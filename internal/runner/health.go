package runner

import (
	"context"
	"strings"

	"github.com/charmbracelet/log"

	"github.com/dindops/dindops/playbooks"
	"github.com/dindops/dindops/tasks"
)

// checkHealth runs the play's health checks on one host, after its tasks
// and handlers, into hr.Health (the worst of them). In apply mode an
// unhealthy host is a failed host (a host counts as done only when it
// works); in check mode a host that is not healthy (unhealthy, or its
// health unknown) is failed; plan only reports what it finds. A run that
// was interrupted checks nothing.
func (r *run) checkHealth(ctx context.Context, conn Conn, hp *playbooks.HostPlay, hr *HostResult, logger *log.Logger) {
	if ctx.Err() != nil {
		return
	}
	o := tasks.CheckOptions{AfterChange: r.o.Mode == ApplyMode && (hr.Status == Changed || r.changedBefore(hr.Host))}
	var health tasks.Health
	var names []string
	for _, s := range hp.Health {
		r.emit(Event{Type: EventHealthStart, Play: hp.Play.Name, Host: hr.Host, Task: s.Name})
		h := s.Check.Check(ctx, conn.Host(s.Become), o)
		if h.Status != tasks.Healthy && h.Status != tasks.NotChecked && h.Reason != "" {
			names = append(names, s.Name)
		}
		health = tasks.Worse(health, h)
	}
	hr.Health = &health
	r.emit(Event{Type: EventHealth, Play: hp.Play.Name, Host: hr.Host, Health: &health})
	logger.Info("health", "status", health.Status, "reason", health.Reason)
	fail := health.Status == tasks.Unhealthy && r.o.Mode == ApplyMode ||
		(health.Status == tasks.Unhealthy || health.Status == tasks.HealthUnknown) && r.o.Mode == CheckMode
	if !fail || hr.Status == Failed {
		return
	}
	hr.Status = Failed
	hr.Error = string(health.Status) + ": " + health.Reason
	if len(names) > 0 && r.o.Mode == ApplyMode {
		hr.Error += " (health check " + strings.Join(quoteAll(names), ", ") + ")"
	}
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = "\"" + s + "\""
	}
	return out
}

// changedBefore reports whether an earlier play of this run changed host.
func (r *run) changedBefore(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed[host]
}
