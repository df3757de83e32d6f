// Package runner runs compiled plays over hosts: connections, rolling
// batches, plan or apply of each task, handlers (never lost: see
// DefaultPendingPath), and the results in inventory order.
package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// TimeoutError is a task that ran longer than its timeout. What it was
// doing was cancelled (its command signalled and its session closed).
type TimeoutError struct {
	After time.Duration
	Err   error // what the task returned when cancelled
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %ss (possibly waiting for input)", strconv.FormatFloat(e.After.Seconds(), 'f', -1, 64))
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Play is one play with its hosts, each already compiled (templates
// expanded, options decoded), in inventory order.
type Play struct {
	Play  *playbooks.Play
	Hosts []*playbooks.HostPlay
}

// Options control a run. There are no package-level settings.
type Options struct {
	Mode Mode
	// Forks is how many hosts run at once within a batch (a sliding
	// window: a finished host frees its slot at once). Zero means 5,
	// Ansible's default.
	Forks     int
	Connector Connector
	Logger    *log.Logger
	// OnEvent, when set, receives every event of the run as it happens,
	// one at a time (calls never overlap).
	OnEvent func(Event)
	// PendingPath is the file on each host that records pending handlers;
	// empty means DefaultPendingPath.
	PendingPath string
	// Now is the clock (tests may fix it).
	Now func() time.Time
	// Stop, when closed, stops the run gracefully (the first interrupt):
	// no new host, batch, task or handler starts; the steps in progress go
	// on under ctx (which the caller cancels when their grace period ends)
	// and the result says interrupted.
	Stop <-chan struct{}
	// Force is cancelled by a forced stop (a second interrupt): what a
	// cancelled task does to finish or undo its change ends then (see
	// tasks.UndoContext). Nil: such work is bounded by its timeout only.
	Force context.Context
}

// Run runs plays in order over their hosts and returns the results.
//
// A play with a serial runs its hosts in batches, one batch after another,
// each in a sliding window of Forks hosts. In apply mode, a batch in which
// more than max_fail_percentage of the hosts failed, or (in a play with a
// serial) every host failed, stops the rollout: later batches and plays do
// not run and their hosts are listed as not run. Otherwise a host that fails
// or is unreachable takes no part in later plays and the other hosts go on.
// Plan runs every host of a play at once and never stops early.
//
// The error is only for a run that could not start.
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
	if o.PendingPath == "" {
		o.PendingPath = DefaultPendingPath
	}
	r := &run{o: o, playbook: playbook, conns: map[string]*connSlot{}, out: map[string]bool{}, changed: map[string]bool{}, dockerStarts: map[string]string{}, pending: map[string]*pendingState{}}
	defer r.closeAll()
	start := o.Now()
	res := &Result{Mode: o.Mode, Playbook: playbook}

	var everyHost []string // inventory order of first appearance
	seen := map[string]bool{}
	for _, p := range plays {
		for _, hp := range p.Hosts {
			if !seen[hp.Host.Name] {
				seen[hp.Host.Name] = true
				everyHost = append(everyHost, hp.Host.Name)
			}
		}
	}
	r.emit(Event{Type: EventRunStart, Mode: o.Mode, Playbook: playbook, Hosts: everyHost})

	for _, p := range plays {
		pr, stop := r.play(ctx, p, res.Stopped)
		res.Plays = append(res.Plays, pr)
		if stop != nil && res.Stopped == nil {
			res.Stopped = stop
		}
	}
	if s := res.Stopped; s != nil {
		notRun := map[string]bool{}
		for _, pr := range res.Plays {
			for _, h := range pr.NotRun {
				notRun[h] = true
			}
		}
		for _, h := range everyHost {
			if notRun[h] {
				s.NotRun = append(s.NotRun, h)
			}
		}
		if len(s.NotRun) == 0 && !s.Interrupted {
			res.Stopped = nil // it stopped at the very end: nothing was left out
		} else {
			r.emit(Event{Type: EventStopped, Play: s.Play, Batch: s.Batch, Batches: s.Batches, Hosts: s.NotRun, Stop: s})
		}
	}
	res.Recap, res.Summary = recap(res, everyHost)
	res.Duration = o.Now().Sub(start)
	return res, nil
}

// recap counts each host's outcomes over the run, in inventory order, and
// sums the changes.
func recap(res *Result, everyHost []string) ([]*HostRecap, Summary) {
	var sum Summary
	byHost := map[string]*HostRecap{}
	for _, h := range everyHost {
		byHost[h] = &HostRecap{Host: h, NotRun: true}
	}
	changedHosts := map[string]bool{}
	for _, pr := range res.Plays {
		for _, hr := range pr.Hosts {
			rc := byHost[hr.Host]
			rc.NotRun = false
			rc.Interrupted = rc.Interrupted || hr.Interrupted
			for _, t := range hr.Tasks {
				if t.ApplyFailed {
					rc.Partial++
					sum.Partial++
				}
			}
			rc.Duration += hr.Duration
			switch hr.Status {
			case Unreachable:
				rc.Unreachable++
				rc.Error = hr.Error
				rc.StateUnknown = rc.StateUnknown || hr.StateUnknown
			case Failed:
				rc.Error = hr.Error
				if len(hr.Tasks) == 0 {
					rc.Failed++ // it failed before any task (login, become, lock)
				}
			}
			if hr.Health != nil {
				h := *hr.Health
				if rc.Health != nil {
					h = tasks.Worse(*rc.Health, h)
				}
				rc.Health = &h
			}
			taskFailed := false
			for _, t := range hr.Tasks {
				if t.Status == Failed {
					taskFailed = true
				}
			}
			if hr.Status == Failed && len(hr.Tasks) > 0 && !taskFailed {
				rc.Failed++ // every task went well, but the host is unhealthy
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
				if t.Status != Changed {
					continue // a failed apply changed an unknown part of its plan
				}
				for _, c := range t.Changes {
					changedHosts[hr.Host] = true
					switch c.Action {
					case tasks.Create:
						sum.Create++
					case tasks.Update:
						sum.Update++
					case tasks.Delete:
						sum.Delete++
					case tasks.Restart:
						sum.Restart++
					case tasks.Run:
						sum.Run++
					}
				}
			}
		}
	}
	out := make([]*HostRecap, 0, len(everyHost))
	for _, h := range everyHost {
		rc := byHost[h]
		out = append(out, rc)
		switch {
		case rc.Unreachable > 0 || rc.Failed > 0:
			sum.Failed++
		case rc.NotRun:
			sum.NotRun++
		}
	}
	sum.Hosts = len(changedHosts)
	return out, sum
}

type run struct {
	o        Options
	playbook string
	mu       sync.Mutex
	conns    map[string]*connSlot
	out      map[string]bool // hosts out of the run (failed or unreachable)
	changed  map[string]bool // hosts a play of this run changed
	// dockerStarts names, per host, the step of this run that planned to
	// start docker (it was not running).
	dockerStarts map[string]string
	pending      map[string]*pendingState
	emitMu       sync.Mutex
}

// emit hands an event to Options.OnEvent, one at a time.
func (r *run) emit(e Event) {
	if r.o.OnEvent == nil {
		return
	}
	e.Time = r.o.Now()
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.o.OnEvent(e)
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

func (r *run) isOut(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out[host]
}

// play runs one play: its hosts (those still in the run) in batches. With
// stopped set, the rollout stopped earlier and the play only lists its
// hosts as not run. It returns the stop this play caused, if any.
func (r *run) play(ctx context.Context, p Play, stopped *Stop) (*PlayResult, *Stop) {
	// The rollout settings with their templates expanded (the CLI has
	// checked that the hosts agree on them).
	serial, maxFail, err := playbooks.RolloutOf(p.Play, p.Hosts)
	if err != nil {
		serial, maxFail = p.Play.Serial, p.Play.MaxFailPercentage
	}
	rollout := &playbooks.Play{Name: p.Play.Name, Serial: serial, MaxFailPercentage: maxFail}
	pr := &PlayResult{Name: p.Play.Name, Hosts: make([]*HostResult, 0, len(p.Hosts)), MaxFailPercentage: maxFail}
	if len(serial) > 0 {
		pr.Serial = serial.String()
	}
	var active []*playbooks.HostPlay
	for _, hp := range p.Hosts {
		if !r.isOut(hp.Host.Name) {
			active = append(active, hp)
		}
	}
	var batches [][]*playbooks.HostPlay
	next := 0
	for _, n := range serial.Batches(len(active)) {
		batches = append(batches, active[next:next+n])
		next += n
	}
	if len(serial) > 0 {
		for i, b := range batches {
			pr.Batches = append(pr.Batches, &BatchResult{Number: i + 1, Hosts: hostNames(b)})
		}
	}
	switch {
	case len(p.Hosts) == 0:
		pr.Note = "no host matches this play's hosts pattern (and --limit)"
	case len(active) == 0:
		pr.Note = "no hosts left: every host of this play failed in an earlier play"
	case stopped != nil:
		pr.NotRun = hostNames(active)
		pr.Note = "the rollout stopped before this play"
	case r.o.Mode == CheckMode && len(p.Play.Health) == 0:
		pr.Note = "this play has no health checks"
		active = nil
	}
	r.emit(Event{Type: EventPlayStart, Play: pr.Name, Hosts: hostNames(active), PlayResult: pr})
	defer func() { r.emit(Event{Type: EventPlayEnd, Play: pr.Name, PlayResult: pr}) }()
	if stopped != nil || len(active) == 0 {
		return pr, nil
	}

	// Plan changes nothing, so it runs every host at once; batches are
	// what apply does.
	groups := batches
	if r.o.Mode != ApplyMode {
		groups = [][]*playbooks.HostPlay{active}
	}
	for gi, group := range groups {
		number, total := gi+1, len(groups)
		if r.stopping(ctx) {
			var rest []string
			for _, g := range groups[gi:] {
				rest = append(rest, hostNames(g)...)
			}
			pr.NotRun = append(pr.NotRun, rest...)
			return pr, &Stop{Play: pr.Name, Batch: number, Batches: total, Interrupted: true, Reason: "interrupted"}
		}
		r.emit(Event{Type: EventBatchStart, Play: pr.Name, Batch: number, Batches: total, Hosts: hostNames(group)})
		results := r.window(ctx, group, number, total, len(serial) > 0 && r.o.Mode == ApplyMode)
		failed := 0
		var ran []*HostResult
		for i, hr := range results {
			if hr == nil { // interrupted before it started
				pr.NotRun = append(pr.NotRun, group[i].Host.Name)
				continue
			}
			ran = append(ran, hr)
			if hr.Status == Failed || hr.Status == Unreachable {
				failed++
			}
		}
		pr.Hosts = append(pr.Hosts, ran...)
		if len(pr.Batches) > 0 && r.o.Mode == ApplyMode {
			pr.Batches[gi].Ran, pr.Batches[gi].Failed = true, failed
		}
		r.emit(Event{Type: EventBatchEnd, Play: pr.Name, Batch: number, Batches: total, Failed: failed, Results: ran})
		if len(ran) < len(group) || r.stopping(ctx) {
			var rest []string
			for _, g := range groups[gi+1:] {
				rest = append(rest, hostNames(g)...)
			}
			pr.NotRun = append(pr.NotRun, rest...)
			return pr, &Stop{Play: pr.Name, Batch: number, Batches: total, Interrupted: true, Reason: "interrupted"}
		}
		if r.o.Mode != ApplyMode {
			continue
		}
		if why := stopRule(rollout, len(group), failed); why != "" {
			for _, g := range groups[gi+1:] {
				pr.NotRun = append(pr.NotRun, hostNames(g)...)
			}
			return pr, &Stop{Play: pr.Name, Batch: number, Batches: total, Failed: failed, Size: len(group), Reason: why}
		}
	}
	return pr, nil
}

// stopRule says why a batch of size hosts, failed of which failed, stops
// the rollout, or "" when it does not. The rules are Ansible's: more than
// max_fail_percentage of the batch failed; or, in a play with a serial,
// every host of the batch failed.
func stopRule(p *playbooks.Play, size, failed int) string {
	if failed == 0 || size == 0 {
		return ""
	}
	pct := float64(failed) * 100 / float64(size)
	if m := p.MaxFailPercentage; m != nil && float64(failed)*100 > *m*float64(size) {
		return fmt.Sprintf("%d of %d %s of the batch failed (%s%%), more than max_fail_percentage %s%%",
			failed, size, plural(size, "host", "hosts"), formatPct(pct), formatPct(*m))
	}
	if len(p.Serial) > 0 && failed == size {
		return fmt.Sprintf("every host of the batch failed (%d of %d)", failed, size)
	}
	return ""
}

func formatPct(f float64) string {
	return strconv.FormatFloat(float64(int(f*10+0.5))/10, 'f', -1, 64)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func hostNames(hps []*playbooks.HostPlay) []string {
	out := make([]string, len(hps))
	for i, hp := range hps {
		out[i] = hp.Host.Name
	}
	return out
}

// window runs hosts at most Forks at once, a sliding window: a finished host
// frees its slot at once. Results are in the order of hosts; a host that
// never started (the run was interrupted first) has a nil result.
func (r *run) window(ctx context.Context, hosts []*playbooks.HostPlay, batch, batches int, numbered bool) []*HostResult {
	results := make([]*HostResult, len(hosts))
	sem := make(chan struct{}, r.o.Forks)
	var wg sync.WaitGroup
	for i, hp := range hosts {
		// Slots are taken in inventory order, so the first hosts start
		// first.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		case <-r.o.Stop:
		}
		if r.stopping(ctx) {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hr := r.host(ctx, hp, batch, batches)
			if numbered {
				hr.Batch = batch
			}
			results[i] = hr
			r.mu.Lock()
			if hr.Status == Failed || hr.Status == Unreachable {
				r.out[hp.Host.Name] = true
			}
			for _, t := range hr.Tasks {
				if t.Status == Changed {
					r.changed[hp.Host.Name] = true
				}
			}
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// host runs a play's tasks, then its notified handlers, on one host.
func (r *run) host(ctx context.Context, hp *playbooks.HostPlay, batch, batches int) *HostResult {
	start := r.o.Now()
	play := hp.Play.Name
	hr := &HostResult{Host: hp.Host.Name, Address: hp.Host.Endpoint(), Status: OK}
	r.emit(Event{Type: EventHostStart, Play: play, Batch: batch, Batches: batches, Host: hr.Host})
	defer func() {
		hr.Duration = r.o.Now().Sub(start)
		r.emit(Event{Type: EventHostEnd, Play: play, Batch: batch, Batches: batches, Host: hr.Host, Status: hr.Status, Error: hr.Error, Duration: hr.Duration})
	}()
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
	if r.o.Mode != CheckMode {
		r.steps(ctx, conn, hp, hr, logger)
	}
	if len(hp.Health) > 0 && hr.Status != Unreachable {
		r.checkHealth(ctx, conn, hp, hr, logger)
	}
	return hr
}

// steps runs a play's tasks, then its notified handlers (and those an
// earlier run left pending), on one host, into hr.
func (r *run) steps(ctx context.Context, conn Conn, hp *playbooks.HostPlay, hr *HostResult, logger *log.Logger) {
	play := hp.Play.Name
	// Handlers an earlier run left pending on this host.
	var ps *pendingState
	if len(hp.Handlers) > 0 {
		ps = r.pendingState(hp.Host.Name)
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if err := ps.load(ctx, conn.Host(hp.Handlers[0].Become), r.o.PendingPath); err != nil {
			hr.Status, hr.Error = Failed, err.Error()
			if IsUnreachable(err) {
				hr.Status = Unreachable
			}
			logger.Info("cannot read pending handlers", "err", err)
			return
		}
		for _, p := range ps.handlers {
			if p.Play == play {
				logger.Info("handler pending from an earlier run", "handler", p.Handler, "notified_by", p.NotifiedBy, "since", p.Since)
			}
		}
	}
	handlerStep := map[string]*playbooks.Step{}
	for _, s := range hp.Handlers {
		handlerStep[s.Def.Name] = s
	}

	notified := map[string]bool{}
	for i, s := range hp.Tasks {
		if r.stopping(ctx) {
			r.interrupted(hr, hp.Tasks[i:], nil)
			break // the handlers notified so far are listed below
		}
		tr, ok := r.record(ctx, conn, s, false, i+1, len(hp.Tasks), hp, hr, logger)
		if !ok {
			return
		}
		if tr.Status != Changed {
			continue
		}
		var fresh []*PendingHandler
		for _, n := range s.Def.Notify {
			if !notified[n] {
				notified[n] = true
				fresh = append(fresh, &PendingHandler{Play: play, Handler: n, NotifiedBy: s.Name, Since: r.o.Now().UTC(), Playbook: r.playbook})
			}
		}
		// Record the notification on the host before going on, so that
		// a later failure, a lost connection or an interruption cannot
		// lose it. Plan records nothing: it changes nothing.
		if r.o.Mode == ApplyMode && ps != nil && len(fresh) > 0 {
			if err := ps.add(ctx, conn.Host(handlerStep[fresh[0].Handler].Become), r.o.PendingPath, fresh); err != nil {
				tr.Warnings = append(tr.Warnings, fmt.Sprintf("the notified handlers could not be recorded on the host, so they will be lost if this run stops before running them: %v", err))
				logger.Warn("cannot record pending handlers", "err", err)
			}
		}
	}
	for _, s := range hp.Handlers {
		var pend *PendingHandler
		if ps != nil {
			pend = ps.find(play, s.Def.Name)
		}
		if !notified[s.Def.Name] && pend == nil {
			continue
		}
		if r.stopping(ctx) {
			r.interrupted(hr, nil, s)
			continue // each handler left is listed; it stays recorded on the host
		}
		tr, ok := r.record(ctx, conn, s, true, 0, len(hp.Tasks), hp, hr, logger)
		if !notified[s.Def.Name] {
			tr.Pending = pend
		}
		if !ok {
			if r.o.Mode == ApplyMode && ps != nil {
				r.handlerFailed(ctx, conn.Host(s.Become), ps, play, s.Def.Name, tr, logger)
			}
			return
		}
		if r.o.Mode == ApplyMode && pend != nil {
			if err := ps.remove(ctx, conn.Host(s.Become), r.o.PendingPath, play, s.Def.Name); err != nil {
				tr.Warnings = append(tr.Warnings, fmt.Sprintf("the handler ran but its record could not be cleared, so the next run will run it again: %v", err))
				logger.Warn("cannot clear a pending handler", "err", err)
			}
		}
	}
}

func (r *run) pendingState(host string) *pendingState {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.pending[host]
	if ps == nil {
		ps = &pendingState{}
		r.pending[host] = ps
	}
	return ps
}

// record runs one step into hr and reports whether the host may go on.
func (r *run) record(ctx context.Context, conn Conn, s *playbooks.Step, handler bool, step, steps int, hp *playbooks.HostPlay, hr *HostResult, logger *log.Logger) (*TaskResult, bool) {
	ev := Event{Play: hp.Play.Name, Host: hr.Host, Task: s.Name, Step: step, Steps: steps, Handler: handler}
	ev.Type = EventTaskStart
	r.emit(ev)
	tr := r.step(ctx, conn, s, handler, hr.Host, logger)
	hr.Tasks = append(hr.Tasks, tr)
	ok := true
	switch tr.Status {
	case Failed, Unreachable:
		what := "task"
		if handler {
			what = "handler"
		}
		hr.Status, hr.Error = tr.Status, fmt.Sprintf("%s %q: %s", what, tr.Name, tr.Error)
		// The connection died while the task ran: what it did is unknown.
		hr.StateUnknown = tr.Status == Unreachable
		tr.Status = Failed // the task failed; the host is what became unreachable
		ok = false
	case Changed:
		hr.Status = Changed
	}
	ev.Type, ev.Status, ev.Error, ev.Duration, ev.Result = EventTaskEnd, tr.Status, tr.Error, tr.Duration, tr
	r.emit(ev)
	return tr, ok
}

// step plans one task and, in apply mode, applies what the plan found,
// within the task's timeout.
func (r *run) step(ctx context.Context, conn Conn, s *playbooks.Step, handler bool, host string, logger *log.Logger) *TaskResult {
	start := r.o.Now()
	tr := &TaskResult{Name: s.Name, Kind: s.Def.Kind, Handler: handler}
	defer func() { tr.Duration = r.o.Now().Sub(start) }()
	if s.Warn != "" {
		tr.Warnings = append(tr.Warnings, s.Warn)
	}
	tctx := ctx
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	if r.o.Force != nil {
		tctx = tasks.WithForce(tctx, r.o.Force)
	}
	h := conn.Host(s.Become)
	fail := func(err error) *TaskResult {
		if ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) && !IsUnreachable(err) {
			err = &TimeoutError{After: s.Timeout, Err: err}
		}
		tr.Status, tr.Error, tr.err = Failed, err.Error(), err
		if IsUnreachable(err) {
			tr.Status = Unreachable
		}
		if ctx.Err() != nil {
			tr.Error = "interrupted: " + tr.Error
		}
		logger.Info("task failed", "task", s.Name, "err", err)
		return tr
	}
	changes, err := s.Task.Plan(tctx, h)
	if reason, ok := tasks.IsSkip(err); ok {
		tr.Status, tr.Reason = Skipped, reason
		logger.Debug("task skipped", "task", s.Name, "reason", reason)
		return tr
	}
	if ws, ok := tasks.IsWarnings(err); ok {
		tr.Status, tr.Warnings = OK, append(tr.Warnings, ws...)
		logger.Debug("task ok, with warnings", "task", s.Name, "warnings", len(ws))
		return tr
	}
	if err != nil {
		if by := r.dockerStartPlanned(host); r.o.Mode != ApplyMode && by != "" && tasks.DockerUnreachable(err) {
			// Docker is stopped, and this very plan starts it first: the
			// task cannot read its state now, which is no fault.
			tr.Status = Skipped
			tr.Reason = fmt.Sprintf("docker does not run now, and %q starts it first: what this task changes is known once docker runs (apply plans it then)", by)
			return tr
		}
		return fail(err)
	}
	tr.Changes = changes
	for _, c := range changes {
		if c.Resource == "service" && c.Target == "docker" && strings.HasPrefix(c.Summary, "start") {
			r.mu.Lock()
			if r.dockerStarts[host] == "" {
				r.dockerStarts[host] = s.Name
			}
			r.mu.Unlock()
		}
	}
	if len(changes) == 0 {
		tr.Status = OK
		logger.Debug("task ok", "task", s.Name)
		return tr
	}
	if r.o.Mode == ApplyMode {
		logger.Info("applying", "task", s.Name, "changes", len(changes))
		if err := s.Task.Apply(tctx, h, changes); err != nil {
			// Some of the changes may have been made.
			tr.ApplyFailed = !tasks.IsUnchanged(err)
			return fail(err)
		}
	}
	tr.Status = Changed
	return tr
}

// stopping reports whether the run is being stopped: a graceful stop was
// asked for (Options.Stop) or ctx is done.
func (r *run) stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	select {
	case <-r.o.Stop:
		return true
	default:
		return false
	}
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

// interrupted records on hr that the run stopped before the given tasks
// (or the handler h) could start on the host.
func (r *run) interrupted(hr *HostResult, left []*playbooks.Step, h *playbooks.Step) {
	hr.Interrupted = true
	for _, s := range left {
		hr.NotStarted = append(hr.NotStarted, s.Name)
	}
	if h != nil {
		hr.NotStarted = append(hr.NotStarted, "handler "+h.Name+" (recorded on the host: the next apply runs it)")
	}
}

// dockerStartPlanned returns the step of this run that planned to start
// docker on host, or "".
func (r *run) dockerStartPlanned(host string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dockerStarts[host]
}
