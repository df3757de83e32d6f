package playbooks

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dindops/dindops/inventory"
)

func TestSerialBatches(t *testing.T) {
	for _, c := range []struct {
		serial string
		hosts  int
		want   string
	}{
		{"2", 5, "[2 2 1]"},
		{"10", 3, "[3]"},
		{`"30%"`, 10, "[3 3 3 1]"},
		{`"30%"`, 2, "[1 1]"},              // rounded down, never below 1
		{"[1, 10%, 100%]", 20, "[1 2 17]"}, // a canary, then 10%, then the rest
		{"[1, 50%]", 5, "[1 2 2]"},         // the last value repeats
		{"[1, 5]", 3, "[1 2]"},
		{"[2, 1]", 4, "[2 1 1]"},
		{"1", 0, "[]"},
	} {
		pb, err := Parse("pb.yml", []byte("- hosts: all\n  serial: "+c.serial+"\n"))
		if err != nil {
			t.Fatalf("serial %s: %v", c.serial, err)
		}
		if got := fmt.Sprint(pb.Plays[0].Serial.Batches(c.hosts)); got != c.want {
			t.Errorf("serial %s on %d hosts: batches %s, want %s", c.serial, c.hosts, got, c.want)
		}
	}
	if got := fmt.Sprint(Serial(nil).Batches(4)); got != "[4]" {
		t.Errorf("no serial: %s", got)
	}
	pb, _ := Parse("pb.yml", []byte("- hosts: all\n  serial: [1, \"10%\", 100%]\n  max_fail_percentage: 25\n"))
	if s := pb.Plays[0].Serial.String(); s != "[1, 10%, 100%]" || *pb.Plays[0].MaxFailPercentage != 25 {
		t.Errorf("serial %s, max_fail_percentage %v", s, *pb.Plays[0].MaxFailPercentage)
	}
}

func TestRolloutKeyErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"  serial: 0\n", `pb.yml:2:11: serial: 0 hosts per batch is not possible`},
		{"  serial: -1\n", `serial: -1 hosts per batch`},
		{"  serial: lots\n", `serial: "lots" is not a number`},
		{"  serial: 150%\n", `serial: "150%" is not between 1% and 100%`},
		{"  serial: 2.5%\n", `"2.5%" is not a whole percentage`},
		{"  serial: []\n", `serial is an empty list`},
		{"  serial: {a: 1}\n", `a batch size must be a number or a percentage, got a mapping`},
		{"  serial: [1, x]\n", `pb.yml:2:15: serial: "x" is not a number`},
		{"  max_fail_percentage: 101\n", `pb.yml:2:24: max_fail_percentage must be a number from 0 to 100`},
		{"  max_fail_percentage: some\n", `max_fail_percentage must be a number`},
		{"  serail: 1\n", `unknown field "serail" in a play; did you mean "serial"?`},
		{"  tasks:\n    - name: t\n      timeout: 0\n      command: {argv: [x]}\n", `pb.yml:4:16: timeout must be more than 0`},
		{"  tasks:\n    - name: t\n      timeout: soon\n      command: {argv: [x]}\n", `timeout must be whole seconds (300) or a duration ("5m", "90s"), got "soon"`},
		{"  tasks:\n    - name: t\n      timeuot: 5\n      command: {argv: [x]}\n", `unknown field "timeuot" in a task; did you mean "timeout"?`},
	} {
		_, err := Parse("pb.yml", []byte("- hosts: all\n"+c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestTaskTimeout(t *testing.T) {
	src := "- hosts: all\n  tasks:\n    - name: a\n      timeout: 300\n      command: {argv: [x]}\n    - name: b\n      timeout: 90s\n      command: {argv: [x]}\n    - name: c\n      command: {argv: [x]}\n"
	hp, err := compile(t, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{300 * time.Second, 90 * time.Second, 0} {
		if hp.Tasks[i].Timeout != want {
			t.Errorf("task %d: timeout %v, want %v", i, hp.Tasks[i].Timeout, want)
		}
	}
}

func TestTagSelection(t *testing.T) {
	tagsOf := map[string][]string{
		"plain":     nil,
		"docker":    {"docker"},
		"runner":    {"runner", "gitlab"},
		"always":    {"always"},
		"debug":     {"never", "debug"},
		"neveronly": {"never"},
	}
	names := []string{"plain", "docker", "runner", "always", "debug", "neveronly"}
	for _, c := range []struct {
		only, skip string
		want       string
	}{
		{"", "", "plain docker runner always"},
		{"docker", "", "docker always"},
		{"gitlab,docker", "", "docker runner always"},
		{"debug", "", "always debug"},             // never runs when named
		{"never", "", "always debug neveronly"},   // or with --tags never
		{"all", "", "plain docker runner always"}, // all is the default
		{"tagged", "", "docker runner always"},
		{"untagged", "", "plain always"},
		{"", "docker", "plain runner always"},
		{"", "always", "plain docker runner"},
		{"docker", "always", "docker"},
		{"runner", "gitlab", "always"}, // skip wins
		{"", "tagged", "plain"},
	} {
		sel := TagSelection{Only: SplitTags([]string{c.only}), Skip: SplitTags([]string{c.skip})}
		var got []string
		for _, n := range names {
			if sel.Selects(tagsOf[n]) {
				got = append(got, n)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("--tags %q --skip-tags %q: runs %v, want %s", c.only, c.skip, got, c.want)
		}
	}
}

func TestTagsFilterTasksNotHandlers(t *testing.T) {
	src := `- hosts: all
  tasks:
    - name: config
      tags: [docker]
      file: {path: /a, content: x}
      notify: restart
    - name: other
      tags: runner
      file: {path: /b, content: "{{ .undefined_here }}"}
  handlers:
    - name: restart
      tags: [unrelated]
      service: {name: docker, state: restarted}
`
	pb, err := Parse("pb.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// A task that is not selected is not compiled: its undefined variable
	// does not matter.
	hp, err := Compile(pb.Plays[0], host(t, nil), CompileOptions{Tags: TagSelection{Only: []string{"docker"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(hp.Tasks) != 1 || hp.Tasks[0].Name != "config" || len(hp.Handlers) != 1 {
		t.Errorf("tasks %d, handlers %d", len(hp.Tasks), len(hp.Handlers))
	}
	if got := strings.Join(pb.Tags(), ","); got != "docker,runner,unrelated" {
		t.Errorf("tags = %s", got)
	}
	err = pb.CheckTags(TagSelection{Only: []string{"dokcer", "always"}, Skip: []string{"gitlab"}})
	want := "--tags dokcer: no task of pb.yml has this tag; did you mean \"docker\"?\n--skip-tags gitlab: no task of pb.yml has this tag; its tags: docker, runner, unrelated"
	if err == nil || err.Error() != want {
		t.Errorf("CheckTags = %v\nwant %s", err, want)
	}
	if err := pb.CheckTags(TagSelection{Only: []string{"docker", "tagged"}, Skip: []string{"never"}}); err != nil {
		t.Error(err)
	}
}

func TestTemplatedRollout(t *testing.T) {
	pb, err := Parse("pb.yml", []byte(`- name: p
  hosts: all
  serial: "{{ .rollout_serial }}"
  max_fail_percentage: "{{ .rollout_max }}"
  vars:
    rollout_serial: [1, "25%", "100%"]
    rollout_max: 0
  tasks:
    - name: t
      command: {argv: [true]}
`))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("hosts.yml", []byte("all:\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.2, vars: {rollout_max: 50}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := inv.Select("all")
	var hps []*HostPlay
	for _, h := range hosts {
		hp, err := Compile(pb.Plays[0], h, CompileOptions{ExtraVars: map[string]any{"rollout_serial": "100%"}})
		if err != nil {
			t.Fatal(err)
		}
		hps = append(hps, hp)
	}
	if hps[0].Serial.String() != "[100%]" || *hps[0].MaxFailPercentage != 0 {
		t.Fatalf("a: serial %s, max %v; -e overrides the play's vars", hps[0].Serial, *hps[0].MaxFailPercentage)
	}
	if _, _, err := RolloutOf(pb.Plays[0], hps); err == nil || !strings.Contains(err.Error(), "max_fail_percentage is 0 for a but 50 for b") {
		t.Fatalf("hosts that disagree: %v", err)
	}
	serial, max, err := RolloutOf(pb.Plays[0], hps[:1])
	if err != nil || serial.String() != "[100%]" || *max != 0 {
		t.Fatalf("RolloutOf = %s %v %v", serial, max, err)
	}
	_, err = Compile(pb.Plays[0], hosts[0], CompileOptions{ExtraVars: map[string]any{"rollout_serial": "many"}})
	if err == nil || !strings.Contains(err.Error(), "serial:") {
		t.Fatalf("bad templated serial: %v", err)
	}
}
