package tasks_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// daemonAnswer is the error the real Engine API client returns for a
// GET /distribution answered with status and the daemon's JSON message
// ("" and 200: a manifest), from a stand-in daemon on 127.0.0.1.
func daemonAnswer(t *testing.T, ctx context.Context, status int, message string) error {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1.41/distribution/") {
			http.NotFound(w, r)
			return
		}
		if message == "slow" {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			w.Write([]byte(`{"Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:dcbc77efbb2eff2451c44b984e90dbf2b40745024a5f814010b63e209daebc11","size":1153}}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"message": message})
	}))
	defer srv.Close()
	cli, err := client.New(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, err = cli.DistributionInspect(ctx, "docker:27-dindd", client.DistributionInspectOptions{})
	return err
}

// The daemon's answers sorted into the registry has the image, has it not
// (the plan fails), or cannot tell (a warning). The 200, 404, 500 and 400
// answers are Docker 20.10.24's on the fleet (registry-mirrors set, Docker
// Hub out of reach); the 401, 403 and 429 ones are the registry's error
// codes as moby's daemon passes them on (api/server/httpstatus, with
// docker/distribution's errcode descriptors).
func TestRegistryAnswerClassification(t *testing.T) {
	for _, tc := range []struct {
		status         int
		message        string
		noAuth, onAuth string
	}{
		{200, "", "found", "found"},
		{404, "manifest unknown: manifest unknown", "missing", "missing"},
		{404, "repository name not known to registry", "missing", "missing"},
		{500, `Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 127.0.0.11:53: no such host`, "unknown", "unknown"},
		{500, `Get "https://172.29.151.9:5000/v2/": dial tcp 172.29.151.9:5000: connect: no route to host`, "unknown", "unknown"},
		{400, "invalid reference format: repository name must be lowercase", "unknown", "unknown"},
		{401, "unauthorized: authentication required", "unknown", "missing"},
		{403, "denied: requested access to the resource is denied", "unknown", "missing"},
		{429, "toomanyrequests: You have reached your pull rate limit.", "unknown", "unknown"},
		{503, "received unexpected HTTP status: 503 Service Unavailable", "unknown", "unknown"},
	} {
		err := daemonAnswer(t, context.Background(), tc.status, tc.message)
		if got := tasks.RegistryVerdict(err, false); got != tc.noAuth {
			t.Errorf("%d %q without credentials: %s, want %s (%v)", tc.status, tc.message, got, tc.noAuth, err)
		}
		if got := tasks.RegistryVerdict(err, true); got != tc.onAuth {
			t.Errorf("%d %q with credentials: %s, want %s", tc.status, tc.message, got, tc.onAuth)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := daemonAnswer(t, ctx, 0, "slow"); tasks.RegistryVerdict(err, true) != "unknown" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a daemon that does not answer in time: %v", err)
	}
}

// An image the registry has: the plan pulls it, with no warning, having
// asked the daemon (with the same credentials a pull sends).
func TestContainerPlanChecksTheImageIsInTheRegistry(t *testing.T) {
	h, d := dockerHost(t)
	d.AddRegistryImage("busybox:1.36", tasktest.DockerImage{Cmd: []string{"sh"}})
	c := &tasks.DockerContainer{Name: "bb", Image: "busybox:1.36"}
	changes := plan(t, c, h)
	if len(changes) != 1 || changes[0].Summary != "create (pull busybox:1.36 first)" || len(changes[0].Warnings) != 0 {
		t.Fatalf("changes %+v", changes)
	}
	if !calledAPI(h, "DistributionInspect", "busybox:1.36") {
		t.Errorf("plan did not ask the daemon about the registry: %q", h.Commands)
	}
	apply(t, c, h, changes)
	if !d.Running("bb") {
		t.Error("bb does not run")
	}
}

// An image its registry has not (a typo in the tag): the plan fails,
// naming the image, the registry's answer and what to do; a Docker Hub
// image is asked of Docker Hub itself too (a Docker before 25 asks only
// its first mirror).
func TestContainerPlanFailsForAnImageNotInTheRegistry(t *testing.T) {
	h, _ := dockerHost(t)
	c := dindSpec()
	c.Image = "docker:27-dindd"
	h.Freeze()
	_, err := c.Plan(context.Background(), h)
	var nf *tasks.ImageNotInRegistryError
	if !errors.As(err, &nf) || nf.Image != "docker:27-dindd" || nf.Registry != "docker.io" || !tasks.DockerNotFound(err) {
		t.Fatalf("plan: %v, want an *ImageNotInRegistryError", err)
	}
	for _, want := range []string{"docker:27-dindd", "manifest unknown", "check the image name and tag", "`docker login`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !calledAPI(h, "DistributionInspect", "registry-1.docker.io/library/docker:27-dindd") {
		t.Errorf("Docker Hub itself was not asked: %q", apiCalls(h))
	}
	if tasks.DockerUnreachable(err) {
		t.Error("the error passes for a stopped daemon")
	}
	c.Pull = "never"
	if _, err := c.Plan(context.Background(), h); err == nil || !strings.Contains(err.Error(), "pull is never") {
		t.Errorf("pull: never: %v", err)
	}
}

// A registry the daemon cannot reach (or that asks for credentials the
// host has none of) is a warning, not a failure: the daemon may pull
// through a mirror at apply time.
func TestContainerPlanWarnsWhenTheRegistryCannotBeAsked(t *testing.T) {
	for _, tc := range []struct {
		answer error
		want   string
	}{
		{registryUnreachable("registry.example.com"), "lookup registry.example.com"},
		{cerrdefs.ErrUnauthenticated.WithMessage("Error response from daemon: unauthorized: authentication required"), "no credentials for registry.example.com: for a private registry run `docker login registry.example.com`"},
		{context.DeadlineExceeded, "no answer from the registry within"},
	} {
		h, d := dockerHost(t)
		d.AddRegistryImage("registry.example.com/team/app:1", tasktest.DockerImage{Cmd: []string{"app"}})
		d.SetRegistryAnswer(tc.answer)
		c := &tasks.DockerContainer{Name: "app", Image: "registry.example.com/team/app:1"}
		changes := plan(t, c, h)
		if len(changes) != 1 || len(changes[0].Warnings) != 1 {
			t.Fatalf("%v: changes %+v, want one warning", tc.answer, changes)
		}
		w := changes[0].Warnings[0]
		if !strings.HasPrefix(w, "cannot check that registry.example.com/team/app:1 exists in its registry: ") ||
			!strings.HasSuffix(w, "; apply pulls it") || !strings.Contains(w, tc.want) {
			t.Errorf("warning %q, want %q in it", w, tc.want)
		}
		apply(t, c, h, changes)
		if !calledAPI(h, "ImagePull", "registry.example.com/team/app:1") {
			t.Error("apply did not pull")
		}
	}
}

// A refusal with the host's credentials sent fails the plan; the
// credentials go in the request's header only, never into the error.
func TestContainerPlanRegistryRefusesTheHostsCredentials(t *testing.T) {
	h, d := dockerHost(t)
	auth := base64.StdEncoding.EncodeToString([]byte("ci:private-secret-3"))
	h.Handle("sh", func(h *tasktest.Host, args []string, _ []byte) tasks.Output {
		if len(args) == 3 && strings.Contains(args[2], "config.json") {
			return tasks.Output{Stdout: []byte(`{"auths": {"registry.example.com": {"auth": "` + auth + `"}}}`)}
		}
		return tasks.Output{ExitCode: 127}
	})
	d.SetRegistryAnswer(cerrdefs.ErrPermissionDenied.WithMessage("Error response from daemon: denied: requested access to the resource is denied"))
	c := &tasks.DockerContainer{Name: "app", Image: "registry.example.com/team/app:1"}
	h.Freeze()
	_, err := c.Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "the host's credentials for registry.example.com may pull it") {
		t.Fatalf("plan: %v", err)
	}
	if strings.Contains(err.Error(), "private-secret-3") || strings.Contains(err.Error(), auth) {
		t.Error("a secret in the error")
	}
	if d.DistributionAuth("registry.example.com/team/app:1") == "" {
		t.Error("the check sent no credentials")
	}
}

// registryUnreachable is Docker 20.10's answer for a registry whose name
// does not resolve (seen on the fleet), as the client returns it.
func registryUnreachable(registry string) error {
	return cerrdefs.ErrInternal.WithMessage(`Error response from daemon: Get "https://` + registry + `/v2/": dial tcp: lookup ` + registry + ` on 127.0.0.11:53: no such host`)
}

// A reference's registry, and a Docker Hub reference under Docker Hub's own
// name (which the daemon sends to no mirror).
func TestImageDomainAndHubRef(t *testing.T) {
	for _, tc := range []struct{ ref, domain, hub string }{
		{"docker:27-dind", "docker.io", "registry-1.docker.io/library/docker:27-dind"},
		{"gitlab/gitlab-runner:alpine-v17.11.0", "docker.io", "registry-1.docker.io/gitlab/gitlab-runner:alpine-v17.11.0"},
		{"docker.io/library/busybox", "docker.io", "registry-1.docker.io/library/busybox"},
		{"index.docker.io/team/app@sha256:0123", "docker.io", "registry-1.docker.io/team/app@sha256:0123"},
		{"registry.example.com:5000/team/app:1", "registry.example.com:5000", ""},
		{"localhost/app:1", "localhost", ""},
	} {
		if got := tasks.ImageDomain(tc.ref); got != tc.domain {
			t.Errorf("ImageDomain(%q) = %q, want %q", tc.ref, got, tc.domain)
		}
		if tc.hub != "" {
			if got := tasks.HubRef(tc.ref); got != tc.hub {
				t.Errorf("HubRef(%q) = %q, want %q", tc.ref, got, tc.hub)
			}
		}
	}
}
