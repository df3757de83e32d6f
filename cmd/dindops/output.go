package main

import (
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/dindops/dindops/internal/render"
	"github.com/dindops/dindops/internal/runner"
)

// output is where a run goes as it happens and when it ends.
//
// Text: results on stdout, play by play and batch by batch, then the recap;
// progress on stderr: a live per-host view when stderr is a terminal and
// colours are allowed, plain lines otherwise. JSON: one event per line on
// stdout, then the whole result as the last line; nothing on stderr but
// logs.
type output struct {
	mode     runner.Mode
	human    *render.Human
	progress render.Progress
	stream   *render.Stream
	// logs is where the logger writes (above the live view, if any).
	logs io.Writer
}

// liveTick is how often the live view redraws its elapsed times.
const liveTick = 500 * time.Millisecond

func newOutput(format string, mode runner.Mode, color bool, stdout, stderr io.Writer) *output {
	out := &output{mode: mode, logs: stderr}
	if format == "json" {
		out.stream = render.NewStream(stdout)
		return out
	}
	out.human = &render.Human{W: stdout, Color: color && isTerminal(stdout)}
	if f, ok := stderr.(*os.File); ok && color && isTerminal(stderr) {
		live := &render.Live{W: stderr, Color: true, Now: time.Now, Tick: liveTick,
			Size: func() (int, int) {
				w, h, err := term.GetSize(int(f.Fd()))
				if err != nil {
					return 0, 0
				}
				return w, h
			}}
		live.Start()
		out.progress, out.logs = live, live.Writer()
	} else {
		out.progress = &render.Lines{W: stderr}
	}
	return out
}

// header opens a text run.
func (o *output) header(playbook string, hosts int) {
	if o.human != nil {
		o.human.Header(o.mode, playbook, hosts)
	}
}

// event takes one event of the run (calls never overlap).
func (o *output) event(e runner.Event) {
	if o.stream != nil {
		o.stream.Event(e)
		return
	}
	o.progress.Event(e)
	h := o.human
	switch e.Type {
	case runner.EventPlayStart:
		o.progress.Above(func() { h.PlayStart(o.mode, e.PlayResult) })
	case runner.EventBatchEnd:
		o.progress.Above(func() { h.Batch(o.mode, e.Batch, e.Batches, e.Results) })
	case runner.EventPlayEnd:
		o.progress.Above(func() { h.PlayEnd(e.PlayResult) })
	}
}

// finish ends the progress view and writes the recap, or the final JSON
// line.
func (o *output) finish(res *runner.Result) error {
	if o.stream != nil {
		return o.stream.Result(res)
	}
	o.progress.Close()
	o.human.Recap(res)
	return nil
}

// abort ends the progress view of a run that could not finish.
func (o *output) abort() {
	if o.progress != nil {
		o.progress.Close()
	}
}
