// Package inventory loads the hosts dindops manages and the groups and vars
// they belong to.
//
// The file follows the structure of Ansible's YAML inventory (a tree of
// groups under "all", each with hosts, children and vars) with dindops's own
// connection fields instead of ansible_* variables:
//
//	all:
//	  user: deploy            # connection fields may be set on any group
//	  become: true
//	  vars: {gitlab_url: https://gitlab.example.com}
//	  hosts:
//	    build-1: {address: 10.0.0.11}
//	    "[2001:db8::12]:2200":
//	  children:
//	    big:
//	      hosts: {build-1: }
//	      vars: {runner_concurrent: 16}
//
// Host fields: address, port, user, identity_file, known_hosts, jump (alias
// bastion), become, become_user, docker_host, vars. Group fields: the same except
// address, plus hosts and children. Relative paths are relative to the
// inventory file.
//
// jump names the bastions (jump hosts) to go through, as OpenSSH's
// ProxyJump: "[user@]host[:port]", several separated by commas or given as
// a list, first hop first; "none" goes direct even when ~/.ssh/config has a
// ProxyJump for the host.
//
// docker_host is where the host's Docker daemon listens, as DOCKER_HOST
// writes it, for a socket other than /var/run/docker.sock (rootless docker:
// "unix:///run/user/1000/docker.sock"); only unix:// sockets are supported.
package inventory

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/internal/strictyaml"
	"github.com/dindops/dindops/internal/transport/sshconfig"
)

// Inventory is a loaded inventory file.
type Inventory struct {
	// File is the path the inventory was read from.
	File string
	// Hosts in inventory order: the order each host first appears in the file.
	Hosts []*Host
	// Groups by name; "all" is always present.
	Groups map[string]*Group
}

// Host is one managed machine with its effective settings (host fields over
// group fields, child groups over parents).
type Host struct {
	Name         string
	Address      string // IP literal (IPv6 without brackets, zone kept) or DNS name
	Port         int    // default 22
	User         string // empty: the controller's user
	IdentityFile string // absolute path, or empty
	KnownHosts   string // absolute path, or empty for the default
	Become       bool
	BecomeUser   string // default root
	// DockerHost is the Docker daemon's socket as "unix:///path", or empty
	// for the default, /var/run/docker.sock.
	DockerHost string
	// Jump lists the bastions to go through, first hop first (see the
	// package doc); HasJump is true when the inventory set jump, even to
	// "none" (then Jump is empty and ~/.ssh/config's ProxyJump is not used).
	Jump    []JumpHost
	HasJump bool
	// HasAddress and HasPort are true when the inventory gave the address
	// (an address field) or the port (a port field, or one in the address
	// or name): ~/.ssh/config's HostName and Port then do not apply.
	HasAddress, HasPort bool
	// Vars are the host's variables: all's, then each group's by depth and
	// name, then the host's own (later ones win).
	Vars map[string]any
	// Groups the host belongs to, sorted, without "all".
	Groups []string
	// Line and Column of the host's first appearance.
	Line, Column int
}

// JumpHost is one bastion of Host.Jump. User and Port are empty when not
// given (the SSH configuration or the defaults then decide).
type JumpHost struct {
	User    string
	Address string
	Port    int
}

func (j JumpHost) String() string {
	h := j.Address
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if j.User != "" {
		h = j.User + "@" + h
	}
	if j.Port != 0 {
		h += ":" + strconv.Itoa(j.Port)
	}
	return h
}

// Endpoint returns host:port for dialing, with IPv6 addresses bracketed.
func (h *Host) Endpoint() string {
	return netJoin(h.Address, h.Port)
}

// Group is a named set of hosts and child groups with shared vars.
type Group struct {
	Name     string
	Hosts    []string // direct members, in file order
	Children []string // direct child groups, in file order
	Vars     map[string]any
	conn     connFields
	Line     int
	Column   int
}

