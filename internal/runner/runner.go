// Package runner runs compiled plays over hosts: connections, plan or
// apply of each task, handlers, and the results in inventory order.
package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/charmbracelet/log"

	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/playbooks"
	"github.com/dindops/dindops/tasks"
)

// Conn is an open connection to one host.
type Conn interface {
	// Host returns the host as tasks see it, with or without privilege
	// escalation.
	Host(become bool) tasks.Host
	Close() error
}

// Connector opens connections. The CLI gives an SSH connector; tests give
// in-memory hosts.
type Connector interface {
	Connect(ctx context.Context, h *inventory.Host) (Conn, error)
}

// unreachableError is implemented by transport errors that mean the host
// could not be reached or the connection was lost.
type unreachableError interface{ Unreachable() bool }

// IsUnreachable reports whether err means the host is unreachable.
func IsUnreachable(err error) bool {
	var u unreachableError
	return errors.As(err, &u) && u.Unreachable()
}

// Play is one play with its hosts, each already compiled (templates
// expanded, options decoded), in inventory order.
type Play struct {
	Play  *playbooks.Play
	Hosts []*playbooks.HostPlay
}

// Options control a run. There are no package-level settings.
type Options struct {
	Mode Mode
	// Forks is how many hosts run at once (a sliding window: a finished host
	// frees its slot at once). Zero means 5, Ansible's default.
	Forks     int
	Connector Connector
	Logger    *log.Logger
	// OnPlay, when set, is called after each play with its results in
	// inventory order, so output can be printed play by play.
	OnPlay func(*PlayResult)
	// Now is the clock (tests may fix it).
	Now func() time.Time
}

