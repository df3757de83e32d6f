package tasks

import (
	"context"
	"errors"
	"io/fs"
)

// Probe is one read-only look at a host: a file to read (Path) or a command
// that changes nothing (Args). A task that needs several facts asks for them
// all at once with RunProbes, so a plan costs one round trip per task.
type Probe struct {
	// Path is a file to read, as Host.ReadFile does.
	Path string
	// Args is a read-only command to run, as Host.Run does (stdin closed).
	Args []string
}

// FileResult is the ProbeResult of reading a file with the given outcome of
// ReadFile: a missing file is Exists == false, not an error.
func FileResult(f RemoteFile, err error) ProbeResult {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ProbeResult{}
	case err != nil:
		return ProbeResult{Err: err}
	}
	return ProbeResult{File: f, Exists: true}
}

// read is a Path probe's result as ReadFile would have given it.
func (r ProbeResult) read() (RemoteFile, error) {
	switch {
	case r.Err != nil:
		return RemoteFile{}, r.Err
	case !r.Exists:
		return RemoteFile{}, fs.ErrNotExist
	}
	return r.File, nil
}

// ReadProbe returns a Probe that reads the file at path.
func ReadProbe(path string) Probe { return Probe{Path: path} }

// RunProbe returns a Probe that runs a read-only command.
func RunProbe(args ...string) Probe { return Probe{Args: args} }

// ProbeResult is what one Probe found.
type ProbeResult struct {
	// For a Path probe: the file, and whether it exists (a missing file is
	// not an error).
	File   RemoteFile
	Exists bool
	// For an Args probe: the command's output and exit status.
	Output Output
	// Err is this probe's own failure (a file that cannot be read, a
	// command that could not start); the others may still have succeeded.
	Err error
}

// Prober is implemented by hosts that run several probes in one round trip
// (the SSH transport runs them in one remote shell). Results are in the
// order of probes. The error is for the batch as a whole (connection lost,
// context cancelled); a single probe's failure is in its ProbeResult.
type Prober interface {
	Probe(ctx context.Context, probes []Probe) ([]ProbeResult, error)
}

// RunProbes runs probes on h: in one round trip when h is a Prober, one by
// one otherwise. It returns the first error of the batch or of a probe,
// except a missing file, which is reported as Exists == false.
func RunProbes(ctx context.Context, h Host, probes ...Probe) ([]ProbeResult, error) {
	var results []ProbeResult
	if p, ok := h.(Prober); ok {
		var err error
		if results, err = p.Probe(ctx, probes); err != nil {
			return nil, err
		}
		if len(results) != len(probes) {
			return nil, errors.New("probe: the host answered a different number of probes")
		}
	} else {
		results = make([]ProbeResult, len(probes))
		for i, pr := range probes {
			if pr.Path != "" {
				results[i] = FileResult(h.ReadFile(ctx, pr.Path))
				continue
			}
			out, err := h.Run(ctx, Cmd{Args: pr.Args})
			results[i].Output, results[i].Err = out, err
		}
	}
	for _, r := range results {
		if r.Err != nil {
			return results, r.Err
		}
	}
	return results, nil
}
