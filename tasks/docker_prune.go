package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"
)

// DockerPrune removes what the Docker daemon inside a container on the
// host (a docker:dind container) no longer needs: stopped containers,
// unused images created over `until` ago, unused anonymous and
// gitlab-runner volumes, unused networks and build cache not used for
// `until`; below `min_free` free space on the daemon's data root, every
// unused image. The daemon is reached as a client on the container's
// network reaches it (see findNestedDaemon): over TCP from the host, with
// the container's own client certificates when it uses TLS. What goes is
// decided by selectPrune.
//
//   - name: dind's cache is pruned
//     docker_prune:
//     container: gitlab-dind
//     until: 7d
//     min_free: 15%
//     script: /usr/local/sbin/dindops-prune-gitlab-dind
//
// Plan lists what would go and the space it frees, as one change per kind
// (a change only when something would go); Apply removes exactly the
// planned containers, volumes and networks (one that came into use since
// the plan is kept and said so), prunes images and build cache with the
// plan's cutoff (docker's own prune calls), and records on each change
// what it removed and freed (Change.Applied). With `script`, the same
// prune is kept as a shell script at that path (mode 0755), for a
// schedule to run between dindops runs. A container that does not exist
// or does not run is nothing to prune.
type DockerPrune struct {
	// Container names the container whose daemon is pruned.
	Container string `yaml:"container"`
	// State is present (default) or absent: prune nothing and remove the
	// script (a decommissioned host).
	State string `yaml:"state"`
	// Which kinds go; each defaults to true.
	Containers   *bool `yaml:"containers"`
	Images       *bool `yaml:"images"`
	Volumes      *bool `yaml:"volumes"`
	Networks     *bool `yaml:"networks"`
	BuilderCache *bool `yaml:"builder_cache"`
	// Until is the age below which images, networks and build cache are
	// kept: a Go duration ("168h") or days ("7d"); default 7d.
	Until string `yaml:"until"`
	// MinFree is the free part of the data root's file system below which
	// every unused image goes: a whole percentage ("15%"; "0" never);
	// default 15%.
	MinFree string `yaml:"min_free"`
	// Script is an absolute path where the same prune is kept as a shell
	// script; empty for none.
	Script string `yaml:"script"`

	rules pruneRules
	now   func() time.Time
}

// maxPruneUntil is the longest until (100 years): longer ones would
// overflow a duration.
const maxPruneUntil = 36500 * 24 * time.Hour

// Default option values.
const (
	defaultPruneUntil   = 7 * 24 * time.Hour
	defaultPruneMinFree = 15
)

// Validate implements Validator.
func (p *DockerPrune) Validate() error {
	if p.Container == "" {
		return FieldErrorf("container", "is required: the container whose Docker daemon is pruned (e.g. gitlab-dind)")
	}
	switch p.State {
	case "", "present", "absent":
	default:
		return FieldErrorf("state", "must be present or absent, got %q", p.State)
	}
	until, err := parseDays(p.Until, defaultPruneUntil)
	if err != nil {
		return FieldErrorf("until", "%v", err)
	}
	if until > maxPruneUntil {
		return FieldErrorf("until", "%q is more than %dd: nothing on a daemon is that old (use images: false and the like to keep a kind)", p.Until, maxPruneUntil/(24*time.Hour))
	}
	minFree := float64(defaultPruneMinFree)
	if p.MinFree != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(p.MinFree), "%"))
		if err != nil || n < 0 || n > 100 {
			return FieldErrorf("min_free", "must be a whole percentage from 0 to 100, such as 15%%, got %q", p.MinFree)
		}
		minFree = float64(n)
	}
	if p.Script != "" && (!strings.HasPrefix(p.Script, "/") || strings.HasSuffix(p.Script, "/")) {
		return FieldErrorf("script", "must be an absolute file path, got %q", p.Script)
	}
	on := func(b *bool) bool { return b == nil || *b }
	p.rules = pruneRules{
		Kinds: pruneKinds{Containers: on(p.Containers), Images: on(p.Images), Volumes: on(p.Volumes),
			Networks: on(p.Networks), BuildCache: on(p.BuilderCache)},
		Until: until, MinFree: minFree,
	}
	return nil
}

