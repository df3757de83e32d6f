// Package render turns a run's results into what people and programs read:
// human text (play by play, in inventory order, with change symbols and
// diffs, a recap and a summary line) and JSON. Both come from the same
// runner.Result, so they cannot disagree.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/tasks"
)

// Human writes results as text.
type Human struct {
	W     io.Writer
	Color bool
}

const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	dim    = "\x1b[2m"
)

func (h Human) paint(color, s string) string {
	if !h.Color || s == "" {
		return s
	}
	return color + s + reset
}

// Header writes the line that opens a run.
func (h Human) Header(mode runner.Mode, playbook string, hosts int) {
	verb := "Planning"
	switch mode {
	case runner.ApplyMode:
		verb = "Applying"
	case runner.CheckMode:
		verb = "Checking the health of"
	}
	fmt.Fprintf(h.W, "%s %s on %d %s\n", h.paint(bold, verb), playbook, hosts, plural(hosts, "host", "hosts"))
}

// Play writes one play's results, batch by batch, host by host in
// inventory order: PlayStart, Batch for each batch, PlayEnd.
func (h Human) Play(mode runner.Mode, p *runner.PlayResult) {
	h.PlayStart(mode, p)
	if mode == runner.ApplyMode && len(p.Batches) > 0 {
		byBatch := map[int][]*runner.HostResult{}
		for _, hr := range p.Hosts {
			byBatch[hr.Batch] = append(byBatch[hr.Batch], hr)
		}
		for _, b := range p.Batches {
			if b.Ran {
				h.Batch(mode, b.Number, len(p.Batches), byBatch[b.Number])
			}
		}
	} else {
		h.Batch(mode, 1, 1, p.Hosts)
	}
	h.PlayEnd(p)
}

// PlayStart writes the play's heading, its rollout (serial and
// max_fail_percentage) and why it runs on no host, if so.
func (h Human) PlayStart(mode runner.Mode, p *runner.PlayResult) {
	fmt.Fprintf(h.W, "\n%s %s\n", h.paint(bold, "PLAY"), clean(p.Name))
	if p.Serial != "" || p.MaxFailPercentage != nil {
		var parts []string
		if p.Serial != "" {
			parts = append(parts, fmt.Sprintf("serial %s: %d %s", p.Serial, len(p.Batches), plural(len(p.Batches), "batch", "batches")))
		}
		if m := p.MaxFailPercentage; m != nil {
			parts = append(parts, fmt.Sprintf("max_fail_percentage %s%%", strconv.FormatFloat(*m, 'f', -1, 64)))
		}
		fmt.Fprintf(h.W, "  %s\n", h.paint(dim, "rollout: "+strings.Join(parts, ", ")))
		if mode == runner.PlanMode && len(p.Batches) > 1 {
			for _, b := range p.Batches {
				fmt.Fprintf(h.W, "  %s\n", h.paint(dim, fmt.Sprintf("  apply batch %d/%d: %s", b.Number, len(p.Batches), strings.Join(b.Hosts, ", "))))
			}
		}
	}
	if p.Note != "" {
		fmt.Fprintf(h.W, "\n  %s\n", h.paint(dim, clean(p.Note)))
	}
}

