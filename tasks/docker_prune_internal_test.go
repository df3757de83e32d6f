package tasks

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

var pruneNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func days(n int) time.Time { return pruneNow.Add(-time.Duration(n) * 24 * time.Hour) }

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// A dind daemon after some jobs: a running service container, a job's
// leftover stopped container, images old and new, used and not, volumes
// of every kind, networks and build cache.
func pruneFixture() pruneInput {
	onNet := func(n string) *container.NetworkSettingsSummary {
		return &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{n: {NetworkID: "id-" + n}}}
	}
	used := days(1)
	old := days(30)
	return pruneInput{
		Now: pruneNow,
		Containers: []container.Summary{
			{ID: "c1", Names: []string{"/svc"}, State: container.StateRunning, ImageID: "sha256:img-running", Mounts: []container.MountPoint{{Name: "keep-vol"}}, NetworkSettings: onNet("ci-job-1_default")},
			{ID: "c2", Names: []string{"/leftover"}, State: container.StateExited, ImageID: "sha256:img-leftover", SizeRw: 4000, Mounts: []container.MountPoint{{Name: hexA}}, NetworkSettings: onNet("ci-job-2_default")},
			{ID: "c3", Names: []string{"/made"}, State: container.StateCreated, ImageID: "sha256:img-running"},
		},
		Images: []image.Summary{
			{ID: "sha256:img-running", RepoTags: []string{"alpine:3.20"}, Created: days(60).Unix(), Size: 8000},
			{ID: "sha256:img-leftover", RepoTags: []string{"job:old"}, Created: days(10).Unix(), Size: 5000, SharedSize: 1000},
			{ID: "sha256:img-fresh", RepoTags: []string{"<none>:<none>"}, Created: days(1).Unix(), Size: 3000},
		},
		Volumes: []volume.Volume{
			{Name: hexA, UsageData: &volume.UsageData{Size: 700, RefCount: 1}},
			{Name: hexB, Labels: map[string]string{labelAnonymousVolume: ""}, UsageData: &volume.UsageData{Size: 100}},
			{Name: "runner-abc-cache", Labels: map[string]string{labelRunnerManaged: "true"}, CreatedAt: days(20).Format(time.RFC3339), UsageData: &volume.UsageData{Size: 200}},
			// The runner's cache that its next jobs reuse: younger than until.
			{Name: "runner-new-cache", Labels: map[string]string{labelRunnerManaged: "true"}, CreatedAt: days(2).Format(time.RFC3339), UsageData: &volume.UsageData{Size: 300}},
			{Name: "keep-vol", Labels: map[string]string{labelRunnerManaged: "true"}, UsageData: &volume.UsageData{Size: 50, RefCount: 1}},
			{Name: "mydata", UsageData: &volume.UsageData{Size: 900}},
		},
		Networks: []network.Summary{
			{Network: network.Network{Name: "bridge", ID: "id-bridge", Driver: "bridge", Scope: "local", Created: days(90)}},
			{Network: network.Network{Name: "none", ID: "id-none", Driver: "null", Scope: "local", Created: days(90)}},
			{Network: network.Network{Name: "ci-job-1_default", ID: "id-ci-job-1_default", Driver: "bridge", Scope: "local", Created: days(20)}},
			{Network: network.Network{Name: "ci-job-2_default", ID: "id-ci-job-2_default", Driver: "bridge", Scope: "local", Created: days(20)}},
			{Network: network.Network{Name: "ci-job-3_default", ID: "id-ci-job-3_default", Driver: "bridge", Scope: "local", Created: days(2)}},
		},
		BuildCache: []build.CacheRecord{
			{ID: "k-old", Description: "[2/3] RUN make", Size: 600, CreatedAt: old, LastUsedAt: &old},
			{ID: "k-used", Size: 400, CreatedAt: old, LastUsedAt: &used},
			{ID: "k-inuse", Size: 300, CreatedAt: old, InUse: true},
			{ID: "k-shared", Size: 900, CreatedAt: old, Shared: true},
		},
		Disk: &diskSpace{Size: 100_000, Avail: 50_000},
	}
}

