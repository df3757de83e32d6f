package report

import (
	"fmt"

	"github.com/dindops/dindops/bench/internal/results"
)

// Target is one of issue 3's targets, checked against the results.
type Target struct {
	Name string // what is required
	// Measured says what was found ("" when it could not be measured).
	Measured string
	Pass     bool
}

// TargetHosts is the fleet size the targets are stated for.
const TargetHosts = 50

// Targets checks the targets on the engine benchmark over loopback
// at TargetHosts hosts (or the largest fleet above it when that size was
// not run):
//   - no-op run at least 10× faster than Ansible at its best settings,
//   - no-op run within 2× of the floor,
//   - first run at least 5× faster than Ansible at its best settings,
//   - controller memory under 2 MiB per host (dindops's peak RSS over all
//     its runs at that size, divided by the number of hosts).
func Targets(sums []results.Summary) []Target {
	n := 0
	for _, s := range sums {
		if s.Scenario == "engine" && s.Net == "loopback" && s.Hosts >= TargetHosts && (n == 0 || s.Hosts < n) {
			n = s.Hosts
		}
	}
	at := fmt.Sprintf(" (engine playbook, %d hosts, loopback)", n)
	if n == 0 {
		at = fmt.Sprintf(" (engine playbook, %d hosts: not run)", TargetHosts)
	}
	get := func(phase, tool string) (results.Summary, bool) {
		return results.Find(sums, results.Key{Scenario: "engine", Net: "loopback", Hosts: n, Phase: phase, Tool: tool})
	}
	ratio := func(name, phase, tool string, want float64) Target {
		t := Target{Name: name + at}
		d, ok1 := get(phase, "dindops")
		o, ok2 := get(phase, tool)
		if !ok1 || !ok2 || o.Wall <= 0 || d.Wall <= 0 {
			return t
		}
		r := o.Wall.Seconds() / d.Wall.Seconds()
		t.Measured = fmt.Sprintf("dindops %ss, %s %ss: %.1f×", secs(d.Wall), tool, secs(o.Wall), r)
		t.Pass = r >= want
		return t
	}
	out := []Target{
		ratio("no-op run ≥ 10× faster than Ansible at its best", "noop", "ansible-best", 10),
	}
	// Within 2× of the floor: dindops/floor ≤ 2.
	fl := Target{Name: "no-op run within 2× of the floor" + at}
	if d, ok := get("noop", "dindops"); ok {
		if f, ok := get("noop", "floor"); ok && f.Wall > 0 {
			r := d.Wall.Seconds() / f.Wall.Seconds()
			fl.Measured = fmt.Sprintf("dindops %ss, floor %ss: %.2f× the floor", secs(d.Wall), secs(f.Wall), r)
			fl.Pass = r <= 2
		}
	}
	out = append(out, fl,
		ratio("first run ≥ 5× faster than Ansible at its best", "first", "ansible-best", 5))
	mem := Target{Name: "controller memory < 2 MiB per host" + at}
	var peak int64
	for _, p := range []string{"plan", "first", "noop"} {
		if d, ok := get(p, "dindops"); ok {
			peak = max(peak, d.MaxRSS)
		}
	}
	if peak > 0 {
		per := float64(peak) / float64(n) / (1 << 20)
		mem.Measured = fmt.Sprintf("peak RSS %.1f MiB for %d hosts: %.2f MiB per host", float64(peak)/(1<<20), n, per)
		mem.Pass = per < 2
	}
	return append(out, mem)
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
