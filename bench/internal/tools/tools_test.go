package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dindops/dindops/bench/internal/inventory"
)

func TestParseTrips(t *testing.T) {
	// A dindops before the Docker Engine API: no api= or docker=.
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

func TestParseTripsAPI(t *testing.T) {
	// dindops -v with the Docker Engine API: the round trips line with api=
	// and docker=, and the line that says which way the API went.
	stderr := []byte(`05:30:01 INFO docker api host=h1 via=streamlocal
05:30:01 INFO docker api host=h2 via=dial-stdio reason="the stream-local channel to /var/run/docker.sock failed: open failed"
05:30:01 INFO round trips host=h1 commands=8 sftp=0 api=7 docker=0
05:30:01 INFO round trips host=h2 commands=9 sftp=2 api=7 docker=1
05:30:01 INFO round trips host=h3 commands=3 sftp=0 api=0 docker=0
INFO round trips host=h4 commands=5 sftp=1
`)
	got, err := ParseTrips(stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]inventory.Trips{
		"h1": {Commands: 8, API: 7, Via: "streamlocal"},
		"h2": {Commands: 9, SFTP: 2, API: 7, Docker: 1, Via: "dial-stdio"},
		"h3": {Commands: 3},
		"h4": {Commands: 5, SFTP: 1}, // no api=: 0
	}
	if len(got) != len(want) {
		t.Fatalf("ParseTrips = %v, want %v", got, want)
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("%s: %+v, want %+v", h, got[h], w)
		}
	}
	// The counts are cumulative: the last line of a host wins.
	got, err = ParseTrips([]byte("INFO round trips host=a commands=1 sftp=0 api=1 docker=0\nINFO round trips host=a commands=4 sftp=2 api=7 docker=1\n"))
	if err != nil || got["a"] != (inventory.Trips{Commands: 4, SFTP: 2, API: 7, Docker: 1}) {
		t.Fatalf("last line: %v, %v", got, err)
	}
	for _, bad := range []string{
		"INFO round trips host=a commands=x sftp=0 api=1\n",
		"INFO round trips host=a commands=1 sftp=0 api=\n",
		"INFO round trips commands=1 sftp=0 api=1\n",
		"INFO round trips host=a sftp=0 api=1\n",
	} {
		if _, err := ParseTrips([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
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
	if o.Changed != 6 || o.Trips["a"].Commands != 4 || o.Trips["a"].API != 0 {
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
	best := AnsibleConfig(AnsibleBest, "50", "")
	for _, want := range []string{"forks = 50", "pipelining = True", "ControlPersist", "gathering = explicit"} {
		if !strings.Contains(best, want) {
			t.Errorf("best config lacks %q:\n%s", want, best)
		}
	}
	if strings.Contains(best, "strategy") {
		t.Errorf("best config names a strategy:\n%s", best)
	}
	def := AnsibleConfig(AnsibleDefault, "50", "")
	for _, unwanted := range []string{"forks", "pipelining", "ssh_args", "strategy"} {
		if strings.Contains(def, unwanted+" =") {
			t.Errorf("default config sets %q:\n%s", unwanted, def)
		}
	}
}

func TestAnsibleConfigMitogen(t *testing.T) {
	const dir = "/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy"
	cfg := AnsibleConfig(AnsibleMitogen, "10", dir)
	best := AnsibleConfig(AnsibleBest, "10", "")
	// Ansible at its best, plus Mitogen's strategy from the package's
	// plugin directory, in [defaults].
	defaults, _, _ := strings.Cut(cfg, "[ssh_connection]")
	for _, want := range []string{"strategy = mitogen_linear\n", "strategy_plugins = " + dir + "\n", "forks = 10\n", "gathering = explicit\n"} {
		if !strings.Contains(defaults, want) {
			t.Errorf("mitogen config's [defaults] lacks %q:\n%s", want, cfg)
		}
	}
	strip := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "strategy") {
				out = append(out, l)
			}
		}
		return out
	}
	if a, b := strings.Join(strip(cfg), "\n"), strings.Join(strip(best), "\n"); a != b {
		t.Errorf("mitogen config is not ansible-best's plus the strategy:\n%s\nbest:\n%s", a, b)
	}
	if !slices.Contains(MitogenVars, "ansible_python_interpreter=/usr/bin/python3") || !slices.Contains(MitogenVars, "mitogen_ssh_compression=false") {
		t.Errorf("MitogenVars %q", MitogenVars)
	}
}

func TestMitogenStrategyDir(t *testing.T) {
	list := `/.
/usr/lib/python3/dist-packages/ansible/plugins/strategy/mitogen_linear.py
/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy
/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy/__init__.py
/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy/mitogen_linear.py
`
	dir, err := MitogenStrategyDir(list)
	if err != nil || dir != "/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy" {
		t.Fatalf("dir %q, %v", dir, err)
	}
	if _, err := MitogenStrategyDir("/usr/share/doc/ansible-mitogen\n"); err == nil {
		t.Fatal("no strategy plugin listed: want an error")
	}
}

func TestCheckMitogenAnsible(t *testing.T) {
	if err := CheckMitogenAnsible("ansible-playbook [core 2.14.18]"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ansible-playbook [core 2.16.3]", "ansible-playbook 2.9.27", ""} {
		if err := CheckMitogenAnsible(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestMitogenCommandAndVerify(t *testing.T) {
	files, err := inventory.Write(t.TempDir(), []inventory.Endpoint{{Name: "h1", Address: "10.0.0.1", Port: 22}}, "root", "/id", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(files.Dir, "runs", "noop-ansible-mitogen-1")
	k := Kit{AnsiblePlaybook: "/usr/bin/ansible-playbook", MitogenStrategies: "/strategies"}
	sc := Scenario{Name: "engine", Ansible: "/p/engine.ansible.yml"}
	r, err := k.Command(context.Background(), AnsibleMitogen, Noop, sc, files, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Cleanup()
	args := strings.Join(r.Cmd.Args, " ")
	if !strings.Contains(args, strings.Join(MitogenVars, " ")) || r.Cmd.Dir != dir || !slices.Contains(r.Cmd.Env, "MITOGEN_SAVE_PIDS=1") {
		t.Fatalf("command %q in %q", args, r.Cmd.Dir)
	}
	cfg, _ := os.ReadFile(filepath.Join(files.Dir, "ansible-mitogen.cfg"))
	if !strings.Contains(string(cfg), "strategy_plugins = /strategies\n") {
		t.Fatalf("config:\n%s", cfg)
	}
	// No multiplexer pid file: Mitogen did not run, the run fails.
	if r.Verify == nil || r.Verify() == nil {
		t.Fatal("a run without Mitogen's pid file: want an error")
	}
	os.WriteFile(filepath.Join(dir, MitogenMark), []byte("123"), 0o600)
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	// A run again in the same directory does not inherit the old file.
	if _, err := k.Command(context.Background(), AnsibleMitogen, Noop, sc, files, dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := VerifyMitogen(dir); err == nil {
		t.Fatal("the old pid file survived the next run's preparation")
	}
	if _, err := (&Kit{}).Command(context.Background(), AnsibleMitogen, Noop, sc, files, dir, nil); err == nil {
		t.Fatal("no strategy directory: want an error")
	}
}

func TestFloorPhysicalCommand(t *testing.T) {
	files, err := inventory.Write(t.TempDir(), []inventory.Endpoint{{Name: "h1", Address: "10.0.0.1", Port: 22}, {Name: "h2", Address: "10.0.0.2", Port: 22}}, "root", "/id", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(files.Dir, "runs", "plan-floor-physical-1")
	k := Kit{Floor: "/bin/floor"}
	// dindops's counts are not needed, and not used when given.
	given := map[string]inventory.Trips{"h1": {Commands: 9, SFTP: 3, API: 7}}
	r, err := k.Command(context.Background(), FloorPhysical, Plan, Scenario{}, files, dir, given)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "floor-targets.json"))
	var ft inventory.FloorTargets
	if err := json.Unmarshal(b, &ft); err != nil || len(ft.Hosts) != 2 {
		t.Fatalf("targets %s (%v)", b, err)
	}
	for _, h := range ft.Hosts {
		if h.Trips != (inventory.Trips{Commands: 1}) {
			t.Errorf("%s: %+v, want one command and nothing else", h.Name, h.Trips)
		}
	}
	if r.Cmd.Args[0] != "/bin/floor" {
		t.Errorf("command %q", r.Cmd.Args)
	}
	if _, err := Check(FloorPhysical, Plan, 2, 0, nil, nil); err != nil {
		t.Errorf("a floor-physical run that exited 0: %v", err)
	}
}
