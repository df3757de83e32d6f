package playbooks

import (
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// prefix gives a list that keeps its type as a whole value, also under a
// condition and through a variable, and is flattened into a list option.
func TestPrefixGivesAList(t *testing.T) {
	src := `- hosts: all
  vars:
    mirrors: [https://a.example, "http://b:5000"]
    flags: "{{ prefix \"--registry-mirror=\" .mirrors }}"
    on: true
  tasks:
    - name: t
      docker_container:
        name: dind
        image: docker:dind
        command:
          - --storage-driver=overlay2
          - "{{ prefix \"--registry-mirror=\" .mirrors }}"
          - "{{ if .on }}{{ prefix \"--x=\" .one }}{{ end }}"
          - "{{ if not .on }}{{ prefix \"--y=\" .mirrors }}{{ end }}"
          - "{{ .flags }}"
          - "{{ prefix \"--none=\" .none }}"
`
	hp, err := compile(t, src, map[string]any{"one": "single", "none": []any{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(hp.Tasks[0].Task.(*tasks.DockerContainer).Command, " ")
	want := "--storage-driver=overlay2 --registry-mirror=https://a.example --registry-mirror=http://b:5000 --x=single --registry-mirror=https://a.example --registry-mirror=http://b:5000"
	if got != want {
		t.Errorf("command\n  %s\nwant\n  %s", got, want)
	}
}

func TestPrefixErrors(t *testing.T) {
	cases := []struct{ name, value, vars, want string }{
		{"inside text", `"a {{ prefix \"-x=\" .l }}"`, `{l: [a]}`, `pb.yml:6:15: task "t": template "a {{ prefix \"-x=\" .l }}": a function there gives a list, which cannot be part of other text`},
		{"not a list", `"{{ prefix \"-x=\" .l }}"`, `{l: {a: b}}`, `prefix: want a list of strings, not a mapping`},
		{"not strings", `"{{ prefix \"-x=\" .l }}"`, `{l: [a, [b]]}`, `prefix: item 2 is a list, not a string`},
		{"undefined", `"{{ prefix \"-x=\" .mirors }}"`, `{mirrors: []}`, `undefined variable "mirors"; did you mean "mirrors"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "- hosts: all\n  vars: " + c.vars + "\n  tasks:\n    - name: t\n      docker_container:\n        name: \"{{ if true }}dind{{ end }}\"\n        image: b\n        command: [" + c.value + "]\n"
			if c.name == "inside text" {
				src = "- hosts: all\n  vars: " + c.vars + "\n  tasks:\n    - name: t\n      docker_container:\n        name: " + c.value + "\n        image: b\n"
			}
			_, err := compile(t, src, nil, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err =\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
	// A task name is text: a list there is an error.
	src := "- hosts: all\n  vars: {l: [a]}\n  tasks:\n    - name: '{{ prefix \"x\" .l }}'\n      docker_network: {name: net}\n"
	if _, err := compile(t, src, nil, nil); err == nil || !strings.Contains(err.Error(), "gives a list where text is wanted") {
		t.Errorf("list as a task name: %v", err)
	}
}

// A variable given to prefix counts as read.
func TestReadVarsSeesPrefixArguments(t *testing.T) {
	pb, err := Parse("pb.yml", []byte("- hosts: all\n  tasks:\n    - name: t\n      command:\n        argv: [\"{{ prefix \\\"-x=\\\" .mirrors }}\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if names, all := pb.ReadVars(); all || !names["mirrors"] {
		t.Errorf("ReadVars = %v, all=%v", names, all)
	}
}
