package strictyaml

import (
	"strings"
	"testing"
)

func TestParseRejectsDuplicateKeys(t *testing.T) {
	in := "- name: p\n  hosts: all\n  tasks: []\n  vars: {a: 1}\n  tasks:\n    - name: t\n"
	_, err := Parse("pb.yml", []byte(in))
	if err == nil || !strings.Contains(err.Error(), `pb.yml:5:3: key "tasks" appears twice in this mapping (first at line 3)`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse("x.yml", []byte("a: {b: 1, b: 2}\n")); err == nil || !strings.Contains(err.Error(), `x.yml:1:11: key "b" appears twice`) {
		t.Fatalf("nested duplicate: err = %v", err)
	}
}

type inner struct {
	Port int `yaml:"port"`
}

type outer struct {
	Name  string           `yaml:"name"`
	Inner inner            `yaml:"inner"`
	List  []inner          `yaml:"list"`
	Map   map[string]inner `yaml:"map"`
}

func TestDecodeStrictEverywhere(t *testing.T) {
	for in, want := range map[string]string{
		"nme: x\n":                      `f.yml:1:1: unknown field "nme" in this mapping; did you mean "name"?`,
		"inner: {prot: 1}\n":            `f.yml:1:9: unknown field "prot"`,
		"list: [{port: 1}, {pot: 2}]\n": `f.yml:1:20: unknown field "pot"`,
		"map: {a: {portt: 1}}\n":        `f.yml:1:11: unknown field "portt"`,
		"inner: {port: many}\n":         "f.yml:1: cannot unmarshal !!str `many` into int",
	} {
		n, err := Parse("f.yml", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		var o outer
		err = Decode("f.yml", n, &o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %s", in, err, want)
		}
	}
	// Decoding the same node twice stays strict.
	n, _ := Parse("f.yml", []byte("nme: x\n"))
	var o outer
	for i := 0; i < 2; i++ {
		if err := Decode("f.yml", n, &o); err == nil {
			t.Fatalf("decode %d accepted an unknown field", i)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"docker_container", "docker_network", "file"}
	if got := Suggest("dokcer_network", known); got != "docker_network" {
		t.Errorf("Suggest = %q", got)
	}
	if got := Suggest("zzz", known); got != "" {
		t.Errorf("Suggest = %q, want none", got)
	}
}
