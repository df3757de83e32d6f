package tasks

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// DockerContainer keeps one container with the given spec running: it is
// created when missing, recreated when any option differs from what docker
// inspect shows, and started when it is stopped. Option names follow
// `docker run`'s flags and the fields of `docker inspect`
// (https://docs.docker.com/reference/cli/docker/container/run/).
type DockerContainer struct {
	// Name of the container (required).
	Name string `yaml:"name"`
	// Image reference (required unless state is absent), passed to docker as
	// written; compared with the container's Config.Image and Image ID.
	Image string `yaml:"image"`
	// State is "started" (default) or "absent".
	State string `yaml:"state"`
	// Command is the arguments after the image (Config.Cmd). Empty means the
	// image's default. Nested lists are flattened and empty items left out
	// (see StringList), so a playbook can add an argument under a condition.
	Command StringList `yaml:"command"`
	// DockerdMTU is for a container whose command is flags of a Docker
	// daemon it runs (docker:dind: its entrypoint appends them to dockerd):
	// the nested daemon's --mtu, the MTU of its default bridge and of the
	// containers it runs there (https://docs.docker.com/reference/cli/dockerd/).
	// auto, a number, or left out (see MTU; auto reads the host's
	// default-route interface). When an MTU is to be set, --mtu=N is
	// appended to command, and compared as part of it: a container started
	// with another MTU, or with one where auto wants none, is recreated.
	DockerdMTU MTU `yaml:"dockerd_mtu"`
	// Entrypoint replaces the image's entrypoint: docker run's --entrypoint,
	// which takes one executable (its arguments go in command). Empty means
	// the image's.
	Entrypoint []string `yaml:"entrypoint"`
	// Env is sent in the Engine API's create request, over the host's SSH
	// connection, so values never appear in a process list. A key the image sets is no drift while the
	// container has the image's value; one the container sets to another
	// value is drift unless given here (recreated, it gets the image's value
	// back, and the plan shows that value marked "(image default)").
	// A list of mappings is merged in order (see MergedMap).
	Env MergedMap `yaml:"env"`
	// SecretEnv is environment variables whose values are secrets, read on
	// the controller by Prepare from an environment variable of dindops or
	// a file (see SecretSource), never written in a playbook. They are sent
	// like env; plans, JSON, logs and errors show "(sensitive value)", and
	// "(sensitive value) (changed)" when the container has another value
	// (compared with its env, which the Engine API gives root only). The
	// container carries the label io.dindops.secret-env with their names, so
	// they stay masked after they are dropped from the task. A variable
	// whose source names neither env nor file is not given: the container
	// does not get it (and loses it, masked, if it had it).
	SecretEnv map[string]SecretSource `yaml:"secret_env"`
	// Networks: the first is docker run's --network, the others are connected
	// before the container starts. Empty means docker's default, "bridge".
	Networks []string `yaml:"networks"`
	// RestartPolicy is "no" (default), "always", "unless-stopped" or
	// "on-failure".
	RestartPolicy string `yaml:"restart_policy"`
	// Privileged is --privileged.
	Privileged bool `yaml:"privileged"`
	// CapAdd and CapDrop are capabilities, with or without "CAP_", any case.
	CapAdd  []string `yaml:"cap_add"`
	CapDrop []string `yaml:"cap_drop"`
	// SecurityOpt is --security-opt ("seccomp=unconfined",
	// "apparmor=unconfined", "no-new-privileges", ...). As with docker run,
	// "systempaths=unconfined" is not sent as an option (the daemon does not
	// know it) but as empty MaskedPaths and ReadonlyPaths: no path of
	// /proc or /sys is hidden or read-only in the container.
	SecurityOpt []string `yaml:"security_opt"`
	// Volumes in -v syntax: "name:/path", "/host:/path[:ro]", "/anon".
	// Nested lists are flattened and empty items left out (see StringList).
	Volumes StringList `yaml:"volumes"`
	// Labels are --label; the image's labels count as env's keys do.
	Labels map[string]string `yaml:"labels"`
	// Pull is "missing" (default: pull when the image is not on the host),
	// "always" (pull before every create or recreate) or "never".
	Pull string `yaml:"pull"`
	// StopTimeout is --stop-timeout in seconds (Config.StopTimeout).
	StopTimeout *int `yaml:"stop_timeout"`
	// StopSignal is --stop-signal (Config.StopSignal), the signal `docker
	// stop` sends: SIGQUIT makes `docker stop` of a gitlab-runner container
	// its graceful shutdown. Empty means the image's (SIGTERM when it sets
	// none).
	StopSignal string `yaml:"stop_signal"`
	// Drain names containers to stop gracefully before this one, when it
	// runs, is recreated or removed: the runner container in the dind
	// container's task (its jobs run in dind), or this very container in the
	// runner's own task. See Drain. Drained containers other than this one
	// are started again after a recreation and stay stopped after a removal.
	Drain *Drain `yaml:"drain"`

	// secrets are SecretEnv's values, read by Prepare.
	secrets map[string]string
}

// containerOp is a container change's payload: what Apply does.
type containerOp struct {
	op   string // create, recreate, start, unpause, remove
	pull bool
	// spec is the spec planned: the task's, with dockerd_mtu's flag in
	// its command as read from the host.
	spec *DockerContainer
	// drain is stopped gracefully before a recreate or a remove.
	drain *drainPlan
}

func (c *DockerContainer) state() string {
	if c.State == "" {
		return "started"
	}
	return c.State
}

