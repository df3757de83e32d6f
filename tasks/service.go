package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Service starts, stops or restarts a system service and sets whether it
// starts at boot, through systemd when the host runs it (systemctl) and the
// service(8) script otherwise (hosts without systemd, such as containers).
//
//	handlers:
//	  - name: restart docker
//	    service:
//	      name: docker
//	      state: restarted
//
// state: restarted always restarts, so it belongs in a handler, which runs
// only when a task that notifies it changed something. After a start or a
// restart, the task waits until the service reports running and, when ready
// is given, until that command exits 0; for docker without ready, until the
// daemon answers its Engine API (GET /info), since docker's init script
// returns before the daemon answers (systemd's docker.service waits by
// itself). When the
// service does not come up, the error ends with its last log lines
// (journalctl -u NAME under systemd, /var/log/NAME.log otherwise, where
// Debian's init scripts such as docker's write), which say why.
//
// A service that does not exist fails the plan when it is to be started,
// restarted or enabled; stopped or disabled, it is already what was asked.
//
// Restarting docker restarts the containers it runs (those with restart
// policy always or unless-stopped come back, the others stay stopped;
// with live-restore they keep running), and a job running in them dies.
// The plan of a running docker's restart says which containers it
// restarts. drain names containers to stop gracefully first, such as the
// gitlab-runner container whose jobs run in a dind container that the
// restart takes down: the runner gets SIGQUIT, finishes its jobs and exits,
// then docker restarts, then the runner is started again (see Drain).
//
//	handlers:
//	  - name: restart docker
//	    service:
//	      name: docker
//	      state: restarted
//	      drain: {containers: [gitlab-runner], timeout: 3600}
type Service struct {
	Name string `yaml:"name"`
	// State is "started", "stopped", "restarted" or empty (leave it alone).
	State string `yaml:"state"`
	// Enabled says whether the service starts at boot; unset leaves it.
	Enabled *bool `yaml:"enabled"`
	// Ready is a command that succeeds once the service can be used. For
	// docker it may be left out: the task then waits for the Engine API.
	Ready []string `yaml:"ready"`
	// ReadyTimeout is how long to wait for it, in seconds (default 60).
	ReadyTimeout int `yaml:"ready_timeout"`
	// Drain names containers to stop gracefully before a restart or stop
	// (state restarted or stopped), for services that run containers:
	// docker.
	Drain *Drain `yaml:"drain"`
	// Restore names configuration files that a task such as
	// docker_daemon_config changed (it kept their previous content first):
	// when the service does not come up after a start or a restart, they
	// get their previous content back, the service is started again, and
	// the task fails with the service's own reason (see RestoredError).
	Restore []string `yaml:"restore"`
}

