package tasktest

// The in-memory engine's network calls.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

func (d *Docker) findNetwork(ref string) *network.Inspect {
	if n := d.networks[ref]; n != nil {
		return n
	}
	for _, n := range d.networks {
		if len(ref) >= 4 && strings.HasPrefix(n.ID, ref) {
			return n
		}
	}
	return nil
}

// endpointsLocked fills in the network's Containers: those attached that run.
func (d *Docker) endpointsLocked(n *network.Inspect) {
	n.Containers = map[string]network.EndpointResource{}
	for name, c := range d.containers {
		if _, ok := c.c.NetworkSettings.Networks[n.Name]; ok && c.c.State.Running {
			n.Containers[c.c.ID] = network.EndpointResource{Name: name}
		}
	}
}

func (e engine) NetworkInspect(ctx context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if err := e.call(ctx, false, "NetworkInspect", id); err != nil {
		return client.NetworkInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	n := e.d.findNetwork(id)
	if n == nil {
		return client.NetworkInspectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	e.d.endpointsLocked(n)
	cp := *n
	return client.NetworkInspectResult{Network: cp}, nil
}

// newNetwork builds a network as the engine would create it.
func (d *Docker) newNetwork(name string, o client.NetworkCreateOptions, user bool) *network.Inspect {
	d.seq++
	driver := o.Driver
	if driver == "" {
		driver = "bridge"
	}
	n := &network.Inspect{Network: network.Network{Name: name, ID: hexID("network", name, d.seq), Scope: "local", Driver: driver,
		EnableIPv4: true, Internal: o.Internal, Attachable: o.Attachable, Labels: map[string]string{}, Options: map[string]string{}}}
	if o.EnableIPv6 != nil {
		n.EnableIPv6 = *o.EnableIPv6
	}
	for k, v := range o.Labels {
		n.Labels[k] = v
	}
	for k, v := range o.Options {
		n.Options[k] = v
	}
	if user && d.Newer && driver == "bridge" {
		for k, v := range map[string]string{"com.docker.network.enable_ipv4": "true", "com.docker.network.enable_ipv6": "false"} {
			if _, ok := n.Options[k]; !ok {
				n.Options[k] = v
			}
		}
	}
	n.IPAM.Driver = "default"
	switch {
	case o.IPAM != nil && len(o.IPAM.Config) > 0:
		n.IPAM.Config = o.IPAM.Config
	case driver == "bridge":
		n.IPAM.Config = []network.IPAMConfig{{
			Subnet:  netip.MustParsePrefix(fmt.Sprintf("172.%d.0.0/16", 16+d.seq%200)),
			Gateway: netip.MustParseAddr(fmt.Sprintf("172.%d.0.1", 16+d.seq%200)),
		}}
	}
	return n
}

func (e engine) NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	if err := e.call(ctx, true, "NetworkCreate", name); err != nil {
		return client.NetworkCreateResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networks[name] != nil {
		return client.NetworkCreateResult{}, cerrdefs.ErrConflict.WithMessage("network with name " + name + " already exists")
	}
	n := d.newNetwork(name, o, true)
	d.networks[name] = n
	return client.NetworkCreateResult{ID: n.ID}, nil
}

func (e engine) NetworkRemove(ctx context.Context, id string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	if err := e.call(ctx, true, "NetworkRemove", id); err != nil {
		return client.NetworkRemoveResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkRemoveResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	d.endpointsLocked(n)
	if len(n.Containers) > 0 {
		return client.NetworkRemoveResult{}, cerrdefs.ErrPermissionDenied.WithMessage("error while removing network: network " + n.Name + " id " + n.ID + " has active endpoints")
	}
	delete(d.networks, n.Name)
	return client.NetworkRemoveResult{}, nil
}

func (e engine) NetworkConnect(ctx context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	if err := e.call(ctx, true, "NetworkConnect", id, o.Container); err != nil {
		return client.NetworkConnectResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkConnectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	c, err := d.lookup(o.Container)
	if err != nil {
		return client.NetworkConnectResult{}, err
	}
	if _, ok := c.c.NetworkSettings.Networks[n.Name]; ok {
		return client.NetworkConnectResult{}, cerrdefs.ErrPermissionDenied.WithMessage("endpoint with name " + strings.TrimPrefix(c.c.Name, "/") + " already exists in network " + n.Name)
	}
	ep := &network.EndpointSettings{NetworkID: n.ID}
	if o.EndpointConfig != nil {
		cp := *o.EndpointConfig
		ep = &cp
		ep.NetworkID = n.ID
	}
	c.c.NetworkSettings.Networks[n.Name] = ep
	if c.c.State.Running {
		d.shortIDAlias(c, n.Name, ep)
		d.assignIPLocked(ep)
	}
	return client.NetworkConnectResult{}, nil
}

func (e engine) NetworkDisconnect(ctx context.Context, id string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	if err := e.call(ctx, true, "NetworkDisconnect", id, o.Container); err != nil {
		return client.NetworkDisconnectResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.findNetwork(id)
	if n == nil {
		return client.NetworkDisconnectResult{}, cerrdefs.ErrNotFound.WithMessage("network " + id + " not found")
	}
	c, err := d.lookup(o.Container)
	if err != nil {
		return client.NetworkDisconnectResult{}, err
	}
	if _, ok := c.c.NetworkSettings.Networks[n.Name]; !ok {
		return client.NetworkDisconnectResult{}, cerrdefs.ErrInvalidArgument.WithMessage("container " + c.c.ID + " is not connected to network " + n.Name)
	}
	delete(c.c.NetworkSettings.Networks, n.Name)
	return client.NetworkDisconnectResult{}, nil
}