func (c *DockerContainer) pull() string {
	if c.Pull == "" {
		return "missing"
	}
	return c.Pull
}

func (c *DockerContainer) restart() string {
	if c.RestartPolicy == "" {
		return "no"
	}
	return c.RestartPolicy
}

func (c *DockerContainer) networks() []string {
	if len(c.Networks) == 0 {
		return []string{"bridge"}
	}
	return sortedSet(c.Networks)
}

// capRE is a capability name once normalised.
var capRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Validate implements Validator.
func (c *DockerContainer) Validate() error {
	switch {
	case c.Name == "":
		return FieldErrorf("name", "required")
	case !dockerNameRE.MatchString(c.Name):
		return FieldErrorf("name", "invalid container name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit (at least 2 characters)", c.Name)
	}
	switch c.State {
	case "", "started", "absent":
	default:
		return FieldErrorf("state", "must be started or absent, not %q", c.State)
	}
	switch {
	case c.Image == "" && c.state() != "absent":
		return FieldErrorf("image", "required")
	case c.Image != "" && !imageRefRE.MatchString(c.Image):
		return FieldErrorf("image", "invalid image reference %q", c.Image)
	}
	switch c.RestartPolicy {
	case "", "no", "always", "unless-stopped", "on-failure":
	default:
		return FieldErrorf("restart_policy", "must be no, always, unless-stopped or on-failure, not %q", c.RestartPolicy)
	}
	switch c.Pull {
	case "", "missing", "always", "never":
	default:
		return FieldErrorf("pull", "must be missing, always or never, not %q", c.Pull)
	}
	switch {
	case len(c.Entrypoint) > 1:
		return FieldErrorf("entrypoint", "docker's --entrypoint takes one executable; put its arguments in command")
	case len(c.Entrypoint) == 1 && c.Entrypoint[0] == "":
		return FieldErrorf("entrypoint", "empty entrypoint")
	}
	for _, k := range sortedKeys(c.Env) {
		v := c.Env[k]
		switch {
		case k == "":
			return FieldErrorf("env", "empty variable name")
		case strings.ContainsAny(k, "= \t\r\n\x00") || strings.HasPrefix(k, "#"):
			return FieldErrorf("env", "invalid variable name %q", k)
		case strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v):
			return FieldErrorf("env", "value of %s: newlines, NUL and invalid UTF-8 are not supported", k)
		}
	}
	if err := c.validateSecretEnv(); err != nil {
		return err
	}
	if err := c.validateNetworks(); err != nil {
		return err
	}
	if err := c.DockerdMTU.Check(); err != nil {
		return &FieldError{Field: "dockerd_mtu", Err: err}
	}
	if c.DockerdMTU.Managed() {
		for _, a := range c.Command {
			if a == "--mtu" || strings.HasPrefix(a, "--mtu=") {
				return FieldErrorf("dockerd_mtu", "command has %s too: give the MTU once, in dockerd_mtu", a)
			}
		}
	}
	for _, f := range []struct {
		name string
		caps []string
	}{{"cap_add", c.CapAdd}, {"cap_drop", c.CapDrop}} {
		for _, cp := range f.caps {
			if n := normCap(cp); !capRE.MatchString(n) {
				return FieldErrorf(f.name, "invalid capability %q", cp)
			}
		}
	}
	for _, o := range c.SecurityOpt {
		n := normSecurityOpt(o)
		k, v, ok := strings.Cut(n, "=")
		switch {
		case !ok || k == "" || v == "":
			return FieldErrorf("security_opt", "invalid option %q: want key=value, such as seccomp=unconfined", o)
		case k == "seccomp" && v != "unconfined":
			return FieldErrorf("security_opt", "%q: seccomp profiles from files are not supported (docker stores the file's content, which a later run could not compare); use seccomp=unconfined or leave the default", o)
		case k == "systempaths" && n != systemPathsUnconfined:
			return FieldErrorf("security_opt", "%q: systempaths takes only unconfined (no masked or read-only paths such as /proc/sys); leave it out for docker's default", o)
		}
	}
	targets := map[string]string{}
	for _, s := range c.Volumes {
		v, err := parseVolume(s)
		if err != nil {
			return FieldErrorf("volumes", "%q: %v", s, err)
		}
		if prev, dup := targets[v.Target]; dup {
			return FieldErrorf("volumes", "%q and %q mount the same path", prev, s)
		}
		targets[v.Target] = s
	}
	if err := checkKeys("labels", c.Labels); err != nil {
		return err
	}
	if c.StopTimeout != nil && *c.StopTimeout < 0 {
		return FieldErrorf("stop_timeout", "must be 0 or more seconds")
	}
	if c.StopSignal != "" && !drainSignalRE(normSignal(c.StopSignal)) {
		return FieldErrorf("stop_signal", "%q is not a signal name such as SIGQUIT or a number", c.StopSignal)
	}
	if c.Drain != nil {
		if err := c.Drain.validate("drain"); err != nil {
			return err
		}
	}
	return nil
}

func (c *DockerContainer) validateNetworks() error {
	seen := map[string]bool{}
	for _, n := range c.Networks {
		switch {
		case !dockerNameRE.MatchString(n):
			return FieldErrorf("networks", "invalid network name %q", n)
		case seen[n]:
			return FieldErrorf("networks", "%q is listed twice", n)
		case (n == "host" || n == "none") && len(c.Networks) > 1:
			return FieldErrorf("networks", "%q cannot be combined with other networks", n)
		}
		seen[n] = true
	}
	return nil
}

