package tools

import (
	"strings"
	"testing"

	"github.com/dindops/dindops/bench/internal/inventory"
)

func TestParseTrips(t *testing.T) {
	stderr := []byte("13:26:15 INFO applying task=x changes=1\n" +
		"13:26:15 INFO round trips host=web-1 commands=41 sftp=16\n" +
		"13:26:15 INFO round trips host=web-2 commands=40 sftp=15\n")
	got, err := ParseTrips(stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]inventory.Trips{"web-1": {Commands: 41, SFTP: 16}, "web-2": {Commands: 40, SFTP: 15}}
	if len(got) != len(want) || got["web-1"] != want["web-1"] || got["web-2"] != want["web-2"] {
		t.Fatalf("ParseTrips = %v, want %v", got, want)
	}
	if _, err := ParseTrips([]byte("nothing here\n")); err == nil {
		t.Fatal("no round-trip lines: want an error")
	}
}

func TestCheckDindops(t *testing.T) {
	trips := []byte("INFO round trips host=a commands=4 sftp=0\nINFO round trips host=b commands=4 sftp=0\n")
	lines := `{"event":"run_start"}
{"event":"result","recap":[{"host":"a","changed":3},{"host":"b","changed":3}]}
`
	o, err := Check(Dindops, First, 2, 0, []byte(lines), trips)
	if err != nil {
		t.Fatal(err)
	}
	if o.Changed != 6 || o.Trips["a"].Commands != 4 {
		t.Fatalf("outcome %+v", o)
	}
	doc := `{"recap":[{"host":"a","changed":0},{"host":"b","changed":0}]}`
	if _, err := Check(Dindops, Noop, 2, 0, []byte(doc), trips); err != nil {
		t.Fatalf("no-op: %v", err)
	}
	if _, err := Check(Dindops, First, 2, 0, []byte(doc), trips); err == nil || !strings.Contains(err.Error(), "changed nothing") {
		t.Fatalf("a first run that changed nothing: err = %v", err)
	}
	failed := `{"recap":[{"host":"a","changed":1,"failed":1},{"host":"b","changed":1}]}`
	if _, err := Check(Dindops, First, 2, 0, []byte(failed), trips); err == nil {
		t.Fatal("a failed host: want an error")
	}
	if _, err := Check(Dindops, First, 2, 1, nil, []byte("error: boom\n")); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("exit 1: err = %v", err)
	}
}

func TestCheckAnsible(t *testing.T) {
	out := `PLAY RECAP *********************************************************************
bench-1                    : ok=3    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
bench-2                    : ok=3    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
`
	if _, err := Check(AnsibleBest, Noop, 2, 0, []byte(out), nil); err == nil || !strings.Contains(err.Error(), "not idempotent") {
		t.Fatalf("a changed no-op run: err = %v", err)
	}
	o, err := Check(AnsibleDefault, First, 2, 0, []byte(out), nil)
	if err != nil || o.Changed != 1 {
		t.Fatalf("first: %+v, %v", o, err)
	}
	if _, err := Check(AnsibleDefault, First, 3, 0, []byte(out), nil); err == nil {
		t.Fatal("a host missing from the recap: want an error")
	}
	unreachable := strings.Replace(out, "unreachable=0    failed=0    skipped=0    rescued=0    ignored=0\nbench-2", "unreachable=1    failed=0    skipped=0    rescued=0    ignored=0\nbench-2", 1)
	if _, err := Check(AnsibleDefault, First, 2, 0, []byte(unreachable), nil); err == nil {
		t.Fatal("an unreachable host: want an error")
	}
}

func TestAnsibleConfig(t *testing.T) {
	best := AnsibleConfig(AnsibleBest, "50")
	for _, want := range []string{"forks = 50", "pipelining = True", "ControlPersist", "gathering = explicit"} {
		if !strings.Contains(best, want) {
			t.Errorf("best config lacks %q:\n%s", want, best)
		}
	}
	def := AnsibleConfig(AnsibleDefault, "50")
	for _, unwanted := range []string{"forks", "pipelining", "ssh_args"} {
		if strings.Contains(def, unwanted+" =") {
			t.Errorf("default config sets %q:\n%s", unwanted, def)
		}
	}
}