// parseDays reads a Go duration or a number of days ("7d"); "" is def.
func parseDays(s string, def time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 {
			return 0, fmt.Errorf("must be a duration such as 7d or 168h, got %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("must be a duration such as 7d or 168h, got %q", s)
	}
	return d, nil
}

func (p *DockerPrune) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// scriptFile is the File task that keeps the script.
func (p *DockerPrune) scriptFile() *File {
	mode := Mode(0o755)
	f := &File{Path: p.Script, Content: pruneScript(p.Container, p.rules), Owner: "root", Group: "root", Mode: &mode}
	if p.State == "absent" {
		f = &File{Path: p.Script, State: "absent"}
	}
	return f
}

// prunePayload is how Apply makes one kind's change.
type prunePayload struct {
	kind     string // "containers", "images", "volumes", "networks", "build_cache"
	items    []pruneItem
	cutoff   time.Time
	pressure bool
}

// Plan implements Task.
func (p *DockerPrune) Plan(ctx context.Context, h Host) ([]Change, error) {
	var changes []Change
	if p.Script != "" {
		fc, err := p.scriptFile().Plan(ctx, h)
		if err != nil {
			return nil, err
		}
		changes = append(changes, fc...)
	}
	if p.State == "absent" {
		return changes, nil
	}
	cli, root, skip, err := p.connect(ctx, h)
	if skip != "" {
		if len(changes) > 0 {
			return changes, nil
		}
		return nil, Skip("%s", skip)
	}
	var unreachable *nestedUnreachableError
	if errors.As(err, &unreachable) {
		// Housekeeping that cannot be done now fails no host: the runner
		// may work (the health check says whether it does).
		w := "the cache was not pruned: " + err.Error()
		if len(changes) > 0 {
			changes[0].Warnings = append(changes[0].Warnings, w)
			return changes, nil
		}
		return nil, &WarningsError{Warnings: []string{w}}
	}
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	in, err := p.read(ctx, h, cli, root)
	if err != nil {
		return nil, err
	}
	return append(changes, p.changes(selectPrune(in, p.rules))...), nil
}

// connect reaches the daemon in the container; skip says why there is
// nothing to prune (no such container, or it does not run).
func (p *DockerPrune) connect(ctx context.Context, h Host) (cli *client.Client, root string, skip string, err error) {
	d, err := Docker(ctx, h)
	if err != nil {
		return nil, "", "", err
	}
	c, err := d.ContainerInspect(ctx, p.Container, client.ContainerInspectOptions{})
	if DockerNotFound(err) {
		return nil, "", fmt.Sprintf("container %s does not exist: nothing to prune", p.Container), nil
	}
	if err != nil {
		return nil, "", "", dockerErr("inspecting container "+p.Container, err)
	}
	if c.Container.State == nil || !c.Container.State.Running {
		return nil, "", fmt.Sprintf("container %s is %s: nothing to prune", p.Container, describeState(c.Container.State)), nil
	}
	nd, err := findNestedDaemon(c.Container)
	if err != nil {
		return nil, "", "", err
	}
	cli, err = connectNested(ctx, h, nd, p.clock)
	if err != nil {
		return nil, "", "", err
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		cli.Close()
		return nil, "", "", fmt.Errorf("the daemon in container %s: %w", p.Container, err)
	}
	root = info.Info.DockerRootDir
	// The data root's file system on the host: the container's mount of
	// it, else the host's docker data (where the container's own layer
	// is).
	src := "/var/lib/docker"
	for _, m := range c.Container.Mounts {
		if strings.TrimRight(m.Destination, "/") == strings.TrimRight(root, "/") && m.Source != "" {
			src = m.Source
		}
	}
	return cli, src, "", nil
}

// read gathers the selection's input: the daemon's disk usage, networks,
// and the free space of the data root's file system (df on the host).
func (p *DockerPrune) read(ctx context.Context, h Host, cli *client.Client, dataRoot string) (pruneInput, error) {
	in := pruneInput{Now: p.clock()}
	// Sizes of images and build cache come from the daemon's records;
	// those of containers and volumes would need a walk of their files
	// (what makes `docker system df -v` slow on a big cache), so they are
	// listed without.
	du, err := cli.DiskUsage(ctx, client.DiskUsageOptions{Images: true, BuildCache: true, Verbose: true})
	if err != nil {
		return in, fmt.Errorf("disk usage of the daemon in container %s: %w", p.Container, err)
	}
	in.Images, in.BuildCache = du.Images.Items, du.BuildCache.Items
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return in, fmt.Errorf("containers of the daemon in container %s: %w", p.Container, err)
	}
	in.Containers = cs.Items
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return in, fmt.Errorf("volumes of the daemon in container %s: %w", p.Container, err)
	}
	in.Volumes = vs.Items
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return in, fmt.Errorf("networks of the daemon in container %s: %w", p.Container, err)
	}
	in.Networks = nets.Items
	if p.rules.Kinds.Images && p.rules.MinFree > 0 {
		disk, err := readDisk(ctx, h, dataRoot)
		if err != nil {
			return in, err
		}
		in.Disk = &disk
	}
	return in, nil
}

