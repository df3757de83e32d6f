package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/bench/internal/measure"
	"github.com/dindops/dindops/bench/internal/results"
)

func run(phase, tool string, hosts int, wall time.Duration, rss int64) results.Run {
	return results.Run{
		Key:    results.Key{Scenario: "engine", Net: "loopback", Hosts: hosts, Phase: phase, Tool: tool},
		Sample: measure.Sample{Wall: wall, User: wall / 2, MaxRSS: rss},
	}
}

func TestTargets(t *testing.T) {
	const s = time.Second
	runs := []results.Run{
		run("noop", "dindops", 50, 1*s, 60<<20),
		run("noop", "ansible-best", 50, 20*s, 50<<20),
		run("noop", "floor", 50, s/4, 10<<20),
		run("first", "dindops", 50, 2*s, 120<<20),
		run("first", "ansible-best", 50, 8*s, 50<<20),
		run("noop", "dindops", 10, 9*s, 500<<20), // other sizes do not count
	}
	got := Targets(results.Summarise(runs))
	// 20×; 4× the floor; 4×; 2.4 MiB/host; then the main job, not run.
	want := []string{"pass", "MISS", "MISS", "MISS", "not measured", "not measured", "not measured", "not measured"}
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d", len(got), len(want))
	}
	for i, tg := range got {
		if tg.Verdict() != want[i] {
			t.Errorf("%s: %s (%s), want %s", tg.Name, tg.Verdict(), tg.Measured, want[i])
		}
	}
	for _, tg := range Targets(nil) {
		if v := tg.Verdict(); v != "not measured" {
			t.Errorf("no runs: %s: %s", tg.Name, v)
		}
	}
}

func docker(phase, tool string, hosts int, wall time.Duration, rss int64) results.Run {
	r := run(phase, tool, hosts, wall, rss)
	r.Scenario = "docker"
	return r
}

func TestTargetsMainJob(t *testing.T) {
	const ms = time.Millisecond
	sums := func(runs ...results.Run) []Target {
		tg := Targets(results.Summarise(runs))
		if len(tg) != 8 {
			t.Fatalf("%d targets, want 8", len(tg))
		}
		for _, x := range tg[:4] {
			if !strings.Contains(x.Name, "engine playbook") || x.Verdict() != "not measured" {
				t.Errorf("engine target %q: %s", x.Name, x.Verdict())
			}
		}
		return tg[4:]
	}
	verdicts := func(tg []Target) string {
		var v []string
		for _, x := range tg {
			v = append(v, x.Verdict())
		}
		return strings.Join(v, " ")
	}
	// All met: no-op 1.4× the floor and 16× Ansible, plan 1.9× the floor,
	// 19 MiB for 10 hosts.
	met := sums(
		docker("plan", "dindops", 10, 1900*ms, 19<<20),
		docker("plan", "floor", 10, 1000*ms, 8<<20),
		docker("first", "dindops", 10, 30000*ms, 19<<20),
		docker("noop", "dindops", 10, 1400*ms, 18<<20),
		docker("noop", "floor", 10, 1000*ms, 8<<20),
		docker("noop", "ansible-best", 10, 22400*ms, 60<<20),
		docker("noop", "ansible-mitogen", 10, 9000*ms, 60<<20),
		docker("noop", "floor-physical", 10, 500*ms, 6<<20),
	)
	if v := verdicts(met); v != "pass pass pass pass" {
		t.Errorf("verdicts %s", v)
	}
	for _, x := range met {
		if !strings.Contains(x.Name, "(main job, 10 hosts, loopback)") {
			t.Errorf("name %q", x.Name)
		}
	}
	if !strings.Contains(met[0].Measured, "1.40× the floor") || !strings.Contains(met[1].Measured, "16.0×") {
		t.Errorf("measured %q, %q", met[0].Measured, met[1].Measured)
	}
	// All missed: no-op 1.6× the floor and 14× Ansible, plan 2.1× the
	// floor, a peak of 21 MiB (in the first run) for 10 hosts.
	missed := sums(
		docker("plan", "dindops", 10, 2100*ms, 19<<20),
		docker("plan", "floor", 10, 1000*ms, 8<<20),
		docker("first", "dindops", 10, 30000*ms, 21<<20),
		docker("noop", "dindops", 10, 1600*ms, 18<<20),
		docker("noop", "floor", 10, 1000*ms, 8<<20),
		docker("noop", "ansible-best", 10, 22400*ms, 60<<20),
	)
	if v := verdicts(missed); v != "MISS MISS MISS MISS" {
		t.Errorf("verdicts %s", v)
	}
	// Rows missing: the floor and Ansible absent, only memory measured.
	partial := sums(docker("noop", "dindops", 10, 1600*ms, 18<<20))
	if v := verdicts(partial); v != "not measured not measured not measured pass" {
		t.Errorf("verdicts %s", v)
	}
	// Another network or size does not count; a main job run at 20 hosts
	// only is taken as the nearest size above 10.
	other := results.Run{Key: results.Key{Scenario: "docker", Net: "+25ms", Hosts: 10, Phase: "noop", Tool: "floor"}, Sample: measure.Sample{Wall: time.Second}}
	at20 := sums(other, docker("noop", "dindops", 20, 1600*ms, 18<<20), docker("noop", "floor", 20, 1000*ms, 8<<20))
	if at20[0].Verdict() != "MISS" || !strings.Contains(at20[0].Name, "20 hosts") {
		t.Errorf("at 20 hosts: %s %s", at20[0].Name, at20[0].Verdict())
	}
}

