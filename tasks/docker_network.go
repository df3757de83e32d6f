package tasks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// DockerNetwork keeps a docker network with the given driver, driver options,
// labels, internal and attachable flags and, when given, subnet and gateway
// (docker network create, https://docs.docker.com/reference/cli/docker/network/create/;
// the fields of docker network inspect).
//
// Docker cannot change a network in place, so a network that differs is
// recreated: the containers attached to it (running or not) are disconnected,
// the network is removed and created again, and the containers are
// reconnected with their aliases. A recreated network has exactly this
// task's spec: what the network has beyond it (driver options not named
// here, IPv6, a gateway when the task gives a subnet but no gateway) is not
// kept, and the plan lists each such value among the fields it changes.
// Only while the network is not recreated are those values left as they
// are. Its subnet and gateway are kept when the task names no subnet: a
// new subnet may clash with routes inside the attached containers (a dind
// daemon's own networks).
type DockerNetwork struct {
	// Name of the network (required).
	Name string `yaml:"name"`
	// Driver is docker's --driver: "bridge" when empty.
	Driver string `yaml:"driver"`
	// Options are driver options (--opt key=value, inspect's Options). Only
	// the keys given are compared: docker adds defaults of its own
	// (newer versions add com.docker.network.enable_ipv4/enable_ipv6), and
	// those are not drift. Other keys the network has are kept only while it
	// is not recreated; a recreate drops them, and its plan lists them.
	Options map[string]string `yaml:"options"`
	// Labels (--label key=value) must match exactly.
	Labels map[string]string `yaml:"labels"`
	// Internal is --internal: containers on the network have no route out
	// of it (a runner on such a network cannot reach GitLab). Compared
	// always: an internal network is drift unless this is true.
	Internal bool `yaml:"internal"`
	// Attachable is --attachable (for swarm services' networks). Compared
	// always, like internal.
	Attachable bool `yaml:"attachable"`
	// Subnet is --subnet, in CIDR form (inspect's IPAM.Config[].Subnet).
	// Compared only when given; when it is not, docker picks one.
	Subnet string `yaml:"subnet"`
	// Gateway is --gateway, an address in subnet (IPAM.Config[].Gateway).
	// Compared only when given; it needs subnet.
	Gateway string `yaml:"gateway"`
	// MTU is the network's MTU (of its bridge and of the containers'
	// interfaces on it), docker's driver option
	// com.docker.network.driver.mtu: auto, a number, or left out (see MTU;
	// auto reads the host's default-route interface). Given, that option is
	// compared even when none is wanted, so a network with another MTU, or
	// with one where auto wants none, is drift and is recreated. Left out,
	// the option is one of options like any other.
	MTU MTU `yaml:"mtu"`
	// State is "present" (default) or "absent".
	State string `yaml:"state"`

	// mtuOption says the spec was resolved from MTU: the option
	// networkMTUOption is compared whether options has it or not.
	mtuOption bool
}

// networkMTUOption is the bridge driver's option for the MTU of a network
// (https://docs.docker.com/engine/network/drivers/bridge/#options).
const networkMTUOption = "com.docker.network.driver.mtu"

// dockerNetworkDefaults are driver options that newer docker versions add to
// every bridge network by themselves, with these values: a network that has
// them and a task that does not name them do not differ, and a recreated
// network gets them again.
var dockerNetworkDefaults = map[string]string{
	"com.docker.network.enable_ipv4": "true",
	"com.docker.network.enable_ipv6": "false",
}

// assignedByDocker is what a plan shows for a value that a recreated network
// gets from docker because the task does not give it.
const assignedByDocker = "(assigned by docker)"

// attached is a container attached to a network.
type attached struct {
	ID      string
	Name    string
	Aliases []string
}

// networkOp is what Apply does to a network.
type networkOp string

// networkChange is a network change's payload: the operation, and the
// spec it was planned for (with auto's MTU as read from the host).
type networkChange struct {
	op   networkOp
	spec *DockerNetwork
}

const (
	netCreate   networkOp = "create"
	netRecreate networkOp = "recreate"
	netRemove   networkOp = "remove"
)