// volumeSpec is one entry of volumes, parsed.
type volumeSpec struct {
	Source string   // "" for an anonymous volume, an absolute path for a bind, else a volume name
	Target string   // path in the container
	Opts   []string // sorted, without the default "rw"
}

var volumeOpts = map[string]bool{"ro": true, "rw": true, "z": true, "Z": true, "nocopy": true,
	"shared": true, "rshared": true, "slave": true, "rslave": true, "private": true, "rprivate": true}

// parseVolume parses a -v entry: "/anon", "src:/dst" or "src:/dst:opts".
func parseVolume(s string) (volumeSpec, error) {
	parts := strings.Split(s, ":")
	var v volumeSpec
	switch len(parts) {
	case 1:
		v.Target = parts[0]
	case 2, 3:
		v.Source, v.Target = parts[0], parts[1]
		if v.Source == "" {
			return v, fmt.Errorf("empty source")
		}
		if !strings.HasPrefix(v.Source, "/") && !dockerNameRE.MatchString(v.Source) {
			return v, fmt.Errorf("source must be an absolute host path or a volume name (letters, digits, '_', '.', '-')")
		}
		if strings.HasPrefix(v.Source, "/") {
			v.Source = path.Clean(v.Source)
		}
	default:
		return v, fmt.Errorf("want /path, name:/path or /host:/path[:options]")
	}
	if !strings.HasPrefix(v.Target, "/") {
		return v, fmt.Errorf("container path %q must be absolute", v.Target)
	}
	v.Target = path.Clean(v.Target)
	if len(parts) == 3 {
		mode := ""
		for _, o := range strings.Split(parts[2], ",") {
			if !volumeOpts[o] {
				return v, fmt.Errorf("unknown option %q", o)
			}
			if o == "ro" || o == "rw" {
				if mode != "" && mode != o {
					return v, fmt.Errorf("both ro and rw")
				}
				mode = o
			}
			if o != "rw" {
				v.Opts = append(v.Opts, o)
			}
		}
		v.Opts = sortedSet(v.Opts)
	}
	return v, nil
}

// String is the entry in canonical form: paths cleaned, options sorted and
// the default "rw" left out.
func (v volumeSpec) String() string {
	if v.Source == "" {
		return v.Target
	}
	s := v.Source + ":" + v.Target
	if len(v.Opts) > 0 {
		s += ":" + strings.Join(v.Opts, ",")
	}
	return s
}

// normCap is a capability as docker 23+ stores it, without the "CAP_"
// prefix docker adds: "net_admin", "CAP_NET_ADMIN" and "NET_ADMIN" are the
// same; docker 20.10 stores whatever was given.
func normCap(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "ALL" {
		return u
	}
	return strings.TrimPrefix(u, "CAP_")
}

func normCaps(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = normCap(s)
	}
	return sortedSet(out)
}

// Plan implements Task. On a host it costs two Engine API requests sent at
// once, the container's inspect and the inspect of the image the reference
// names (GET /containers/{name}/json, GET /images/{ref}/json). Only when the
// container runs another image than the reference names and has env or
// labels that image does not explain is its own image inspected too
// (oldImage). When a pull is planned, the host's docker configuration is
// read and the daemon asked whether the registry has the image
// (planPull).
//
// A container whose spec matches but which docker keeps restarting (or that
// is dead) fails the plan: it is not up, and nothing the task could change
// would bring it up.
//
// With dockerd_mtu: auto the host's default route is read first (one
// probe batch).
func (c *DockerContainer) Plan(ctx context.Context, h Host) ([]Change, error) {
	s, err := c.resolve(ctx, h)
	if err != nil {
		return nil, err
	}
	return s.plan(ctx, h)
}

// resolve returns the spec to plan on h: c itself, or, when dockerd_mtu
// is given, a copy whose command ends with --mtu=N when an MTU is to be
// set.
func (c *DockerContainer) resolve(ctx context.Context, h Host) (*DockerContainer, error) {
	if !c.DockerdMTU.Managed() || c.state() == "absent" {
		return c, nil
	}
	mtu, err := c.DockerdMTU.Resolve(ctx, h)
	if err != nil {
		return nil, &FieldError{Field: "dockerd_mtu", Err: err}
	}
	s := *c
	s.DockerdMTU = MTU{}
	s.Command = slices.Clone(c.Command)
	if mtu > 0 {
		s.Command = append(s.Command, "--mtu="+strconv.Itoa(mtu))
	}
	return &s, nil
}

