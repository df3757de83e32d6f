package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

func mode(t *testing.T, s string) *tasks.Mode {
	t.Helper()
	m, err := tasks.ParseMode(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestFileConverges(t *testing.T) {
	h := tasktest.New()
	h.MkdirAll("/etc")
	f := &tasks.File{Path: "/etc/motd", Content: "hello\n", Mode: mode(t, "0640"), Owner: "root", Group: "adm"}
	changes := tasktest.Converge(t, f, h)
	if changes[0].Action != tasks.Create || !strings.Contains(changes[0].Diff, "+hello") {
		t.Errorf("first change = %+v", changes[0])
	}
	got, _ := h.File("/etc/motd")
	if string(got.Content) != "hello\n" || got.Mode != 0o640 || got.Group != "adm" {
		t.Errorf("file = %+v", got)
	}
}

func TestFileUpdateShowsOnlyWhatDiffers(t *testing.T) {
	h := tasktest.New()
	h.SetFile("/etc/motd", "hello\n", 0o600, "root", "root")
	f := &tasks.File{Path: "/etc/motd", Content: "hello\n", Mode: mode(t, "0644")}
	changes := tasktest.Converge(t, f, h)
	c := changes[0]
	if c.Action != tasks.Update || c.Diff != "" || len(c.Fields) != 1 || c.Fields[0].Name != "mode" {
		t.Fatalf("change = %+v", c)
	}
	if c.Fields[0].Old != "0600 (rw-------)" || c.Fields[0].New != "0644 (rw-r--r--)" {
		t.Errorf("mode field = %+v, want octal and symbolic", c.Fields[0])
	}
}

// C31 (ansible/ansible#14094): old file without final newline, and CRLF.
func TestFileDiffNoNewlineAndCRLF(t *testing.T) {
	h := tasktest.New()
	h.SetFile("/etc/a.conf", "one\ntwo", 0o644, "root", "root")
	h.SetFile("/etc/b.conf", "one\r\ntwo\r\n", 0o644, "root", "root")
	a := &tasks.File{Path: "/etc/a.conf", Content: "one\ntwo\n"}
	ca := tasktest.Converge(t, a, h)
	if !strings.Contains(ca[0].Diff, `\ No newline at end of file`) {
		t.Errorf("diff lacks the no-newline marker:\n%s", ca[0].Diff)
	}
	b := &tasks.File{Path: "/etc/b.conf", Content: "one\ntwo\n"}
	cb := tasktest.Converge(t, b, h)
	if !strings.Contains(cb[0].Diff, `-one\r`) || !strings.Contains(cb[0].Diff, "+one\n") {
		t.Errorf("diff does not show the carriage returns:\n%s", cb[0].Diff)
	}
}

// C02 (ReSearchITEng/kubeadm-playbook#98): rendered JSON with a trailing comma.
func TestFileRejectsInvalidJSONBeforeConnecting(t *testing.T) {
	f := &tasks.File{Path: "/etc/docker/daemon.json", Content: "{\n  \"storage-driver\": \"overlay2\",\n}\n"}
	err := f.Validate()
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "content" || !strings.Contains(err.Error(), "line 3, column 1") {
		t.Fatalf("Validate() = %v, want a content error at line 3, column 1", err)
	}
	f.Content = `{"a":1}{"b":2}`
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "concatenated") {
		t.Fatalf("concatenated objects: %v", err)
	}
}

func TestFileSensitiveHidesContent(t *testing.T) {
	h := tasktest.New()
	h.MkdirAll("/etc")
	f := &tasks.File{Path: "/etc/secret", Content: "hunter2\n", Sensitive: true}
	changes := tasktest.Converge(t, f, h)
	if strings.Contains(changes[0].Diff, "hunter2") {
		t.Fatalf("diff shows the secret: %s", changes[0].Diff)
	}
}

func TestFileAbsentAndValidateFailure(t *testing.T) {
	h := tasktest.New()
	h.SetFile("/etc/x", "x", 0o644, "root", "root")
	tasktest.Converge(t, &tasks.File{Path: "/etc/x", State: "absent"}, h)
	if _, ok := h.File("/etc/x"); ok {
		t.Fatal("file still there")
	}

	h.SetFile("/etc/sudoers", "old\n", 0o440, "root", "root")
	h.Handle("visudo", func(*tasktest.Host, []string, []byte) tasks.Output {
		return tasks.Output{ExitCode: 1, Stderr: []byte("syntax error near line 1")}
	})
	f := &tasks.File{Path: "/etc/sudoers", Content: "new\n", Mode: mode(t, "0440"), ValidateCmd: []string{"visudo", "-cf", "%s"}}
	changes, err := f.Plan(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(context.Background(), h, changes); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("apply = %v, want the validator's message", err)
	}
	if got, _ := h.File("/etc/sudoers"); string(got.Content) != "old\n" {
		t.Fatalf("file changed although validation failed: %q", got.Content)
	}
	if len(h.Paths()) != 1 {
		t.Fatalf("temporary file left behind: %v", h.Paths())
	}
}

// C29 (ansible/ansible#18321): mode 644 unquoted is read as decimal.
func TestModeForms(t *testing.T) {
	for in, want := range map[string]string{
		`"0644"`:         "0644 (rw-r--r--)",
		`"644"`:          "0644 (rw-r--r--)",
		`0644`:           "0644 (rw-r--r--)",
		`0o644`:          "0644 (rw-r--r--)",
		`"u=rw,g=r,o=r"`: "0644 (rw-r--r--)",
		`'0600'`:         "0600 (rw-------)",
		`"a=rx,u=rwx"`:   "0755 (rwxr-xr-x)",
	} {
		var v struct {
			Mode tasks.Mode `yaml:"mode"`
		}
		if err := yaml.Unmarshal([]byte("mode: "+in), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := v.Mode.String(); got != want {
			t.Errorf("%s = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`644`:       "ambiguous mode 644: quote it or write 0644",
		`"0999"`:    "invalid mode",
		`[1]`:       "quoted octal string",
		`"u=rwz"`:   "unknown permission",
		`"0100000"`: "invalid mode",
	} {
		var v struct {
			Mode tasks.Mode `yaml:"mode"`
		}
		err := yaml.Unmarshal([]byte("mode: "+in), &v)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: err = %v, want %q with its line", in, err, want)
		}
	}
}

func TestFileUnmanagedOwnerAndModeAreKept(t *testing.T) {
	h := tasktest.New()
	h.SetFile("/home/deploy/hello.txt", "old\n", 0o600, "deploy", "staff")
	changes := tasktest.Converge(t, &tasks.File{Path: "/home/deploy/hello.txt", Content: "new\n"}, h)
	if len(changes[0].Fields) != 0 || changes[0].Summary != "content" {
		t.Errorf("change = %+v; want content only", changes[0])
	}
	f, _ := h.File("/home/deploy/hello.txt")
	if f.Owner != "deploy" || f.Group != "staff" || f.Mode != 0o600 {
		t.Errorf("file = %+v; owner, group and mode must be kept when not managed", f)
	}
}

func TestFileMissingParentFailsAtPlan(t *testing.T) {
	h := tasktest.New()
	_, err := (&tasks.File{Path: "/etc/motd.d/dindops", Content: "x"}).Plan(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "parent directory /etc/motd.d does not exist") || !strings.Contains(err.Error(), "state: directory") {
		t.Fatalf("err = %v", err)
	}
	if n := h.RoundTrips(); n != 1 {
		t.Errorf("plan took %d round trips; the read answers whether the directory exists", n)
	}
	// The same on a real file system (tasktest.LocalHost).
	dir := t.TempDir()
	_, err = (&tasks.File{Path: dir + "/motd.d/dindops", Content: "x"}).Plan(context.Background(), &tasktest.LocalHost{})
	if err == nil || !strings.Contains(err.Error(), "parent directory "+dir+"/motd.d does not exist") {
		t.Errorf("local: err = %v", err)
	}
	changes, err := (&tasks.File{Path: dir + "/dindops", Content: "x"}).Plan(context.Background(), &tasktest.LocalHost{})
	if err != nil || len(changes) != 1 || changes[0].Action != tasks.Create {
		t.Errorf("local, directory exists: %+v, %v; want a create", changes, err)
	}
}

func TestFileDirectory(t *testing.T) {
	h := tasktest.New()
	d := &tasks.File{Path: "/srv/runner/config", State: "directory", Mode: mode(t, "0700"), Owner: "root", Group: "root"}
	changes := tasktest.Converge(t, d, h)
	if changes[0].Action != tasks.Create || !strings.Contains(changes[0].Summary, "create with parents, root:root, mode 0700") {
		t.Errorf("change = %+v", changes[0])
	}
	if !h.IsDir("/srv/runner/config") {
		t.Fatal("directory not made")
	}
	d.Mode = mode(t, "0750")
	changes = tasktest.Converge(t, d, h)
	if changes[0].Action != tasks.Update || changes[0].Fields[0].Name != "mode" {
		t.Errorf("change = %+v", changes[0])
	}
	h.SetFile("/srv/file", "x", 0o644, "root", "root")
	if _, err := (&tasks.File{Path: "/srv/file", State: "directory"}).Plan(context.Background(), h); err == nil || !strings.Contains(err.Error(), "is a regular file, not a directory") {
		t.Errorf("err = %v", err)
	}
}