func (n *DockerNetwork) driver() string {
	if n.Driver == "" {
		return "bridge"
	}
	return n.Driver
}

func (n *DockerNetwork) state() string {
	if n.State == "" {
		return "present"
	}
	return n.State
}

// Validate implements Validator.
func (n *DockerNetwork) Validate() error {
	switch {
	case n.Name == "":
		return FieldErrorf("name", "required")
	case !dockerNameRE.MatchString(n.Name):
		return FieldErrorf("name", "invalid network name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", n.Name)
	case n.Name == "bridge" || n.Name == "host" || n.Name == "none":
		return FieldErrorf("name", "%q is one of docker's predefined networks and cannot be managed", n.Name)
	case n.Driver != "" && !dockerNameRE.MatchString(n.Driver) && !strings.Contains(n.Driver, "/"):
		return FieldErrorf("driver", "invalid driver %q", n.Driver)
	}
	switch n.State {
	case "", "present", "absent":
	default:
		return FieldErrorf("state", "must be present or absent, not %q", n.State)
	}
	if err := checkKeys("options", n.Options); err != nil {
		return err
	}
	if err := checkKeys("labels", n.Labels); err != nil {
		return err
	}
	if err := n.MTU.Check(); err != nil {
		return &FieldError{Field: "mtu", Err: err}
	}
	if _, ok := n.Options[networkMTUOption]; ok && n.MTU.Managed() {
		return FieldErrorf("mtu", "options sets %s too: give the MTU once, in mtu", networkMTUOption)
	}
	var subnet netip.Prefix
	if n.Subnet != "" {
		var err error
		if subnet, err = netip.ParsePrefix(n.Subnet); err != nil {
			return FieldErrorf("subnet", "not a subnet in CIDR form such as 10.10.0.0/24: %q", n.Subnet)
		}
	}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		switch {
		case err != nil:
			return FieldErrorf("gateway", "not an IP address: %q", n.Gateway)
		case n.Subnet == "":
			return FieldErrorf("gateway", "needs subnet: docker takes a gateway only with the subnet it belongs to")
		case !subnet.Contains(gw):
			return FieldErrorf("gateway", "%s is not in subnet %s", n.Gateway, n.Subnet)
		}
	}
	return nil
}

// Plan implements Task. It makes one Engine API request, the network's
// inspect, and only when the network is to be recreated or removed also
// lists the containers attached to it, running or not, so the plan can say
// which ones will be disconnected: inspect lists only running ones. With
// mtu: auto the host's default route is read first (one probe batch).
func (n *DockerNetwork) Plan(ctx context.Context, h Host) ([]Change, error) {
	s, err := n.resolve(ctx, h)
	if err != nil {
		return nil, err
	}
	return s.plan(ctx, h)
}

// resolve returns the spec to plan on h: n itself, or, when mtu is
// given, a copy whose options hold the MTU to set (none for auto on a
// host that needs none) and compare networkMTUOption always.
func (n *DockerNetwork) resolve(ctx context.Context, h Host) (*DockerNetwork, error) {
	if !n.MTU.Managed() || n.state() == "absent" {
		return n, nil
	}
	mtu, err := n.MTU.Resolve(ctx, h)
	if err != nil {
		return nil, &FieldError{Field: "mtu", Err: err}
	}
	s := *n
	s.MTU, s.mtuOption = MTU{}, true
	s.Options = maps.Clone(n.Options)
	if mtu > 0 {
		if s.Options == nil {
			s.Options = map[string]string{}
		}
		s.Options[networkMTUOption] = strconv.Itoa(mtu)
	}
	return &s, nil
}

