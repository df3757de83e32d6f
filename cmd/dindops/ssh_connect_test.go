package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/log"
	"github.com/spf13/cobra"

	"github.com/dindops/dindops/inventory"
)

// connectorFor returns a connector reading the ssh_config text, with the
// flags args, and a buffer of its -v log.
func connectorFor(t *testing.T, sshConfig string, args ...string) (*sshConnector, *strings.Builder, string) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgFile, []byte(sshConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var o sshOptions
	cmd := &cobra.Command{}
	o.register(cmd)
	if err := cmd.ParseFlags(append([]string{"--ssh-config", cfgFile}, args...)); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logger := log.New(&logs)
	logger.SetLevel(log.InfoLevel)
	c, err := o.connector(logger)
	if err != nil {
		t.Fatal(err)
	}
	c.home, c.user = "/home/me", "me"
	return c, &logs, cfgFile
}

func loadInventory(t *testing.T, text string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("/inv/hosts.yml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// ssh_config fills what the inventory leaves out, never what it gives.
func TestResolvePrecedence(t *testing.T) {
	c, logs, cfgFile := connectorFor(t, `Host build-*
    HostName %n.internal
    User admin
    Port 2222
    IdentityFile ~/.ssh/build_%r
    UserKnownHostsFile ~/.ssh/kh_build
    StrictHostKeyChecking accept-new
    ServerAliveInterval 5
    ServerAliveCountMax 4
    ProxyJump jumper@bastion:2200
Host bastion
    HostName 192.0.2.1
    IdentityFile /keys/bastion
`)
	inv := loadInventory(t, `all:
  hosts:
    build-1: {}
    build-2:
      address: 10.0.0.2
      port: 22
      user: deploy
      identity_file: /keys/inv
      known_hosts: /kh/inv
      jump: none
`)
	h1, _ := inv.Host("build-1")
	cfg, err := c.resolve(h1)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "build-1.internal" || cfg.Port != 2222 || cfg.User != "admin" ||
		!reflect.DeepEqual(cfg.IdentityFiles, []string{"/home/me/.ssh/build_admin"}) ||
		!reflect.DeepEqual(cfg.KnownHostsFiles, []string{"/home/me/.ssh/kh_build"}) ||
		!cfg.AcceptNewHostKey || cfg.KeepaliveInterval != 5*time.Second || cfg.KeepaliveCountMax != 4 {
		t.Errorf("build-1 = %+v", cfg)
	}
	if len(cfg.Jump) != 1 {
		t.Fatalf("jump = %+v", cfg.Jump)
	}
	j := cfg.Jump[0]
	// The bastion: its own HostName and key; the host's known_hosts; the
	// user and port from ProxyJump; strict (no StrictHostKeyChecking for it).
	if j.Name != "bastion" || j.Address != "192.0.2.1" || j.Port != 2200 || j.User != "jumper" ||
		!reflect.DeepEqual(j.IdentityFiles, []string{"/keys/bastion"}) ||
		!reflect.DeepEqual(j.KnownHostsFiles, cfg.KnownHostsFiles) || j.AcceptNewHostKey {
		t.Errorf("bastion = %+v", j)
	}
	if !strings.Contains(logs.String(), "ProxyJump=jumper@bastion:2200 ("+cfgFile+":10)") {
		t.Errorf("-v log:\n%s", logs)
	}

	h2, _ := inv.Host("build-2")
	cfg, err = c.resolve(h2)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "10.0.0.2" || cfg.Port != 22 || cfg.User != "deploy" || len(cfg.Jump) != 0 ||
		!reflect.DeepEqual(cfg.IdentityFiles, []string{"/keys/inv"}) || !reflect.DeepEqual(cfg.KnownHostsFiles, []string{"/kh/inv"}) {
		t.Errorf("build-2 = %+v", cfg)
	}
	for _, want := range []string{"HostName=%n.internal", "User=admin", "Port=2222", "ProxyJump=jumper@bastion:2200", "by inventory jump", "by inventory user"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("-v log lacks %q:\n%s", want, logs)
		}
	}
}

// Flags win over ssh_config; StrictHostKeyChecking no is accept-new, never
// insecure; ServerAliveInterval 0 turns keepalives off.
func TestResolveFlagsAndPolicies(t *testing.T) {
	inv := loadInventory(t, "all:\n  hosts:\n    h: {address: 10.0.0.1, user: u}\n")
	h, _ := inv.Host("h")
	c, _, _ := connectorFor(t, "Host *\n  StrictHostKeyChecking no\n  ServerAliveInterval 0\n")
	cfg, err := c.resolve(h)
	if err != nil || !cfg.AcceptNewHostKey || cfg.InsecureIgnoreHostKey || cfg.KeepaliveInterval >= 0 {
		t.Errorf("no: %+v %v", cfg, err)
	}
	c, _, _ = connectorFor(t, "Host *\n  StrictHostKeyChecking accept-new\n  ServerAliveInterval 9\n",
		"--ssh-host-key-policy", "strict", "--ssh-keepalive-interval", "2s", "--known-hosts", "/kh/flag")
	cfg, err = c.resolve(h)
	if err != nil || cfg.AcceptNewHostKey || cfg.KeepaliveInterval != 2*time.Second || !reflect.DeepEqual(cfg.KnownHostsFiles, []string{"/kh/flag"}) {
		t.Errorf("flags: %+v %v", cfg, err)
	}
	c, _, cfgFile := connectorFor(t, "Host *\n  StrictHostKeyChecking maybe\n")
	if _, err := c.resolve(h); err == nil || !strings.Contains(err.Error(), cfgFile+":2: StrictHostKeyChecking \"maybe\"") {
		t.Errorf("bad value: %v", err)
	}
}

// The first bastion's own ProxyJump is followed (ssh -J semantics), and a
// loop is an error, not a hang.
func TestResolveJumpChain(t *testing.T) {
	inv := loadInventory(t, "all:\n  hosts:\n    h: {address: 10.0.0.1, user: u, jump: inner}\n")
	h, _ := inv.Host("h")
	c, _, _ := connectorFor(t, "Host inner\n  ProxyJump outer\nHost outer\n  User o\n")
	cfg, err := c.resolve(h)
	if err != nil || len(cfg.Jump) != 2 || cfg.Jump[0].Name != "outer" || cfg.Jump[0].User != "o" || cfg.Jump[1].Name != "inner" || cfg.Jump[1].User != "me" {
		t.Fatalf("chain = %+v %v", cfg.Jump, err)
	}
	c, _, _ = connectorFor(t, "Host inner\n  ProxyJump outer\nHost outer\n  ProxyJump inner\n")
	if _, err := c.resolve(h); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("loop: %v", err)
	}
}
