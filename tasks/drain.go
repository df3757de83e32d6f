package tasks

// Draining: stopping containers gracefully before a task disrupts them (a
// docker restart, the recreation or removal of a container they depend on),
// and what a docker restart does to the containers it runs. Shared by the
// service and docker_container task kinds.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Drain stops containers gracefully before the task that holds it disrupts
// them, and waits, bounded, until they have exited.
//
//	drain:
//	  containers: [gitlab-runner]
//	  signal: SIGQUIT     # the default: gitlab-runner's graceful shutdown
//	  timeout: 3600       # seconds; the default
//
// For gitlab-runner, SIGQUIT is the graceful shutdown
// (https://docs.gitlab.com/runner/commands/#signals): the runner asks for no
// new job, finishes the jobs it runs, then exits. dindops sends the signal
// with the Engine API's kill (API 1.41's stop takes no signal, and a
// container's own stop signal may be SIGTERM, gitlab-runner's forceful
// shutdown that aborts jobs), then waits for each drained container with the
// API's wait (condition not-running) until it has exited. Docker does not
// restart a container that exits after a kill with no stop signal
// configured, or with its
// configured stop signal (moby daemon/kill.go), so set the container's
// stop_signal to the drain signal; a plan warns when it differs.
//
// When the timeout passes, the containers still running are killed
// (SIGKILL) and the task goes on: jobs still running then are lost, as
// they would be without a drain. Containers that were not running are left
// alone. After a restart or a recreation, the task starts the drained
// containers again if docker has not already done so; after a
// removal they stay stopped.
type Drain struct {
	// Containers are the names of the containers to drain.
	Containers []string `yaml:"containers"`
	// Signal is sent to each running container (default SIGQUIT). Names
	// with or without "SIG" and numbers are accepted, as docker does.
	Signal string `yaml:"signal"`
	// Timeout is the longest wait for the containers to exit, in seconds
	// (default 3600). Match it to the longest job the runner may run.
	Timeout int `yaml:"timeout"`
}

const (
	defaultDrainSignal  = "SIGQUIT"
	defaultDrainTimeout = 3600
)

func (d *Drain) signal() string {
	if d.Signal == "" {
		return defaultDrainSignal
	}
	return normSignal(d.Signal)
}

func (d *Drain) timeout() time.Duration {
	if d.Timeout == 0 {
		return defaultDrainTimeout * time.Second
	}
	return time.Duration(d.Timeout) * time.Second
}

// normSignal writes a signal as docker shows it in Config.StopSignal when
// given by name: "quit", "QUIT" and "SIGQUIT" are "SIGQUIT"; a number stays
// a number.
func normSignal(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	if _, err := strconv.Atoi(u); err == nil || u == "" {
		return u
	}
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	return u
}

// signalNumbers are the Linux numbers of the signals a drain or a stop
// signal is likely to name, so that "3" and "SIGQUIT" compare equal.
var signalNumbers = map[string]string{"SIGHUP": "1", "SIGINT": "2", "SIGQUIT": "3", "SIGKILL": "9",
	"SIGUSR1": "10", "SIGUSR2": "12", "SIGTERM": "15", "SIGWINCH": "28"}

// sameSignal reports whether two signal names mean the same signal; an
// empty one is docker's default, SIGTERM.
func sameSignal(a, b string) bool {
	num := func(s string) string {
		s = normSignal(s)
		if s == "" {
			s = "SIGTERM"
		}
		if n, ok := signalNumbers[s]; ok {
			return n
		}
		return s
	}
	return num(a) == num(b)
}

// validate checks the drain options; field is the option's name ("drain").
func (d *Drain) validate(field string) error {
	if len(d.Containers) == 0 {
		return FieldErrorf(field+".containers", "name the containers to drain, e.g. [gitlab-runner]")
	}
	seen := map[string]bool{}
	for _, c := range d.Containers {
		switch {
		case !dockerNameRE.MatchString(c):
			return FieldErrorf(field+".containers", "invalid container name %q", c)
		case seen[c]:
			return FieldErrorf(field+".containers", "%q is listed twice", c)
		}
		seen[c] = true
	}
	if d.Signal != "" {
		s := normSignal(d.Signal)
		if s == "SIGKILL" || s == "9" {
			return FieldErrorf(field+".signal", "SIGKILL cannot drain anything: it stops the container at once; use the program's graceful stop signal (SIGQUIT for gitlab-runner)")
		}
		if !drainSignalRE(s) {
			return FieldErrorf(field+".signal", "%q is not a signal name such as SIGQUIT or a number", d.Signal)
		}
	}
	if d.Timeout < 0 {
		return FieldErrorf(field+".timeout", "must be a number of seconds, at least 1 (0 means the default, %d)", defaultDrainTimeout)
	}
	return nil
}