// Run runs plays in order over their hosts and returns the results. A host
// that fails or is unreachable takes no part in later plays; other hosts go
// on. The error is only for a run that could not start.
func Run(ctx context.Context, playbook string, plays []Play, o Options) (*Result, error) {
	if o.Connector == nil {
		return nil, errors.New("runner: no connector")
	}
	if o.Logger == nil {
		o.Logger = log.New(nilWriter{})
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Forks <= 0 {
		o.Forks = 5
	}
	r := &run{o: o, conns: map[string]*connSlot{}, out: map[string]bool{}}
	defer r.closeAll()
	start := o.Now()
	res := &Result{Mode: o.Mode, Playbook: playbook}
	recap := map[string]*HostRecap{}
	var order []string
	for _, p := range plays {
		pr := r.play(ctx, p)
		res.Plays = append(res.Plays, pr)
		for _, hr := range pr.Hosts {
			rc := recap[hr.Host]
			if rc == nil {
				rc = &HostRecap{Host: hr.Host}
				recap[hr.Host] = rc
				order = append(order, hr.Host)
			}
			rc.Duration += hr.Duration
			switch hr.Status {
			case Unreachable:
				rc.Unreachable++
				rc.Error = hr.Error
			case Failed:
				rc.Error = hr.Error
				if len(hr.Tasks) == 0 {
					rc.Failed++ // it failed before any task (login, become)
				}
			}
			for _, t := range hr.Tasks {
				switch t.Status {
				case OK:
					rc.OK++
				case Changed:
					rc.Changed++
				case Failed:
					if hr.Status != Unreachable { // counted once, as unreachable
						rc.Failed++
					}
				case Skipped:
					rc.Skipped++
				}
			}
		}
		if o.OnPlay != nil {
			o.OnPlay(pr)
		}
	}
	// Recap in inventory order: the order hosts first appear in the plays,
	// which are in inventory order themselves.
	changedHosts := map[string]bool{}
	for _, pr := range res.Plays {
		for _, hr := range pr.Hosts {
			for _, t := range hr.Tasks {
				if t.Status != Changed {
					continue // a failed apply changed an unknown part of its plan
				}
				for _, c := range t.Changes {
					changedHosts[hr.Host] = true
					switch c.Action {
					case tasks.Create:
						res.Summary.Create++
					case tasks.Update:
						res.Summary.Update++
					case tasks.Delete:
						res.Summary.Delete++
					case tasks.Restart:
						res.Summary.Restart++
					case tasks.Run:
						res.Summary.Run++
					}
				}
			}
		}
	}
	for _, h := range order {
		res.Recap = append(res.Recap, recap[h])
		if recap[h].Unreachable > 0 || recap[h].Failed > 0 {
			res.Summary.Failed++
		}
	}
	res.Summary.Hosts = len(changedHosts)
	res.Duration = o.Now().Sub(start)
	return res, nil
}

type run struct {
	o     Options
	mu    sync.Mutex
	conns map[string]*connSlot
	out   map[string]bool // hosts out of the run (failed or unreachable)
}

type connSlot struct {
	once    sync.Once
	conn    Conn
	release func() // the host's run lock, when taken
	err     error
}

func (r *run) connect(ctx context.Context, h *inventory.Host) (Conn, error) {
	r.mu.Lock()
	s := r.conns[h.Name]
	if s == nil {
		s = &connSlot{}
		r.conns[h.Name] = s
	}
	r.mu.Unlock()
	s.once.Do(func() {
		s.conn, s.err = r.o.Connector.Connect(ctx, h)
		if s.err != nil || r.o.Mode != ApplyMode {
			return
		}
		// Only one run may change a host at a time.
		if l, ok := s.conn.(locker); ok {
			s.release, s.err = l.Lock(ctx)
		}
	})
	return s.conn, s.err
}

// locker is implemented by connections that can lock their host for the
// length of a run (see transport.Conn.Lock).
type locker interface {
	Lock(ctx context.Context) (release func(), err error)
}

func (r *run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.conns {
		if s.release != nil {
			s.release()
		}
		if s.conn != nil {
			s.conn.Close()
		}
	}
}

// play runs one play on all its hosts, at most Forks at once.
func (r *run) play(ctx context.Context, p Play) *PlayResult {
	pr := &PlayResult{Name: p.Play.Name, Hosts: make([]*HostResult, 0, len(p.Hosts))}
	results := make([]*HostResult, len(p.Hosts))
	sem := make(chan struct{}, r.o.Forks)
	var wg sync.WaitGroup
	for i, hp := range p.Hosts {
		r.mu.Lock()
		out := r.out[hp.Host.Name]
		r.mu.Unlock()
		if out {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = &HostResult{Host: hp.Host.Name, Address: hp.Host.Endpoint(), Status: Failed, Error: "interrupted before it started"}
				return
			}
			defer func() { <-sem }()
			results[i] = r.host(ctx, hp)
			if results[i].Status == Failed || results[i].Status == Unreachable {
				r.mu.Lock()
				r.out[hp.Host.Name] = true
				r.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, hr := range results {
		if hr != nil {
			pr.Hosts = append(pr.Hosts, hr)
		}
	}
	switch {
	case len(p.Hosts) == 0:
		pr.Note = "no host matches this play's hosts pattern (and --limit)"
	case len(pr.Hosts) == 0:
		pr.Note = "no hosts left: every host of this play failed in an earlier play"
	}
	return pr
}

// host runs a play's tasks, then its notified handlers, on one host.
func (r *run) host(ctx context.Context, hp *playbooks.HostPlay) *HostResult {
	start := r.o.Now()
	hr := &HostResult{Host: hp.Host.Name, Address: hp.Host.Endpoint(), Status: OK}
	defer func() { hr.Duration = r.o.Now().Sub(start) }()
	logger := r.o.Logger.With("host", hp.Host.Name)
	conn, err := r.connect(ctx, hp.Host)
	if err != nil {
		hr.Status, hr.Error = Unreachable, err.Error()
		if !IsUnreachable(err) {
			hr.Status = Failed
		}
		logger.Info("cannot connect", "err", err)
		return hr
	}
	notified := map[string]bool{}
	for _, s := range hp.Tasks {
		if !r.record(ctx, conn, s, false, hr, logger) {
			return hr
		}
		if hr.Tasks[len(hr.Tasks)-1].Status == Changed {
			for _, n := range s.Def.Notify {
				notified[n] = true
			}
		}
	}
	for _, s := range hp.Handlers {
		if notified[s.Def.Name] && !r.record(ctx, conn, s, true, hr, logger) {
			return hr
		}
	}
	return hr
}

// record runs one step into hr and reports whether the host may go on.
func (r *run) record(ctx context.Context, conn Conn, s *playbooks.Step, handler bool, hr *HostResult, logger *log.Logger) bool {
	tr := r.step(ctx, conn, s, handler, logger)
	hr.Tasks = append(hr.Tasks, tr)
	switch tr.Status {
	case Failed, Unreachable:
		what := "task"
		if handler {
			what = "handler"
		}
		hr.Status, hr.Error = tr.Status, fmt.Sprintf("%s %q: %s", what, tr.Name, tr.Error)
		tr.Status = Failed // the task failed; the host is what became unreachable
		return false
	case Changed:
		hr.Status = Changed
	}
	return true
}

// step plans one task and, in apply mode, applies what the plan found.
func (r *run) step(ctx context.Context, conn Conn, s *playbooks.Step, handler bool, logger *log.Logger) *TaskResult {
	start := r.o.Now()
	tr := &TaskResult{Name: s.Name, Kind: s.Def.Kind, Handler: handler}
	defer func() { tr.Duration = r.o.Now().Sub(start) }()
	h := conn.Host(s.Become)
	fail := func(err error) *TaskResult {
		tr.Status, tr.Error = Failed, err.Error()
		if IsUnreachable(err) {
			tr.Status = Unreachable
		}
		if ctx.Err() != nil {
			tr.Error = "interrupted: " + tr.Error
		}
		logger.Info("task failed", "task", s.Name, "err", err)
		return tr
	}
	changes, err := s.Task.Plan(ctx, h)
	if reason, ok := tasks.IsSkip(err); ok {
		tr.Status, tr.Reason = Skipped, reason
		logger.Debug("task skipped", "task", s.Name, "reason", reason)
		return tr
	}
	if err != nil {
		return fail(err)
	}
	tr.Changes = changes
	if len(changes) == 0 {
		tr.Status = OK
		logger.Debug("task ok", "task", s.Name)
		return tr
	}
	if r.o.Mode == ApplyMode {
		logger.Info("applying", "task", s.Name, "changes", len(changes))
		if err := s.Task.Apply(ctx, h, changes); err != nil {
			return fail(err)
		}
	}
	tr.Status = Changed
	return tr
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }
