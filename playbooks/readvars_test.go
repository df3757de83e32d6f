package playbooks

import (
	"maps"
	"slices"
	"testing"
)

func TestReadVars(t *testing.T) {
	pb, err := Parse("pb.yml", []byte(`- name: p
  hosts: all
  vars:
    a: "{{ .from_vars }}"
  tasks:
    - name: "task {{ .in_name }}"
      command:
        argv: ["echo", "{{ .field.sub }}", "{{ $.dollar }}", "{{ index . \"indexed\" }}", "{{ if .cond }}{{ .then }}{{ else }}{{ .other }}{{ end }}", "{{ range .list }}{{ .elem }}{{ . }}{{ end }}", "{{ .piped | printf \"%s\" }}"]
  handlers:
    - name: h
      command:
        argv: ["echo", "{{ .in_handler }}"]
`))
	if err != nil {
		t.Fatal(err)
	}
	names, all := pb.ReadVars()
	got := slices.Sorted(maps.Keys(names))
	want := []string{"cond", "dollar", "elem", "field", "from_vars", "in_handler", "in_name", "indexed", "list", "other", "piped", "then"}
	if all || !slices.Equal(got, want) {
		t.Errorf("ReadVars = %v, all=%v; want %v, all=false", got, all, want)
	}
	// The whole dot given to a function: any variable may be read.
	pb, err = Parse("pb.yml", []byte(`- name: p
  hosts: all
  tasks:
    - name: t
      command:
        argv: ["echo", "{{ printf \"%v\" . }}"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, all := pb.ReadVars(); !all {
		t.Error("a template reading the whole dot: all = false, want true")
	}
}