// Batch writes the results of one batch of a play (a heading first when
// the play has several batches).
func (h Human) Batch(mode runner.Mode, number, total int, hosts []*runner.HostResult) {
	if total > 1 {
		names := make([]string, len(hosts))
		for i, hr := range hosts {
			names[i] = hr.Host
		}
		fmt.Fprintf(h.W, "\n  %s %s\n", h.paint(bold, fmt.Sprintf("BATCH %d/%d:", number, total)), strings.Join(names, ", "))
	}
	for _, hr := range hosts {
		fmt.Fprintf(h.W, "\n  %s %s\n", h.paint(bold, hr.Host), h.paint(dim, "("+hr.Address+")"))
		for _, t := range hr.Tasks {
			h.task(mode, t)
		}
		if hr.Status == runner.Unreachable && len(hr.Tasks) == 0 {
			fmt.Fprintf(h.W, "    %s %s\n", h.status(runner.Unreachable, mode), clean(hr.Error))
		} else if hr.Status == runner.Failed && len(hr.Tasks) == 0 && hr.Health == nil {
			fmt.Fprintf(h.W, "    %s %s\n", h.status(runner.Failed, mode), clean(hr.Error))
		}
		if hr.StateUnknown {
			fmt.Fprintf(h.W, "    %s\n", h.paint(red, "state unknown: the connection was lost while a task ran; run again once the host answers"))
		}
		if hr.Interrupted {
			msg := "interrupted: the tasks above are what this play did here"
			if len(hr.NotStarted) > 0 {
				msg += "; not started: " + strings.Join(hr.NotStarted, ", ")
			}
			fmt.Fprintf(h.W, "    %s\n", h.paint(yellow, clean(msg)))
		}
		if hr.Health != nil {
			h.health(mode, hr.Health)
		}
	}
}

// health writes a host's health under its tasks: in plan it is the health
// now, before any change; `check` lists what answered too.
func (h Human) health(mode runner.Mode, hl *tasks.Health) {
	label := "health"
	if mode == runner.PlanMode {
		label = "health now"
	}
	fmt.Fprintf(h.W, "    %s %s\n", h.paint(bold, label+":"), h.healthWords(hl))
	if mode == runner.CheckMode {
		for _, c := range hl.Checked {
			fmt.Fprintf(h.W, "      %s\n", h.paint(dim, "✓ "+clean(c)))
		}
	}
	for _, w := range hl.Warnings {
		fmt.Fprintf(h.W, "      %s %s\n", h.paint(yellow, "warning:"), clean(w))
	}
}

// healthWords is "healthy", or the status and its reason, colored.
func (h Human) healthWords(hl *tasks.Health) string {
	switch hl.Status {
	case tasks.Healthy:
		return h.paint(green, "healthy")
	case tasks.NotChecked:
		return h.paint(dim, "not checked: "+clean(hl.Reason))
	case tasks.HealthUnknown:
		return h.paint(yellow, "unknown: "+clean(hl.Reason))
	}
	return h.paint(red, string(hl.Status)+": "+clean(hl.Reason))
}

// PlayEnd lists the hosts of the play that the rollout left untouched.
func (h Human) PlayEnd(p *runner.PlayResult) {
	if len(p.NotRun) > 0 {
		fmt.Fprintf(h.W, "\n  %s %s\n", h.paint(yellow, "not run:"), strings.Join(p.NotRun, ", "))
	}
}

func (h Human) status(s runner.Status, mode runner.Mode) string {
	word := string(s)
	if s == runner.Changed && mode == runner.PlanMode {
		word = "will change"
	}
	padded := fmt.Sprintf("%-11s", word)
	switch s {
	case runner.OK:
		return h.paint(green, padded)
	case runner.Changed:
		return h.paint(yellow, padded)
	case runner.Skipped:
		return h.paint(cyan, padded)
	}
	return h.paint(red, padded)
}

func (h Human) task(mode runner.Mode, t *runner.TaskResult) {
	name := clean(t.Name)
	switch p := t.Pending; {
	case p != nil:
		name += h.paint(dim, fmt.Sprintf(" (handler pending since %s: notified by %q in a run that stopped before its handlers)", p.Since.UTC().Format("2006-01-02 15:04 UTC"), clean(p.NotifiedBy)))
	case t.Handler:
		name += h.paint(dim, " (handler)")
	}
	if t.Status == runner.Skipped {
		name += h.paint(dim, " ("+clean(t.Reason)+")")
	}
	fmt.Fprintf(h.W, "    %s %s\n", h.status(t.Status, mode), name)
	if t.Status == runner.Changed {
		for _, c := range t.Changes {
			h.change(c)
		}
	}
	for _, w := range t.Warnings {
		fmt.Fprintf(h.W, "      %s %s\n", h.paint(red, "warning:"), clean(w))
	}
	if t.Error != "" {
		for i, line := range strings.Split(clean(t.Error), "\n") {
			prefix := "error: "
			if i > 0 {
				prefix = "       "
			}
			fmt.Fprintf(h.W, "      %s%s\n", h.paint(red, prefix), line)
		}
	}
}

