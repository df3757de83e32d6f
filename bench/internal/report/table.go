// Package report turns summarised results into the benchmark's outputs: the
// table (plain text for the terminal, Markdown for docs/benchmarks.md), the
// issue's targets with pass or miss, and the plot.
package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dindops/dindops/bench/internal/results"
)

// Row is one line of the table: a tool's summary and how dindops compares
// with it.
type Row struct {
	results.Summary
	// Ratio is dindops's median wall time over this tool's (0 when there
	// is no dindops run in the group, or for dindops itself).
	Ratio float64
}

// Orders of the table: scenarios, phases and tools as listed here (others
// after them by name), loopback before the latency variants, fewer hosts
// first.
var (
	scenarioOrder = []string{"engine", "docker"}
	phaseOrder    = []string{"plan", "first", "noop"}
	toolOrder     = []string{"dindops", "ansible-default", "ansible-best", "floor", "floor-physical", "ansible-mitogen"}
)

func rank(order []string, v string) int {
	if i := slices.Index(order, v); i >= 0 {
		return i
	}
	return len(order)
}

// Rows makes the table rows from summaries, sorted into groups of the same
// scenario, network, hosts and phase, one row per tool.
func Rows(sums []results.Summary) []Row {
	sorted := slices.Clone(sums)
	slices.SortStableFunc(sorted, func(a, b results.Summary) int {
		return cmp.Or(
			cmp.Compare(rank(scenarioOrder, a.Scenario), rank(scenarioOrder, b.Scenario)),
			cmp.Compare(a.Scenario, b.Scenario),
			cmp.Compare(rank([]string{"loopback"}, a.Net), rank([]string{"loopback"}, b.Net)),
			cmp.Compare(a.Net, b.Net),
			cmp.Compare(a.Hosts, b.Hosts),
			cmp.Compare(rank(phaseOrder, a.Phase), rank(phaseOrder, b.Phase)),
			cmp.Compare(rank(toolOrder, a.Tool), rank(toolOrder, b.Tool)),
			cmp.Compare(a.Tool, b.Tool),
		)
	})
	rows := make([]Row, 0, len(sorted))
	for _, s := range sorted {
		r := Row{Summary: s}
		if s.Tool != "dindops" {
			k := s.Key
			k.Tool = "dindops"
			if d, ok := results.Find(sums, k); ok && s.Wall > 0 {
				r.Ratio = d.Wall.Seconds() / s.Wall.Seconds()
			}
		}
		rows = append(rows, r)
	}
	return rows
}

var header = []string{"scenario", "network", "hosts", "phase", "tool", "wall s: median (min–max)", "CPU s", "peak RSS MiB", "tree RSS MiB", "cmds+sftp+api /host", "dindops/tool"}

func (r Row) cells() []string {
	trips := ""
	if r.Commands+r.SFTP+r.API > 0 {
		trips = fmt.Sprintf("%d+%d+%d", r.Commands, r.SFTP, r.API)
	}
	if r.Docker > 0 {
		trips += fmt.Sprintf(" (%d docker)", r.Docker)
	}
	ratio := ""
	if r.Ratio > 0 {
		ratio = fmt.Sprintf("%.3g", r.Ratio)
	}
	wall := fmt.Sprintf("%s (%s–%s)", secs(r.Wall), secs(r.WallMin), secs(r.WallMax))
	if r.Runs == 1 {
		wall = secs(r.Wall)
	}
	return []string{r.Scenario, r.Net, fmt.Sprint(r.Hosts), r.Phase, r.Tool, wall, secs(r.CPU),
		mib(r.MaxRSS), mib(r.TreeRSS), trips, ratio}
}

// Text writes the table for a terminal.
func Text(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	var prev results.Key
	for i, r := range rows {
		g := r.Key
		g.Tool = ""
		c := r.cells()
		if i > 0 && g == prev {
			// The group's scenario, network, hosts and phase only once.
			for j := 0; j < 4; j++ {
				c[j] = ""
			}
		}
		prev = g
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	return tw.Flush()
}

// Markdown writes the table as GitHub Markdown.
func Markdown(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, r := range rows {
		c := r.cells()
		if r.Tool == "dindops" {
			c[4] = "**dindops**"
			c[5] = "**" + c[5] + "**"
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(c, " | "))
	}
}

func secs(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 10:
		return fmt.Sprintf("%.2f", s)
	case s < 100:
		return fmt.Sprintf("%.1f", s)
	}
	return fmt.Sprintf("%.0f", s)
}

func mib(b int64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}