// connFields are the connection settings a group or host may set.
type connFields struct {
	Port         *int    `yaml:"port"`
	User         *string `yaml:"user"`
	IdentityFile *string `yaml:"identity_file"`
	KnownHosts   *string `yaml:"known_hosts"`
	Become       *bool   `yaml:"become"`
	BecomeUser   *string `yaml:"become_user"`
	DockerHost   *string `yaml:"docker_host"`
	// AllowDuplicateAddress lets hosts share an address and port (and
	// bastions): several names for one sshd, on purpose.
	AllowDuplicateAddress *bool `yaml:"allow_duplicate_address"`
	// Jump and its alias Bastion: a string or a list of strings; parsed by
	// checkConn into jump.
	Jump    yaml.Node `yaml:"jump"`
	Bastion yaml.Node `yaml:"bastion"`
	jump    *[]JumpHost
}

type hostEntry struct {
	Address    string `yaml:"address"`
	connFields `yaml:",inline"`
	Vars       map[string]any `yaml:"vars"`
}

type groupEntry struct {
	connFields `yaml:",inline"`
	Vars       map[string]any `yaml:"vars"`
	Hosts      yaml.Node      `yaml:"hosts"`
	Children   yaml.Node      `yaml:"children"`
}

// Load reads and checks the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse checks data as an inventory file named file. Every problem found is
// reported with file:line:column; nothing is connected to.
func Parse(file string, data []byte) (*Inventory, error) {
	root, err := strictyaml.Parse(file, data)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, strictyaml.Errorf(file, root, "an inventory is a mapping of groups (start with \"all:\"), got %s", strictyaml.KindName(root))
	}
	l := &loader{
		file:   file,
		dir:    filepath.Dir(file),
		inv:    &Inventory{File: file, Groups: map[string]*Group{}},
		hosts:  map[string]*hostDef{},
		depth:  map[string]int{},
		parent: map[string][]string{},
	}
	all := &Group{Name: "all"}
	l.inv.Groups["all"] = all
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value == "all" {
			l.group("all", v, k, 0)
		} else {
			all.Children = append(all.Children, k.Value)
			l.parent[k.Value] = append(l.parent[k.Value], "all")
			l.group(k.Value, v, k, 1)
		}
	}
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	l.finish()
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	return l.inv, nil
}

type hostDef struct {
	host    *Host
	entry   *hostEntry
	defNode *yaml.Node // where its fields were given, if anywhere
	groups  map[string]bool
}

type loader struct {
	file   string
	dir    string
	inv    *Inventory
	hosts  map[string]*hostDef
	depth  map[string]int
	parent map[string][]string
	errs   strictyaml.Errors
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	l.errs = append(l.errs, strictyaml.Errorf(l.file, n, format, args...))
}

