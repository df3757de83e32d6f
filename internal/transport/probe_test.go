package transport

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dindops/dindops/tasks"
)

// probeCase is a batch whose outputs are awkward to frame: no trailing
// newline, binary bytes, text that starts like the nonce line, stderr and
// exit statuses, a missing file and a missing parent directory.
func probeCase(t *testing.T) (calls [][]string, check func(t *testing.T, res []tasks.Output)) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	tricky := filepath.Join(dir, "tricky")
	os.WriteFile(plain, []byte("no newline"), 0o640)
	trickyContent := "\n\ndindops-probe-00 1\n\xff\xfe\n"
	os.WriteFile(tricky, []byte(trickyContent), 0o600)
	calls = [][]string{
		{"r", plain},
		{"sh", "-c", "printf 'out'; printf 'err' >&2; exit 3"},
		{"r", tricky},
		{"r", filepath.Join(dir, "missing")},
		{"r", filepath.Join(dir, "no-dir", "missing")},
		{"true"},
		{"cat"}, // stdin is closed: EOF, not a hang
	}
	check = func(t *testing.T, res []tasks.Output) {
		t.Helper()
		if len(res) != len(calls) {
			t.Fatalf("%d outputs for %d probes", len(res), len(calls))
		}
		header := func(o tasks.Output) (string, string) {
			h, c, _ := strings.Cut(string(o.Stdout), "\n")
			return h, c
		}
		if h, c := header(res[0]); res[0].ExitCode != 0 || !strings.HasPrefix(h, "81a0 ") || c != "no newline" {
			t.Errorf("plain file: %q %+v", h, res[0])
		}
		if o := res[1]; o.ExitCode != 3 || string(o.Stdout) != "out" || string(o.Stderr) != "err" {
			t.Errorf("command: %+v", o)
		}
		if h, c := header(res[2]); res[2].ExitCode != 0 || !strings.HasPrefix(h, "8180 ") || c != trickyContent {
			t.Errorf("tricky file: %q %q", h, c)
		}
		if res[3].ExitCode != 10 || res[4].ExitCode != 13 {
			t.Errorf("missing file: %d, missing directory: %d (want 10, 13)", res[3].ExitCode, res[4].ExitCode)
		}
		for i := 5; i < 7; i++ {
			if o := res[i]; o.ExitCode != 0 || len(o.Stdout) != 0 || len(o.Stderr) != 0 {
				t.Errorf("probe %d: %+v", i, o)
			}
		}
	}
	return calls, check
}

// The batch's own framing, run by the local sh: stdout and stderr apart
// (an ordinary session), and merged under a pty (sudo's requiretty).
func TestProbeScriptFraming(t *testing.T) {
	nonce := "dindops-probe-0123456789abcdef"
	calls, check := probeCase(t)
	script := probeScript(nonce, calls)

	t.Run("separate streams", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("sh", "-c", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		res, err := splitProbeOutput(tasks.Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nonce, len(calls))
		if err != nil {
			t.Fatal(err)
		}
		check(t, res)
	})

	t.Run("pty", func(t *testing.T) {
		if _, err := exec.LookPath("script"); err != nil {
			t.Skip("no script(1) here to give the batch a pty")
		}
		f := filepath.Join(t.TempDir(), "batch.sh")
		os.WriteFile(f, []byte(script), 0o600)
		// As the transport asks for it: no CR added to output.
		cmd := exec.Command("script", "-qec", "stty -onlcr -echo; sh "+f, "/dev/null")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		res, err := splitProbeOutput(tasks.Output{Stdout: out}, nonce, len(calls))
		if err != nil {
			t.Fatalf("%v\n%q", err, out)
		}
		check(t, res)
	})

	t.Run("cut short", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("sh", "-c", probeScript(nonce, [][]string{{"true"}, {"sh", "-c", "kill -9 $PPID"}, {"true"}}))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		_, err := splitProbeOutput(tasks.Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: 137}, nonce, 3)
		if err == nil || !strings.Contains(err.Error(), "1 answers for 3 probes") {
			t.Errorf("err = %v", err)
		}
	})
}
