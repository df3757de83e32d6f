package render

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dindops/dindops/internal/runner"
)

// Progress shows a run as it happens, from its events: Live redraws a
// per-host view in place on a terminal; Lines writes plain lines for logs
// and pipes.
type Progress interface {
	Event(runner.Event)
	// Above writes something (results, a log line) above the progress
	// view, so the two never mix on the screen.
	Above(func())
	// Close stops the view and leaves nothing of it on the screen.
	Close()
}

// Lines is progress as plain lines, one per task a host starts and one per
// host that finishes a play, with the time: what a CI log needs to show
// where each host is and which one hangs.
type Lines struct {
	mu sync.Mutex
	W  io.Writer
}

// Event implements Progress.
func (l *Lines) Event(e runner.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := e.Time.Format("15:04:05")
	switch e.Type {
	case runner.EventPlayStart:
		if len(e.Hosts) > 0 {
			fmt.Fprintf(l.W, "%s PLAY %s: %d %s\n", ts, oneLine(e.Play), len(e.Hosts), plural(len(e.Hosts), "host", "hosts"))
		}
	case runner.EventBatchStart:
		if e.Batches > 1 {
			fmt.Fprintf(l.W, "%s batch %d/%d: %s\n", ts, e.Batch, e.Batches, strings.Join(e.Hosts, ", "))
		}
	case runner.EventTaskStart:
		fmt.Fprintf(l.W, "%s %s %s %s\n", ts, e.Host, stepLabel(e), oneLine(e.Task))
	case runner.EventHostEnd:
		line := fmt.Sprintf("%s %s %s in %s", ts, e.Host, e.Status, roundDuration(e.Duration))
		if e.Error != "" {
			line += ": " + oneLine(e.Error)
		}
		fmt.Fprintln(l.W, line)
	case runner.EventStopped:
		if s := e.Stop; s != nil {
			fmt.Fprintf(l.W, "%s ROLLOUT STOPPED in play %q: %s; not run: %s\n", ts, oneLine(s.Play), oneLine(s.Reason), strings.Join(s.NotRun, ", "))
		}
	}
}

// Above implements Progress.
func (l *Lines) Above(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// Close implements Progress.
func (l *Lines) Close() {}

func stepLabel(e runner.Event) string {
	if e.Handler {
		return "[handler]"
	}
	return fmt.Sprintf("[%d/%d]", e.Step, e.Steps)
}

// oneLine is text from hosts made safe for a terminal, first line only.
func oneLine(s string) string {
	s = clean(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return strings.ReplaceAll(s, "\t", " ")
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Live is a progress view redrawn in place on a terminal: the play and
// batch, then one line per host of the batch with the task it is on and
// how long it has been at it. Results and logs are written above it
// (Above); the view is redrawn every Tick so elapsed times move.
type Live struct {
	W io.Writer
	// Size returns the terminal's width and height (columns, rows).
	Size  func() (int, int)
	Now   func() time.Time
	Color bool
	// Tick is how often the view is redrawn without an event; zero
	// means no redraws between events (tests).
	Tick time.Duration

	mu        sync.Mutex
	drawn     int // lines on screen now
	play      string
	batch     int
	batches   int
	playStart time.Time
	hosts     []string
	state     map[string]*liveHost
	stop      chan struct{}
	closed    bool
}

type liveHost struct {
	status    string // waiting, running, or a runner.Status
	task      string
	label     string
	start     time.Time
	taskStart time.Time
	took      time.Duration
	err       string
}

// Start begins the periodic redraws (when Tick is set).
func (l *Live) Start() {
	if l.Tick <= 0 {
		return
	}
	l.stop = make(chan struct{})
	go func() {
		t := time.NewTicker(l.Tick)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				if !l.closed {
					l.redraw()
				}
				l.mu.Unlock()
			}
		}
	}()
}

// Event implements Progress.
func (l *Live) Event(e runner.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	switch e.Type {
	case runner.EventPlayStart:
		l.play, l.playStart, l.hosts, l.batch, l.batches = e.Play, e.Time, nil, 0, 0
	case runner.EventBatchStart:
		l.batch, l.batches, l.hosts = e.Batch, e.Batches, e.Hosts
		l.state = map[string]*liveHost{}
		for _, h := range e.Hosts {
			l.state[h] = &liveHost{status: "waiting"}
		}
	case runner.EventHostStart:
		if s := l.state[e.Host]; s != nil {
			s.status, s.start, s.task = "running", e.Time, "connecting"
			s.taskStart = e.Time
		}
	case runner.EventTaskStart:
		if s := l.state[e.Host]; s != nil {
			s.task, s.label, s.taskStart = e.Task, stepLabel(e), e.Time
		}
	case runner.EventHostEnd:
		if s := l.state[e.Host]; s != nil {
			s.status, s.took, s.err = string(e.Status), e.Duration, e.Error
		}
	case runner.EventPlayEnd:
		l.hosts = nil
	default:
		return
	}
	l.redraw()
}

// Above implements Progress.
func (l *Live) Above(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	f()
	if !l.closed {
		l.draw()
	}
}

// Writer returns a writer whose writes appear above the view (for logs).
func (l *Live) Writer() io.Writer { return aboveWriter{l} }

type aboveWriter struct{ l *Live }

func (a aboveWriter) Write(p []byte) (n int, err error) {
	a.l.Above(func() { n, err = a.l.W.Write(p) })
	return n, err
}

// Close implements Progress.
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.stop != nil {
		close(l.stop)
	}
	l.erase()
}