func (l *loader) group(name string, n, key *yaml.Node, depth int) {
	if err := checkName(name); err != nil {
		l.errorf(key, "group %q: %v", name, err)
		return
	}
	g := l.inv.Groups[name]
	if g == nil {
		g = &Group{Name: name, Line: key.Line, Column: key.Column}
		l.inv.Groups[name] = g
	} else if g.Line == 0 {
		g.Line, g.Column = key.Line, key.Column
	}
	if depth > l.depth[name] {
		l.depth[name] = depth
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	var e groupEntry
	if err := strictyaml.Decode(l.file, n, &e); err != nil {
		l.errs = append(l.errs, err)
		return
	}
	if g.Vars != nil && e.Vars != nil {
		l.errorf(key, "group %q has vars in two places; keep them in one", name)
	}
	if e.Vars != nil {
		g.Vars = e.Vars
	}
	l.checkConn(n, &e.connFields)
	g.conn = mergeConn(g.conn, e.connFields)
	if e.Hosts.Kind != 0 && !(e.Hosts.Kind == yaml.ScalarNode && e.Hosts.Tag == "!!null") {
		if e.Hosts.Kind != yaml.MappingNode {
			l.errorf(&e.Hosts, "hosts of group %q must be a mapping of host names (\"name:\" or \"name: {address: ...}\"), got %s", name, strictyaml.KindName(&e.Hosts))
		} else {
			for i := 0; i+1 < len(e.Hosts.Content); i += 2 {
				l.host(g, e.Hosts.Content[i], e.Hosts.Content[i+1])
			}
		}
	}
	if e.Children.Kind != 0 && !(e.Children.Kind == yaml.ScalarNode && e.Children.Tag == "!!null") {
		if e.Children.Kind != yaml.MappingNode {
			l.errorf(&e.Children, "children of group %q must be a mapping of group names, got %s", name, strictyaml.KindName(&e.Children))
			return
		}
		for i := 0; i+1 < len(e.Children.Content); i += 2 {
			ck := e.Children.Content[i]
			if ck.Value == "all" {
				l.errorf(ck, "group \"all\" cannot be a child group")
				continue
			}
			if ck.Value == name || l.isAncestor(ck.Value, name) {
				l.errorf(ck, "group %q cannot be a child of itself (directly or through %q)", ck.Value, name)
				continue
			}
			g.Children = append(g.Children, ck.Value)
			l.parent[ck.Value] = append(l.parent[ck.Value], name)
			l.group(ck.Value, e.Children.Content[i+1], ck, depth+1)
		}
	}
}

func (l *loader) isAncestor(candidate, of string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(g string) bool {
		for _, p := range l.parent[g] {
			if p == candidate {
				return true
			}
			if !seen[p] {
				seen[p] = true
				if walk(p) {
					return true
				}
			}
		}
		return false
	}
	return walk(of)
}

func (l *loader) checkConn(n *yaml.Node, c *connFields) {
	if c.Port != nil && (*c.Port < 1 || *c.Port > 65535) {
		l.errorf(findKey(n, "port"), "port %d is out of range 1-65535", *c.Port)
	}
	if c.DockerHost != nil && *c.DockerHost != "" {
		if _, err := DockerSocket(*c.DockerHost); err != nil {
			l.errorf(findKey(n, "docker_host"), "docker_host: %v", err)
		}
	}
	jn := &c.Jump
	if c.Bastion.Kind != 0 {
		if jn.Kind != 0 {
			l.errorf(&c.Bastion, "give jump or bastion, not both (they mean the same)")
			return
		}
		jn = &c.Bastion
	}
	if jn.Kind == 0 {
		return
	}
	var specs []*yaml.Node
	switch {
	case jn.Kind == yaml.ScalarNode && jn.Tag != "!!null":
		specs = []*yaml.Node{jn}
	case jn.Kind == yaml.SequenceNode:
		specs = jn.Content
	default:
		l.errorf(jn, "jump: want \"[user@]host[:port]\" (several separated by commas), a list of them, or none; got %s", strictyaml.KindName(jn))
		return
	}
	hops := []JumpHost{}
	for _, sn := range specs {
		if sn.Kind != yaml.ScalarNode {
			l.errorf(sn, "jump: want \"[user@]host[:port]\", got %s", strictyaml.KindName(sn))
			return
		}
		if strings.EqualFold(strings.TrimSpace(sn.Value), "none") && len(specs) == 1 {
			break
		}
		list, err := sshconfig.ParseProxyJump(sn.Value)
		if err == nil && len(list) == 0 {
			err = fmt.Errorf("jump host %q: want [user@]host[:port]", sn.Value)
		}
		if err != nil {
			l.errorf(sn, "%v", err)
			return
		}
		for _, h := range list {
			hops = append(hops, JumpHost{User: h.User, Address: h.Host, Port: h.Port})
		}
	}
	c.jump = &hops
}

func (l *loader) host(g *Group, key, n *yaml.Node) {
	name := key.Value
	if err := checkHostName(name); err != nil {
		l.errorf(key, "host %q: %v", name, err)
		return
	}
	if _, isGroup := l.inv.Groups[name]; isGroup {
		l.errorf(key, "%q is already a group name; hosts and groups need different names", name)
		return
	}
	d := l.hosts[name]
	if d == nil {
		d = &hostDef{host: &Host{Name: name, Line: key.Line, Column: key.Column}, groups: map[string]bool{}}
		l.hosts[name] = d
		l.inv.Hosts = append(l.inv.Hosts, d.host)
	}
	d.groups[g.Name] = true
	g.Hosts = append(g.Hosts, name)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		return
	}
	if d.defNode != nil {
		l.errorf(key, "host %q is defined twice (first at line %d); give its fields once and list it elsewhere with an empty value (\"%s:\")", name, d.defNode.Line, name)
		return
	}
	var e hostEntry
	if err := strictyaml.Decode(l.file, n, &e); err != nil {
		l.errs = append(l.errs, err)
		return
	}
	l.checkConn(n, &e.connFields)
	d.entry, d.defNode = &e, key
}