func (c *DockerContainer) plan(ctx context.Context, h Host) ([]Change, error) {
	cur, img, err := c.inspect(ctx, h)
	if err != nil {
		return nil, err
	}
	ch := Change{Resource: "container", Target: c.Name}
	if c.state() == "absent" {
		if cur == nil {
			return nil, nil
		}
		op := containerOp{op: "remove", spec: c}
		ch.Action, ch.Summary = Delete, "remove"
		ch.Warnings = anonWarning(cur)
		if err := c.planDrain(ctx, h, cur, &ch, &op); err != nil {
			return nil, err
		}
		ch.Payload = op
		return []Change{ch}, nil
	}
	op := containerOp{pull: img == nil || c.pull() == "always", spec: c}
	switch {
	case cur == nil:
		ch.Action, ch.Summary, op.op = Create, "create", "create"
		ch.Fields = c.specFields()
	default:
		oldImg, err := c.oldImage(ctx, h, cur, img)
		if err != nil {
			return nil, err
		}
		ch.Fields = c.diff(cur, img, oldImg)
		lost := ""
		if len(ch.Fields) == 0 && !cur.State.Running && !cur.State.Restarting && !cur.State.Dead {
			lost = c.lostNetwork(ctx, h, cur)
		}
		switch {
		case len(ch.Fields) > 0:
			ch.Action, ch.Summary, op.op = Update, recreateSummary(ch.Fields), "recreate"
			ch.Warnings = anonWarning(cur)
			if err := c.planDrain(ctx, h, cur, &ch, &op); err != nil {
				return nil, err
			}
		case cur.State.Restarting || cur.State.Dead:
			// Docker counts a restarting container as running: its spec
			// matches, but it is not up, and nothing dindops could change
			// would bring it up.
			return nil, brokenContainerError(c.Name, cur)
		case cur.State.Paused:
			ch.Action, ch.Summary, op.op = Update, "unpause", "unpause"
			ch.Fields = []Field{{Name: "state", Old: "paused", New: "running"}}
			op.pull = false
		case lost != "":
			// Its network was deleted (and maybe created anew) while it was
			// stopped: docker cannot start it ("network ... not found").
			n := lost
			ch.Action, ch.Summary, op.op = Update, "recreate: its network "+n+" was deleted while it was stopped", "recreate"
			ch.Fields = []Field{{Name: "network", Old: n + " (deleted)", New: n}}
			if err := c.planDrain(ctx, h, cur, &ch, &op); err != nil {
				return nil, err
			}
		case !cur.State.Running:
			ch.Action, ch.Summary, op.op = Update, "start", "start"
			ch.Fields = []Field{{Name: "state", Old: string(cur.State.Status), New: "running"}}
			ch.Warnings = exitWarning(c.Name, cur)
			op.pull = false
		default:
			return nil, nil
		}
	}
	if op.pull {
		if err := c.planPull(ctx, h, &ch); err != nil {
			return nil, err
		}
	}
	ch.Payload = op
	return []Change{ch}, nil
}

// planPull adds the pull that comes first to ch, once the host's daemon
// says the image is in its registry (checkRegistry: an
// *ImageNotInRegistryError when it is not, a warning on ch when the daemon
// cannot tell). With pull: never, the image not being on the host is the
// error.
func (c *DockerContainer) planPull(ctx context.Context, h Host, ch *Change) error {
	if c.pull() == "never" {
		return fmt.Errorf("image %s is not on the host and pull is never: pull it first or set pull: missing", c.Image)
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return err
	}
	warning, err := checkRegistry(ctx, h, api, c.Image)
	if err != nil {
		return err
	}
	if warning != "" {
		ch.Warnings = append(ch.Warnings, warning)
	}
	ch.Summary += " (pull " + c.Image + " first)"
	return nil
}

// lostNetwork returns the name of a user-defined network cur is attached to
// that no longer exists as cur knows it (deleted, or deleted and created
// anew under the same name with another ID), or "". It inspects each such
// network (GET /networks/{name}), so it is only asked of stopped
// containers: docker refuses to delete a network a running one uses.
func (c *DockerContainer) lostNetwork(ctx context.Context, h Host, cur *container.InspectResponse) string {
	if cur.NetworkSettings == nil {
		return ""
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return ""
	}
	for _, n := range sortedKeys(cur.NetworkSettings.Networks) {
		ep := cur.NetworkSettings.Networks[n]
		if n == "bridge" || n == "host" || n == "none" || ep == nil || ep.NetworkID == "" {
			continue
		}
		ni, err := api.NetworkInspect(ctx, n, client.NetworkInspectOptions{})
		if DockerNotFound(err) || err == nil && ni.Network.ID != ep.NetworkID {
			return n
		}
	}
	return ""
}

// planDrain adds the drain that comes before recreating or removing cur,
// when it runs: the summary says which containers it stops and whether they
// come back.
func (c *DockerContainer) planDrain(ctx context.Context, h Host, cur *container.InspectResponse, ch *Change, op *containerOp) error {
	if c.Drain == nil || !cur.State.Running {
		return nil
	}
	dp, err := c.Drain.plan(ctx, h)
	if err != nil || !dp.running() {
		return err
	}
	op.drain = dp
	ch.Summary += "; " + dp.summary()
	var others []string
	for _, n := range dp.names() {
		if n != c.Name {
			others = append(others, n)
		}
	}
	if len(others) > 0 {
		if op.op == "remove" {
			ch.Summary += fmt.Sprintf("; %s %s stopped", strings.Join(others, ", "), plural(len(others), "stays", "stay"))
		} else {
			ch.Summary += fmt.Sprintf("; %s %s started again after", strings.Join(others, ", "), plural(len(others), "is", "are"))
		}
	}
	ch.Warnings = append(ch.Warnings, dp.warnings()...)
	return nil
}