var serviceName = regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`)

// Validate implements Validator.
func (s *Service) Validate() error {
	if !serviceName.MatchString(s.Name) {
		return FieldErrorf("name", "must be a service name such as docker, got %q", s.Name)
	}
	switch s.State {
	case "", "started", "stopped", "restarted":
	default:
		return FieldErrorf("state", "must be started, stopped or restarted, got %q", s.State)
	}
	if s.State == "" && s.Enabled == nil {
		return FieldErrorf("state", "give state, enabled, or both")
	}
	if s.ReadyTimeout < 0 {
		return FieldErrorf("ready_timeout", "must be a number of seconds ≥ 0")
	}
	for _, f := range s.Restore {
		if !strings.HasPrefix(f, "/") {
			return FieldErrorf("restore", "%q: give the absolute path of a configuration file, e.g. /etc/docker/daemon.json", f)
		}
	}
	if len(s.Restore) > 0 && s.State != "started" && s.State != "restarted" {
		return FieldErrorf("restore", "restores files when the service does not come up: set state: started or restarted")
	}
	if s.Drain != nil {
		if s.State != "restarted" && s.State != "stopped" {
			return FieldErrorf("drain", "drains containers before a restart or a stop: set state: restarted or stopped")
		}
		if err := s.Drain.validate("drain"); err != nil {
			return err
		}
	}
	return nil
}

// isDocker reports whether the service is the docker daemon, whose restart
// restarts containers.
func (s *Service) isDocker() bool { return s.Name == "docker" || s.Name == "docker.service" }

type serviceOp string

const (
	opStart   serviceOp = "start"
	opStop    serviceOp = "stop"
	opRestart serviceOp = "restart"
	opEnable  serviceOp = "enable"
	opDisable serviceOp = "disable"
)

type servicePayload struct {
	op      serviceOp
	systemd bool
	// drain, when it runs anything, is stopped gracefully before op.
	drain *drainPlan
}

// Plan implements Task.
func (s *Service) Plan(ctx context.Context, h Host) ([]Change, error) {
	f, err := s.probe(ctx, h)
	if err != nil {
		return nil, err
	}
	systemd := f.systemd
	if f.missing != nil {
		return nil, f.missing
	}
	var changes []Change
	add := func(a Action, op serviceOp, summary string) *Change {
		changes = append(changes, Change{Action: a, Resource: "service", Target: s.Name, Summary: summary, Payload: servicePayload{op: op, systemd: systemd}})
		return &changes[len(changes)-1]
	}
	switch s.State {
	case "restarted":
		if !f.running {
			add(Restart, opStart, "start (it is not running)")
			break
		}
		c := add(Restart, opRestart, "restart")
		if err := s.planConsequences(ctx, h, f.running, c); err != nil {
			return nil, err
		}
	case "started", "stopped":
		running := f.running
		if s.State == "started" && !running {
			add(Update, opStart, "start")
		}
		if s.State == "stopped" && running {
			c := add(Update, opStop, "stop")
			if err := s.planConsequences(ctx, h, running, c); err != nil {
				return nil, err
			}
		}
	}
	if s.Enabled != nil {
		enabled := f.enabled
		if *s.Enabled && !enabled {
			add(Update, opEnable, "enable at boot")
		}
		if !*s.Enabled && enabled {
			add(Update, opDisable, "disable at boot")
		}
	}
	return changes, nil
}

// planConsequences adds to a restart or stop of a running docker what it
// does to the containers ("restart → restarts gitlab-dind, gitlab-runner")
// and the drain that comes first. A service that is not running (as the
// plan's probe found it) has no containers to disrupt.
func (s *Service) planConsequences(ctx context.Context, h Host, running bool, c *Change) error {
	if (!s.isDocker() && s.Drain == nil) || !running {
		return nil
	}
	var parts []string
	liveRestore := false
	if s.isDocker() {
		what, live, err := restartConsequence(ctx, h)
		if err != nil {
			return err
		}
		liveRestore = live && c.Summary == "restart"
		if c.Summary == "stop" {
			what = "stops every container"
		}
		if what != "" {
			parts = append(parts, what)
		}
	}
	p := c.Payload.(servicePayload)
	switch {
	case s.Drain == nil:
	case liveRestore:
		parts = append(parts, "no drain needed")
	default:
		dp, err := s.Drain.plan(ctx, h)
		if err != nil {
			return err
		}
		if dp.running() {
			parts = append(parts, dp.summary())
			c.Warnings = append(c.Warnings, dp.warnings()...)
			p.drain = dp
		}
	}
	c.Payload = p
	if len(parts) > 0 {
		c.Summary += " → " + strings.Join(parts, "; ")
	}
	return nil
}

// serviceFacts is what a plan knows of the service on the host.
type serviceFacts struct {
	systemd bool
	// missing is set when the service must exist (to be started, restarted
	// or enabled) and the host has no such service.
	missing error
	running bool
	enabled bool
}

// probe reads the facts a plan needs in one round trip: whether systemd
// is the init system, and the service's state both as systemd and as
// service(8) and the rc.d links see it (only the one that applies is
// used; the other is a harmless read).
func (s *Service) probe(ctx context.Context, h Host) (serviceFacts, error) {
	needExists := s.State == "started" || s.State == "restarted" || (s.Enabled != nil && *s.Enabled)
	// A restart's consequences (containers, a drain) matter only when the
	// service runs.
	// A stopped service's "restart" is a start: Debian's init scripts abort
	// a restart when the daemon is not running.
	needRunning := s.State != ""
	needEnabled := s.Enabled != nil
	// sd_booted(3): systemd is the init system iff this directory exists.
	probes := []Probe{RunProbe("test", "-d", "/run/systemd/system")}
	idx := map[string]int{}
	add := func(key string, args ...string) {
		idx[key] = len(probes)
		probes = append(probes, RunProbe(args...))
	}
	if needExists {
		add("systemd-exists", "systemctl", "show", "-p", "LoadState", "--value", s.Name)
	}
	if needExists || needRunning {
		add("sysv-status", s.sysvStatusArgs()...)
	}
	if needRunning {
		add("systemd-running", s.systemdActiveArgs()...)
	}
	if needEnabled {
		add("systemd-enabled", "systemctl", "is-enabled", "--quiet", s.Name)
		add("sysv-enabled", s.sysvEnabledArgs()...)
	}
	res, err := RunProbes(ctx, h, probes...)
	if err != nil {
		return serviceFacts{}, err
	}
	f := serviceFacts{systemd: res[0].Output.ExitCode == 0}
	out := func(key string) Output { return res[idx[key]].Output }
	if f.systemd {
		if needExists {
			f.missing = s.systemdMissing(out("systemd-exists"))
		}
		if needRunning {
			if f.running, err = runningFrom(s.systemdActiveArgs(), out("systemd-running")); err != nil {
				return f, err
			}
		}
		if needEnabled {
			f.enabled = out("systemd-enabled").ExitCode == 0
		}
		return f, nil
	}
	if needExists {
		f.missing = s.sysvMissing(out("sysv-status"))
	}
	if needRunning {
		if f.running, err = runningFrom(s.sysvStatusArgs(), out("sysv-status")); err != nil {
			return f, err
		}
	}
	if needEnabled {
		if f.enabled, err = sysvEnabledFrom(s.sysvEnabledArgs(), out("sysv-enabled")); err != nil {
			return f, err
		}
	}
	return f, nil
}

// systemdMissing is the error for a service systemd has no unit for
// (LoadState not-found), nil otherwise.
func (s *Service) systemdMissing(out Output) error {
	if state := strings.TrimSpace(string(out.Stdout)); out.ExitCode == 0 && state == "not-found" {
		return fmt.Errorf("service %s does not exist on this host: systemd has no unit %s (LoadState %s); install it first, or check the name", s.Name, s.unit(), state)
	}
	return nil
}

// sysvMissing is the error for a service service(8) finds no init script
// for (Debian's prints "NAME: unrecognized service" and exits 1), or for a
// host without service(8); nil otherwise.
func (s *Service) sysvMissing(out Output) error {
	if out.ExitCode == 127 {
		return fmt.Errorf("service is not installed on this host")
	}
	if msg := s.Name + ": unrecognized service"; out.ExitCode != 0 && (bytes.Contains(out.Stderr, []byte(msg)) || bytes.Contains(out.Stdout, []byte(msg))) {
		return fmt.Errorf("service %s does not exist on this host: %q (there is no /etc/init.d/%s); install it first, or check the name", s.Name, msg, s.Name)
	}
	return nil
}

func (s *Service) sysvStatusArgs() []string { return []string{"service", s.Name, "status"} }
func (s *Service) systemdActiveArgs() []string {
	return []string{"systemctl", "is-active", "--quiet", s.Name}
}

// sysvEnabledArgs finds the start links of the multi-user runlevels: a
// SysV service is enabled when one exists.
func (s *Service) sysvEnabledArgs() []string {
	return []string{"find", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d", "-maxdepth", "1", "-name", "S[0-9][0-9]" + s.Name}
}

// runningFrom reads a status command's answer: exit 0 is running.
func runningFrom(args []string, out Output) (bool, error) {
	if out.ExitCode == 127 {
		return false, fmt.Errorf("%s is not installed on this host", args[0])
	}
	return out.ExitCode == 0, nil
}

func sysvEnabledFrom(args []string, out Output) (bool, error) {
	if out.ExitCode != 0 {
		return false, &ExitError{Cmd: ShellJoin(args), ExitCode: out.ExitCode, Stdout: out.Stdout, Stderr: out.Stderr}
	}
	return strings.TrimSpace(string(out.Stdout)) != "", nil
}

// unit is the service's systemd unit name.
func (s *Service) unit() string {
	if strings.Contains(s.Name, ".") {
		return s.Name
	}
	return s.Name + ".service"
}

// recentLog returns the service's last log lines, headed by where they come
// from, or "" when there are none to be had: journalctl -u NAME under
// systemd, the tail of /var/log/NAME.log otherwise (Debian's init scripts,
// docker's among them, send the daemon's output there).
func (s *Service) recentLog(ctx context.Context, h Host, systemd bool) string {
	const n = 20
	args := []string{"tail", "-n", strconv.Itoa(n), "/var/log/" + s.Name + ".log"}
	if systemd {
		args = []string{"journalctl", "-u", s.unit(), "-n", strconv.Itoa(n), "--no-pager"}
	}
	out, err := h.Run(ctx, Cmd{Args: args})
	if err != nil || out.ExitCode != 0 {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(out.Stdout), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || l == "-- No entries --" {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		lines = append(lines, "  "+l)
	}
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("last lines of %s:\n%s", ShellJoin(args), strings.Join(lines, "\n"))
}

// withLog adds the service's last log lines to err.
func (s *Service) withLog(ctx context.Context, h Host, systemd bool, err error) error {
	if tail := s.recentLog(ctx, h, systemd); tail != "" {
		return fmt.Errorf("%w\n%s", err, tail)
	}
	return err
}

func (s *Service) running(ctx context.Context, h Host, systemd bool) (bool, error) {
	args := s.sysvStatusArgs()
	if systemd {
		args = s.systemdActiveArgs()
	}
	out, err := h.Run(ctx, Cmd{Args: args})
	if err != nil {
		return false, err
	}
	return runningFrom(args, out)
}

// opArgs is the command that does op: systemctl under systemd, else
// service(8), or update-rc.d to enable or disable.
func (s *Service) opArgs(op serviceOp, systemd bool) []string {
	switch {
	case systemd:
		return []string{"systemctl", string(op), s.Name}
	case op == opEnable || op == opDisable:
		return []string{"update-rc.d", s.Name, string(op)}
	}
	return []string{"service", s.Name, string(op)}
}

// Apply implements Task. A restart that fails on a service that no longer
// runs is retried as a start.
func (s *Service) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		p, ok := c.Payload.(servicePayload)
		if !ok {
			return fmt.Errorf("service: unknown change")
		}
		starts := p.op == opStart || p.op == opRestart
		drained, err := p.drain.apply(ctx, h)
		if err != nil {
			return err
		}
		var mark logMark
		if starts && len(s.Restore) > 0 {
			mark = s.markLog(ctx, h)
		}
		_, err = Exec(ctx, h, s.opArgs(p.op, p.systemd)...)
		if err != nil && p.op == opRestart && ctx.Err() == nil {
			// It stopped since the plan (a crash, an interrupted run), and
			// an init script refuses to restart what does not run: start.
			if running, rerr := s.running(ctx, h, p.systemd); rerr == nil && !running {
				_, err = Exec(ctx, h, s.opArgs(opStart, p.systemd)...)
			}
		}
		if err == nil && starts {
			err = s.waitReady(ctx, h, p.systemd)
		}
		if err != nil && starts && ctx.Err() != nil {
			// Interrupted in the middle: leave the service running.
			if err = s.finishStart(ctx, h, p.systemd, drained, err); err == nil {
				continue
			}
		}
		switch {
		case err != nil && starts && len(s.Restore) > 0 && ctx.Err() == nil:
			return s.restore(ctx, h, p.systemd, mark, err, drained)
		case err != nil && starts:
			return s.withLog(ctx, h, p.systemd, err)
		case err != nil:
			return err
		}
		if starts {
			// It came up with its files: they are the ones known to work.
			for _, f := range s.Restore {
				if err := dropConfigBackup(ctx, h, f); err != nil {
					return err
				}
			}
			if err := startAgain(ctx, h, drained); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishStart makes sure, in an UndoContext, that a service whose start or
// restart ctx's cancellation cut short runs and is ready, and starts the
// drained containers again; nil when it does.
func (s *Service) finishStart(ctx context.Context, h Host, systemd bool, drained []string, cause error) error {
	u, cancel := UndoContext(ctx, undoTimeout)
	defer cancel()
	var err error
	// The interrupted command may have begun a stop that is still under
	// way (a daemon answers while it shuts down, and its init script's
	// status says running): the service counts as running once it has
	// kept running for stableFor; else it is started again.
	for tries := 0; tries < 3; tries++ {
		var running bool
		if running, err = s.running(u, h, systemd); err != nil {
			break
		}
		if !running {
			if _, err = Exec(u, h, s.opArgs(opStart, systemd)...); err != nil {
				break
			}
		}
		if err = s.waitReady(u, h, systemd); err == nil && s.keepsRunning(u, h, systemd, stableFor) {
			break
		}
		// It stopped under us (the stop completed): start it again.
		if r, rerr := s.running(u, h, systemd); rerr != nil || r {
			break
		}
	}
	if err == nil {
		err = startAgain(u, h, drained)
	}
	if err != nil {
		return fmt.Errorf("%w; starting %s after the interruption failed too: %v", cause, s.Name, err)
	}
	return nil
}

// stableFor is how long a service started again after an interruption
// must keep running to count as running.
const stableFor = 5 * time.Second

// keepsRunning reports whether the service runs at every check, each
// second, for d.
func (s *Service) keepsRunning(ctx context.Context, h Host, systemd bool, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
		if running, err := s.running(ctx, h, systemd); err != nil || !running {
			return false
		}
	}
	return true
}

// dockerAnswers asks the docker daemon for its info over the Engine API (GET
// /info) and returns "" when it answers, else why not. A host without the
// API counts as answering: the service reports running, which is all that
// can be known there.
func dockerAnswers(ctx context.Context, h Host) string {
	api, err := Docker(ctx, h)
	if errors.Is(err, ErrNoDockerAPI) {
		return ""
	}
	if err == nil {
		_, err = api.Info(ctx, client.InfoOptions{})
	}
	if err != nil {
		return "the docker daemon does not answer its API yet: " + err.Error()
	}
	return ""
}

// stoppedGrace is how long waitReady lets a started service report
// stopped before it takes it for exited.
const stoppedGrace = 5 * time.Second

// waitReady polls until the service runs and is ready: the ready command
// succeeds, or, for docker without one, its Engine API answers.
func (s *Service) waitReady(ctx context.Context, h Host, systemd bool) error {
	timeout := time.Duration(s.ReadyTimeout) * time.Second
	if s.ReadyTimeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	// A service that stays stopped after its start command returned has
	// exited (dockerd refusing its configuration): no need to wait the
	// whole timeout for it.
	var stoppedSince time.Time
	for {
		running, err := s.running(ctx, h, systemd)
		switch {
		case err != nil || running:
			stoppedSince = time.Time{}
		case stoppedSince.IsZero():
			stoppedSince = time.Now()
		case time.Since(stoppedSince) >= stoppedGrace:
			return fmt.Errorf("%s is not running: it exited after it was started", s.Name)
		}
		if err == nil && running {
			if len(s.Ready) == 0 && s.isDocker() {
				if last = dockerAnswers(ctx, h); last == "" {
					return nil
				}
			} else if len(s.Ready) == 0 {
				return nil
			}
		}
		if err == nil && running && len(s.Ready) > 0 {
			out, rerr := h.Run(ctx, Cmd{Args: s.Ready})
			if rerr == nil && out.ExitCode == 0 {
				return nil
			}
			if rerr == nil {
				last = (&ExitError{Cmd: ShellJoin(s.Ready), ExitCode: out.ExitCode, Stderr: out.Stderr}).Error()
			}
		} else if err == nil && !running {
			last = s.Name + " is not running"
		}
		select {
		case <-ctx.Done():
			if last == "" {
				last = ctx.Err().Error()
			}
			return fmt.Errorf("%s did not become ready within %s: %s", s.Name, timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