func (n *DockerNetwork) plan(ctx context.Context, h Host) ([]Change, error) {
	cur, err := n.inspect(ctx, h)
	if err != nil {
		return nil, err
	}
	ch := Change{Resource: "network", Target: n.Name}
	switch {
	case cur == nil && n.state() == "absent":
		return nil, nil
	case cur == nil:
		ch.Action, ch.Summary, ch.Payload = Create, "create", networkChange{netCreate, n}
		ch.Fields = n.specFields()
		return []Change{ch}, nil
	case n.state() == "absent":
		ch.Action, ch.Summary, ch.Payload = Delete, "remove", networkChange{netRemove, n}
	default:
		drift := n.diff(cur, false)
		if len(drift) == 0 {
			return nil, nil
		}
		// The network is created again from the spec alone: the plan lists
		// everything that resets, not only what made it differ.
		ch.Fields = n.diff(cur, true)
		ch.Action, ch.Summary, ch.Payload = Update, recreateSummary(drift), networkChange{netRecreate, n}
		ch.Warnings = append(ch.Warnings, recreateWarning(drift, ch.Fields))
	}
	conts, err := n.attachedContainers(ctx, h)
	if err != nil {
		return nil, err
	}
	if len(conts) > 0 {
		again := " and reconnected"
		if ch.Action == Delete {
			again = ""
		}
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("%s %s will be disconnected%s", plural(len(conts), "container", "containers"), names(conts), again))
	}
	return []Change{ch}, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// specFields lists the spec of a network to be created, sorted by name.
func (n *DockerNetwork) specFields() []Field {
	fs := []Field{{Name: "driver", New: n.driver()}}
	add := func(name, v string) {
		if v != "" {
			fs = append(fs, Field{Name: name, New: v})
		}
	}
	if n.Attachable {
		add("attachable", "true")
	}
	add("gateway", n.Gateway)
	if n.Internal {
		add("internal", "true")
	}
	add("labels", kvLines(n.Labels))
	add("options", kvLines(n.Options))
	add("subnet", n.Subnet)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return fs
}

// diff lists the fields where cur differs from n, sorted by name. Without
// full, only what the task asks for counts: driver, labels, internal and
// attachable always, options by the keys given (and the MTU's when mtu
// was given), subnet and gateway when given. With full, the fields are everything a recreate changes: also the
// options the task does not name (docker's own defaults aside), IPv6, and
// the subnet and gateway docker assigns anew when the task does not give
// them.
func (n *DockerNetwork) diff(cur *network.Inspect, full bool) []Field {
	var fs []Field
	cmp := func(name, old, new string) {
		if old != new {
			fs = append(fs, Field{Name: name, Old: old, New: new})
		}
	}
	cmp("driver", cur.Driver, n.driver())
	cmp("labels", kvLines(cur.Labels), kvLines(n.Labels))
	cmp("internal", strconv.FormatBool(cur.Internal), strconv.FormatBool(n.Internal))
	cmp("attachable", strconv.FormatBool(cur.Attachable), strconv.FormatBool(n.Attachable))

	// Options: the keys asked for; with full, every other key but docker's
	// own defaults, which a new network gets again.
	have := map[string]string{}
	for k, v := range cur.Options {
		_, wanted := n.Options[k]
		if wanted || (n.mtuOption && k == networkMTUOption) || (full && dockerNetworkDefaults[k] != v) {
			have[k] = v
		}
	}
	cmp("options", kvLines(have), kvLines(n.Options))

	var subnets, gateways []string
	for _, c := range cur.IPAM.Config {
		if c.Subnet.IsValid() {
			subnets = append(subnets, c.Subnet.String())
		}
		if c.Gateway.IsValid() {
			gateways = append(gateways, c.Gateway.String())
		}
	}
	switch {
	case n.Subnet != "":
		if len(subnets) != 1 || !samePrefix(subnets[0], n.Subnet) {
			fs = append(fs, Field{Name: "subnet", Old: strings.Join(subnets, ", "), New: n.Subnet})
		}
	}
	// Without a subnet of its own, a recreated network keeps its subnet
	// and gateway (recreate); with one, docker picks the gateway.
	switch {
	case n.Gateway != "":
		if len(gateways) != 1 || !sameAddr(gateways[0], n.Gateway) {
			fs = append(fs, Field{Name: "gateway", Old: strings.Join(gateways, ", "), New: n.Gateway})
		}
	case full && n.Subnet != "" && len(gateways) > 0:
		fs = append(fs, Field{Name: "gateway", Old: strings.Join(gateways, ", "), New: assignedByDocker})
	}
	if full && cur.EnableIPv6 {
		fs = append(fs, Field{Name: "enable_ipv6", Old: "true", New: "false"})
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return fs
}

// recreateWarning says that a recreated network has exactly the task's spec,
// naming the fields that reset although the task does not ask for them
// (those in full that differ from drift).
func recreateWarning(drift, full []Field) string {
	var also []string
	for _, f := range full {
		if !slices.Contains(drift, f) {
			also = append(also, f.Name)
		}
	}
	msg := "docker cannot change a network: it is removed and created again with exactly this task's spec"
	if len(also) > 0 {
		msg += fmt.Sprintf(", so what the task does not name is not kept (%s)", strings.Join(also, ", "))
	}
	return msg
}

// samePrefix reports whether two subnets are the same network: docker keeps
// a subnet as written, host bits included ("10.0.0.5/24").
func samePrefix(a, b string) bool {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return pa.Masked() == pb.Masked()
}

func sameAddr(a, b string) bool {
	aa, errA := netip.ParseAddr(a)
	ab, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return aa == ab
}

// inspect returns the network, or nil when there is none by that name
// (GET /networks/{id}).
func (n *DockerNetwork) inspect(ctx context.Context, h Host) (*network.Inspect, error) {
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, err
	}
	res, err := api.NetworkInspect(ctx, n.Name, client.NetworkInspectOptions{})
	switch {
	case DockerNotFound(err):
		return nil, nil
	case err != nil:
		return nil, dockerErr("inspect network "+n.Name, err)
	case res.Network.Name != n.Name:
		// docker also resolves ID prefixes; a network that only matched by
		// ID is not the one named.
		return nil, nil
	}
	return &res.Network, nil
}