// brokenContainerError is the plan's failure for a container whose spec
// matches the task but which does not stay up: docker keeps restarting it
// (state restarting), or it is dead (docker failed to remove it).
func brokenContainerError(name string, cur *container.InspectResponse) error {
	st := cur.State
	if st.Dead {
		return fmt.Errorf("container %s is dead (docker could not remove or stop it); remove it with `docker rm -f %s` and run again", name, name)
	}
	why := fmt.Sprintf("state %s, last exit code %d", st.Status, st.ExitCode)
	if st.OOMKilled {
		why += ", killed for lack of memory (OOMKilled)"
	}
	why += fmt.Sprintf(", restarted %d %s", cur.RestartCount, plural(cur.RestartCount, "time", "times"))
	if st.Error != "" {
		why += ", docker says: " + st.Error
	}
	return fmt.Errorf("container %s keeps exiting and docker keeps restarting it (%s); its spec matches this task, so recreating it would not help: see why with `docker logs %s`", name, why, name)
}

// exitWarning notes, for a stopped container about to be started, that its
// process failed the last time it ran: a docker stop ends it with 0 or 143
// (SIGTERM), anything else is the process's own failure.
func exitWarning(name string, cur *container.InspectResponse) []string {
	st := cur.State
	switch {
	case st.OOMKilled:
		return []string{fmt.Sprintf("it was killed for lack of memory (exit code %d) the last time it ran; if it stops again, see `docker logs %s`", st.ExitCode, name)}
	case st.Error != "":
		return []string{fmt.Sprintf("docker could not start it the last time: %s", st.Error)}
	case st.ExitCode != 0 && st.ExitCode != 143:
		return []string{fmt.Sprintf("it exited with code %d the last time it ran; if it stops again, see `docker logs %s`", st.ExitCode, name)}
	}
	return nil
}

// oldImage returns the image the container runs when it is not the one the
// task names (the reference or its tag moved) and the container has env or
// labels that the named image does not explain: those that came with its own
// image change with the image, they are not drift of env or labels. It is nil
// otherwise, and when docker no longer has the image.
func (c *DockerContainer) oldImage(ctx context.Context, h Host, cur *container.InspectResponse, img *image.InspectResponse) (*image.InspectResponse, error) {
	if img == nil || img.ID == cur.Image || cur.Image == "" {
		return nil, nil
	}
	unexplained := func(have, want, image map[string]string) bool {
		for k, v := range have {
			if _, wanted := want[k]; wanted {
				continue
			}
			if iv, ok := image[k]; !ok || iv != v {
				return true
			}
		}
		return false
	}
	if !unexplained(envMap(cur.Config.Env), c.wantEnv(), envMap(img.Config.Env)) && !unexplained(cur.Config.Labels, c.wantLabels(), img.Config.Labels) {
		return nil, nil
	}
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, err
	}
	res, err := api.ImageInspect(ctx, cur.Image)
	switch {
	case DockerNotFound(err):
		return nil, nil
	case err != nil:
		return nil, dockerErr("inspect image "+shortID(cur.Image), err)
	}
	return withImageConfig(&res.InspectResponse), nil
}

// inspect returns the container (nil when there is none by that name) and
// the image the reference names on the host (nil when it is not there): two
// Engine API requests, GET /containers/{name}/json and GET
// /images/{ref}/json, sent at once so they cost one round trip.
func (c *DockerContainer) inspect(ctx context.Context, h Host) (*container.InspectResponse, *image.InspectResponse, error) {
	api, err := Docker(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	var img *image.InspectResponse
	var imgErr error
	var wg sync.WaitGroup
	// A container to remove needs no image.
	if c.Image != "" && c.State != "absent" {
		wg.Go(func() {
			res, err := api.ImageInspect(ctx, c.Image)
			switch {
			case DockerNotFound(err):
			case err != nil:
				imgErr = dockerErr("inspect image "+c.Image, err)
			default:
				img = withImageConfig(&res.InspectResponse)
			}
		})
	}
	cur, err := inspectContainer(ctx, api, c.Name)
	wg.Wait()
	if err != nil {
		return nil, nil, err
	}
	if imgErr != nil {
		return nil, nil, imgErr
	}
	return cur, img, nil
}

// inspectContainer returns the container named name, or nil when there is
// none. Its Config, HostConfig, State and NetworkSettings are never nil.
func inspectContainer(ctx context.Context, api DockerEngine, name string) (*container.InspectResponse, error) {
	res, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case DockerNotFound(err):
		return nil, nil
	case err != nil:
		return nil, dockerErr("inspect container "+name, err)
	}
	cur := res.Container
	// docker also resolves ID prefixes: only a container of that name counts.
	if cur.Name != "/"+name {
		return nil, nil
	}
	if cur.Config == nil {
		cur.Config = &container.Config{}
	}
	if cur.HostConfig == nil {
		cur.HostConfig = &container.HostConfig{}
	}
	if cur.State == nil {
		cur.State = &container.State{}
	}
	if cur.NetworkSettings == nil {
		cur.NetworkSettings = &container.NetworkSettings{}
	}
	return &cur, nil
}

// withImageConfig makes sure img.Config is not nil (an image without a
// configuration has none of the defaults it would give).
func withImageConfig(img *image.InspectResponse) *image.InspectResponse {
	if img.Config == nil {
		img.Config = &dockerspec.DockerOCIImageConfig{}
	}
	return img
}

// anonWarning warns that recreating or removing cur removes its anonymous
// volumes (docker rm -v), including those its image declares.
func anonWarning(cur *container.InspectResponse) []string {
	var anon []string
	for _, m := range cur.Mounts {
		if m.Type == "volume" && isAnonVolume(m.Name) {
			anon = append(anon, m.Destination)
		}
	}
	if len(anon) == 0 {
		return nil
	}
	sort.Strings(anon)
	return []string{fmt.Sprintf("the old container's anonymous %s %s will be removed (named volumes are kept)",
		plural(len(anon), "volume", "volumes"), strings.Join(anon, ", "))}
}