// finish resolves every host's effective settings and vars.
func (l *loader) finish() {
	groups := make([]*Group, 0, len(l.inv.Groups))
	for _, g := range l.inv.Groups {
		groups = append(groups, g)
	}
	// Ansible's order: all first, then parents before children (depth), then by name.
	sort.Slice(groups, func(i, j int) bool {
		di, dj := l.depth[groups[i].Name], l.depth[groups[j].Name]
		if di != dj {
			return di < dj
		}
		return groups[i].Name < groups[j].Name
	})
	// Two names for one sshd would be changed twice at once (the second
	// run would fail on the first's lock, or race it): an error unless
	// both hosts allow it.
	type endpoint struct {
		addr string
		port int
		jump string
	}
	type firstUse struct {
		host  *Host
		allow bool
	}
	endpoints := map[endpoint]firstUse{}
	for _, h := range l.inv.Hosts {
		d := l.hosts[h.Name]
		member := l.memberGroups(d)
		var conn connFields
		h.Vars = map[string]any{}
		for _, g := range groups {
			if !member[g.Name] {
				continue
			}
			conn = mergeConn(conn, g.conn)
			for k, v := range g.Vars {
				h.Vars[k] = v
			}
			if g.Name != "all" {
				h.Groups = append(h.Groups, g.Name)
			}
		}
		sort.Strings(h.Groups)
		spec := h.Name
		if d.entry != nil {
			conn = mergeConn(conn, d.entry.connFields)
			for k, v := range d.entry.Vars {
				h.Vars[k] = v
			}
			if d.entry.Address != "" {
				spec = d.entry.Address
			}
		}
		at := d.defNode
		if at == nil {
			at = &yaml.Node{Line: h.Line, Column: h.Column}
		}
		addr, port, err := ParseAddress(spec)
		if err != nil {
			if d.entry != nil && d.entry.Address != "" {
				l.errorf(at, "host %q: address: %v", h.Name, err)
			} else {
				l.errorf(at, "host %q: %v", h.Name, err)
			}
			continue
		}
		h.Address = addr
		h.HasAddress = d.entry != nil && d.entry.Address != ""
		h.HasPort = conn.Port != nil || port != 0
		h.Port = 22
		if conn.Port != nil {
			h.Port = *conn.Port
		}
		if conn.jump != nil {
			h.Jump, h.HasJump = *conn.jump, true
		}
		if port != 0 {
			if d.entry != nil && d.entry.Port != nil && *d.entry.Port != port {
				l.errorf(at, "host %q: address gives port %d but port is %d; keep one", h.Name, port, *d.entry.Port)
			}
			h.Port = port
		}
		allow := conn.AllowDuplicateAddress != nil && *conn.AllowDuplicateAddress
		// ssh_config's ProxyJump applies only where the inventory gave no
		// jump: such a host is not taken for one with jump: none.
		key := endpoint{strings.ToLower(h.Address), h.Port, fmt.Sprint(h.HasJump, h.Jump)}
		if first, ok := endpoints[key]; !ok {
			endpoints[key] = firstUse{h, allow}
		} else if !first.allow || !allow {
			l.errorf(at, "host %q has the same address and port as host %q (%s, line %d): one machine under two names would be changed twice at once; remove one, or set allow_duplicate_address: true on both", h.Name, first.host.Name, netJoin(h.Address, h.Port), first.host.Line)
		}
		if conn.User != nil {
			h.User = *conn.User
		}
		if conn.IdentityFile != nil && *conn.IdentityFile != "" {
			h.IdentityFile = l.path(*conn.IdentityFile)
		}
		if conn.KnownHosts != nil && *conn.KnownHosts != "" {
			h.KnownHosts = l.path(*conn.KnownHosts)
		}
		if conn.Become != nil {
			h.Become = *conn.Become
		}
		h.BecomeUser = "root"
		if conn.BecomeUser != nil && *conn.BecomeUser != "" {
			h.BecomeUser = *conn.BecomeUser
		}
		if conn.DockerHost != nil {
			h.DockerHost = *conn.DockerHost
		}
	}
}

// memberGroups returns every group d belongs to, directly or through a child
// group, including "all".
func (l *loader) memberGroups(d *hostDef) map[string]bool {
	out := map[string]bool{"all": true}
	var up func(string)
	up = func(g string) {
		if out[g] {
			return
		}
		out[g] = true
		for _, p := range l.parent[g] {
			up(p)
		}
	}
	for g := range d.groups {
		if g == "all" {
			continue
		}
		up(g)
	}
	return out
}

