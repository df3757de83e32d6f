package tasks

// A service that does not come up after a change of its configuration:
// the files named in restore get back the content they had before dindops
// wrote them (kept by the task that wrote them: config_backup.go), the
// service is started again, and the task fails with the service's own
// reason.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RestoredError is a service that did not come up after its configuration
// changed: the previous content of Files was put back and the service
// started again (Running says whether it then came up). Reason is what
// the service logged when it failed.
type RestoredError struct {
	Service string
	Files   []string
	Reason  string
	Running bool
	// Again is why the service did not come up with the restored files
	// either (when not Running).
	Again string
	Err   error
}

func (e *RestoredError) Error() string {
	files := strings.Join(e.Files, ", ")
	msg := fmt.Sprintf("%s did not come back after the change of %s", e.Service, files)
	if e.Reason != "" {
		msg += ": " + e.Reason
	} else {
		msg += ": " + e.Err.Error()
	}
	if e.Running {
		return msg + fmt.Sprintf("\nthe previous %s was restored and %s runs again with it; correct the settings (or delete the key with remove:) and run apply again", files, e.Service)
	}
	return msg + fmt.Sprintf("\nthe previous %s was restored, but %s does not start with it either: %s; %s is stopped", files, e.Service, e.Again, e.Service)
}

func (e *RestoredError) Unwrap() error { return e.Err }

// RestoredFiles are the files put back (for the pending-handler record).
func (e *RestoredError) RestoredFiles() []string { return e.Files }

// logMark is where the service's log ends before a start: what it logs
// after is its reason when the start fails.
type logMark struct {
	since string // seconds since the epoch on the host (journalctl --since @N)
	size  int64  // bytes of /var/log/NAME.log
	ok    bool
}

func (s *Service) logFile() string { return "/var/log/" + s.Name + ".log" }

// markLog finds where the service's log ends now.
func (s *Service) markLog(ctx context.Context, h Host) logMark {
	out, err := h.Run(ctx, Cmd{Args: []string{"sh", "-c", `date +%s; stat -c %s "$1" 2>/dev/null || echo 0`, "sh", s.logFile()}})
	if err != nil || out.ExitCode != 0 {
		return logMark{}
	}
	f := strings.Fields(string(out.Stdout))
	if len(f) != 2 {
		return logMark{}
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	return logMark{since: f[0], size: size, ok: err == nil}
}

// logSince returns the last lines the service logged since m, or "".
func (s *Service) logSince(ctx context.Context, h Host, systemd bool, m logMark) []string {
	if !m.ok {
		return nil
	}
	args := []string{"sh", "-c", `tail -c +"$1" "$2" | tail -n 20`, "sh", strconv.FormatInt(m.size+1, 10), s.logFile()}
	if systemd {
		args = []string{"journalctl", "-u", s.unit(), "--since", "@" + m.since, "-n", "20", "--no-pager", "-o", "cat"}
	}
	out, err := h.Run(ctx, Cmd{Args: args})
	if err != nil || out.ExitCode != 0 {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(out.Stdout), "\n") {
		if l = strings.TrimRight(l, " \t\r"); l != "" && l != "-- No entries --" {
			lines = append(lines, l)
		}
	}
	return lines
}

// failureReason picks the service's own reason from its log lines: the
// last fatal or error line (dockerd: `level=fatal msg="..."`, or the plain
// line it prints before it exits), else the last line.
func failureReason(lines []string) string {
	reason := ""
	for _, l := range lines {
		if strings.Contains(l, "level=fatal") || strings.Contains(l, "level=error") || !strings.Contains(l, "level=") {
			reason = l
		}
	}
	if reason == "" && len(lines) > 0 {
		reason = lines[len(lines)-1]
	}
	if m := strings.Index(reason, `msg="`); m >= 0 {
		reason = strings.TrimSuffix(strings.SplitN(reason[m+5:], `" `, 2)[0], `"`)
	}
	if len(reason) > 500 {
		reason = reason[:500] + "…"
	}
	return reason
}

// restore handles a start or restart that failed (failure) with the
// service's configuration files in s.Restore: it puts back their previous
// content, starts the service again and waits for it, starts the drained
// containers again, and returns the *RestoredError that says so. When no
// file could be restored it returns failure with the service's log, as
// without restore.
func (s *Service) restore(ctx context.Context, h Host, systemd bool, m logMark, failure error, drained []string) error {
	lines := s.logSince(ctx, h, systemd, m)
	var restored, notes []string
	for _, f := range s.Restore {
		why, err := restoreConfigBackup(ctx, h, f)
		if err != nil {
			return fmt.Errorf("%w\nrestoring the previous %s failed: %v", s.withLog(ctx, h, systemd, failure), f, err)
		}
		if why != "" {
			notes = append(notes, why)
			continue
		}
		restored = append(restored, f)
	}
	if len(restored) == 0 {
		err := s.withLog(ctx, h, systemd, failure)
		if len(notes) > 0 {
			err = fmt.Errorf("%w\nnothing was restored: %s", err, strings.Join(notes, "; "))
		}
		return err
	}
	e := &RestoredError{Service: s.Name, Files: restored, Reason: failureReason(lines), Err: failure}
	m = s.markLog(ctx, h)
	_, err := Exec(ctx, h, s.opArgs(opStart, systemd)...)
	if err == nil {
		err = s.waitReady(ctx, h, systemd)
	}
	if err != nil {
		e.Again = err.Error()
		if r := failureReason(s.logSince(ctx, h, systemd, m)); r != "" {
			e.Again += ": " + r
		}
		return e
	}
	e.Running = true
	for _, f := range restored {
		if err := dropConfigBackup(ctx, h, f); err != nil {
			return errors.Join(e, err)
		}
	}
	if err := startAgain(ctx, h, drained); err != nil {
		return errors.Join(e, err)
	}
	return e
}