// isAnonVolume reports whether a volume name is one docker generated: 64
// hex digits.
func isAnonVolume(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// specFields lists the spec of a container to be created, sorted by name.
func (c *DockerContainer) specFields() []Field {
	var fs []Field
	add := func(name, v string) {
		if v != "" {
			fs = append(fs, Field{Name: name, New: v})
		}
	}
	add("cap_add", strings.Join(normCaps(c.CapAdd), ", "))
	add("cap_drop", strings.Join(normCaps(c.CapDrop), ", "))
	add("command", ShellJoin(c.Command))
	add("entrypoint", ShellJoin(c.Entrypoint))
	add("env", c.specEnvLines())
	add("image", c.Image)
	add("labels", kvLines(c.wantLabels()))
	add("networks", strings.Join(c.networks(), ", "))
	if c.Privileged {
		add("privileged", "true")
	}
	add("restart_policy", c.restart())
	add("security_opt", strings.Join(c.securityOpts(), ", "))
	add("stop_signal", normSignal(c.StopSignal))
	if c.StopTimeout != nil {
		add("stop_timeout", strconv.Itoa(*c.StopTimeout))
	}
	add("volumes", strings.Join(c.volumes(), ", "))
	return fs
}

// volumes is the desired volumes in canonical form, sorted.
func (c *DockerContainer) volumes() []string {
	var out []string
	for _, s := range c.Volumes {
		v, _ := parseVolume(s)
		out = append(out, v.String())
	}
	return sortedSet(out)
}

// diff lists the fields where cur differs from c, sorted by name. img is the
// image c.Image names on the host now, or nil when it is not there; oldImg is
// the image the container runs when that is another one and oldImage looked
// it up, or nil.
func (c *DockerContainer) diff(cur *container.InspectResponse, img, oldImg *image.InspectResponse) []Field {
	var fs []Field
	cmp := func(name, old, new string) {
		if old != new {
			fs = append(fs, Field{Name: name, Old: old, New: new})
		}
	}
	// The image's own defaults (env, labels, cmd, entrypoint, volumes) are
	// known only when the image is on the host.
	var imgEnv, imgLabels map[string]string
	imgVolumes := map[string]bool{}
	if img != nil {
		imgEnv, imgLabels = envMap(img.Config.Env), img.Config.Labels
		for v := range img.Config.Volumes {
			imgVolumes[path.Clean(v)] = true
		}
	}

	// image: the reference, then what the tag points at now.
	switch want, have := normalizeImageRef(c.Image), normalizeImageRef(cur.Config.Image); {
	case want != have:
		cmp("image", cur.Config.Image, c.Image)
	case img == nil:
		cmp("image", c.Image+" ("+shortID(cur.Image)+")", c.Image+" (not on the host: pull)")
	case img.ID != cur.Image:
		cmp("image", c.Image+" ("+shortID(cur.Image)+")", c.Image+" ("+shortID(img.ID)+", tag moved)")
	}
	sameImage := img != nil && img.ID == cur.Image

	// command and entrypoint: empty means the image's default, which is
	// known when the container runs that very image. Docker keeps the
	// image's Cmd only when no entrypoint is given (moby daemon/commit.go).
	switch {
	case len(c.Command) > 0:
		cmp("command", ShellJoin(cur.Config.Cmd), ShellJoin(c.Command))
	case len(c.Entrypoint) > 0:
		cmp("command", ShellJoin(cur.Config.Cmd), "")
	case sameImage:
		cmp("command", ShellJoin(cur.Config.Cmd), ShellJoin(img.Config.Cmd))
	}
	switch {
	case len(c.Entrypoint) > 0:
		cmp("entrypoint", ShellJoin(cur.Config.Entrypoint), ShellJoin(c.Entrypoint))
	case sameImage:
		cmp("entrypoint", ShellJoin(cur.Config.Entrypoint), ShellJoin(img.Config.Entrypoint))
	}

	var oldEnv, oldLabels map[string]string
	if oldImg != nil {
		oldEnv, oldLabels = envMap(oldImg.Config.Env), oldImg.Config.Labels
	}
	// Secrets are compared by value and shown masked (maskSecrets).
	haveEnv := envMap(cur.Config.Env)
	envShown, envNext := mapChanges(haveEnv, c.wantEnv(), imgEnv, oldEnv, img != nil)
	maskSecrets(envShown, envNext, haveEnv, c.secretKeys(cur.Config.Labels))
	cmp("env", kvLines(envShown), kvLines(envNext))
	labelsOld, labelsNew := mapDiff(cur.Config.Labels, c.wantLabels(), imgLabels, oldLabels, img != nil)
	cmp("labels", labelsOld, labelsNew)
	cmp("networks", strings.Join(sortedKeys(cur.NetworkSettings.Networks), ", "), strings.Join(c.networks(), ", "))

	restart := string(cur.HostConfig.RestartPolicy.Name)
	if restart == "" {
		restart = "no"
	}
	cmp("restart_policy", restart, c.restart())
	cmp("privileged", strconv.FormatBool(cur.HostConfig.Privileged), strconv.FormatBool(c.Privileged))
	cmp("cap_add", strings.Join(normCaps(cur.HostConfig.CapAdd), ", "), strings.Join(normCaps(c.CapAdd), ", "))
	cmp("cap_drop", strings.Join(normCaps(cur.HostConfig.CapDrop), ", "), strings.Join(normCaps(c.CapDrop), ", "))

	want := c.securityOpts()
	var have []string
	for _, o := range cur.HostConfig.SecurityOpt {
		o = normSecurityOpt(o)
		// docker adds label=disable to privileged containers by itself.
		if o == "label=disable" && cur.HostConfig.Privileged && !contains(want, o) {
			continue
		}
		have = append(have, o)
	}
	if systemPathsUnconfinedIn(cur.HostConfig) {
		have = append(have, systemPathsUnconfined)
	}
	cmp("security_opt", strings.Join(sortedSet(have), ", "), strings.Join(want, ", "))

	wantVols := c.volumes()
	wantAnon := map[string]bool{}
	for _, s := range c.Volumes {
		if v, _ := parseVolume(s); v.Source == "" {
			wantAnon[v.Target] = true
		}
	}
	var haveVols []string
	for _, v := range currentVolumes(cur) {
		// A volume the image declares is no drift unless asked for.
		if imgVolumes[v] && !wantAnon[v] {
			continue
		}
		haveVols = append(haveVols, v)
	}
	cmp("volumes", strings.Join(sortedSet(haveVols), ", "), strings.Join(wantVols, ", "))

	cmp("stop_timeout", intPtr(cur.Config.StopTimeout), intPtr(c.StopTimeout))
	// stop_signal: empty means the image's, which docker copies into the
	// container's config (moby daemon/commit.go merge); known only when the
	// container runs that very image.
	switch {
	case c.StopSignal != "":
		if !sameSignal(cur.Config.StopSignal, c.StopSignal) {
			cmp("stop_signal", cur.Config.StopSignal, normSignal(c.StopSignal))
		}
	case sameImage:
		if !sameSignal(cur.Config.StopSignal, img.Config.StopSignal) {
			cmp("stop_signal", cur.Config.StopSignal, img.Config.StopSignal)
		}
	}

	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return fs
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func intPtr(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

// envMap turns KEY=value entries into a map.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

// imageDefault marks, in a plan, a value that a recreated container gets
// from its image because the task does not set the key.
const imageDefault = " (image default)"

// mapDiff compares a container's env or labels (have) with the task's
// (want), as the lines a plan shows before and after a recreate. The
// container's own include its image's, which are not drift: a key the task
// does not name is left out when its value is the image's (image), or the
// value that came with the image the container runs now (oldImage, when
// that is another image; the key then changes with the image). Any other key
// the task does not name is drift: the recreated container loses it, or,
// when the image sets it, gets the image's value back, shown with
// imageDefault. When the image is not on the host (imageKnown false) only
// the task's keys can be compared.
func mapDiff(have, want, image, oldImage map[string]string, imageKnown bool) (old, new string) {
	shown, next := mapChanges(have, want, image, oldImage, imageKnown)
	return kvLines(shown), kvLines(next)
}

// mapChanges is mapDiff's lines as maps: the container's values shown
// (shown) and what the recreated container gets (next).
func mapChanges(have, want, image, oldImage map[string]string, imageKnown bool) (shown, next map[string]string) {
	shown = map[string]string{}
	next = map[string]string{}
	for k, v := range want {
		next[k] = v
	}
	for k, v := range have {
		if _, wanted := want[k]; wanted {
			shown[k] = v
			continue
		}
		if !imageKnown {
			continue
		}
		iv, fromImage := image[k]
		if fromImage && iv == v {
			continue
		}
		if ov, ok := oldImage[k]; ok && ov == v {
			continue
		}
		shown[k] = v
		if fromImage {
			next[k] = iv + imageDefault
		}
	}
	return shown, next
}

// currentVolumes is the container's volumes in canonical -v form: its Binds,
// then mounts Binds do not cover (anonymous volumes as "/path").
func currentVolumes(cur *container.InspectResponse) []string {
	var out []string
	covered := map[string]bool{}
	for _, b := range cur.HostConfig.Binds {
		if v, err := parseVolume(b); err == nil {
			out = append(out, v.String())
			covered[v.Target] = true
		} else {
			out = append(out, b)
		}
	}
	for _, m := range cur.Mounts {
		if covered[path.Clean(m.Destination)] {
			continue
		}
		v := volumeSpec{Target: path.Clean(m.Destination)}
		switch {
		case m.Type == "volume" && isAnonVolume(m.Name):
		case m.Type == "volume":
			v.Source = m.Name
		case m.Type == "bind":
			v.Source = m.Source
		default:
			continue
		}
		if v.Source != "" && !m.RW {
			v.Opts = []string{"ro"}
		}
		out = append(out, v.String())
	}
	return out
}

// Apply implements Task.
func (c *DockerContainer) Apply(ctx context.Context, h Host, changes []Change) error {
	api, err := Docker(ctx, h)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		op, ok := ch.Payload.(containerOp)
		if !ok || op.spec == nil {
			return fmt.Errorf("docker_container: change %q has no payload of this task", ch.Summary)
		}
		if err := op.spec.apply(ctx, h, api, op); err != nil {
			return err
		}
	}
	return nil
}

// apply makes one change planned for the spec c.
func (c *DockerContainer) apply(ctx context.Context, h Host, api DockerEngine, op containerOp) error {
	if op.pull {
		if err := pullImage(ctx, h, api, c.Image); err != nil {
			// Before anything else: the container is as it was.
			return Unchanged(err)
		}
	}
	var drained []string
	if op.op == "recreate" || op.op == "remove" {
		var err error
		if drained, err = op.drain.apply(ctx, h); err != nil {
			return err
		}
	}
	var err error
	switch op.op {
	case "create":
		err = c.createAndStart(ctx, h, api)
	case "recreate":
		if err = removeContainer(ctx, api, c.Name); err == nil {
			err = c.createAndStart(ctx, h, api)
		}
		if err == nil {
			err = startAgain(ctx, h, drained)
		}
		if err != nil && ctx.Err() != nil {
			// Interrupted with the old container gone or going: a
			// host without its dind or runner is broken, so finish.
			err = c.finishRecreate(ctx, h, drained, err)
		}
	case "start":
		_, err = api.ContainerStart(ctx, c.Name, client.ContainerStartOptions{})
	case "unpause":
		_, err = api.ContainerUnpause(ctx, c.Name, client.ContainerUnpauseOptions{})
	case "remove":
		err = removeContainer(ctx, api, c.Name)
	default:
		err = fmt.Errorf("unknown operation %q", op.op)
	}
	if err != nil {
		return dockerErr(op.op+" container "+c.Name, err)
	}
	return nil
}

// finishRecreate finishes a recreation that ctx's cancellation (an
// interrupt, a timeout) cut short, in an UndoContext: the new container
// created and started if it is not, the drained containers started again.
// It returns nil when the recreation is complete, else both errors.
func (c *DockerContainer) finishRecreate(ctx context.Context, h Host, drained []string, cause error) error {
	u, cancel := UndoContext(ctx, undoTimeout)
	defer cancel()
	api, err := Docker(u, h)
	if err == nil {
		var cur *container.InspectResponse
		if cur, err = inspectContainer(u, api, c.Name); err == nil {
			switch {
			case cur == nil:
				err = c.createAndStart(u, h, api)
			case !cur.State.Running:
				_, err = api.ContainerStart(u, c.Name, client.ContainerStartOptions{})
			}
		}
	}
	if err == nil {
		err = startAgain(u, h, drained)
	}
	if err != nil {
		return fmt.Errorf("%w; finishing the recreation after the interruption failed too: %v (the next apply recreates it)", cause, err)
	}
	return nil
}

// removeContainer removes a container, running or not, with its anonymous
// volumes (DELETE /containers/{name}?force=1&v=1, as docker rm -f -v).
func removeContainer(ctx context.Context, api DockerEngine, name string) error {
	_, err := api.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return err
}

// createOptions is the POST /containers/create request for c, with what
// `docker create` would send for the same flags
// (https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Container/operation/ContainerCreate):
// "-v /path" is an anonymous volume in Config.Volumes, the other volumes are
// HostConfig.Binds; the first network is the network mode and its endpoint,
// the others are connected before the start (API 1.41 takes one endpoint at
// create).
func (c *DockerContainer) createOptions() client.ContainerCreateOptions {
	cfg := &container.Config{Image: c.Image, Cmd: c.Command, Labels: c.wantLabels(), StopTimeout: c.StopTimeout}
	if len(c.Entrypoint) > 0 {
		cfg.Entrypoint = c.Entrypoint
	}
	env := c.wantEnv()
	for _, k := range sortedKeys(env) {
		cfg.Env = append(cfg.Env, k+"="+env[k])
	}
	if c.StopSignal != "" {
		cfg.StopSignal = normSignal(c.StopSignal)
	}
	secOpts, unconfinedPaths := c.daemonSecurityOpts()
	hc := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(c.restart())},
		Privileged:    c.Privileged,
		CapAdd:        c.CapAdd,
		CapDrop:       c.CapDrop,
		SecurityOpt:   secOpts,
	}
	if unconfinedPaths {
		hc.MaskedPaths, hc.ReadonlyPaths = []string{}, []string{}
	}
	for _, s := range c.Volumes {
		v, _ := parseVolume(s)
		if v.Source == "" {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v.Target] = struct{}{}
			continue
		}
		hc.Binds = append(hc.Binds, v.String())
	}
	var nc *network.NetworkingConfig
	if len(c.Networks) > 0 {
		hc.NetworkMode = container.NetworkMode(c.Networks[0])
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{c.Networks[0]: {}}}
	}
	return client.ContainerCreateOptions{Name: c.Name, Config: cfg, HostConfig: hc, NetworkingConfig: nc}
}

// createAndStart creates the container, connects its other networks while it
// is not running yet, and starts it: the process starts with every network
// in place, and a failure to create (a name taken since the plan) is told
// apart from a failure to start.
func (c *DockerContainer) createAndStart(ctx context.Context, h Host, api DockerEngine) error {
	if _, err := api.ContainerCreate(ctx, c.createOptions()); err != nil {
		// Made by something else since the plan? Never surface docker's raw
		// "name already in use" (C13): say what the plan would be now.
		now, perr := c.Plan(ctx, h)
		switch {
		case perr != nil || (len(now) > 0 && now[0].Action == Create):
			return err
		case len(now) == 0:
			return nil
		}
		return appearedError("container", c.Name, now)
	}
	for _, n := range c.Networks[min(1, len(c.Networks)):] {
		if _, err := api.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: c.Name}); err != nil {
			return fmt.Errorf("connect to network %s: %w", n, err)
		}
	}
	_, err := api.ContainerStart(ctx, c.Name, client.ContainerStartOptions{})
	return err
}