func (l *loader) path(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return filepath.Clean(p)
}

func mergeConn(base, over connFields) connFields {
	if over.Port != nil {
		base.Port = over.Port
	}
	if over.User != nil {
		base.User = over.User
	}
	if over.IdentityFile != nil {
		base.IdentityFile = over.IdentityFile
	}
	if over.KnownHosts != nil {
		base.KnownHosts = over.KnownHosts
	}
	if over.Become != nil {
		base.Become = over.Become
	}
	if over.BecomeUser != nil {
		base.BecomeUser = over.BecomeUser
	}
	if over.DockerHost != nil {
		base.DockerHost = over.DockerHost
	}
	if over.jump != nil {
		base.jump = over.jump
	}
	if over.AllowDuplicateAddress != nil {
		base.AllowDuplicateAddress = over.AllowDuplicateAddress
	}
	return base
}

func findKey(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	for _, r := range name {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("group names may use letters, digits, '_', '-' and '.'; %q is not allowed", r)
		}
	}
	return nil
}

func checkHostName(name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("empty host name")
	}
	if strings.ContainsAny(name, " \t,*?!&") {
		return fmt.Errorf("host names may not contain spaces or the pattern characters , * ? ! &")
	}
	return nil
}

// ParseAddress splits an inventory address into host and port (0 when not
// given). Accepted: "build-1", "10.0.0.5", "10.0.0.5:2222", "2001:db8::10",
// "[2001:db8::11]:2222", "[2001:db8::11]", "fe80::1%eth0".
//
// An unbracketed IPv6 address whose last group looks like a port
// ("2001:db8::10:2222") is rejected as ambiguous (ansible/ansible#7446): write
// "[2001:db8::10]:2222" for a port, or bracket the whole address.
func ParseAddress(s string) (host string, port int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, fmt.Errorf("empty address")
	}
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", 0, fmt.Errorf("%q: missing ']'", s)
		}
		host = s[1:end]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", 0, fmt.Errorf("%q: brackets are for IPv6 addresses only", s)
		}
		rest := s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", 0, fmt.Errorf("%q: expected ':port' after ']'", s)
		}
		port, err = parsePort(rest[1:])
		if err != nil {
			return "", 0, fmt.Errorf("%q: %v", s, err)
		}
		return host, port, nil
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, 0, nil
	case 1:
		h, p, _ := strings.Cut(s, ":")
		port, err = parsePort(p)
		if err != nil {
			return "", 0, fmt.Errorf("%q: %v", s, err)
		}
		return h, port, nil
	}
	// Several colons: an IPv6 literal.
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return "", 0, fmt.Errorf("%q is not a valid IPv6 address; write IPv6 with a port as [address]:port", s)
	}
	if head, tail, ok := strings.Cut(s, "::"); ok {
		_ = head
		groups := strings.Split(strings.SplitN(tail, "%", 2)[0], ":")
		last := groups[len(groups)-1]
		if len(groups) >= 2 && isDecimal(last) {
			return "", 0, fmt.Errorf("ambiguous address %q: if %s is a port write [%s]:%s, otherwise bracket the address: [%s]",
				s, last, strings.TrimSuffix(s, ":"+last), last, s)
		}
	}
	return s, 0, nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q (want 1-65535)", p)
	}
	return n, nil
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// DockerSocket returns the socket path of a docker_host value
// ("unix:///run/user/1000/docker.sock" → "/run/user/1000/docker.sock"), or
// an error saying what is accepted.
func DockerSocket(dockerHost string) (string, error) {
	rest, ok := strings.CutPrefix(dockerHost, "unix://")
	switch {
	case !ok:
		return "", fmt.Errorf("%q: only a unix socket is supported, written unix:///path/to/docker.sock (dindops reaches it through the host's SSH connection)", dockerHost)
	case !strings.HasPrefix(rest, "/") || strings.ContainsAny(rest, "\x00\n"):
		return "", fmt.Errorf("%q: the socket path must be absolute, as in unix:///run/user/1000/docker.sock", dockerHost)
	}
	return filepath.Clean(rest), nil
}
