package tasks_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// helper_image is written when given, removed when given as "" (the
// shipped playbook's default), and left alone when left out.
func TestGitLabRunnerHelperImage(t *testing.T) {
	f := newGitLab(t, fakegitlab.Options{})
	_, glrt := f.fake.CreateRunner(fakegitlab.NewRunner{})
	h := tasktest.New()
	const img = "gitlab/gitlab-runner-helper:x86_64-v17.11.0"
	helper := func(v string) func(*tasks.GitLabRunner) {
		return func(g *tasks.GitLabRunner) { g.Docker.HelperImage = ptr(v) }
	}
	tasktest.Converge(t, f.mustPrepare(f.task(glrt, helper(""))), h)
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["helper_image"] != nil {
		t.Fatalf("empty helper_image written: %v", d)
	}

	changes := tasktest.Converge(t, f.mustPrepare(f.task(glrt, helper(img))), h)
	if len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, []tasks.Field{{Name: "docker.helper_image", New: img}}) {
		t.Fatalf("helper_image set: %+v", changes)
	}
	if line := `+    helper_image = "` + img + `"`; !strings.Contains(changes[0].Diff, line) {
		t.Errorf("diff lacks %q:\n%s", line, changes[0].Diff)
	}
	// Left out: not managed.
	if got := plan(t, f.mustPrepare(f.task(glrt, nil)), h); len(got) != 0 {
		t.Errorf("helper_image left out: %+v", got)
	}

	changes = tasktest.Converge(t, f.mustPrepare(f.task(glrt, helper(""))), h)
	if len(changes) != 1 || !reflect.DeepEqual(changes[0].Fields, []tasks.Field{{Name: "docker.helper_image", Old: img}}) {
		t.Fatalf("helper_image removed: %+v", changes)
	}
	if d := runnersOf(t, decodeConfig(t, h))[0]["docker"].(map[string]any); d["helper_image"] != nil {
		t.Errorf("helper_image kept: %v", d)
	}
}
