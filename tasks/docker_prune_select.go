package tasks

// docker_prune, part 1: what a prune removes, decided from what the daemon
// reports (GET /system/df and GET /networks), apart from how the plan
// words it and how Apply removes it.

import (
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// Labels that say who made a volume.
const (
	// labelRunnerManaged is set by gitlab-runner on the containers,
	// networks and volumes it makes for jobs (gitlab-runner's
	// helpers/docker labels: "com.gitlab.gitlab-runner.managed": "true").
	labelRunnerManaged = "com.gitlab.gitlab-runner.managed"
	// labelAnonymousVolume marks anonymous volumes since Docker 23
	// (before, an anonymous volume is a 64-hex-digit name without labels).
	labelAnonymousVolume = "com.docker.volume.anonymous"
)

var anonymousVolumeName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// pruneKinds says which kinds of things a prune removes.
type pruneKinds struct {
	Containers, Images, Volumes, Networks, BuildCache bool
}

// diskSpace is the file system that holds a daemon's data root, in bytes.
type diskSpace struct {
	Size, Avail int64
}

// FreePercent is the part of the file system that is free, 0 to 100.
func (d diskSpace) FreePercent() float64 {
	if d.Size <= 0 {
		return 100
	}
	return float64(d.Avail) * 100 / float64(d.Size)
}

// pruneInput is what a daemon reports, read at one moment.
type pruneInput struct {
	Now        time.Time
	Containers []container.Summary // SizeRw 0 when not known
	Images     []image.Summary     // with Size and SharedSize (system df)
	Volumes    []volume.Volume     // UsageData nil when not known
	Networks   []network.Summary
	BuildCache []build.CacheRecord
	// Disk is the data root's file system; nil when not known.
	Disk *diskSpace
}

// pruneRules are a docker_prune's options, resolved.
type pruneRules struct {
	Kinds pruneKinds
	// Until is the age below which images, networks and build cache are
	// kept.
	Until time.Duration
	// MinFree is the free part of the data root's file system, in percent
	// (0 to 100), below which every unused image goes, whatever its age.
	MinFree float64
}

// pruneItem is one thing a prune removes.
type pruneItem struct {
	// ID is what the removal names: a container's or network's ID, a
	// volume's name, an image's or cache record's ID.
	ID string
	// Name is how it is shown: a container's name, an image's first tag.
	Name string
	// Size is the space removing it frees, in bytes, as far as the daemon
	// knows it (-1: not known).
	Size int64
	// Why says what made it go ("exited", "anonymous", "unused since
	// 2026-11-30").
	Why string
}

// pruneSelection is what a prune removes.
type pruneSelection struct {
	// Cutoff is Now - Until: images, networks and build cache older are
	// removed when unused.
	Cutoff time.Time
	// Pressure is set when the data root's free space is below MinFree:
	// every unused image goes.
	Pressure bool
	Disk     *diskSpace

	Containers, Images, Volumes, Networks, BuildCache []pruneItem
}

// Empty reports whether the selection removes nothing.
func (s pruneSelection) Empty() bool {
	return len(s.Containers)+len(s.Images)+len(s.Volumes)+len(s.Networks)+len(s.BuildCache) == 0
}

// selectPrune decides what a prune removes, as docker's own prune calls
// decide it (https://docs.docker.com/engine/manage-resources/pruning/):
//   - containers: every stopped one (created, exited, dead), whatever its
//     age, as `docker container prune`;
//   - images: those no container uses once those containers are gone,
//     created before Cutoff (docker's `until` for images is the image's
//     creation time), as `docker image prune --all --filter until=`;
//     under disk pressure every unused image;
//   - volumes: those no remaining container mounts, when anonymous
//     (`docker volume prune` since Docker 23), or made by gitlab-runner
//     (label com.gitlab.gitlab-runner.managed=true: its cache volumes,
//     which its next jobs reuse) over until ago by their CreatedAt; docker
//     has no age filter for volumes;
//   - networks: user-defined local ones no remaining container is on,
//     created before Cutoff, as `docker network prune --filter until=`;
//   - build cache: records not in use, last used (or made) before Cutoff,
//     as `docker builder prune --all --filter until=`.
func selectPrune(in pruneInput, r pruneRules) pruneSelection {
	s := pruneSelection{Cutoff: in.Now.Add(-r.Until), Disk: in.Disk}
	if in.Disk != nil && r.MinFree > 0 && in.Disk.FreePercent() < r.MinFree {
		s.Pressure = true
	}
	var remaining []container.Summary
	for _, c := range in.Containers {
		if r.Kinds.Containers && stoppedState(c.State) {
			size := c.SizeRw
			if size == 0 {
				size = -1 // not asked for
			}
			s.Containers = append(s.Containers, pruneItem{ID: c.ID, Name: containerName(c), Size: size, Why: string(c.State)})
			continue
		}
		remaining = append(remaining, c)
	}
	usedImages, usedVolumes, usedNetworks := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range remaining {
		usedImages[c.ImageID] = true
		for _, m := range c.Mounts {
			if m.Name != "" {
				usedVolumes[m.Name] = true
			}
		}
		if c.NetworkSettings != nil {
			for n, ep := range c.NetworkSettings.Networks {
				usedNetworks[n] = true
				if ep != nil && ep.NetworkID != "" {
					usedNetworks[ep.NetworkID] = true
				}
			}
		}
		usedNetworks[c.HostConfig.NetworkMode] = true
	}
	if r.Kinds.Images {
		for _, img := range in.Images {
			if usedImages[img.ID] {
				continue
			}
			created := time.Unix(img.Created, 0)
			why := "unused, created " + created.UTC().Format("2006-01-02")
			if !created.Before(s.Cutoff) {
				if !s.Pressure {
					continue
				}
				why += ", disk pressure"
			}
			size := img.Size
			if img.SharedSize > 0 {
				size -= img.SharedSize
			}
			s.Images = append(s.Images, pruneItem{ID: img.ID, Name: imageName(img), Size: size, Why: why})
		}
	}
	if r.Kinds.Volumes {
		for _, v := range in.Volumes {
			if usedVolumes[v.Name] {
				continue
			}
			why := ""
			switch {
			case v.Labels[labelRunnerManaged] == "true":
				// gitlab-runner's cache volumes (/cache, the builds) are
				// what its next jobs reuse: kept until they are until old
				// (docker has no until for volumes; CreatedAt has it).
				created, err := time.Parse(time.RFC3339, v.CreatedAt)
				if err != nil || !created.Before(s.Cutoff) {
					continue
				}
				why = "made by gitlab-runner " + created.UTC().Format("2006-01-02")
			case isAnonymousVolume(v):
				why = "anonymous"
			default:
				continue
			}
			size := int64(-1)
			if v.UsageData != nil {
				size = v.UsageData.Size
			}
			s.Volumes = append(s.Volumes, pruneItem{ID: v.Name, Name: shortName(v.Name), Size: size, Why: why})
		}
	}
	if r.Kinds.Networks {
		for _, n := range in.Networks {
			if predefinedNetwork(n) || usedNetworks[n.Name] || usedNetworks[n.ID] || !n.Created.Before(s.Cutoff) {
				continue
			}
			s.Networks = append(s.Networks, pruneItem{ID: n.ID, Name: n.Name, Size: 0, Why: "unused, created " + n.Created.UTC().Format("2006-01-02")})
		}
	}
	if r.Kinds.BuildCache {
		for _, b := range in.BuildCache {
			last := b.CreatedAt
			if b.LastUsedAt != nil {
				last = *b.LastUsedAt
			}
			if b.InUse || !last.Before(s.Cutoff) {
				continue
			}
			size := b.Size
			if b.Shared {
				size = 0 // its layers belong to an image too
			}
			s.BuildCache = append(s.BuildCache, pruneItem{ID: b.ID, Name: cacheName(b), Size: size, Why: "last used " + last.UTC().Format("2006-01-02")})
		}
	}
	for _, l := range [][]pruneItem{s.Containers, s.Images, s.Volumes, s.Networks, s.BuildCache} {
		sort.SliceStable(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return s
}

func stoppedState(s container.ContainerState) bool {
	return s == container.StateCreated || s == container.StateExited || s == container.StateDead
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return shortName(c.ID)
}

func imageName(img image.Summary) string {
	for _, t := range img.RepoTags {
		if t != "<none>:<none>" {
			return t
		}
	}
	return "<none> " + shortName(img.ID)
}

func cacheName(b build.CacheRecord) string {
	name := shortName(b.ID)
	if d := strings.TrimSpace(b.Description); d != "" {
		if len(d) > 60 {
			d = d[:57] + "..."
		}
		name += " " + d
	}
	return name
}

// shortName is an ID as docker shows it: 12 hex digits.
func shortName(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 && anonymousVolumeName.MatchString(id) {
		return id[:12]
	}
	return id
}

func isAnonymousVolume(v volume.Volume) bool {
	if _, ok := v.Labels[labelAnonymousVolume]; ok {
		return true
	}
	return len(v.Labels) == 0 && anonymousVolumeName.MatchString(v.Name)
}

// predefinedNetwork reports whether docker made n itself (bridge, host,
// none) or it is not a local network: neither is ever pruned.
func predefinedNetwork(n network.Summary) bool {
	switch n.Name {
	case "bridge", "host", "none":
		return true
	}
	return n.Driver == "host" || n.Driver == "null" || (n.Scope != "" && n.Scope != "local")
}

// total is the space the items free, in bytes, and whether every size was
// known.
func total(items []pruneItem) (int64, bool) {
	var sum int64
	known := true
	for _, it := range items {
		if it.Size < 0 {
			known = false
			continue
		}
		sum += it.Size
	}
	return sum, known
}