func (l *Live) redraw() {
	l.erase()
	l.draw()
}

// erase moves the cursor up over the view and clears to the end of the
// screen.
func (l *Live) erase() {
	if l.drawn > 0 {
		fmt.Fprintf(l.W, "\x1b[%dA\r\x1b[J", l.drawn)
		l.drawn = 0
	}
}

func (l *Live) paint(color, s string) string {
	if !l.Color || s == "" {
		return s
	}
	return color + s + reset
}

// draw writes the view: a heading and as many host lines as the terminal
// has rows for, each cut to its width so that no line wraps.
func (l *Live) draw() {
	if len(l.hosts) == 0 {
		return
	}
	width, height := 80, 24
	if l.Size != nil {
		if w, h := l.Size(); w > 0 && h > 0 {
			width, height = w, h
		}
	}
	now := l.Now()
	counts := map[string]int{}
	nameWidth := 0
	for _, h := range l.hosts {
		counts[l.state[h].status]++
		nameWidth = max(nameWidth, utf8.RuneCountInString(h))
	}
	done := counts[string(runner.OK)] + counts[string(runner.Changed)]
	failed := counts[string(runner.Failed)] + counts[string(runner.Unreachable)]
	// A spinner frame per half second of the play: it moves even while
	// no host does, so a stalled terminal shows.
	frame := spinner[int(now.Sub(l.playStart)/(500*time.Millisecond))%len(spinner)]
	head := fmt.Sprintf("%s PLAY %s", frame, oneLine(l.play))
	if l.batches > 1 {
		head += fmt.Sprintf(" · batch %d/%d", l.batch, l.batches)
	}
	head += fmt.Sprintf(" · %d running · %d done · %d failed · %d waiting · %s",
		counts["running"], done, failed, counts["waiting"], clock(now.Sub(l.playStart)))
	lines := []string{l.paint(bold, cut(head, width-1))}

	// Rows for hosts: running and failed first when they do not all fit.
	rows := max(1, height-2)
	shown := l.hosts
	if len(shown) > rows {
		var first, rest []string
		for _, h := range l.hosts {
			if st := l.state[h].status; st == "running" || st == string(runner.Failed) || st == string(runner.Unreachable) {
				first = append(first, h)
			} else {
				rest = append(rest, h)
			}
		}
		shown = append(first, rest...)[:rows-1]
	}
	inView := map[string]bool{}
	for _, h := range shown {
		inView[h] = true
	}
	for _, h := range l.hosts {
		if !inView[h] {
			continue
		}
		s := l.state[h]
		var status, color, detail, took string
		switch s.status {
		case "waiting":
			status, color = "waiting", dim
		case "running":
			status, color = "running", cyan
			took = roundDuration(now.Sub(s.start))
			detail = strings.TrimSpace(s.label + " " + oneLine(s.task))
			if t := now.Sub(s.taskStart); t >= 2*time.Second {
				detail += fmt.Sprintf(" (%s)", clock(t))
			}
		default:
			status, took, detail = s.status, roundDuration(s.took), oneLine(s.err)
			switch runner.Status(s.status) {
			case runner.OK:
				color = green
			case runner.Changed:
				color = yellow
			default:
				color = red
			}
		}
		plain := fmt.Sprintf("  %-*s  %-11s %7s  %s", nameWidth, h, status, took, detail)
		plain = strings.TrimRight(cut(plain, width-1), " ")
		// Colour only the status word, after cutting the plain text.
		i := len(fmt.Sprintf("  %-*s  ", nameWidth, h))
		if strings.HasPrefix(plain[min(i, len(plain)):], status) {
			plain = plain[:i] + l.paint(color, status) + plain[i+len(status):]
		}
		lines = append(lines, plain)
	}
	if hidden := len(l.hosts) - len(shown); hidden > 0 {
		lines = append(lines, l.paint(dim, cut(fmt.Sprintf("  … %d more %s (%d done, %d waiting)", hidden, plural(hidden, "host", "hosts"), done, counts["waiting"]), width-1)))
	}
	for _, ln := range lines {
		fmt.Fprintln(l.W, ln)
	}
	l.drawn = len(lines)
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clock formats an elapsed time as m:ss (or h:mm:ss).
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
