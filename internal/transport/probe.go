package transport

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/dindops/dindops/tasks"
	"github.com/pkg/sftp"
)

// probePrologue runs each probe of a batch in one shell, with stdin closed
// and its stdout and stderr going straight to the session's, and ends each
// probe's output with a line of its own on both: "\nNONCE STATUS\n" on
// stdout, "\nNONCE\n" on stderr. NONCE ($n, set after the prologue) is a
// random value the controller picks for each batch, so no output ends a
// probe early. Under a pty (sudo's requiretty), which merges stderr into
// stdout, each probe's stderr is kept in a private temporary file instead
// and printed after its status line, followed by the stderr line. The
// probes' argv are appended as calls of p, each element quoted with
// tasks.ShellQuote; a file probe is a call of readFunction's r. Without a
// pty the batch starts no process of its own (no temporary files, no
// encoding): on a busy host, or many hosts on one machine, processes are
// what a plan costs there.
const probePrologue = `export LC_ALL=C
if [ -t 2 ]; then
	t=$(mktemp -d) || exit 125
	trap 'rm -rf "$t"' EXIT
	p() {
		"$@" </dev/null 2>"$t/e"
		printf '\n%s %d\n' "$n" "$?"
		if [ -s "$t/e" ]; then cat "$t/e"; fi
		printf '\n%s\n' "$n"
	}
else
	p() {
		"$@" </dev/null
		printf '\n%s %d\n' "$n" "$?"
		printf '\n%s\n' "$n" >&2
	}
fi
` + readFunction

// Probe implements tasks.Prober, so a task's plan costs one round trip
// however many files and read-only commands it needs. Without become, file
// probes and "test -d|-e|-f PATH" are SFTP requests (as ReadFile reads;
// no process on the host) and the other commands run in one remote shell
// meanwhile; with become (or without the SFTP subsystem) every probe runs
// in one remote shell under sudo. Errors: those of Run for the batch; per
// probe, those of ReadFile (a missing file is Exists == false, not an
// error).
func (h *host) Probe(ctx context.Context, probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	if len(probes) == 0 {
		return nil, nil
	}
	for i, pr := range probes {
		switch {
		case pr.Path != "" && len(pr.Args) > 0:
			return nil, fmt.Errorf("%s: probe %d has both a path and a command", h.c.name, i)
		case pr.Path != "" && !path.IsAbs(pr.Path):
			return nil, &fs.PathError{Op: "read", Path: pr.Path, Err: errors.New("path must be absolute")}
		case pr.Path == "" && len(pr.Args) == 0:
			return nil, fmt.Errorf("%s: probe %d is empty", h.c.name, i)
		}
	}
	cl, done, err := h.sftpReader(ctx)
	if err != nil {
		return nil, err
	}
	if cl != nil {
		return h.probeSFTP(ctx, cl, done, probes)
	}
	return h.probeShell(ctx, probes)
}

// probeSFTP answers the file probes and the test(1) probes of a path over
// SFTP, all at once (their requests interleave on the one session), and
// the others in one remote shell at the same time. done ends the use of cl
// as soon as the SFTP requests are answered, before the shell waits for a
// session that only the SFTP session's may free.
func (h *host) probeSFTP(ctx context.Context, cl *sftp.Client, done func(), probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	results := make([]tasks.ProbeResult, len(probes))
	late := make([]bool, len(probes)) // a file whose owner only NSS can name
	errs := make([]error, len(probes))
	var shellAt []int
	var wg sync.WaitGroup
	for i, pr := range probes {
		switch {
		case pr.Path != "":
			wg.Go(func() {
				f, err := h.sftpRead(ctx, cl, pr.Path)
				if errors.Is(err, errNeedsShell) {
					late[i] = true
					return
				}
				results[i] = tasks.FileResult(f, err)
			})
		case isTestProbe(pr.Args):
			wg.Go(func() { results[i].Output, errs[i] = h.sftpTest(cl, pr.Args) })
		default:
			shellAt = append(shellAt, i)
		}
	}
	sftpEnded := make(chan struct{})
	go func() {
		wg.Wait()
		done()
		close(sftpEnded)
	}()
	shellErr := h.probeShellAt(ctx, probes, shellAt, results)
	<-sftpEnded
	if err := cmp.Or(append([]error{shellErr}, errs...)...); err != nil {
		return nil, err
	}
	var lateAt []int
	for i, yes := range late {
		if yes {
			lateAt = append(lateAt, i)
		}
	}
	if err := h.probeShellAt(ctx, probes, lateAt, results); err != nil {
		return nil, err
	}
	return results, nil
}