func (h Human) change(c tasks.Change) {
	color := yellow
	switch c.Action {
	case tasks.Create:
		color = green
	case tasks.Delete:
		color = red
	case tasks.Run:
		color = cyan
	}
	line := fmt.Sprintf("%s %s %s", c.Action.Symbol(), c.Resource, c.Target)
	fmt.Fprintf(h.W, "      %s", h.paint(color, clean(line)))
	if c.Summary != "" {
		fmt.Fprintf(h.W, ": %s", clean(c.Summary))
	}
	fmt.Fprintln(h.W)
	for _, w := range c.Warnings {
		fmt.Fprintf(h.W, "          %s %s\n", h.paint(red, "warning:"), clean(w))
	}
	for _, f := range c.Fields {
		h.field(f)
	}
	for _, f := range c.Applied {
		_, v := f.Shown()
		fmt.Fprintf(h.W, "          %s: %s\n", clean(f.Name), h.paint(bold, clean(v)))
	}
	if c.Diff != "" {
		for _, l := range strings.Split(strings.TrimSuffix(c.Diff, "\n"), "\n") {
			l = clean(l)
			switch {
			case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
				l = h.paint(bold, l)
			case strings.HasPrefix(l, "+"):
				l = h.paint(green, l)
			case strings.HasPrefix(l, "-"):
				l = h.paint(red, l)
			case strings.HasPrefix(l, "@@"):
				l = h.paint(cyan, l)
			}
			fmt.Fprintf(h.W, "          %s\n", l)
		}
	}
}

// field shows one differing value: "name: old → new" on one line, or, for
// multi-line values, the lines removed and added.
func (h Human) field(f tasks.Field) {
	old, new := f.Shown()
	if !strings.Contains(old, "\n") && !strings.Contains(new, "\n") {
		if old == "" {
			old = "(none)"
		}
		if new == "" {
			new = "(none)"
		}
		fmt.Fprintf(h.W, "          %s: %s → %s\n", clean(f.Name), h.paint(red, clean(old)), h.paint(green, clean(new)))
		return
	}
	fmt.Fprintf(h.W, "          %s:\n", clean(f.Name))
	oldLines, newLines := lines(old), lines(new)
	inNew, inOld := set(newLines), set(oldLines)
	for _, l := range oldLines {
		if !inNew[l] {
			fmt.Fprintf(h.W, "            %s\n", h.paint(red, "- "+clean(l)))
		}
	}
	for _, l := range newLines {
		if !inOld[l] {
			fmt.Fprintf(h.W, "            %s\n", h.paint(green, "+ "+clean(l)))
		}
	}
}

