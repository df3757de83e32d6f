package tasktest

// The in-memory engine's image calls.

import (
	"context"
	"fmt"
	"iter"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
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
