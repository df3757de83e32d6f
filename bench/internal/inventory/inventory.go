// Package inventory writes one fleet as each tool wants to see it: a
// known_hosts file for the addresses the tools dial (the hosts themselves,
// or the delay proxies in front of them), dindops's inventory, Ansible's
// YAML inventory and the floor program's target list. Every tool gets the
// same hosts, key, pinned host keys and variables.
package inventory

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Endpoint is how the tools reach one host.
type Endpoint struct {
	Name     string   `json:"name"`
	Address  string   `json:"address"`
	Port     int      `json:"port"`
	HostKeys []string `json:"-"` // "type base64", pinned in known_hosts
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Address, strconv.Itoa(e.Port)) }

// Files are the written inventories of one fleet view.
type Files struct {
	Dir          string
	Endpoints    []Endpoint
	User         string
	IdentityFile string
	KnownHosts   string
	Dindops      string // dindops inventory (YAML)
	Ansible      string // Ansible inventory (YAML)
}

// Write writes the files into dir (made if missing). vars are the fleet's
// "all" vars, given to both tools.
func Write(dir string, eps []Endpoint, user, identityFile string, vars *yaml.Node) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &Files{
		Dir: dir, Endpoints: eps, User: user, IdentityFile: identityFile,
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Dindops:    filepath.Join(dir, "dindops-hosts.yml"),
		Ansible:    filepath.Join(dir, "ansible-hosts.yml"),
	}
	var kh strings.Builder
	for _, e := range eps {
		who := e.Address
		if e.Port != 22 {
			who = fmt.Sprintf("[%s]:%d", e.Address, e.Port)
		}
		for _, k := range e.HostKeys {
			fmt.Fprintf(&kh, "%s %s\n", who, k)
		}
	}
	if err := os.WriteFile(f.KnownHosts, []byte(kh.String()), 0o600); err != nil {
		return nil, err
	}

	// dindops: its own connection fields on "all", the fleet's vars.
	hosts := mapping()
	for _, e := range eps {
		h := mapping()
		add(h, "address", scalar(e.Address))
		add(h, "port", scalar(strconv.Itoa(e.Port)))
		add(hosts, e.Name, h)
	}
	all := mapping()
	add(all, "user", scalar(user))
	add(all, "identity_file", scalar(identityFile))
	add(all, "known_hosts", scalar(f.KnownHosts))
	add(all, "vars", vars)
	add(all, "hosts", hosts)
	if err := writeYAML(f.Dindops, "dindops inventory written by bench/ (make bench)", all); err != nil {
		return nil, err
	}

	// Ansible: connection variables, then the same fleet vars.
	avars := mapping()
	add(avars, "ansible_user", scalar(user))
	add(avars, "ansible_ssh_private_key_file", scalar(identityFile))
	add(avars, "ansible_ssh_common_args", scalar(fmt.Sprintf(
		"-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes", f.KnownHosts)))
	if vars != nil {
		avars.Content = append(avars.Content, vars.Content...)
	}
	ahosts := mapping()
	for _, e := range eps {
		h := mapping()
		add(h, "ansible_host", scalar(e.Address))
		add(h, "ansible_port", scalar(strconv.Itoa(e.Port)))
		add(ahosts, e.Name, h)
	}
	aall := mapping()
	add(aall, "vars", avars)
	add(aall, "hosts", ahosts)
	if err := writeYAML(f.Ansible, "Ansible inventory written by bench/ (make bench)", aall); err != nil {
		return nil, err
	}
	return f, nil
}

// Trips is what one host needed, as dindops -v counts it: remote commands
// (one SSH session each), SFTP requests, and Docker Engine API requests
// (HTTP requests over the host's SSH connection, each client's GET /_ping
// included). Docker is how many of the commands were the docker program
// (docker system dial-stdio sessions among them); Via is how the API was
// reached ("streamlocal" or "dial-stdio"; "" when it was not, or when the
// dindops that ran did not say).
type Trips struct {
	Commands int    `json:"commands"`
	SFTP     int    `json:"sftp"`
	API      int    `json:"api"`
	Docker   int    `json:"docker,omitempty"`
	Via      string `json:"via,omitempty"`
}

// FloorTarget is one host in the floor program's target list.
type FloorTarget struct {
	Endpoint
	Trips
}

// FloorTargets is the floor program's input (bench/cmd/floor).
type FloorTargets struct {
	User         string        `json:"user"`
	IdentityFile string        `json:"identity_file"`
	KnownHosts   string        `json:"known_hosts"`
	Hosts        []FloorTarget `json:"hosts"`
}

// WriteFloor writes the floor program's targets to path: every endpoint
// with the round trips dindops needed on it (trips, by host name).
func (f *Files) WriteFloor(path string, trips map[string]Trips) error {
	t := FloorTargets{User: f.User, IdentityFile: f.IdentityFile, KnownHosts: f.KnownHosts}
	for _, e := range f.Endpoints {
		tr, ok := trips[e.Name]
		if !ok {
			return fmt.Errorf("no round-trip count for %s", e.Name)
		}
		t.Hosts = append(t.Hosts, FloorTarget{Endpoint: e, Trips: tr})
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func add(m *yaml.Node, key string, v *yaml.Node) {
	if v == nil {
		v = mapping()
	}
	m.Content = append(m.Content, scalar(key), v)
}

func writeYAML(path, comment string, all *yaml.Node) error {
	root := mapping()
	add(root, "all", all)
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}, HeadComment: comment}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o600)
}