// probeShellAt runs the probes at the indices at in one remote shell and
// puts their results at the same indices of results.
func (h *host) probeShellAt(ctx context.Context, probes []tasks.Probe, at []int, results []tasks.ProbeResult) error {
	if len(at) == 0 {
		return nil
	}
	some := make([]tasks.Probe, len(at))
	for j, i := range at {
		some[j] = probes[i]
	}
	res, err := h.probeShell(ctx, some)
	if err != nil {
		return err
	}
	for j, i := range at {
		results[i] = res[j]
	}
	return nil
}

// probeShell runs probes (checked by Probe) in one remote shell.
func (h *host) probeShell(ctx context.Context, probes []tasks.Probe) ([]tasks.ProbeResult, error) {
	if len(probes) == 1 {
		// One probe is one command as it is: the batch's shell would only
		// add a process on the host.
		return h.probeEach(ctx, probes), nil
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	n := "dindops-probe-" + hex.EncodeToString(nonce[:])
	names := make([]string, len(probes))
	calls := make([][]string, len(probes))
	for i, pr := range probes {
		args := pr.Args
		if pr.Path != "" {
			args = []string{"r", pr.Path}
			names[i] = "read " + pr.Path
		} else {
			names[i] = tasks.ShellJoin(args)
		}
		calls[i] = args
	}
	display := "probe: " + strings.Join(names, "; ")
	out, err := h.run(ctx, []string{"sh", "-c", probeScript(n, calls)}, nil, false, execOpts{display: display, whole: true})
	if err != nil {
		return nil, err
	}
	outputs, err := splitProbeOutput(out, n, len(probes))
	if err != nil {
		return nil, &CommandError{Host: h.c.name, Cmd: display, Stdout: out.Stdout, Stderr: out.Stderr, Err: err}
	}
	results := make([]tasks.ProbeResult, len(probes))
	for i, o := range outputs {
		if probes[i].Path == "" {
			results[i].Output = o
		} else {
			results[i] = tasks.FileResult(h.readResult(probes[i].Path, o))
		}
	}
	return results, nil
}

// probeScript is the shell script of a batch: probePrologue, the nonce,
// and one call of p per probe (argv quoted; "r PATH" reads a file).
func probeScript(nonce string, calls [][]string) string {
	var b strings.Builder
	b.WriteString(probePrologue)
	b.WriteString("n=" + nonce + "\n")
	for _, args := range calls {
		b.WriteString("p " + tasks.ShellJoin(args) + "\n")
	}
	return b.String()
}

// splitProbeOutput cuts a batch's output into its count probes' outputs at
// the nonce lines probePrologue writes (each probe's stderr on stdout after
// its status when the batch ran under a pty: then the session's stderr has
// no nonce line). A batch that ended early (the shell killed, a probe that
// exited it) is an error naming how far it got.
func splitProbeOutput(out tasks.Output, nonce string, count int) ([]tasks.Output, error) {
	stdout, stderr := out.Stdout, out.Stderr
	outMark, errMark := []byte("\n"+nonce+" "), []byte("\n"+nonce+"\n")
	pty := !bytes.Contains(stderr, errMark)
	res := make([]tasks.Output, count)
	for i := range res {
		before, after, ok := bytes.Cut(stdout, outMark)
		if !ok {
			return nil, fmt.Errorf("%d answers for %d probes (exit status %d): %s", i, count, out.ExitCode, tasks.LastLine(stderr))
		}
		status, rest, ok := bytes.Cut(after, []byte("\n"))
		code, err := strconv.Atoi(string(status))
		if !ok || err != nil {
			return nil, fmt.Errorf("unexpected probe exit status %q", status)
		}
		if pty {
			stderr = rest
		}
		e, restErr, ok := bytes.Cut(stderr, errMark)
		if !ok {
			return nil, fmt.Errorf("%d answers for %d probes (exit status %d; the stderr of probe %d did not end): %s", i, count, out.ExitCode, i+1, tasks.LastLine(stderr))
		}
		res[i] = tasks.Output{Stdout: before, Stderr: e, ExitCode: code}
		stdout, stderr = rest, restErr
		if pty {
			stdout = restErr
		}
	}
	return res, nil
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
