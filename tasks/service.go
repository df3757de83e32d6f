package tasks

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
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
//	      ready: [docker, info]
//
// state: restarted always restarts, so it belongs in a handler, which runs
// only when a task that notifies it changed something. After a start or a
// restart, the task waits until the service reports running and, when ready
// is given, until that command exits 0 (docker's init script returns before
// the daemon answers; systemd's docker.service waits by itself).
type Service struct {
	Name string `yaml:"name"`
	// State is "started", "stopped", "restarted" or empty (leave it alone).
	State string `yaml:"state"`
	// Enabled says whether the service starts at boot; unset leaves it.
	Enabled *bool `yaml:"enabled"`
	// Ready is a command that succeeds once the service can be used.
	Ready []string `yaml:"ready"`
	// ReadyTimeout is how long to wait for it, in seconds (default 60).
	ReadyTimeout int `yaml:"ready_timeout"`
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
	return nil
}

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
}

// Plan implements Task.
func (s *Service) Plan(ctx context.Context, h Host) ([]Change, error) {
	systemd, err := hasSystemd(ctx, h)
	if err != nil {
		return nil, err
	}
	var changes []Change
	add := func(a Action, op serviceOp, summary string) {
		changes = append(changes, Change{Action: a, Resource: "service", Target: s.Name, Summary: summary, Payload: servicePayload{op: op, systemd: systemd}})
	}
	switch s.State {
	case "restarted":
		add(Restart, opRestart, "restart")
	case "started", "stopped":
		running, err := s.running(ctx, h, systemd)
		if err != nil {
			return nil, err
		}
		if s.State == "started" && !running {
			add(Update, opStart, "start")
		}
		if s.State == "stopped" && running {
			add(Update, opStop, "stop")
		}
	}
	if s.Enabled != nil {
		enabled, err := s.enabled(ctx, h, systemd)
		if err != nil {
			return nil, err
		}
		if *s.Enabled && !enabled {
			add(Update, opEnable, "enable at boot")
		}
		if !*s.Enabled && enabled {
			add(Update, opDisable, "disable at boot")
		}
	}
	return changes, nil
}

func hasSystemd(ctx context.Context, h Host) (bool, error) {
	// sd_booted(3): systemd is the init system iff this directory exists.
	out, err := h.Run(ctx, Cmd{Args: []string{"test", "-d", "/run/systemd/system"}})
	if err != nil {
		return false, err
	}
	return out.ExitCode == 0, nil
}

func (s *Service) running(ctx context.Context, h Host, systemd bool) (bool, error) {
	args := []string{"service", s.Name, "status"}
	if systemd {
		args = []string{"systemctl", "is-active", "--quiet", s.Name}
	}
	out, err := h.Run(ctx, Cmd{Args: args})
	if err != nil {
		return false, err
	}
	if out.ExitCode == 127 {
		return false, fmt.Errorf("%s is not installed on this host", args[0])
	}
	return out.ExitCode == 0, nil
}

func (s *Service) enabled(ctx context.Context, h Host, systemd bool) (bool, error) {
	if systemd {
		out, err := h.Run(ctx, Cmd{Args: []string{"systemctl", "is-enabled", "--quiet", s.Name}})
		if err != nil {
			return false, err
		}
		return out.ExitCode == 0, nil
	}
	// SysV: enabled when a start link exists for a multi-user runlevel.
	out, err := Exec(ctx, h, "find", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d", "-maxdepth", "1", "-name", "S[0-9][0-9]"+s.Name)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) != "", nil
}

// Apply implements Task.
func (s *Service) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, c := range changes {
		p, ok := c.Payload.(servicePayload)
		if !ok {
			return fmt.Errorf("service: unknown change")
		}
		var args []string
		switch {
		case p.systemd:
			args = []string{"systemctl", string(p.op), s.Name}
		case p.op == opEnable || p.op == opDisable:
			args = []string{"update-rc.d", s.Name, string(p.op)}
		default:
			args = []string{"service", s.Name, string(p.op)}
		}
		if _, err := Exec(ctx, h, args...); err != nil {
			return err
		}
		if p.op == opStart || p.op == opRestart {
			if err := s.waitReady(ctx, h, p.systemd); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitReady polls until the service runs and the ready command succeeds.
func (s *Service) waitReady(ctx context.Context, h Host, systemd bool) error {
	timeout := time.Duration(s.ReadyTimeout) * time.Second
	if s.ReadyTimeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		running, err := s.running(ctx, h, systemd)
		if err == nil && running {
			if len(s.Ready) == 0 {
				return nil
			}
			out, rerr := h.Run(ctx, Cmd{Args: s.Ready})
			if rerr == nil && out.ExitCode == 0 {
				return nil
			}
			if rerr == nil {
				last = (&ExitError{Cmd: ShellJoin(s.Ready), ExitCode: out.ExitCode, Stderr: out.Stderr}).Error()
			}
		} else if err == nil {
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
