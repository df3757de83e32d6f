package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/dindops/dindops/tasks"
)

// probePrologue runs each probe of a batch with stdin closed, its stdout and
// stderr in files of a private temporary directory, and prints one line per
// probe: "EXIT BASE64(STDOUT) BASE64(STDERR)". The probes' argv are appended
// as calls of p, each element quoted with tasks.ShellQuote. It starts as few
// processes on the host as it can (no command substitution, no base64 for
// empty output): on a busy host, or many hosts on one machine, processes
// are what a plan costs there.
const probePrologue = `export LC_ALL=C
command -v base64 >/dev/null || exit 126
t=$(mktemp -d) || exit 125
trap 'rm -rf "$t"' EXIT
p() {
	"$@" </dev/null >"$t/o" 2>"$t/e"
	printf '%d ' "$?"
	if [ -s "$t/o" ]; then base64 -w0 <"$t/o"; fi
	printf ' '
	if [ -s "$t/e" ]; then base64 -w0 <"$t/e"; fi
	printf '\n'
}
`

// Probe implements tasks.Prober: all probes run in one remote shell (under
// sudo with become), so a task's plan costs one round trip however many
// files and read-only commands it needs. A file probe is read as ReadFile
// reads it. Errors: those of Run for the batch; per probe, those of ReadFile
// (a missing file is Exists == false, not an error).
func (h *host) Probe(ctx context.Context, probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	if len(probes) == 0 {
		return nil, nil
	}
	if len(probes) == 1 {
		// One probe is one command as it is: the batch's shell, temporary
		// directory and encoding would only add processes on the host.
		return h.probeEach(ctx, probes), nil
	}
	var script strings.Builder
	script.WriteString(probePrologue)
	names := make([]string, len(probes))
	for i, pr := range probes {
		args := pr.Args
		switch {
		case pr.Path != "" && len(pr.Args) > 0:
			return nil, fmt.Errorf("%s: probe %d has both a path and a command", h.c.name, i)
		case pr.Path != "":
			if !path.IsAbs(pr.Path) {
				return nil, &fs.PathError{Op: "read", Path: pr.Path, Err: errors.New("path must be absolute")}
			}
			args = []string{"sh", "-c", readScript, "sh", pr.Path}
			names[i] = "read " + pr.Path
		case len(args) == 0:
			return nil, fmt.Errorf("%s: probe %d is empty", h.c.name, i)
		default:
			names[i] = tasks.ShellJoin(args)
		}
		script.WriteString("p " + tasks.ShellJoin(args) + "\n")
	}
	display := "probe: " + strings.Join(names, "; ")
	out, err := h.run(ctx, []string{"sh", "-c", script.String()}, nil, false, execOpts{display: display, whole: true})
	if err != nil {
		return nil, err
	}
	if out.ExitCode == 126 {
		// No base64(1) on this host (it is in coreutils and busybox, so this
		// is rare): probe one by one instead.
		h.c.log.Debug("no base64 on the host: probing one command at a time")
		return h.probeEach(ctx, probes), nil
	}
	if out.ExitCode != 0 {
		return nil, &CommandError{Host: h.c.name, Cmd: display, Stdout: out.Stdout, Stderr: out.Stderr,
			Err: fmt.Errorf("exit status %d: %s", out.ExitCode, tasks.LastLine(out.Stderr))}
	}
	results := make([]tasks.ProbeResult, 0, len(probes))
	sc := bufio.NewScanner(bytes.NewReader(out.Stdout))
	sc.Buffer(make([]byte, 64*1024), 1<<30)
	for sc.Scan() && len(results) < len(probes) {
		o, err := parseProbeLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", h.c.name, display, err)
		}
		i := len(results)
		var r tasks.ProbeResult
		if probes[i].Path == "" {
			r.Output = o
		} else {
			r = tasks.FileResult(h.readResult(probes[i].Path, o))
		}
		results = append(results, r)
	}
	if len(results) != len(probes) {
		return nil, fmt.Errorf("%s: %s: %d answers for %d probes", h.c.name, display, len(results), len(probes))
	}
	return results, nil
}

func parseProbeLine(line string) (tasks.Output, error) {
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return tasks.Output{}, fmt.Errorf("unexpected probe answer %q", line)
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return tasks.Output{}, fmt.Errorf("unexpected probe exit status %q", f[0])
	}
	stdout, err1 := base64.StdEncoding.DecodeString(f[1])
	stderr, err2 := base64.StdEncoding.DecodeString(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return tasks.Output{}, fmt.Errorf("undecodable probe answer: %w", err)
	}
	return tasks.Output{Stdout: stdout, Stderr: stderr, ExitCode: code}, nil
}

// probeEach runs probes one at a time.
func (h *host) probeEach(ctx context.Context, probes []tasks.Probe) []tasks.ProbeResult {
	results := make([]tasks.ProbeResult, len(probes))
	for i, pr := range probes {
		r := &results[i]
		if pr.Path == "" {
			r.Output, r.Err = h.Run(ctx, tasks.Cmd{Args: pr.Args})
			continue
		}
		*r = tasks.FileResult(h.ReadFile(ctx, pr.Path))
	}
	return results
}
