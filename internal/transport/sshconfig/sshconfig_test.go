package sshconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, text string) *Config {
	t.Helper()
	f, err := Parse("/home/me/.ssh/config", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Files: []*File{f}}
}

func TestLookupFirstValueWinsWithLines(t *testing.T) {
	c := parse(t, `# comment
Host build-*
    HostName %h.internal
    User deploy
    ProxyJump jump@bastion:2222
    IdentityFile ~/.ssh/build
Host build-1
    User other
    IdentityFile ~/.ssh/second
Host *
    Port 2200
    ServerAliveInterval 5
    StrictHostKeyChecking accept-new
    UserKnownHostsFile ~/.ssh/known_hosts ~/.ssh/known_hosts2
`)
	s := c.Lookup("build-1", "build-1")
	want := map[string]string{
		"HostName": "%h.internal", "User": "deploy", "ProxyJump": "jump@bastion:2222",
		"IdentityFile": "~/.ssh/build", "Port": "2200", "ServerAliveInterval": "5",
		"StrictHostKeyChecking": "accept-new", "UserKnownHostsFile": "~/.ssh/known_hosts ~/.ssh/known_hosts2",
	}
	for k, v := range want {
		if s.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, s.Get(k), v)
		}
	}
	if got := s["IdentityFile"].All; !reflect.DeepEqual(got, []string{"~/.ssh/build", "~/.ssh/second"}) {
		t.Errorf("IdentityFile all = %q", got)
	}
	if w := s["User"].Where(); w != "/home/me/.ssh/config:4" {
		t.Errorf("User set at %s", w)
	}
	if len(c.Lookup("db-1", "10.0.0.1")) != 4 {
		t.Errorf("db-1: %v", c.Lookup("db-1", "10.0.0.1"))
	}
}

// A block applies when a pattern matches the inventory name or the
// address, unless a negated pattern matches either.
func TestLookupMatchesNameOrAddress(t *testing.T) {
	c := parse(t, `Host 10.1.*
    ProxyJump bastion
Host * !10.1.0.9 !legacy
    User deploy
`)
	if s := c.Lookup("build-1", "10.1.0.5"); s.Get("ProxyJump") != "bastion" || s.Get("User") != "deploy" {
		t.Errorf("by address: %v", s)
	}
	if s := c.Lookup("build-9", "10.1.0.9"); s.Get("User") != "" {
		t.Errorf("negated address still applied: %v", s)
	}
	if s := c.Lookup("legacy", "10.2.0.1"); s.Get("User") != "" {
		t.Errorf("negated name still applied: %v", s)
	}
}

func TestMatchBlocks(t *testing.T) {
	c := parse(t, `Match host a,b originalhost c
    User abc
Match exec "test -f /x"
    ProxyJump secret
    SendEnv FOO
Match all
    Port 2222
`)
	for _, h := range []string{"a", "b", "c"} {
		if c.Lookup(h, h).Get("User") != "abc" {
			t.Errorf("%s: Match host not applied", h)
		}
	}
	s := c.Lookup("z", "z")
	if s.Get("ProxyJump") != "" || s.Get("Port") != "2222" {
		t.Errorf("z: %v", s)
	}
	sk := c.Files[0].Skipped
	if len(sk) != 1 || sk[0].Line != 3 || !reflect.DeepEqual(sk[0].Keywords, []string{"ProxyJump"}) || !strings.Contains(sk[0].Criteria, "exec") {
		t.Errorf("skipped = %+v", sk)
	}
}

func TestLoadMissingAndBroken(t *testing.T) {
	dir := t.TempDir()
	c, err := Load([]string{filepath.Join(dir, "none")}, false)
	if err != nil || len(c.Files) != 0 {
		t.Errorf("missing optional file: %v %v", c, err)
	}
	if _, err := Load([]string{filepath.Join(dir, "none")}, true); err == nil {
		t.Errorf("missing named file: no error")
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("Include "+bad+"\n"), 0o600) // includes itself forever
	if _, err := Load([]string{bad}, false); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken file: %v", err)
	}
}

func TestExpand(t *testing.T) {
	t.Setenv("SSHCONFIG_TEST", "env")
	tok := Tokens{Home: "/home/me", Host: "10.0.0.5", Alias: "build-1", Port: 22, RemoteUser: "deploy", LocalUser: "me"}
	for in, want := range map[string]string{
		"~/.ssh/id_%r":              "/home/me/.ssh/id_deploy",
		"%d/.ssh/%n-%h:%p":          "/home/me/.ssh/build-1-10.0.0.5:22",
		"/k/${SSHCONFIG_TEST}/%u%%": "/k/env/me%",
		"%n.example.com":            "build-1.example.com",
	} {
		if got := Expand(in, tok); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProxyJump(t *testing.T) {
	hops, err := ParseProxyJump("jump@bastion:2222,ssh://u@[2001:db8::1]:22,plain")
	want := []Hop{{User: "jump", Host: "bastion", Port: 2222}, {User: "u", Host: "2001:db8::1", Port: 22}, {Host: "plain"}}
	if err != nil || !reflect.DeepEqual(hops, want) {
		t.Errorf("ParseProxyJump = %+v, %v", hops, err)
	}
	if hops, err := ParseProxyJump("none"); err != nil || hops != nil {
		t.Errorf("none = %v %v", hops, err)
	}
	for _, bad := range []string{"a:b", "@host", "host:0", "[::1", "a b"} {
		if _, err := ParseProxyJump(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if s := want[1].String(); s != "u@[2001:db8::1]:22" {
		t.Errorf("String = %q", s)
	}
}