// readDisk is POSIX df's answer for the file system of path, in bytes.
func readDisk(ctx context.Context, h Host, path string) (diskSpace, error) {
	out, err := Exec(ctx, h, "df", "-P", "-k", "--", path)
	if err != nil {
		return diskSpace{}, fmt.Errorf("free space of %s: %w", path, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		return diskSpace{}, fmt.Errorf("free space of %s: df printed %q", path, out)
	}
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 6 {
		return diskSpace{}, fmt.Errorf("free space of %s: df printed %q", path, out)
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	avail, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return diskSpace{}, fmt.Errorf("free space of %s: df printed %q", path, out)
	}
	return diskSpace{Size: size * 1024, Avail: avail * 1024}, nil
}

// Apply implements Task.
func (p *DockerPrune) Apply(ctx context.Context, h Host, changes []Change) error {
	var prunes []int
	for i, c := range changes {
		if _, ok := c.Payload.(prunePayload); ok {
			prunes = append(prunes, i)
			continue
		}
		if err := p.scriptFile().Apply(ctx, h, []Change{c}); err != nil {
			return err
		}
	}
	if len(prunes) == 0 {
		return nil
	}
	cli, dataRoot, skip, err := p.connect(ctx, h)
	if skip != "" {
		err = errors.New(skip + " since the plan")
	}
	if err != nil {
		return Unchanged(err)
	}
	defer cli.Close()
	before, diskErr := readDisk(ctx, h, dataRoot)
	for _, i := range prunes {
		o, err := p.prune(ctx, cli, changes[i].Payload.(prunePayload))
		changes[i].Applied = o.fields()
		if err != nil {
			return err
		}
	}
	// What it made of the disk, on the last change: the one number that
	// holds whatever docker could size.
	if after, err := readDisk(ctx, h, dataRoot); err == nil && diskErr == nil {
		last := &changes[prunes[len(prunes)-1]]
		last.Applied = append(last.Applied, Field{Name: "free on dind's storage",
			New: fmt.Sprintf("%s before, %s after, of %s", humanBytes(before.Avail), humanBytes(after.Avail), humanBytes(after.Size))})
	}
	return nil
}

// pruneOutcome is what one kind's prune did.
type pruneOutcome struct {
	removed, planned, extra int   // planned ones removed, planned, others docker removed too
	freed                   int64 // bytes, -1 when docker reports no size (containers, volumes and networks of unknown size)
	kept                    []string
}

func (o pruneOutcome) fields() []Field {
	removed := fmt.Sprintf("%d of %d", o.removed, o.planned)
	if o.extra > 0 {
		removed += fmt.Sprintf(", and %d that became unused since the plan", o.extra)
	}
	fields := []Field{{Name: "removed", New: removed}}
	if o.freed >= 0 {
		fields = append(fields, Field{Name: "freed", New: humanBytes(o.freed)})
	}
	if len(o.kept) > 0 {
		fields = append(fields, Field{Name: "kept", New: strings.Join(o.kept, ", ")})
	}
	return fields
}

// prune makes one kind's change and says what it removed and freed.
func (p *DockerPrune) prune(ctx context.Context, cli *client.Client, pl prunePayload) (pruneOutcome, error) {
	o := pruneOutcome{planned: len(pl.items), freed: -1}
	remove := func(it pruneItem, err error) error {
		switch {
		case err == nil || DockerNotFound(err):
			o.removed++
			if it.Size > 0 {
				o.freed = max(o.freed, 0) + it.Size
			}
		case DockerConflict(err) || strings.Contains(err.Error(), "in use") || strings.Contains(err.Error(), "active endpoints"):
			o.kept = append(o.kept, it.Name+" (in use since the plan)")
		default:
			return fmt.Errorf("removing %s from the daemon in container %s: %w", it.Name, p.Container, err)
		}
		return nil
	}
	// What docker's own prune removed, against the plan.
	count := func(deleted []string) {
		planned := map[string]bool{}
		for _, it := range pl.items {
			planned[strings.TrimPrefix(it.ID, "sha256:")] = true
		}
		seen := map[string]bool{}
		for _, id := range deleted {
			id = strings.TrimPrefix(id, "sha256:")
			switch {
			case planned[id]:
				o.removed++
			case pl.kind == "build_cache" && !seen[id]:
				o.extra++ // an image's layers are no images of their own
			}
			seen[id] = true
		}
	}
	// Containers, volumes and networks are removed one by one, exactly
	// those planned (none forced: one in use now is kept).
	removers := map[string]func(id string) error{
		"containers": func(id string) error {
			_, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{})
			return err
		},
		"volumes":  func(id string) error { _, err := cli.VolumeRemove(ctx, id, client.VolumeRemoveOptions{}); return err },
		"networks": func(id string) error { _, err := cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); return err },
	}
	var err error
	switch rm := removers[pl.kind]; {
	case rm != nil:
		for _, it := range pl.items {
			if err = remove(it, rm(it.ID)); err != nil {
				break
			}
		}
	case pl.kind == "images":
		f := make(client.Filters).Add("dangling", "false")
		if !pl.pressure {
			f.Add("until", strconv.FormatInt(pl.cutoff.Unix(), 10))
		}
		var res client.ImagePruneResult
		if res, err = cli.ImagePrune(ctx, client.ImagePruneOptions{Filters: f}); err == nil {
			var deleted []string
			for _, d := range res.Report.ImagesDeleted {
				if d.Deleted != "" {
					deleted = append(deleted, d.Deleted)
				}
			}
			count(deleted)
			o.freed = int64(res.Report.SpaceReclaimed)
		}
	case pl.kind == "build_cache":
		age := p.clock().Sub(pl.cutoff).Round(time.Second)
		var res client.BuildCachePruneResult
		if res, err = cli.BuildCachePrune(ctx, client.BuildCachePruneOptions{All: true, Filters: make(client.Filters).Add("until", age.String())}); err == nil {
			count(res.Report.CachesDeleted)
			o.freed = int64(res.Report.SpaceReclaimed)
		}
	}
	if err != nil {
		err = fmt.Errorf("pruning %s in container %s: %w", strings.ReplaceAll(pl.kind, "_", " "), p.Container, err)
	}
	return o, err
}