// attachedContainers lists the containers attached to the network, running
// or stopped, sorted by name (GET /containers/json?all=1 with a network
// filter: the network's own inspect lists only running ones).
func (n *DockerNetwork) attachedContainers(ctx context.Context, h Host) ([]attached, error) {
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, err
	}
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("network", n.Name)})
	if err != nil {
		return nil, dockerErr("list the containers on network "+n.Name, err)
	}
	var conts []attached
	for _, c := range res.Items {
		name := c.ID
		// Names are "/name"; legacy links add "/other/alias" names.
		for _, nm := range c.Names {
			if nm = strings.TrimPrefix(nm, "/"); !strings.Contains(nm, "/") {
				name = nm
				break
			}
		}
		conts = append(conts, attached{ID: c.ID, Name: name})
	}
	sort.Slice(conts, func(i, j int) bool { return conts[i].Name < conts[j].Name })
	return conts, nil
}

// aliases fills in each container's aliases on the network, leaving out the
// short container ID that docker 20.10 adds by itself.
func (n *DockerNetwork) aliases(ctx context.Context, api DockerEngine, conts []attached) error {
	for i, c := range conts {
		res, err := api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			return dockerErr("inspect container "+c.Name, err)
		}
		var keep []string
		if ns := res.Container.NetworkSettings; ns != nil && ns.Networks[n.Name] != nil {
			for _, a := range ns.Networks[n.Name].Aliases {
				if len(c.ID) >= 12 && a == c.ID[:12] {
					continue
				}
				keep = append(keep, a)
			}
		}
		conts[i].Aliases = keep
	}
	return nil
}

