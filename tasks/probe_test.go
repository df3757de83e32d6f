package tasks_test

import (
	"context"
	"testing"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// A host that cannot batch probes gets them one by one, with the same results.
func TestRunProbesOneByOne(t *testing.T) {
	h := tasktest.New()
	h.SetFile("/etc/a", "x", 0o600, "root", "root")
	res, err := tasks.RunProbes(context.Background(), h, tasks.ReadProbe("/etc/a"), tasks.ReadProbe("/etc/b"), tasks.RunProbe("test", "-d", "/etc"))
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Exists || string(res[0].File.Content) != "x" || res[1].Exists || res[2].Output.ExitCode != 0 {
		t.Fatalf("results = %+v", res)
	}
	if len(h.Commands) != 1 {
		t.Errorf("commands = %v", h.Commands)
	}
}
