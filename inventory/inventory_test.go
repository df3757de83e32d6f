package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `all:
  user: deploy
  identity_file: keys/id_ed25519
  vars:
    color: all
    level: all
  hosts:
    build-1:
      address: 10.0.0.11
      vars:
        color: host
    build-2:
      address: 10.0.0.12
      port: 2222
      become: true
  children:
    big:
      user: root
      vars:
        level: big
      hosts:
        build-2:
      children:
        huge:
          vars:
            level: huge
          hosts:
            build-3:
              address: "[2001:db8::11]:2200"
    small:
      hosts:
        build-1:
`

func TestParseSample(t *testing.T) {
	inv, err := Parse("/inv/hosts.yml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range inv.Hosts {
		names = append(names, h.Name)
	}
	if want := []string{"build-1", "build-2", "build-3"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("hosts = %v, want inventory order %v", names, want)
	}
	b1, _ := inv.Host("build-1")
	if b1.Address != "10.0.0.11" || b1.Port != 22 || b1.User != "deploy" || b1.IdentityFile != "/inv/keys/id_ed25519" {
		t.Errorf("build-1 = %+v", b1)
	}
	if b1.Vars["color"] != "host" || b1.Vars["level"] != "all" {
		t.Errorf("build-1 vars = %v", b1.Vars)
	}
	if !reflect.DeepEqual(b1.Groups, []string{"small"}) {
		t.Errorf("build-1 groups = %v", b1.Groups)
	}
	b2, _ := inv.Host("build-2")
	if b2.Port != 2222 || !b2.Become || b2.User != "root" || b2.BecomeUser != "root" || b2.Vars["level"] != "big" {
		t.Errorf("build-2 = %+v", b2)
	}
	b3, _ := inv.Host("build-3")
	if b3.Address != "2001:db8::11" || b3.Port != 2200 || b3.Vars["level"] != "huge" || b3.User != "root" {
		t.Errorf("build-3 = %+v vars %v", b3, b3.Vars)
	}
	if b3.Endpoint() != "[2001:db8::11]:2200" {
		t.Errorf("endpoint = %s", b3.Endpoint())
	}
	if !reflect.DeepEqual(b3.Groups, []string{"big", "huge"}) {
		t.Errorf("build-3 groups = %v", b3.Groups)
	}
}

func TestParseErrorsNamePosition(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"misspelled host field", "all:\n  hosts:\n    a:\n      adress: 10.0.0.1\n", `hosts.yml:4:7: unknown field "adress" in this mapping; did you mean "address"?`},
		{"misspelled group field", "all:\n  childrn:\n    x:\n", `hosts.yml:2:3: unknown field "childrn"`},
		{"wrong type", "all:\n  hosts:\n    a:\n      port: twenty\n", `hosts.yml:4: cannot unmarshal`},
		{"port range", "all:\n  hosts:\n    a:\n      port: 70000\n", `hosts.yml:4:13: port 70000 is out of range`},
		{"docker_host over tcp", "all:\n  docker_host: tcp://10.0.0.1:2375\n  hosts:\n    a:\n", `hosts.yml:2:16: docker_host: "tcp://10.0.0.1:2375": only a unix socket is supported`},
		{"docker_host relative", "all:\n  hosts:\n    a:\n      docker_host: unix://docker.sock\n", `hosts.yml:4:20: docker_host: "unix://docker.sock": the socket path must be absolute`},
		{"defined twice", "all:\n  hosts:\n    a: {address: 1.2.3.4}\n  children:\n    g:\n      hosts:\n        a: {address: 1.2.3.5}\n", `hosts.yml:7:9: host "a" is defined twice (first at line 3)`},
		{"hosts as list", "all:\n  hosts:\n    - a\n", `hosts.yml:3:5: hosts of group "all" must be a mapping`},
		{"not a mapping", "- a\n", `hosts.yml:1:1: an inventory is a mapping of groups`},
		{"ambiguous ipv6", "all:\n  hosts:\n    a:\n      address: \"2001:db8::10:2222\"\n", `ambiguous address "2001:db8::10:2222": if 2222 is a port write [2001:db8::10]:2222`},
		{"port conflict", "all:\n  hosts:\n    a:\n      address: \"[2001:db8::10]:2222\"\n      port: 22\n", `address gives port 2222 but port is 22`},
		{"cycle", "all:\n  children:\n    a:\n      children:\n        a:\n", `group "a" cannot be a child of itself`},
		{"syntax", "all:\n  hosts: [\n", `hosts.yml:2: did not find expected node content`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("hosts.yml", []byte(c.in))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

// C32 (ansible/ansible#7446): IPv6 inventory entries.
func TestIPv6Addresses(t *testing.T) {
	in := `all:
  hosts:
    "2001:db8::10":
    "[2001:db8::11]:2222":
    h12:
      address: "2001:db8::12"
      port: 2200
    "fe80::1%eth0":
`
	inv, err := Parse("hosts.yml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"2001:db8::10":        "[2001:db8::10]:22",
		"[2001:db8::11]:2222": "[2001:db8::11]:2222",
		"h12":                 "[2001:db8::12]:2200",
		"fe80::1%eth0":        "[fe80::1%eth0]:22",
	}
	for _, h := range inv.Hosts {
		if got := h.Endpoint(); got != want[h.Name] {
			t.Errorf("%s: endpoint %s, want %s", h.Name, got, want[h.Name])
		}
	}
	if _, err := Parse("hosts.yml", []byte("all:\n  hosts:\n    \"2001:db8::10:2222\":\n")); err == nil || !strings.Contains(err.Error(), "[2001:db8::10]:2222") {
		t.Errorf("ambiguous host name: err = %v, want bracket hint", err)
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]struct {
		host string
		port int
	}{
		"build-1":              {"build-1", 0},
		"10.0.0.5:2222":        {"10.0.0.5", 2222},
		"[::1]":                {"::1", 0},
		"[2001:db8::10:2222]":  {"2001:db8::10:2222", 0},
		"2001:db8:0:0:0:0:0:1": {"2001:db8:0:0:0:0:0:1", 0},
	} {
		h, p, err := ParseAddress(in)
		if err != nil || h != want.host || p != want.port {
			t.Errorf("ParseAddress(%q) = %q, %d, %v; want %q, %d", in, h, p, err, want.host, want.port)
		}
	}
	for _, bad := range []string{"", "[10.0.0.1]:22", "host:99999", "[::1", "1:2:3"} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q): no error", bad)
		}
	}
}