func drainSignalRE(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0 && n < 65
	}
	if len(s) < 4 || len(s) > 16 {
		return false
	}
	for _, r := range s[3:] {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-') {
			return false
		}
	}
	return true
}

// drainTarget is a container a drain will stop, as plan found it.
type drainTarget struct {
	Name          string
	RestartPolicy string
	StopSignal    string
}

// drainPlan is what a drain will do on a host: the containers that run now.
type drainPlan struct {
	drain   *Drain
	targets []drainTarget
}

// running reports whether the plan drains anything.
func (p *drainPlan) running() bool { return p != nil && len(p.targets) > 0 }

func (p *drainPlan) names() []string {
	var n []string
	for _, t := range p.targets {
		n = append(n, t.Name)
	}
	return n
}

// summary is "drains gitlab-runner first (SIGQUIT, waits up to 1h0m0s for
// its running jobs)", or "" when nothing runs to be drained.
func (p *drainPlan) summary() string {
	if !p.running() {
		return ""
	}
	return fmt.Sprintf("drains %s first (%s, waits up to %s for running jobs)",
		strings.Join(p.names(), ", "), p.drain.signal(), p.drain.timeout())
}

// warnings are what the user should know before a drain: a container that
// docker would restart right after the drain stops it.
func (p *drainPlan) warnings() []string {
	if !p.running() {
		return nil
	}
	var w []string
	for _, t := range p.targets {
		if t.StopSignal != "" && !sameSignal(t.StopSignal, p.drain.signal()) && (t.RestartPolicy == "always" || t.RestartPolicy == "unless-stopped") {
			w = append(w, fmt.Sprintf("container %s has stop signal %s, not the drain signal %s: docker restarts it (restart policy %s) as soon as the drain stops it, and it takes jobs again; recreate it with stop_signal: %s",
				t.Name, t.StopSignal, p.drain.signal(), t.RestartPolicy, p.drain.signal()))
		}
	}
	return w
}

// inspectContainers returns the named containers that exist, by name (one
// GET /containers/{name}/json each).
func inspectContainers(ctx context.Context, api DockerEngine, names []string) (map[string]*container.InspectResponse, error) {
	out := map[string]*container.InspectResponse{}
	for _, n := range names {
		c, err := inspectContainer(ctx, api, n)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out[n] = c
		}
	}
	return out, nil
}

// plan reads which of the drain's containers run now. Only those are
// drained; a nil Drain plans nothing.
func (d *Drain) plan(ctx context.Context, h Host) (*drainPlan, error) {
	if d == nil {
		return nil, nil
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, err
	}
	found, err := inspectContainers(ctx, api, d.Containers)
	if err != nil {
		return nil, err
	}
	p := &drainPlan{drain: d}
	for _, n := range d.Containers {
		c, ok := found[n]
		if !ok || !c.State.Running {
			continue
		}
		p.targets = append(p.targets, drainTarget{Name: n, RestartPolicy: string(c.HostConfig.RestartPolicy.Name), StopSignal: c.Config.StopSignal})
	}
	return p, nil
}