// Recap writes why the rollout stopped (if it did), one line per host and
// the summary line.
func (h Human) Recap(r *runner.Result) {
	if st := r.Stopped; st != nil {
		where := fmt.Sprintf("in play %q", st.Play)
		if st.Batches > 1 {
			where = fmt.Sprintf("in play %q after batch %d/%d", st.Play, st.Batch, st.Batches)
		}
		fmt.Fprintf(h.W, "\n%s %s: %s.\n", h.paint(bold+red, "ROLLOUT STOPPED"), where, clean(st.Reason))
		for _, p := range r.Plays {
			if len(p.NotRun) > 0 {
				fmt.Fprintf(h.W, "  %s %s\n", h.paint(yellow, fmt.Sprintf("not run in play %q:", clean(p.Name))), strings.Join(p.NotRun, ", "))
			}
		}
	}
	fmt.Fprintf(h.W, "\n%s\n", h.paint(bold, "RECAP"))
	width := 0
	for _, rc := range r.Recap {
		width = max(width, len(rc.Host))
	}
	for _, rc := range r.Recap {
		if rc.NotRun {
			fmt.Fprintf(h.W, "  %s  %s\n", h.paint(yellow, fmt.Sprintf("%-*s", width, rc.Host)), h.paint(yellow, "not run"))
			continue
		}
		if r.Mode == runner.CheckMode {
			h.checkRecap(rc, width)
			continue
		}
		changedWord := "changed"
		if r.Mode == runner.PlanMode {
			changedWord = "to change"
		}
		counts := fmt.Sprintf("ok=%-3d %s=%-3d failed=%-3d skipped=%-3d unreachable=%d",
			rc.OK, changedWord, rc.Changed, rc.Failed, rc.Skipped, rc.Unreachable)
		color := green
		switch {
		case rc.Failed > 0 || rc.Unreachable > 0:
			color = red
		case rc.Changed > 0:
			color = yellow
		}
		line := fmt.Sprintf("  %s  %s  %s", h.paint(color, fmt.Sprintf("%-*s", width, rc.Host)), counts, h.paint(dim, rc.Duration.Round(100*time.Millisecond).String()))
		if rc.StateUnknown {
			line += "  " + h.paint(red, "state unknown")
		}
		if rc.Interrupted {
			line += "  " + h.paint(yellow, "interrupted")
		}
		if rc.Health != nil && r.Mode != runner.PlanMode {
			line += "  " + h.healthWords(short(rc.Health))
		}
		fmt.Fprintln(h.W, line)
	}
	fmt.Fprintf(h.W, "\n%s\n", h.paint(bold, SummaryLine(r)))
}

type words struct{ head, none, nothing, create, update, restart, delete, run string }

var summaryWords = map[runner.Mode]words{
	runner.PlanMode:  {"Plan", "No changes:", "Nothing planned.", "to create", "to update", "to restart", "to delete", "to run"},
	runner.ApplyMode: {"Apply complete", "Apply complete: 0 changed;", "Nothing applied.", "created", "updated", "restarted", "deleted", "run"},
}

// SummaryLine is the one-line summary of a run, e.g.
// "Plan: 2 to create, 1 to update, 1 to restart on 3 hosts."
func SummaryLine(r *runner.Result) string {
	if r.Mode == runner.CheckMode {
		return checkSummary(r)
	}
	s := r.Summary
	hosts := len(r.Recap)
	var b strings.Builder
	w := summaryWords[r.Mode]
	if st := r.Stopped; st != nil && st.Interrupted && r.Mode == runner.ApplyMode {
		// Never "Nothing applied" when something was.
		w.head, w.none, w.nothing = "Interrupted", "Interrupted: 0 changed;", "Interrupted: nothing applied."
	}
	if s.Total() == 0 && s.Partial > 0 {
		w.nothing = strings.TrimSuffix(w.nothing, ".") + " in full."
	}
	if s.Total() == 0 {
		if ok := hosts - s.Failed - s.NotRun; ok > 0 {
			fmt.Fprintf(&b, "%s %d %s up to date.", w.none, ok, plural(ok, "host is", "hosts are"))
		} else {
			b.WriteString(w.nothing)
		}
	} else {
		fmt.Fprintf(&b, "%s: %d %s, %d %s, %d %s", w.head, s.Create, w.create, s.Update, w.update, s.Restart, w.restart)
		if s.Delete > 0 {
			fmt.Fprintf(&b, ", %d %s", s.Delete, w.delete)
		}
		if s.Run > 0 {
			fmt.Fprintf(&b, ", %d %s", s.Run, w.run)
		}
		fmt.Fprintf(&b, " on %d %s.", s.Hosts, plural(s.Hosts, "host", "hosts"))
	}
	if s.Partial > 0 {
		fmt.Fprintf(&b, " %d %s failed part-way through making %s changes: some may be made (the next plan shows what is left).", s.Partial, plural(s.Partial, "task", "tasks"), plural(s.Partial, "its", "their"))
	}
	if s.Failed > 0 {
		var names []string
		for _, rc := range r.Recap {
			if rc.Failed > 0 || rc.Unreachable > 0 {
				names = append(names, rc.Host)
			}
		}
		fmt.Fprintf(&b, " %d %s failed: %s.", s.Failed, plural(s.Failed, "host", "hosts"), strings.Join(names, ", "))
	}
	if st := r.Stopped; st != nil {
		what := "Rollout stopped"
		if st.Interrupted {
			what = "Interrupted"
		}
		fmt.Fprintf(&b, " %s early: not run on %d %s.", what, len(st.NotRun), plural(len(st.NotRun), "host", "hosts"))
	}
	return b.String()
}

