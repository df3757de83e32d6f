package tasktest

// The in-memory engine's container calls.

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

func (d *Docker) exitLocked(c *fakeContainer, code int) {
	st := c.c.State
	st.Running, st.Paused, st.Restarting, st.Status, st.ExitCode = false, false, false, container.StateExited, code
	// A stopped container has no address on its networks, as in docker.
	for _, ep := range c.c.NetworkSettings.Networks {
		ep.IPAddress = netip.Addr{}
	}
	if c.exited != nil {
		close(c.exited)
		c.exited = nil
	}
}

func (d *Docker) startLocked(c *fakeContainer) error {
	if msg, ok := d.startErr[strings.TrimPrefix(c.c.Name, "/")]; ok {
		c.c.State.Error = msg
		return cerrdefs.ErrInternal.WithMessage(msg)
	}
	for n, ep := range c.c.NetworkSettings.Networks {
		if d.networks[n] == nil {
			return cerrdefs.ErrNotFound.WithMessage("network " + n + " not found")
		}
		// A network deleted and created anew is another network: docker
		// knows the container's by its ID.
		if ep.NetworkID != "" && ep.NetworkID != d.networks[n].ID {
			return cerrdefs.ErrNotFound.WithMessage("network " + ep.NetworkID + " not found")
		}
	}
	// Docker 20.10 adds the short container ID to a running container's
	// aliases on each user-defined network.
	for n, ep := range c.c.NetworkSettings.Networks {
		d.shortIDAlias(c, n, ep)
		d.assignIPLocked(ep)
	}
	st := c.c.State
	st.Running, st.Status, st.Error, st.ExitCode = true, container.StateRunning, "", 0
	d.seq++
	st.StartedAt = fmt.Sprintf("2024-01-01T00:00:%02d.000000000Z", d.seq%60)
	c.exited = make(chan struct{})
	return nil
}

// assignIPLocked gives a running container's endpoint an address, as
// docker's IPAM does: 172.30.x.y, unique in the engine.
func (d *Docker) assignIPLocked(ep *network.EndpointSettings) {
	if ep == nil || ep.IPAddress.IsValid() {
		return
	}
	d.seq++
	ep.IPAddress = netip.AddrFrom4([4]byte{172, 30, byte(d.seq >> 8), byte(d.seq)})
	ep.IPPrefixLen = 16
}

// shortIDAlias adds c's short ID to its aliases on network n, as docker
// 20.10 does for user-defined networks.
func (d *Docker) shortIDAlias(c *fakeContainer, n string, ep *network.EndpointSettings) {
	if d.Newer || n == "bridge" || n == "host" || n == "none" {
		return
	}
	short := c.c.ID[:12]
	for _, a := range ep.Aliases {
		if a == short {
			return
		}
	}
	ep.Aliases = append(ep.Aliases, short)
}

func (d *Docker) findContainer(ref string) *fakeContainer {
	if c := d.containers[ref]; c != nil {
		return c
	}
	for _, c := range d.containers {
		if len(ref) >= 4 && strings.HasPrefix(c.c.ID, ref) {
			return c
		}
	}
	return nil
}

