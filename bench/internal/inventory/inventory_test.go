package inventory

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestWrite(t *testing.T) {
	var vars yaml.Node
	if err := yaml.Unmarshal([]byte("gitlab_url: http://10.0.0.3:8929\ndind_cap_add: [ALL]\n"), &vars); err != nil {
		t.Fatal(err)
	}
	eps := []Endpoint{
		{Name: "h1", Address: "10.0.0.11", Port: 22, HostKeys: []string{"ssh-ed25519 AAAA1"}},
		{Name: "h2", Address: "127.0.0.1", Port: 40001, HostKeys: []string{"ssh-ed25519 AAAA2"}},
	}
	dir := t.TempDir()
	f, err := Write(dir, eps, "root", "/keys/id", vars.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	kh, _ := os.ReadFile(f.KnownHosts)
	if want := "10.0.0.11 ssh-ed25519 AAAA1\n[127.0.0.1]:40001 ssh-ed25519 AAAA2\n"; string(kh) != want {
		t.Fatalf("known_hosts:\n%s\nwant:\n%s", kh, want)
	}
	var dind struct {
		All struct {
			User       string         `yaml:"user"`
			KnownHosts string         `yaml:"known_hosts"`
			Vars       map[string]any `yaml:"vars"`
			Hosts      map[string]struct {
				Address string `yaml:"address"`
				Port    int    `yaml:"port"`
			} `yaml:"hosts"`
		} `yaml:"all"`
	}
	b, _ := os.ReadFile(f.Dindops)
	if err := yaml.Unmarshal(b, &dind); err != nil {
		t.Fatal(err)
	}
	if dind.All.User != "root" || dind.All.KnownHosts != f.KnownHosts || dind.All.Hosts["h2"].Port != 40001 ||
		dind.All.Vars["gitlab_url"] != "http://10.0.0.3:8929" {
		t.Fatalf("dindops inventory:\n%s", b)
	}
	var ans struct {
		All struct {
			Vars  map[string]any `yaml:"vars"`
			Hosts map[string]struct {
				Host string `yaml:"ansible_host"`
				Port int    `yaml:"ansible_port"`
			} `yaml:"hosts"`
		} `yaml:"all"`
	}
	b, _ = os.ReadFile(f.Ansible)
	if err := yaml.Unmarshal(b, &ans); err != nil {
		t.Fatal(err)
	}
	args, _ := ans.All.Vars["ansible_ssh_common_args"].(string)
	if ans.All.Hosts["h1"].Host != "10.0.0.11" || !strings.Contains(args, "StrictHostKeyChecking=yes") ||
		!strings.Contains(args, f.KnownHosts) || ans.All.Vars["gitlab_url"] != "http://10.0.0.3:8929" {
		t.Fatalf("Ansible inventory:\n%s", b)
	}

	if err := f.WriteFloor(dir+"/floor.json", map[string]Trips{"h1": {Commands: 4, SFTP: 1}}); err == nil {
		t.Fatal("a host without counts: want an error")
	}
	if err := f.WriteFloor(dir+"/floor.json", map[string]Trips{"h1": {Commands: 4, SFTP: 1}, "h2": {Commands: 5, API: 7, Via: "streamlocal"}}); err != nil {
		t.Fatal(err)
	}
	var ft FloorTargets
	b, _ = os.ReadFile(dir + "/floor.json")
	if err := json.Unmarshal(b, &ft); err != nil || len(ft.Hosts) != 2 || ft.Hosts[1].Commands != 5 || ft.Hosts[1].API != 7 || ft.Hosts[1].Via != "streamlocal" || ft.Hosts[1].Port != 40001 {
		t.Fatalf("floor targets %s (%v)", b, err)
	}
}
