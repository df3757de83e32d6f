package tasktest

// The in-memory engine's image calls.

import (
	"context"
	"fmt"
	"iter"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (d *Docker) addImageLocked(ref string, img DockerImage) string {
	if img.ID == "" {
		img.ID = "sha256:" + hexID(img.Env, img.Cmd, img.Entrypoint, img.Labels, img.Volumes, img.StopSignal, ref)
	}
	d.images[img.ID] = &img
	d.tags[normRef(ref)] = img.ID
	return img.ID
}

func (d *Docker) findImage(ref string) *DockerImage {
	if id, ok := d.tags[normRef(ref)]; ok {
		return d.images[id]
	}
	if img := d.images[ref]; img != nil {
		return img
	}
	if img := d.images["sha256:"+ref]; img != nil {
		return img
	}
	return nil
}

func (e engine) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if err := e.call(ctx, false, "ImageInspect", ref); err != nil {
		return client.ImageInspectResult{}, err
	}
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	img := e.d.findImage(ref)
	if img == nil {
		return client.ImageInspectResult{}, noSuch("image", ref)
	}
	vols := map[string]struct{}{}
	for _, v := range img.Volumes {
		vols[v] = struct{}{}
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.Env, cfg.Cmd, cfg.Entrypoint, cfg.Labels, cfg.Volumes, cfg.StopSignal = img.Env, img.Cmd, img.Entrypoint, img.Labels, vols, img.StopSignal
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: img.ID, Config: cfg, Os: "linux", Architecture: "amd64"}}, nil
}

// pullResponse is a finished pull: Wait returns its error.
type pullResponse struct {
	err error
}

func (p pullResponse) Read([]byte) (int, error) {
	return 0, fmt.Errorf("fake docker: read the pull with Wait")
}

func (p pullResponse) Close() error { return nil }

func (p pullResponse) Wait(context.Context) error {
	return p.err
}

func (p pullResponse) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(yield func(jsonstream.Message, error) bool) {
		if p.err != nil {
			yield(jsonstream.Message{}, p.err)
		}
	}
}

func (e engine) ImagePull(ctx context.Context, ref string, o client.ImagePullOptions) (client.ImagePullResponse, error) {
	if err := e.call(ctx, true, "ImagePull", ref); err != nil {
		return nil, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pullAuth[normRef(ref)] = o.RegistryAuth
	img, ok := d.registry[normRef(ref)]
	if !ok {
		return pullResponse{err: cerrdefs.ErrNotFound.WithMessage(fmt.Sprintf("pull access denied for %s, repository does not exist or may require 'docker login'", ref))}, nil
	}
	d.addImageLocked(ref, img)
	return pullResponse{}, nil
}

// DistributionInspect answers as a daemon whose registry (its mirrors
// included) holds what AddRegistryImage put there: a reference it has not
// is "manifest unknown" (404, DockerNotFound), and SetRegistryAnswer's
// error, when set, is every answer. The reference's X-Registry-Auth is
// recorded (DistributionAuth). Docker Hub's own name,
// registry-1.docker.io/..., is the same registry here.
func (e engine) DistributionInspect(ctx context.Context, ref string, o client.DistributionInspectOptions) (client.DistributionInspectResult, error) {
	if err := e.call(ctx, false, "DistributionInspect", ref); err != nil {
		return client.DistributionInspectResult{}, err
	}
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	key := normRef(strings.TrimPrefix(ref, "registry-1.docker.io/"))
	d.distAuth[key] = o.EncodedRegistryAuth
	if d.registryErr != nil {
		return client.DistributionInspectResult{}, d.registryErr
	}
	img, ok := d.registry[key]
	if !ok {
		// What Docker 20.10 answers for a tag its registry has not (seen on
		// the fleet): 404 {"message":"manifest unknown: manifest unknown"}.
		return client.DistributionInspectResult{}, cerrdefs.ErrNotFound.WithMessage("Error response from daemon: manifest unknown: manifest unknown")
	}
	digest := "sha256:" + hexID("manifest", img.Env, img.Cmd, img.Entrypoint, img.Labels, img.Volumes, img.StopSignal, key)
	return client.DistributionInspectResult{DistributionInspect: registry.DistributionInspect{Descriptor: ocispec.Descriptor{
		MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: godigest.Digest(digest), Size: 1153}}}, nil
}