func (e engine) ContainerInspect(ctx context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if err := e.call(ctx, false, "ContainerInspect", id); err != nil {
		return client.ContainerInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c := e.d.findContainer(id)
	if c == nil {
		return client.ContainerInspectResult{}, noSuch("container", id)
	}
	return client.ContainerInspectResult{Container: copyContainer(c.c)}, nil
}

// copyContainer copies the parts a caller could change.
func copyContainer(c container.InspectResponse) container.InspectResponse {
	st, cfg, hc, ns := *c.State, *c.Config, *c.HostConfig, *c.NetworkSettings
	ns.Networks = map[string]*network.EndpointSettings{}
	for k, v := range c.NetworkSettings.Networks {
		ep := *v
		ns.Networks[k] = &ep
	}
	c.State, c.Config, c.HostConfig, c.NetworkSettings = &st, &cfg, &hc, &ns
	c.Mounts = append([]container.MountPoint(nil), c.Mounts...)
	return c
}

func (e engine) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	if err := e.call(ctx, false, "ContainerList"); err != nil {
		return client.ContainerListResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	var res client.ContainerListResult
	for _, name := range sortedNames(e.d.containers) {
		c := e.d.containers[name]
		if !o.All && !c.c.State.Running {
			continue
		}
		if nets := o.Filters["network"]; len(nets) > 0 {
			match := false
			for n := range nets {
				if _, ok := c.c.NetworkSettings.Networks[n]; ok {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		cp := copyContainer(c.c)
		res.Items = append(res.Items, container.Summary{ID: cp.ID, Names: []string{cp.Name}, Image: cp.Config.Image, ImageID: cp.Image,
			Labels: cp.Config.Labels, State: cp.State.Status, NetworkSettings: &container.NetworkSettingsSummary{Networks: cp.NetworkSettings.Networks}})
	}
	return res, nil
}

// normCaps stores a capability as the engine does.
func (d *Docker) normCaps(l []string) []string {
	if !d.Newer {
		return l
	}
	out := make([]string, len(l))
	for i, c := range l {
		u := strings.ToUpper(c)
		if u != "ALL" && !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		out[i] = u
	}
	return out
}

func (e engine) ContainerCreate(ctx context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := e.call(ctx, true, "ContainerCreate", o.Name); err != nil {
		return client.ContainerCreateResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.containers[o.Name] != nil {
		return client.ContainerCreateResult{}, cerrdefs.ErrConflict.WithMessage(fmt.Sprintf(`Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, o.Name, d.containers[o.Name].c.ID))
	}
	cfg := container.Config{}
	if o.Config != nil {
		cfg = *o.Config
	}
	img := d.findImage(cfg.Image)
	if img == nil {
		return client.ContainerCreateResult{}, noSuch("image", cfg.Image)
	}
	hc := container.HostConfig{}
	if o.HostConfig != nil {
		hc = *o.HostConfig
	}
	if err := checkSecurityOpts(hc.SecurityOpt); err != nil {
		return client.ContainerCreateResult{}, err
	}
	defaultSystemPaths(&hc)
	netName := string(hc.NetworkMode)
	if netName == "" || netName == "default" {
		netName = "bridge"
	}
	if d.networks[netName] == nil {
		return client.ContainerCreateResult{}, cerrdefs.ErrNotFound.WithMessage("network " + netName + " not found")
	}
	// The daemon merges the image's defaults into the container's config
	// (moby daemon/commit.go merge).
	env := append([]string(nil), img.Env...)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slicesDeleteKey(env, k)
		env = append(env, kv)
	}
	cfg.Env = env
	labels := map[string]string{}
	for k, v := range img.Labels {
		labels[k] = v
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = img.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
		}
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	vols := map[string]struct{}{}
	for _, v := range img.Volumes {
		vols[v] = struct{}{}
	}
	for v := range cfg.Volumes {
		vols[v] = struct{}{}
	}
	cfg.Volumes = vols
	hc.CapAdd, hc.CapDrop = d.normCaps(hc.CapAdd), d.normCaps(hc.CapDrop)
	if hc.Privileged {
		hc.SecurityOpt = append(hc.SecurityOpt, "label=disable")
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	d.seq++
	id := hexID("container", o.Name, d.seq)
	fc := &fakeContainer{}
	covered := map[string]bool{}
	var mounts []container.MountPoint
	for _, b := range hc.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 {
			return client.ContainerCreateResult{}, cerrdefs.ErrInvalidArgument.WithMessage("invalid volume specification: " + b)
		}
		m := container.MountPoint{Source: parts[0], Destination: path.Clean(parts[1]), RW: !(len(parts) == 3 && strings.Contains(parts[2], "ro")), Type: mount.TypeBind}
		if !strings.HasPrefix(parts[0], "/") {
			m.Type, m.Name, m.Source = mount.TypeVolume, parts[0], "/var/lib/docker/volumes/"+parts[0]+"/_data"
			if _, ok := d.volumes[parts[0]]; !ok {
				d.volumes[parts[0]] = false
			}
		}
		covered[m.Destination] = true
		mounts = append(mounts, m)
	}
	for _, v := range sortedNames(vols) {
		if covered[path.Clean(v)] {
			continue
		}
		name := hexID("volume", id, v)
		d.volumes[name] = true
		fc.anon = append(fc.anon, name)
		mounts = append(mounts, container.MountPoint{Type: mount.TypeVolume, Name: name, Source: "/var/lib/docker/volumes/" + name + "/_data", Destination: path.Clean(v), RW: true})
	}
	ep := &network.EndpointSettings{}
	if o.NetworkingConfig != nil && o.NetworkingConfig.EndpointsConfig[netName] != nil {
		cp := *o.NetworkingConfig.EndpointsConfig[netName]
		ep = &cp
	}
	ep.NetworkID = d.networks[netName].ID
	fc.c = container.InspectResponse{ID: id, Name: "/" + o.Name, Image: img.ID, Created: "2024-01-01T00:00:00Z",
		State:           &container.State{Status: container.StateCreated},
		Config:          &cfg,
		HostConfig:      &hc,
		Mounts:          mounts,
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{netName: ep}},
	}
	d.containers[o.Name] = fc
	return client.ContainerCreateResult{ID: id}, nil
}

func slicesDeleteKey(env []string, key string) []string {
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

// lookup finds a container for a call that needs one.
func (d *Docker) lookup(id string) (*fakeContainer, error) {
	c := d.findContainer(id)
	if c == nil {
		return nil, noSuch("container", id)
	}
	return c, nil
}

func (e engine) ContainerStart(ctx context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	if err := e.call(ctx, true, "ContainerStart", id); err != nil {
		return client.ContainerStartResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c, err := e.d.lookup(id)
	if err != nil {
		return client.ContainerStartResult{}, err
	}
	if c.c.State.Running {
		return client.ContainerStartResult{}, nil // 304 Not Modified
	}
	return client.ContainerStartResult{}, e.d.startLocked(c)
}

func (e engine) ContainerKill(ctx context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	sig := o.Signal
	if sig == "" {
		sig = "SIGKILL"
	}
	if err := e.call(ctx, true, "ContainerKill", id, sig); err != nil {
		return client.ContainerKillResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.lookup(id)
	if err != nil {
		return client.ContainerKillResult{}, err
	}
	if !c.c.State.Running {
		return client.ContainerKillResult{}, cerrdefs.ErrConflict.WithMessage(fmt.Sprintf("Cannot kill container: %s: Container %s is not running", id, c.c.ID))
	}
	c.signals = append(c.signals, sig)
	switch {
	case sig == "SIGKILL" || sig == "KILL" || sig == "9":
		d.exitLocked(c, 137)
	case c.drainAfter == 0:
		d.exitLocked(c, 0)
	case c.drainAfter > 0:
		exited := c.exited
		time.AfterFunc(c.drainAfter, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if c.exited == exited && c.exited != nil {
				d.exitLocked(c, 0)
			}
		})
	}
	return client.ContainerKillResult{}, nil
}

func (e engine) ContainerWait(ctx context.Context, id string, o client.ContainerWaitOptions) client.ContainerWaitResult {
	result, errc := make(chan container.WaitResponse, 1), make(chan error, 1)
	res := client.ContainerWaitResult{Result: result, Error: errc}
	if err := e.call(ctx, false, "ContainerWait", id, string(o.Condition)); err != nil {
		errc <- err
		return res
	}
	e.d.mu.Lock()
	c, err := e.d.lookup(id)
	var exited chan struct{}
	if err == nil {
		exited = c.exited
	}
	e.d.mu.Unlock()
	switch {
	case err != nil:
		errc <- err
	case o.Condition != container.WaitConditionNotRunning:
		errc <- fmt.Errorf("fake docker: wait condition %q is not supported", o.Condition)
	case exited == nil:
		result <- container.WaitResponse{StatusCode: int64(c.c.State.ExitCode)}
	default:
		go func() {
			select {
			case <-exited:
				result <- container.WaitResponse{}
			case <-ctx.Done():
				errc <- ctx.Err()
			}
		}()
	}
	return res
}

func (e engine) ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if err := e.call(ctx, true, "ContainerRemove", id); err != nil {
		return client.ContainerRemoveResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.lookup(id)
	if err != nil {
		return client.ContainerRemoveResult{}, err
	}
	if c.c.State.Running && !o.Force {
		return client.ContainerRemoveResult{}, cerrdefs.ErrConflict.WithMessage("You cannot remove a running container " + c.c.ID + ". Stop the container before attempting removal or force remove")
	}
	if c.c.State.Running {
		d.exitLocked(c, 137)
	}
	if o.RemoveVolumes {
		for _, v := range c.anon {
			delete(d.volumes, v)
		}
	}
	delete(d.containers, strings.TrimPrefix(c.c.Name, "/"))
	return client.ContainerRemoveResult{}, nil
}

func (e engine) ContainerUnpause(ctx context.Context, id string, _ client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
	if err := e.call(ctx, true, "ContainerUnpause", id); err != nil {
		return client.ContainerUnpauseResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	c, err := e.d.lookup(id)
	if err != nil {
		return client.ContainerUnpauseResult{}, err
	}
	if !c.c.State.Paused {
		return client.ContainerUnpauseResult{}, cerrdefs.ErrConflict.WithMessage("Container " + c.c.ID + " is not paused")
	}
	c.c.State.Paused, c.c.State.Status = false, container.StateRunning
	return client.ContainerUnpauseResult{}, nil
}