// maxListed is how many items a change lists by name.
const maxListed = 10

// changes words a selection as one change per kind.
func (p *DockerPrune) changes(s pruneSelection) []Change {
	var out []Change
	add := func(kind, resource string, items []pruneItem, what string) {
		if len(items) == 0 {
			return
		}
		size, known := total(items)
		summary := fmt.Sprintf("%d %s", len(items), what)
		switch {
		case kind == "networks" || size == 0 && !known:
		case known:
			summary += ", " + humanBytes(size)
		default:
			summary += ", at least " + humanBytes(size)
		}
		var lines []string
		for i, it := range items {
			if i == maxListed {
				lines = append(lines, fmt.Sprintf("... and %d more", len(items)-maxListed))
				break
			}
			l := it.Name + " (" + it.Why
			if it.Size > 0 {
				l += ", " + humanBytes(it.Size)
			}
			lines = append(lines, l+")")
		}
		out = append(out, Change{Action: Delete, Resource: resource, Target: p.Container, Summary: summary,
			Fields:  []Field{{Name: "remove", Old: strings.Join(lines, "\n") + "\n"}},
			Payload: prunePayload{kind: kind, items: items, cutoff: s.Cutoff, pressure: s.Pressure}})
	}
	until := goDuration(p.rules.Until)
	add("containers", "containers", s.Containers, "stopped")
	imgs := "unused, created over " + until + " ago"
	if s.Pressure {
		imgs = fmt.Sprintf("unused (%.0f%% free on the data root, below min_free %.0f%%: every unused image)", s.Disk.FreePercent(), p.rules.MinFree)
	}
	add("images", "images", s.Images, imgs)
	add("volumes", "volumes", s.Volumes, "unused, anonymous or made by gitlab-runner")
	add("networks", "networks", s.Networks, "unused, created over "+until+" ago")
	add("build_cache", "build_cache", s.BuildCache, "records unused for "+until)
	return out
}

// humanBytes writes n bytes as docker's CLI does ("1.235GB", decimal
// units; github.com/docker/go-units).
func humanBytes(n int64) string { return units.HumanSize(float64(n)) }