func itemNames(items []pruneItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

func TestSelectPrune(t *testing.T) {
	all := pruneKinds{Containers: true, Images: true, Volumes: true, Networks: true, BuildCache: true}
	week := 7 * 24 * time.Hour
	type want struct{ containers, images, volumes, networks, cache []string }
	for _, tc := range []struct {
		name  string
		rules pruneRules
		disk  *diskSpace
		want  want
	}{
		{
			name:  "defaults",
			rules: pruneRules{Kinds: all, Until: week, MinFree: 15},
			want: want{
				containers: []string{"leftover", "made"},
				// job:old is used only by a stopped container, which goes;
				// the fresh image is younger than until; alpine runs.
				images: []string{"job:old"},
				// hexA was the leftover's; mydata is a named volume of no runner.
				volumes:  []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb", "runner-abc-cache"},
				networks: []string{"ci-job-2_default"},
				cache:    []string{"k-old [2/3] RUN make", "k-shared"},
			},
		},
		{
			name:  "disk pressure: every unused image",
			rules: pruneRules{Kinds: all, Until: week, MinFree: 15},
			disk:  &diskSpace{Size: 100_000, Avail: 14_999},
			want: want{
				containers: []string{"leftover", "made"}, images: []string{"<none> img-fresh", "job:old"},
				volumes: []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb", "runner-abc-cache"}, networks: []string{"ci-job-2_default"}, cache: []string{"k-old [2/3] RUN make", "k-shared"},
			},
		},
		{
			name:  "containers kept: what they use stays",
			rules: pruneRules{Kinds: pruneKinds{Images: true, Volumes: true, Networks: true}, Until: week, MinFree: 15},
			want:  want{volumes: []string{"bbbbbbbbbbbb", "runner-abc-cache"}},
		},
		{
			name:  "until 0: everything unused",
			rules: pruneRules{Kinds: all, Until: 0},
			want: want{
				containers: []string{"leftover", "made"}, images: []string{"<none> img-fresh", "job:old"},
				volumes: []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb", "runner-abc-cache", "runner-new-cache"}, networks: []string{"ci-job-2_default", "ci-job-3_default"}, cache: []string{"k-old [2/3] RUN make", "k-shared", "k-used"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := pruneFixture()
			if tc.disk != nil {
				in.Disk = tc.disk
			}
			s := selectPrune(in, tc.rules)
			got := want{itemNames(s.Containers), itemNames(s.Images), itemNames(s.Volumes), itemNames(s.Networks), itemNames(s.BuildCache)}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("selected\n %+v\nwant\n %+v", got, tc.want)
			}
			if s.Pressure != (tc.disk != nil) {
				t.Errorf("pressure %v", s.Pressure)
			}
		})
	}
	s := selectPrune(pruneFixture(), pruneRules{Kinds: all, Until: week, MinFree: 15})
	if n, known := total(s.Images); n != 4000 || !known {
		t.Errorf("images free %d %v; want 4000 (size less what is shared)", n, known)
	}
	if n, _ := total(s.BuildCache); n != 600 {
		t.Errorf("build cache frees %d; want 600 (a shared record frees nothing)", n)
	}
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"": defaultPruneUntil, "7d": 168 * time.Hour, "0d": 0, "36h": 36 * time.Hour, " 2d ": 48 * time.Hour} {
		if got, err := parseDays(in, defaultPruneUntil); err != nil || got != want {
			t.Errorf("parseDays(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"7", "-1d", "1w", "d", "999999d"} {
		if _, err := parseDays(bad, 0); err == nil {
			t.Errorf("parseDays(%q) is no error", bad)
		}
	}
}

func TestFindNestedDaemon(t *testing.T) {
	base := func() container.InspectResponse {
		return container.InspectResponse{Name: "/gitlab-dind", State: &container.State{Running: true, StartedAt: "2026-12-07T11:00:00Z"},
			Config: &container.Config{Env: []string{"DOCKER_TLS_CERTDIR=/certs"}},
			Mounts: []container.MountPoint{{Destination: "/certs/client", Source: "/var/lib/docker/volumes/gitlab-dind-certs-client/_data"}},
			NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
				"gitlab-runner-net": {IPAddress: netip.MustParseAddr("172.18.0.2")}, "another": {}}}}
	}
	d, err := findNestedDaemon(base())
	if err != nil || d.addr != "172.18.0.2:2376" || d.certDir != "/var/lib/docker/volumes/gitlab-dind-certs-client/_data" || d.container != "gitlab-dind" || d.network != "gitlab-runner-net" {
		t.Fatalf("TLS dind: %+v, %v", d, err)
	}
	plain := base()
	plain.Config.Env = []string{"DOCKER_TLS_CERTDIR="}
	if d, err := findNestedDaemon(plain); err != nil || d.addr != "172.18.0.2:2375" || d.certDir != "" {
		t.Errorf("plain dind: %+v, %v", d, err)
	}
	whole := base()
	whole.Mounts = []container.MountPoint{{Destination: "/certs", Source: "/srv/certs"}}
	if d, err := findNestedDaemon(whole); err != nil || d.certDir != "/srv/certs/client" {
		t.Errorf("certs dir mounted whole: %+v, %v", d, err)
	}
	for name, c := range map[string]func(*container.InspectResponse){
		"no mount of the client certificates": func(c *container.InspectResponse) { c.Mounts = nil },
		"no address":                          func(c *container.InspectResponse) { c.NetworkSettings.Networks = nil },
		"does not run":                        func(c *container.InspectResponse) { c.State.Running = false; c.State.Status = "exited" },
	} {
		in := base()
		c(&in)
		if _, err := findNestedDaemon(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The script runs with a docker and a df that answer as a dind host
// would and record what they were asked.
func TestPruneScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, tc := range []struct {
		name  string
		avail int // df's available 1K-blocks of 1000
		want  []string
		not   []string
	}{
		{name: "room", avail: 500, want: []string{
			"exec gitlab-dind docker container prune --force",
			"exec gitlab-dind docker volume rm " + hexA,
			"exec gitlab-dind docker volume rm runner-abc-cache",
			"exec gitlab-dind docker volume rm " + hexB,
			"exec gitlab-dind docker image prune --all --force --filter until=168h",
			"exec gitlab-dind docker network prune --force --filter until=168h",
			"exec gitlab-dind docker builder prune --all --force --filter until=168h",
		}, not: []string{"volume rm " + strings.Repeat("c", 64), "volume rm named", "volume rm runner-new-cache"}},
		{name: "pressure", avail: 100, want: []string{"exec gitlab-dind docker image prune --all --force\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "log")
			stub := func(name, body string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			stub("docker", `echo "$*" >>`+log+`
case "$*" in
"inspect --format {{.State.Running}} gitlab-dind") echo true ;;
"inspect --format"*) echo /var/lib/docker/volumes/gitlab-dind-storage/_data ;;
*"info --format"*) echo /var/lib/docker ;;
*"volume ls --quiet --filter dangling=true --filter label=com.gitlab.gitlab-runner.managed=true") printf '%s\n' runner-abc-cache runner-new-cache ;;
*"volume inspect --format {{.CreatedAt}} runner-abc-cache") echo 2020-01-02T03:04:05Z ;;
*"volume inspect --format {{.CreatedAt}} runner-new-cache") date -u +%Y-%m-%dT%H:%M:%SZ ;;
*"volume ls --quiet --filter dangling=true --filter label=com.docker.volume.anonymous") echo `+hexB+` ;;
*"volume ls --quiet --filter dangling=true") printf '%s\n' `+hexA+` `+strings.Repeat("c", 64)+` named ;;
*"volume inspect --format {{len .Labels}} `+hexA+`") echo 0 ;;
*"volume inspect"*) echo 1 ;;
esac
`)
			stub("df", `echo "$*" >>`+log+`
echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
echo "/dev/sda1 1000 500 `+strconv.Itoa(tc.avail)+` 50% /var/lib/docker"
`)
			script := filepath.Join(dir, "prune")
			r := pruneRules{Kinds: pruneKinds{Containers: true, Images: true, Volumes: true, Networks: true, BuildCache: true}, Until: defaultPruneUntil, MinFree: 15}
			if err := os.WriteFile(script, []byte(pruneScript("gitlab-dind", r)), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", script)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("script: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(log)
			got := string(b)
			if !strings.Contains(got, "-P -k /var/lib/docker/volumes/gitlab-dind-storage/_data") {
				t.Errorf("df not of dind's data root volume:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("no %q in what the script ran:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q ran:\n%s", n, got)
				}
			}
		})
	}
}