// apply sends the drain signal to every container the plan found running
// (POST /containers/{name}/kill?signal=SIG), waits until they have all
// exited or the timeout passed (POST /containers/{name}/wait with condition
// not-running, one request each, no polling), and kills those still
// running then. It returns the containers it stopped, to be started again
// after a restart.
func (p *drainPlan) apply(ctx context.Context, h Host) ([]string, error) {
	if !p.running() {
		return nil, nil
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, err
	}
	names := p.names()
	sig := p.drain.signal()
	for _, n := range names {
		// Exited since the plan (a conflict: "is not running"): nothing
		// to drain.
		if _, err := api.ContainerKill(ctx, n, client.ContainerKillOptions{Signal: sig}); err != nil && !DockerConflict(err) {
			return nil, dockerErr("drain "+n+": send "+sig, err)
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, p.drain.timeout())
	defer cancel()
	var left []string
	for _, n := range names {
		exited, err := waitNotRunning(waitCtx, api, n)
		switch {
		case ctx.Err() != nil:
			return nil, drainInterrupted(ctx, h, names)
		case err != nil:
			return nil, dockerErr("drain "+n+": wait for it to exit", err)
		case !exited:
			left = append(left, n)
		}
	}
	for _, n := range left {
		if _, err := api.ContainerKill(ctx, n, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil && !DockerConflict(err) && !DockerNotFound(err) {
			return nil, dockerErr(fmt.Sprintf("drain %s: still running after %s, and killing it failed", n, p.drain.timeout()), err)
		}
	}
	return names, nil
}

// drainInterrupted starts again, in an UndoContext, the drained containers
// that have exited already, and says what became of the others: a
// container told to stop gracefully cannot be told to go on, so one still
// finishing its jobs exits when done and stays stopped until the next
// apply (or docker start) starts it.
func drainInterrupted(ctx context.Context, h Host, names []string) error {
	u, cancel := UndoContext(ctx, undoTimeout)
	defer cancel()
	cause := ctx.Err()
	if err := startAgain(u, h, names); err != nil {
		return fmt.Errorf("drain of %s interrupted (%w), and starting them again failed: %v; start them with docker start %s", strings.Join(names, ", "), cause, err, strings.Join(names, " "))
	}
	return fmt.Errorf("drain of %s interrupted (%w): those that had exited were started again; one still finishing its jobs stops when they end, and the next apply starts it (or docker start %s)", strings.Join(names, ", "), cause, strings.Join(names, " "))
}

// waitNotRunning waits until the container is not running, or ctx is done
// (exited false, no error). A container that is gone counts as exited.
func waitNotRunning(ctx context.Context, api DockerEngine, name string) (exited bool, err error) {
	w := api.ContainerWait(ctx, name, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
		return true, nil
	case err := <-w.Error:
		switch {
		case DockerNotFound(err):
			return true, nil
		case ctx.Err() != nil:
			return false, nil
		}
		return false, err
	case <-ctx.Done():
		return false, nil
	}
}

// startAgain starts the drained containers that are not running (docker
// may have started them already: restart policy always on a daemon
// restart).
func startAgain(ctx context.Context, h Host, names []string) error {
	if len(names) == 0 {
		return nil
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return err
	}
	found, err := inspectContainers(ctx, api, names)
	if err != nil {
		return err
	}
	for _, n := range names {
		c, ok := found[n]
		if !ok || c.State.Running {
			continue
		}
		if _, err := api.ContainerStart(ctx, n, client.ContainerStartOptions{}); err != nil {
			return dockerErr("start drained container "+n+" again", err)
		}
	}
	return nil
}

// restartConsequence says what restarting the docker daemon does to the
// containers it runs: with live-restore they keep running; without it,
// docker stops them all and starts again those whose restart policy is
// always or unless-stopped (https://docs.docker.com/engine/containers/start-containers-automatically/,
// https://docs.docker.com/engine/daemon/live-restore/), which it reports.
// It returns "" when docker does not answer (it is stopped, and a restart
// starts it). It reads GET /info, GET /containers/json and each running
// container's inspect.
func restartConsequence(ctx context.Context, h Host) (what string, liveRestore bool, err error) {
	api, err := Docker(ctx, h)
	if DockerUnreachable(err) || errors.Is(err, ErrNoDockerAPI) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	info, err := api.Info(ctx, client.InfoOptions{})
	if DockerUnreachable(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, dockerErr("docker info", err)
	}
	if info.Info.LiveRestoreEnabled {
		return "containers keep running (live-restore)", true, nil
	}
	list, err := api.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return "", false, dockerErr("list the running containers", err)
	}
	var names []string
	for _, c := range list.Items {
		for _, nm := range c.Names {
			if nm = strings.TrimPrefix(nm, "/"); !strings.Contains(nm, "/") {
				names = append(names, nm)
				break
			}
		}
	}
	names = sortedSet(names)
	if len(names) == 0 {
		return "", false, nil
	}
	found, err := inspectContainers(ctx, api, names)
	if err != nil {
		return "", false, err
	}
	var restarted, stopped []string
	for _, n := range names {
		c, ok := found[n]
		if !ok || !c.State.Running {
			continue
		}
		switch c.HostConfig.RestartPolicy.Name {
		case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
			restarted = append(restarted, n)
		default:
			stopped = append(stopped, n)
		}
	}
	var parts []string
	if len(restarted) > 0 {
		parts = append(parts, "restarts "+strings.Join(restarted, ", "))
	}
	if len(stopped) > 0 {
		parts = append(parts, "stops "+strings.Join(stopped, ", ")+" (no restart policy)")
	}
	return strings.Join(parts, "; "), false, nil
}
