package tasks

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Schedule runs a command on the host at a regular time, between dindops
// runs: a systemd timer where systemd is the init system (sd_booted(3):
// /run/systemd/system exists), else a file in /etc/cron.d (cron's own
// directory; cron(8) must be installed). Output goes to the journal
// (systemd) or to syslog tagged with the name (cron, through logger(1)).
//
//   - name: dind's cache is pruned every day
//     schedule:
//     name: dindops-prune-gitlab-dind
//     command: [/usr/local/sbin/dindops-prune-gitlab-dind]
//     every: daily
//
// Plan shows the unit or cron files with diffs, and a timer to enable or
// start; state: absent removes them (a timer is stopped and disabled
// first).
type Schedule struct {
	// Name names the timer and its service (NAME.timer, NAME.service) or
	// the cron file (/etc/cron.d/NAME): letters, digits, - and _ (cron
	// skips files with other characters in their names).
	Name string `yaml:"name"`
	// Command is the program and its arguments; the program is an
	// absolute path. Arguments are plain words (letters, digits and
	// ./_:=@,+-): anything more belongs in a script.
	Command []string `yaml:"command"`
	// Every is hourly, daily (default), weekly or monthly: systemd's
	// OnCalendar shorthands (systemd.time(7)) and cron's @hourly...
	// (crontab(5)).
	Every string `yaml:"every"`
	// User runs the command (default root).
	User string `yaml:"user"`
	// State is present (default) or absent.
	State string `yaml:"state"`
	// Description is the unit's Description= and the cron file's comment.
	Description string `yaml:"description"`
}

var (
	scheduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	plainWord    = regexp.MustCompile(`^[A-Za-z0-9./_:=@,+-]+$`)
)

// Validate implements Validator.
func (s *Schedule) Validate() error {
	if !scheduleName.MatchString(s.Name) {
		return FieldErrorf("name", "must be letters, digits, - and _ (it names a systemd unit or a file in /etc/cron.d), got %q", s.Name)
	}
	if len(s.Command) == 0 || !strings.HasPrefix(s.Command[0], "/") {
		return FieldErrorf("command", "must be a list whose first item is the program's absolute path, got %q", s.Command)
	}
	for _, a := range s.Command {
		if !plainWord.MatchString(a) {
			return FieldErrorf("command", "%q is more than a plain word (letters, digits and ./_:=@,+-): put the command in a script and schedule the script", a)
		}
	}
	switch s.Every {
	case "":
		s.Every = "daily"
	case "hourly", "daily", "weekly", "monthly":
	default:
		return FieldErrorf("every", "must be hourly, daily, weekly or monthly, got %q", s.Every)
	}
	if s.User == "" {
		s.User = "root"
	} else if !plainWord.MatchString(s.User) {
		return FieldErrorf("user", "must be a user name, got %q", s.User)
	}
	switch s.State {
	case "", "present", "absent":
	default:
		return FieldErrorf("state", "must be present or absent, got %q", s.State)
	}
	if strings.ContainsAny(s.Description, "\n%") {
		return FieldErrorf("description", "must be one line without %%")
	}
	return nil
}

func (s *Schedule) describe() string {
	if s.Description != "" {
		return s.Description
	}
	return "runs " + s.Command[0]
}

// files are the File tasks that make the schedule on a host with or
// without systemd.
func (s *Schedule) files(systemd bool) []*File {
	mode := Mode(0o644)
	f := func(path, content string) *File {
		if s.State == "absent" {
			return &File{Path: path, State: "absent"}
		}
		return &File{Path: path, Content: content, Owner: "root", Group: "root", Mode: &mode}
	}
	cmd := strings.Join(s.Command, " ")
	if !systemd {
		return []*File{f("/etc/cron.d/"+s.Name, fmt.Sprintf(`# %s: written by dindops, and the next apply replaces any edit.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
@%s %s %s 2>&1 | logger -t %s
`, s.describe(), s.Every, s.User, cmd, s.Name))}
	}
	return []*File{
		f("/etc/systemd/system/"+s.Name+".service", fmt.Sprintf(`# Written by dindops: the next apply replaces any edit.
[Unit]
Description=%s

[Service]
Type=oneshot
User=%s
ExecStart=%s
`, s.describe(), s.User, cmd)),
		f("/etc/systemd/system/"+s.Name+".timer", fmt.Sprintf(`# Written by dindops: the next apply replaces any edit.
[Unit]
Description=%s (%s)

[Timer]
OnCalendar=%s
# A run missed while the host was off runs at boot; hosts do not all
# start at the same second.
Persistent=true
RandomizedDelaySec=1h

[Install]
WantedBy=timers.target
`, s.describe(), s.Every, s.Every)),
	}
}