func TestRowsOrderAndRatio(t *testing.T) {
	runs := []results.Run{
		run("noop", "ansible-mitogen", 10, 4*time.Second, 0),
		run("noop", "floor-physical", 10, time.Second/2, 0),
		run("noop", "floor", 10, time.Second, 0),
		run("noop", "ansible-best", 10, 10*time.Second, 0),
		run("plan", "dindops", 10, 2*time.Second, 0),
		run("noop", "dindops", 10, 2*time.Second, 0),
	}
	runs[2].Commands, runs[2].API = 8, 7
	runs[5].Commands, runs[5].API, runs[5].Docker = 8, 7, 1
	runs[1].Commands = 1
	rows := Rows(results.Summarise(runs))
	var order []string
	for _, r := range rows {
		order = append(order, r.Phase+"/"+r.Tool)
	}
	if got := strings.Join(order, " "); got != "plan/dindops noop/dindops noop/ansible-best noop/floor noop/floor-physical noop/ansible-mitogen" {
		t.Fatalf("order %s", got)
	}
	if rows[2].Ratio != 0.2 || rows[3].Ratio != 2 || rows[5].Ratio != 0.5 {
		t.Fatalf("ratios %v %v %v, want 0.2, 2 and 0.5", rows[2].Ratio, rows[3].Ratio, rows[5].Ratio)
	}
	var b bytes.Buffer
	if err := Text(&b, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ansible-best", "cmds+sftp+api", "8+0+7 (1 docker)", "8+0+7  ", "1+0+0", "ansible-mitogen"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestWriteDocKeepsHandWrittenText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	res := &results.Results{Runs: []results.Run{run("noop", "dindops", 1, time.Second, 1<<20)}}
	d := Doc{Results: res, Rows: Rows(results.Summarise(res.Runs))}
	if err := WriteDoc(path, d); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	edited := strings.Replace(string(b), "(Written by hand", "Profiles show X. (Written by hand", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDoc(path, d); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "Profiles show X.") || strings.Count(string(b), BeginMarker) != 1 {
		t.Fatalf("hand-written text lost or markers doubled:\n%s", b)
	}
}

func TestPlotPNG(t *testing.T) {
	runs := []results.Run{
		run("noop", "dindops", 1, time.Second, 0),
		run("noop", "dindops", 10, 2*time.Second, 0),
		run("noop", "ansible-best", 1, 5*time.Second, 0),
		run("noop", "ansible-best", 10, 9*time.Second, 0),
	}
	var b bytes.Buffer
	if err := PlotPNG(&b, results.Summarise(runs), []string{"dindops", "ansible-best"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x89PNG")) {
		t.Fatal("not a PNG")
	}
	// One fleet size only: no log axis over a single value.
	b.Reset()
	if err := PlotPNG(&b, results.Summarise(runs[:1]), []string{"dindops"}); err != nil {
		t.Fatal(err)
	}
}
