package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// nestedEngine answers, as dockerd 20.10 (API 1.41) does, the Engine API
// requests of docker_prune: what it lists and what it removes.
type nestedEngine struct {
	mu         sync.Mutex
	containers []map[string]any
	volumes    []map[string]any
	networks   []map[string]any
	images     []map[string]any
	cache      []map[string]any
	requests   []string
}

func (e *nestedEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	path := r.URL.Path
	if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v1.") && i > 0 {
		path = path[i+1:]
	}
	e.requests = append(e.requests, r.Method+" "+path)
	w.Header().Set("Api-Version", "1.41")
	reply := func(v any) { w.Header().Set("Content-Type", "application/json"); json.NewEncoder(w).Encode(v) }
	remove := func(list *[]map[string]any, key, id string) {
		for i, it := range *list {
			if it[key] == id {
				*list = append((*list)[:i], (*list)[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		reply(map[string]string{"message": "No such object: " + id})
	}
	switch {
	case path == "/_ping":
		fmt.Fprint(w, "OK")
	case path == "/info":
		reply(map[string]any{"DockerRootDir": "/var/lib/docker"})
	case path == "/system/df":
		reply(map[string]any{"Images": e.images, "BuildCache": e.cache, "Containers": e.containers, "Volumes": e.volumes})
	case path == "/containers/json":
		reply(e.containers)
	case path == "/volumes":
		reply(map[string]any{"Volumes": e.volumes})
	case path == "/networks":
		reply(e.networks)
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/containers/"):
		remove(&e.containers, "Id", strings.TrimPrefix(path, "/containers/"))
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/volumes/"):
		remove(&e.volumes, "Name", strings.TrimPrefix(path, "/volumes/"))
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/networks/"):
		remove(&e.networks, "Id", strings.TrimPrefix(path, "/networks/"))
	case path == "/images/prune":
		var deleted []map[string]string
		var freed int64
		until := r.URL.Query().Get("filters")
		for i := 0; i < len(e.images); i++ {
			img := e.images[i]
			used := false
			for _, c := range e.containers {
				used = used || c["ImageID"] == img["Id"]
			}
			if used || strings.Contains(until, "until") && img["Created"].(int64) > time.Now().Add(-time.Hour).Unix() {
				continue
			}
			deleted = append(deleted, map[string]string{"Deleted": img["Id"].(string)})
			freed += img["Size"].(int64)
			e.images = append(e.images[:i], e.images[i+1:]...)
			i--
		}
		reply(map[string]any{"ImagesDeleted": deleted, "SpaceReclaimed": freed})
	case path == "/build/prune":
		var deleted []string
		for _, c := range e.cache {
			deleted = append(deleted, c["ID"].(string))
		}
		e.cache = nil
		reply(map[string]any{"CachesDeleted": deleted, "SpaceReclaimed": 600})
	default:
		http.NotFound(w, r)
	}
}

// pruneHost is a host whose docker runs a plain-TCP dind container on the
// runner network, whose daemon is e, and whose df reports free space.
func pruneHost(t *testing.T, e *nestedEngine) (*tasktest.Host, *httptest.Server) {
	t.Helper()
	h, d := dockerHost(t)
	if err := d.RunContainer(client.ContainerCreateOptions{Name: "gitlab-dind", Config: &container.Config{Image: "docker:27-dind", Env: []string{"DOCKER_TLS_CERTDIR="}},
		HostConfig: &container.HostConfig{Binds: []string{"gitlab-dind-storage:/var/lib/docker"}, NetworkMode: "gitlab-runner-net"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	addr := net.JoinHostPort(d.Container("gitlab-dind").NetworkSettings.Networks["gitlab-runner-net"].IPAddress.String(), "2375")
	h.SetDialer(func(ctx context.Context, a string) (net.Conn, error) {
		if a != addr {
			return nil, fmt.Errorf("connecting to %s: %w", a, syscall.ECONNREFUSED)
		}
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	})
	h.Handle("df", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{Stdout: []byte("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 1000000 400000 600000 40% /var/lib/docker\n")}
	})
	return h, srv
}

func leftovers() *nestedEngine {
	old := time.Now().Add(-30 * 24 * time.Hour)
	return &nestedEngine{
		containers: []map[string]any{
			{"Id": "c-run", "Names": []string{"/svc"}, "State": "running", "ImageID": "sha256:used"},
			{"Id": "c-old", "Names": []string{"/leftover"}, "State": "exited", "ImageID": "sha256:old", "Mounts": []map[string]string{{"Name": strings.Repeat("a", 64)}}},
		},
		volumes:  []map[string]any{{"Name": strings.Repeat("a", 64)}, {"Name": "mine"}},
		networks: []map[string]any{{"Name": "bridge", "Id": "n-b", "Driver": "bridge", "Scope": "local", "Created": old}, {"Name": "ci-1_default", "Id": "n-ci", "Driver": "bridge", "Scope": "local", "Created": old}},
		images: []map[string]any{
			{"Id": "sha256:used", "RepoTags": []string{"alpine:3"}, "Created": old.Unix(), "Size": int64(100), "SharedSize": int64(0)},
			{"Id": "sha256:old", "RepoTags": []string{"job:1"}, "Created": old.Unix(), "Size": int64(5000), "SharedSize": int64(0)},
		},
		cache: []map[string]any{{"ID": "k1", "Size": 600, "CreatedAt": old, "LastUsedAt": old}},
	}
}

func TestDockerPrunePlansAndApplies(t *testing.T) {
	e := leftovers()
	h, _ := pruneHost(t, e)
	p := &tasks.DockerPrune{Container: "gitlab-dind", Script: "/usr/local/sbin/dindops-prune-gitlab-dind"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	h.MkdirAll("/usr/local/sbin")
	h.Freeze()
	changes, err := p.Plan(context.Background(), h)
	h.Thaw()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s %s %s: %s", c.Action, c.Resource, c.Target, c.Summary))
	}
	want := []string{
		"create file /usr/local/sbin/dindops-prune-gitlab-dind: create, root:root, mode 0755 (rwxr-xr-x)",
		"delete containers gitlab-dind: 1 stopped",
		"delete images gitlab-dind: 1 unused, created over 168h ago, 5kB",
		"delete volumes gitlab-dind: 1 unused, anonymous or made by gitlab-runner",
		"delete networks gitlab-dind: 1 unused, created over 168h ago",
		"delete build_cache gitlab-dind: 1 records unused for 168h, 600B",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(e.requests) == 0 || strings.Contains(strings.Join(e.requests, " "), "DELETE") || strings.Contains(strings.Join(e.requests, " "), "prune") {
		t.Fatalf("plan asked dind %q: it must only read", e.requests)
	}
	if err := p.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes[1:] {
		if len(c.Applied) == 0 || !strings.HasPrefix(c.Applied[0].New, "1 of 1") {
			t.Errorf("%s: applied %+v", c.Resource, c.Applied)
		}
	}
	if last := changes[len(changes)-1].Applied; last[len(last)-1].Name != "free on dind's storage" {
		t.Errorf("last change's applied: %+v", last)
	}
	if len(e.containers) != 1 || len(e.volumes) != 1 || e.volumes[0]["Name"] != "mine" || len(e.networks) != 1 || len(e.images) != 1 || len(e.cache) != 0 {
		t.Errorf("left in dind: containers %v volumes %v networks %v images %v cache %v", e.containers, e.volumes, e.networks, e.images, e.cache)
	}
	again, err := p.Plan(context.Background(), h)
	if err != nil || len(again) != 0 {
		t.Errorf("plan after apply: %+v, %v", again, err)
	}
}

// A container that came into use since the plan is kept, and said so.
func TestDockerPruneKeepsWhatCameIntoUse(t *testing.T) {
	e := leftovers()
	h, _ := pruneHost(t, e)
	p := &tasks.DockerPrune{Container: "gitlab-dind", Images: new(bool), Networks: new(bool), BuilderCache: new(bool), Volumes: new(bool)}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	changes, err := p.Plan(context.Background(), h)
	if err != nil || len(changes) != 1 {
		t.Fatalf("plan: %+v, %v", changes, err)
	}
	e.mu.Lock()
	e.containers = e.containers[:1] // removed by someone else: no fault
	e.mu.Unlock()
	if err := p.Apply(context.Background(), h, changes); err != nil {
		t.Fatal(err)
	}
	if changes[0].Applied[0].New != "1 of 1" {
		t.Errorf("applied %+v", changes[0].Applied)
	}
}

// A dind whose daemon does not answer is a warning, not a failed host:
// pruning is housekeeping, and the health check says whether the runner
// works.
func TestDockerPruneDaemonDown(t *testing.T) {
	h, srv := pruneHost(t, leftovers())
	srv.Close()
	p := &tasks.DockerPrune{Container: "gitlab-dind"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := p.Plan(context.Background(), h)
	ws, ok := tasks.IsWarnings(err)
	if !ok || len(ws) != 1 || !strings.Contains(ws[0], "the cache was not pruned: the daemon in container gitlab-dind") {
		t.Fatalf("plan: %v", err)
	}
	// No container: nothing to prune.
	p = &tasks.DockerPrune{Container: "other"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(context.Background(), h); err == nil || !strings.Contains(err.Error(), "does not exist: nothing to prune") {
		t.Errorf("no container: %v", err)
	}
}