// schedulePayload is how Apply makes the timer's change.
type schedulePayload struct {
	timer string // "enable" or "disable"
}

// Plan implements Task. One round trip: the init system, cron's
// directory, the timer's state and every file either way are read at
// once.
func (s *Schedule) Plan(ctx context.Context, h Host) ([]Change, error) {
	timer := s.Name + ".timer"
	cron, units := s.files(false), s.files(true)
	probes := []Probe{RunProbe("test", "-d", "/run/systemd/system"), RunProbe("test", "-d", "/etc/cron.d"),
		RunProbe("systemctl", "is-enabled", "--quiet", timer), RunProbe("systemctl", "is-active", "--quiet", timer)}
	for _, f := range append(append([]*File(nil), cron...), units...) {
		probes = append(probes, ReadProbe(f.Path))
	}
	res, err := RunProbes(ctx, h, probes...)
	if err != nil {
		return nil, err
	}
	systemd := res[0].Output.ExitCode == 0
	if !systemd && res[1].Output.ExitCode != 0 {
		if s.State == "absent" {
			return nil, nil
		}
		// A schedule that cannot be installed fails no host: what it runs
		// between dindops runs is not what makes the host work.
		return nil, &WarningsError{Warnings: []string{fmt.Sprintf("schedule %s is not installed: this host has neither systemd nor /etc/cron.d (install cron, e.g. apt-get install cron, and run apply again)", s.Name)}}
	}
	files, read := cron, res[4:4+len(cron)]
	if systemd {
		files, read = units, res[4+len(cron):]
	}
	var changes []Change
	for i, f := range files {
		fc, err := f.planFile(read[i].read())
		if err != nil {
			return nil, err
		}
		for _, c := range fc {
			changes = append(changes, withFilePayload(c, f))
		}
	}
	if systemd {
		enabled, active := res[2].Output.ExitCode == 0, res[3].Output.ExitCode == 0
		switch {
		case s.State == "absent" && (enabled || active):
			changes = append([]Change{{Action: Delete, Resource: "timer", Target: timer, Summary: "stop and disable", Payload: schedulePayload{timer: "disable"}}}, changes...)
		case s.State != "absent" && (!enabled || !active || len(changes) > 0):
			summary := "enable and start"
			if enabled && active {
				summary = "restart (its units changed)"
			}
			changes = append(changes, Change{Action: Update, Resource: "timer", Target: timer, Summary: summary, Payload: schedulePayload{timer: "enable"}})
		}
	}
	return changes, nil
}

// withFilePayload keeps the file task's own payload inside the change:
// Apply hands the change back to it.
func withFilePayload(c Change, f *File) Change {
	c.Payload = fileChange{file: f, payload: c.Payload}
	return c
}

type fileChange struct {
	file    *File
	payload any
}

// Apply implements Task.
func (s *Schedule) Apply(ctx context.Context, h Host, changes []Change) error {
	reload := false
	for _, c := range changes {
		switch p := c.Payload.(type) {
		case fileChange:
			c.Payload = p.payload
			if err := p.file.Apply(ctx, h, []Change{c}); err != nil {
				return err
			}
			reload = reload || strings.HasPrefix(p.file.Path, "/etc/systemd/")
		case schedulePayload:
			switch p.timer {
			case "disable":
				if _, err := Exec(ctx, h, "systemctl", "disable", "--now", s.Name+".timer"); err != nil {
					return err
				}
			case "enable":
				if _, err := Exec(ctx, h, "systemctl", "daemon-reload"); err != nil {
					return err
				}
				reload = false
				if _, err := Exec(ctx, h, "systemctl", "enable", "--now", s.Name+".timer"); err != nil {
					return err
				}
				if _, err := Exec(ctx, h, "systemctl", "restart", s.Name+".timer"); err != nil {
					return err
				}
			}
		}
	}
	if reload {
		_, err := Exec(ctx, h, "systemctl", "daemon-reload")
		return err
	}
	return nil
}