// Apply implements Task.
func (n *DockerNetwork) Apply(ctx context.Context, h Host, changes []Change) error {
	for _, ch := range changes {
		p, _ := ch.Payload.(networkChange)
		var err error
		switch p.op {
		case netCreate:
			err = p.spec.create(ctx, h)
		case netRecreate:
			err = p.spec.recreate(ctx, h, true)
		case netRemove:
			err = p.spec.recreate(ctx, h, false)
		default:
			err = fmt.Errorf("docker_network: change %q has no payload of this task", ch.Summary)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// createOptions is the POST /networks/create request for n.
func (n *DockerNetwork) createOptions() client.NetworkCreateOptions {
	o := client.NetworkCreateOptions{Driver: n.driver(), Internal: n.Internal, Attachable: n.Attachable,
		Options: n.Options, Labels: n.Labels}
	if n.Subnet != "" {
		// Validate has parsed both already.
		cfg := network.IPAMConfig{Subnet: netip.MustParsePrefix(n.Subnet)}
		if n.Gateway != "" {
			cfg.Gateway = netip.MustParseAddr(n.Gateway)
		}
		o.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{cfg}}
	}
	return o
}

func (n *DockerNetwork) create(ctx context.Context, h Host) error {
	api, err := Docker(ctx, h)
	if err != nil {
		return err
	}
	_, err = api.NetworkCreate(ctx, n.Name, n.createOptions())
	if err == nil {
		return nil
	}
	err = dockerErr("create network "+n.Name, err)
	// Made by something else since the plan? Never surface docker's raw
	// "already exists" (C13): say what the plan would be now.
	now, perr := n.Plan(ctx, h)
	if perr != nil || (len(now) > 0 && now[0].Action == Create) {
		return err
	}
	if len(now) == 0 {
		return nil
	}
	return appearedError("network", n.Name, now)
}

// recreate disconnects the attached containers, removes the network and,
// when again is set, creates it anew and reconnects them.
func (n *DockerNetwork) recreate(ctx context.Context, h Host, again bool) error {
	api, err := Docker(ctx, h)
	if err != nil {
		return err
	}
	conts, err := n.attachedContainers(ctx, h)
	if err != nil {
		return err
	}
	opts := n.createOptions()
	if again {
		if err := n.aliases(ctx, api, conts); err != nil {
			return err
		}
		// Without a subnet of its own, the network keeps the one it has:
		// a new one docker picks may clash with routes in the attached
		// containers (the networks a dind daemon made inside its own
		// namespace avoid the old subnet, not the next free one).
		if n.Subnet == "" {
			if cur, err := api.NetworkInspect(ctx, n.Name, client.NetworkInspectOptions{}); err == nil && len(cur.Network.IPAM.Config) > 0 {
				opts.IPAM = &network.IPAM{Driver: "default", Config: keepIPAM(cur.Network.IPAM.Config)}
			}
		}
	}
	for _, c := range conts {
		if _, err := api.NetworkDisconnect(ctx, n.Name, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
			return fmt.Errorf("disconnect %s from network %s: %w", c.Name, n.Name, err)
		}
	}
	if _, err := api.NetworkRemove(ctx, n.Name, client.NetworkRemoveOptions{}); err != nil {
		return n.reconnect(ctx, api, conts, fmt.Errorf("remove network %s: %w", n.Name, err))
	}
	if !again {
		return nil
	}
	if _, err := api.NetworkCreate(ctx, n.Name, opts); err != nil {
		return n.reconnect(ctx, api, nil, fmt.Errorf("network %s was removed but not created again, containers %s are disconnected: %w", n.Name, names(conts), err))
	}
	return n.reconnect(ctx, api, conts, nil)
}

// keepIPAM is the subnets, gateways and ranges of an existing network, to
// create it again with.
func keepIPAM(cfg []network.IPAMConfig) []network.IPAMConfig {
	var out []network.IPAMConfig
	for _, c := range cfg {
		if c.Subnet.IsValid() {
			out = append(out, network.IPAMConfig{Subnet: c.Subnet, Gateway: c.Gateway, IPRange: c.IPRange})
		}
	}
	return out
}

// reconnect connects conts to the network with their aliases, and returns
// first joined with whatever failed.
func (n *DockerNetwork) reconnect(ctx context.Context, api DockerEngine, conts []attached, first error) error {
	errs := []error{first}
	for _, c := range conts {
		o := client.NetworkConnectOptions{Container: c.ID, EndpointConfig: &network.EndpointSettings{Aliases: c.Aliases}}
		if _, err := api.NetworkConnect(ctx, n.Name, o); err != nil {
			errs = append(errs, fmt.Errorf("reconnect %s to network %s: %w", c.Name, n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func names(conts []attached) string {
	ns := make([]string, len(conts))
	for i, c := range conts {
		ns[i] = c.Name
	}
	return strings.Join(ns, ", ")
}