func TestSelect(t *testing.T) {
	inv, err := Parse("hosts.yml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	for pattern, want := range map[string][]string{
		"all":             {"build-1", "build-2", "build-3"},
		"*":               {"build-1", "build-2", "build-3"},
		"big":             {"build-2", "build-3"},
		"huge":            {"build-3"},
		"build-3,small":   {"build-1", "build-3"},
		"big:!huge":       {"build-2"},
		"all,&big":        {"build-2", "build-3"},
		"build-*,!small":  {"build-2", "build-3"},
		"!big":            {"build-1"},
		"b*-2":            {"build-2"},
		"small:big:!huge": {"build-1", "build-2"},
	} {
		hosts, err := inv.Select(pattern)
		if err != nil {
			t.Errorf("Select(%q): %v", pattern, err)
			continue
		}
		var got []string
		for _, h := range hosts {
			got = append(got, h.Name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Select(%q) = %v, want %v", pattern, got, want)
		}
	}
	if _, err := inv.Select("bigg"); err == nil || !strings.Contains(err.Error(), `did you mean "big"`) {
		t.Errorf("Select(bigg) err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestDockerHostIsInheritedAndOverridden(t *testing.T) {
	inv, err := Parse("hosts.yml", []byte(`all:
  docker_host: unix:///run/user/1000/docker.sock
  hosts:
    a:
    b: {docker_host: "unix:///var/run/docker.sock"}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range inv.Hosts {
		got[h.Name] = h.DockerHost
	}
	if got["a"] != "unix:///run/user/1000/docker.sock" || got["b"] != "unix:///var/run/docker.sock" {
		t.Errorf("docker_host per host: %v", got)
	}
	if p, err := DockerSocket(got["a"]); err != nil || p != "/run/user/1000/docker.sock" {
		t.Errorf("DockerSocket: %q %v", p, err)
	}
}

// TestDuplicateAddress: two hosts on one address and port (and the same
// way there) are an error at the second, naming both, unless both allow
// it; another port, another bastion, or ssh_config's jump against jump:
// none are different endpoints.
func TestDuplicateAddress(t *testing.T) {
	for _, c := range []struct {
		name, in, wantErr string
	}{
		{"same", "all:\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.1:22}\n",
			`hosts.yml:4:5: host "b" has the same address and port as host "a" (10.0.0.1:22, line 3)`},
		{"case", "all:\n  hosts:\n    a: {address: Build.example}\n    b: {address: build.example}\n",
			`host "b" has the same address and port as host "a"`},
		{"one allows", "all:\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.1, allow_duplicate_address: true}\n",
			`set allow_duplicate_address: true on both`},
		{"both allow", "all:\n  allow_duplicate_address: true\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.1}\n", ""},
		{"ports", "all:\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.1, port: 2222}\n", ""},
		{"bastions", "all:\n  hosts:\n    a: {address: 10.0.0.1, jump: j1}\n    b: {address: 10.0.0.1, jump: j2}\n", ""},
		{"ssh_config jump", "all:\n  hosts:\n    a: {address: 10.0.0.1}\n    b: {address: 10.0.0.1, jump: none}\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("hosts.yml", []byte(c.in))
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Parse: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("Parse = %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}
