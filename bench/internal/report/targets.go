package report

import (
	"fmt"

	"github.com/dindops/dindops/bench/internal/results"
)

// Target is one of the issues' targets, checked against the results.
type Target struct {
	Name string // what is required
	// Measured says what was found ("" when it could not be measured).
	Measured string
	Pass     bool
}

// TargetHosts is the fleet size the engine targets (issue 3) are stated
// for; MainJobHosts the main job's (issue 11).
const (
	TargetHosts  = 50
	MainJobHosts = 10
)

// Targets checks the issues' targets, over loopback, at the stated fleet
// size (or the smallest fleet above it when that size was not run).
//
// Issue 3, the engine benchmark at TargetHosts hosts:
//   - no-op run at least 10× faster than Ansible at its best settings,
//   - no-op run within 2× of the floor,
//   - first run at least 5× faster than Ansible at its best settings,
//   - controller memory under 2 MiB per host (dindops's peak RSS over all
//     its runs at that size, divided by the number of hosts).
//
// Issue 11, the main job (shipped playbook, real dockerd) at MainJobHosts:
//   - no-op run within 1.5× of the floor,
//   - no-op run at least 15× faster than Ansible at its best settings,
//   - plan of fresh (reset) hosts within 2× of the floor,
//   - controller memory under 2 MiB per host.
func Targets(sums []results.Summary) []Target {
	e := at(sums, "engine", "engine playbook", TargetHosts)
	d := at(sums, "docker", "main job", MainJobHosts)
	return []Target{
		e.faster("no-op run ≥ 10× faster than Ansible at its best", "noop", "ansible-best", 10),
		e.nearFloor("no-op run within 2× of the floor", "noop", 2),
		e.faster("first run ≥ 5× faster than Ansible at its best", "first", "ansible-best", 5),
		e.memory("controller memory < 2 MiB per host", 2),
		d.nearFloor("no-op run within 1.5× of the floor", "noop", 1.5),
		d.faster("no-op run ≥ 15× faster than Ansible at its best", "noop", "ansible-best", 15),
		d.nearFloor("plan of fresh hosts within 2× of the floor", "plan", 2),
		d.memory("controller memory < 2 MiB per host", 2),
	}
}

// group is one scenario's runs at one fleet size over loopback.
type group struct {
	sums     []results.Summary
	scenario string
	n        int    // hosts; 0 when no size at or above the wanted one ran
	suffix   string // " (main job, 10 hosts, loopback)"
}

// at picks the smallest fleet size of scenario at or above want.
func at(sums []results.Summary, scenario, label string, want int) group {
	g := group{sums: sums, scenario: scenario}
	for _, s := range sums {
		if s.Scenario == scenario && s.Net == "loopback" && s.Hosts >= want && (g.n == 0 || s.Hosts < g.n) {
			g.n = s.Hosts
		}
	}
	g.suffix = fmt.Sprintf(" (%s, %d hosts, loopback)", label, g.n)
	if g.n == 0 {
		g.suffix = fmt.Sprintf(" (%s, %d hosts: not run)", label, want)
	}
	return g
}

func (g group) get(phase, tool string) (results.Summary, bool) {
	s, ok := results.Find(g.sums, results.Key{Scenario: g.scenario, Net: "loopback", Hosts: g.n, Phase: phase, Tool: tool})
	return s, ok && s.Wall > 0
}

// faster: tool's median wall time over dindops's is at least want.
func (g group) faster(name, phase, tool string, want float64) Target {
	t := Target{Name: name + g.suffix}
	d, ok1 := g.get(phase, "dindops")
	o, ok2 := g.get(phase, tool)
	if !ok1 || !ok2 {
		return t
	}
	r := o.Wall.Seconds() / d.Wall.Seconds()
	t.Measured = fmt.Sprintf("dindops %ss, %s %ss: %.1f×", secs(d.Wall), tool, secs(o.Wall), r)
	t.Pass = r >= want
	return t
}

// nearFloor: dindops's median wall time over the floor's is at most want.
func (g group) nearFloor(name, phase string, want float64) Target {
	t := Target{Name: name + g.suffix}
	d, ok1 := g.get(phase, "dindops")
	f, ok2 := g.get(phase, "floor")
	if !ok1 || !ok2 {
		return t
	}
	r := d.Wall.Seconds() / f.Wall.Seconds()
	t.Measured = fmt.Sprintf("dindops %ss, floor %ss: %.2f× the floor", secs(d.Wall), secs(f.Wall), r)
	t.Pass = r <= want
	return t
}

// memory: dindops's peak RSS over its phases, per host, is below want MiB.
func (g group) memory(name string, want float64) Target {
	t := Target{Name: name + g.suffix}
	var peak int64
	for _, p := range []string{"plan", "first", "noop"} {
		if d, ok := g.get(p, "dindops"); ok {
			peak = max(peak, d.MaxRSS)
		}
	}
	if peak > 0 {
		per := float64(peak) / float64(g.n) / (1 << 20)
		t.Measured = fmt.Sprintf("peak RSS %.1f MiB for %d hosts: %.2f MiB per host", float64(peak)/(1<<20), g.n, per)
		t.Pass = per < want
	}
	return t
}

// Verdict is "pass", "MISS" or "not measured".
func (t Target) Verdict() string {
	switch {
	case t.Measured == "":
		return "not measured"
	case t.Pass:
		return "pass"
	}
	return "MISS"
}