// checkRecap is a host's recap line in `dindops check`.
func (h Human) checkRecap(rc *runner.HostRecap, width int) {
	var what string
	color := green
	switch {
	case rc.Unreachable > 0:
		what, color = h.paint(red, "unreachable: "+clean(rc.Error)), red
	case rc.Health == nil && rc.Failed > 0:
		what, color = h.paint(red, "failed: "+clean(rc.Error)), red
	case rc.Health == nil:
		what, color = h.paint(dim, "not checked"), yellow
	default:
		what = h.healthWords(short(rc.Health))
		if rc.Health.Status != tasks.Healthy {
			color = red
		}
	}
	fmt.Fprintf(h.W, "  %s  %s  %s\n", h.paint(color, fmt.Sprintf("%-*s", width, rc.Host)), what, h.paint(dim, rc.Duration.Round(100*time.Millisecond).String()))
}

// short keeps a recap line short: the reason up to its first ":" or 100
// characters (the host's section above has it whole).
func short(hl *tasks.Health) *tasks.Health {
	c := *hl
	if i := strings.Index(c.Reason, ": "); i > 20 {
		c.Reason = c.Reason[:i]
	}
	if len(c.Reason) > 100 {
		c.Reason = c.Reason[:100] + "…"
	}
	return &c
}

// checkSummary is the summary of `dindops check`: "Check: 3 of 3 hosts
// healthy." or which are not.
func checkSummary(r *runner.Result) string {
	var bad, unchecked []string
	healthy := 0
	for _, rc := range r.Recap {
		switch {
		case rc.Unreachable > 0 || rc.Health == nil && rc.Failed > 0:
			bad = append(bad, rc.Host)
		case rc.Health == nil || rc.Health.Status == tasks.NotChecked:
			unchecked = append(unchecked, rc.Host)
		case rc.Health.Status == tasks.Healthy:
			healthy++
		default:
			bad = append(bad, rc.Host)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Check: %d of %d %s healthy.", healthy, len(r.Recap), plural(len(r.Recap), "host", "hosts"))
	if len(bad) > 0 {
		fmt.Fprintf(&b, " Not healthy: %s.", strings.Join(bad, ", "))
	}
	if len(unchecked) > 0 {
		fmt.Fprintf(&b, " Not checked: %s.", strings.Join(unchecked, ", "))
	}
	return b.String()
}

// JSON writes the whole result as one indented JSON document. Secrets are
// masked by the types themselves (tasks.Field.MarshalJSON); invalid UTF-8 in
// command output becomes U+FFFD, so the document is always valid JSON.
func JSON(w io.Writer, r *runner.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, x := range l {
		m[x] = true
	}
	return m
}

// clean makes text from hosts safe for a terminal: invalid UTF-8 bytes and
// control characters (except newline and tab) are shown escaped, so command
// output can never move the cursor or recolour the screen.
func clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
