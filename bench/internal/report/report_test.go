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
	want := []string{"pass", "MISS", "MISS", "MISS"} // 20×; 4× the floor; 4×; 2.4 MiB/host
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d", len(got), len(want))
	}
	for i, tg := range got {
		if tg.Verdict() != want[i] {
			t.Errorf("%s: %s (%s), want %s", tg.Name, tg.Verdict(), tg.Measured, want[i])
		}
	}
	if v := Targets(nil)[0].Verdict(); v != "not measured" {
		t.Errorf("no runs: %s", v)
	}
}

func TestRowsOrderAndRatio(t *testing.T) {
	runs := []results.Run{
		run("noop", "floor", 10, time.Second, 0),
		run("noop", "ansible-best", 10, 10*time.Second, 0),
		run("plan", "dindops", 10, 2*time.Second, 0),
		run("noop", "dindops", 10, 2*time.Second, 0),
	}
	rows := Rows(results.Summarise(runs))
	var order []string
	for _, r := range rows {
		order = append(order, r.Phase+"/"+r.Tool)
	}
	if got := strings.Join(order, " "); got != "plan/dindops noop/dindops noop/ansible-best noop/floor" {
		t.Fatalf("order %s", got)
	}
	if rows[2].Ratio != 0.2 || rows[3].Ratio != 2 {
		t.Fatalf("ratios %v %v, want 0.2 and 2", rows[2].Ratio, rows[3].Ratio)
	}
	var b bytes.Buffer
	if err := Text(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "ansible-best") {
		t.Fatalf("table:\n%s", b.String())
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
