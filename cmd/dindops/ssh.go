package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dindops/dindops/internal/runner"
	"github.com/dindops/dindops/inventory"
	"github.com/dindops/dindops/tasks"
)

// sshCmdOptions are the flags of `dindops ssh`.
type sshCmdOptions struct {
	inventory string
	become    bool
	forks     int
	output    string
	noColor   bool
	verbose   int
	ssh       sshOptions
}

func newSSHCommand(stdout, stderr io.Writer) *cobra.Command {
	var o sshCmdOptions
	cmd := &cobra.Command{
		Use:   "ssh -i INVENTORY HOST-PATTERN -- COMMAND [ARG...]",
		Short: "Run one command on hosts (ad hoc), connected exactly as plan and apply connect",
		Long: `ssh runs COMMAND with its arguments (no shell: use "sh -c '...'" for one) on
every host matching HOST-PATTERN, up to --forks at once, and prints each host's
output in inventory order. It reaches hosts as plan and apply do: the same
inventory fields, ~/.ssh/config, bastions (jump), host key policy and become.
The command's standard input is empty (it reads end of file at once).

Output that is not valid UTF-8 is shown with the odd bytes escaped (\xNN);
with --output json it is kept exactly, base64-encoded, beside the escaped text.

Exit codes: 0 every host ran the command and it exited 0; 1 a host failed,
was unreachable, or the command exited non-zero; 2 bad usage or input.`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash != 1 || len(args) < 2 {
				return fmt.Errorf("want HOST-PATTERN -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ssh.connectTimeoutSet = cmd.Flags().Changed("connect-timeout")
			return runSSH(cmd.Context(), &o, args[0], args[1:], stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.inventory, "inventory", "i", "", "inventory file (YAML) naming the hosts (required)")
	f.BoolVarP(&o.become, "become", "b", false, "run the command as the hosts' become_user (root) through sudo")
	f.IntVarP(&o.forks, "forks", "f", 20, "how many hosts to work on at once")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&o.noColor, "no-color", false, "no colours in the output")
	f.CountVarP(&o.verbose, "verbose", "v", "log more to stderr (-v: SSH settings of each host, -vv: every command)")
	o.ssh.register(cmd)
	_ = cmd.MarkFlagRequired("inventory")
	return cmd
}

// sshResult is one host's outcome.
type sshResult struct {
	Host         string `json:"host"`
	Status       string `json:"status"` // ok, failed (non-zero exit or error), unreachable
	ExitCode     *int   `json:"exit_code,omitempty"`
	Stdout       string `json:"stdout"`
	StdoutBase64 string `json:"stdout_base64,omitempty"`
	Stderr       string `json:"stderr"`
	StderrBase64 string `json:"stderr_base64,omitempty"`
	Error        string `json:"error,omitempty"`
}

func runSSH(ctx context.Context, o *sshCmdOptions, pattern string, argv []string, stdout, stderr io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usageErr(fmt.Errorf("--output must be text or json, got %q", o.output))
	}
	if o.forks < 1 {
		return usageErr(fmt.Errorf("--forks must be at least 1"))
	}
	if o.ssh.connectTimeout <= 0 {
		return usageErr(fmt.Errorf("--connect-timeout must be more than 0"))
	}
	inv, err := inventory.Load(o.inventory)
	if err != nil {
		return usageErr(err)
	}
	hosts, err := inv.Select(pattern)
	if err != nil {
		return usageErr(err)
	}
	if len(hosts) == 0 {
		return usageErr(fmt.Errorf("no host of %s matches %q", inv.File, pattern))
	}
	color := !o.noColor && os.Getenv("NO_COLOR") == ""
	logger := newLogger(stderr, o.verbose, color)
	connector, err := o.ssh.connector(logger)
	if err != nil {
		return usageErr(err)
	}
	results := make([]sshResult, len(hosts))
	sem := make(chan struct{}, o.forks)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = sshOne(ctx, connector, h, o.become, argv)
		}()
	}
	wg.Wait()
	failed := false
	for _, r := range results {
		failed = failed || r.Status != "ok"
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Command []string    `json:"command"`
			Hosts   []sshResult `json:"hosts"`
		}{argv, results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			printSSHResult(stdout, r)
		}
	}
	if o.verbose > 0 {
		connector.logStats(logger)
	}
	if failed {
		return &exitError{code: exitHostFailed}
	}
	return nil
}

// sshOne connects to h and runs argv there.
func sshOne(ctx context.Context, connector *sshConnector, h *inventory.Host, become bool, argv []string) sshResult {
	r := sshResult{Host: h.Name}
	conn, err := connector.Connect(ctx, h)
	if err != nil {
		r.Status, r.Error = "failed", err.Error()
		if runner.IsUnreachable(err) {
			r.Status = "unreachable"
		}
		return r
	}
	defer conn.Close()
	out, err := conn.Host(become || h.Become).Run(ctx, tasks.Cmd{Args: argv})
	r.Stdout, r.StdoutBase64 = textAndRaw(out.Stdout)
	r.Stderr, r.StderrBase64 = textAndRaw(out.Stderr)
	if err != nil {
		r.Status, r.Error = "failed", err.Error()
		if runner.IsUnreachable(err) {
			r.Status = "unreachable"
		}
		return r
	}
	code := out.ExitCode
	r.ExitCode = &code
	r.Status = "ok"
	if code != 0 {
		r.Status = "failed"
	}
	return r
}

// textAndRaw returns b as text with anything that is not printable UTF-8
// escaped, and, when that escaping changed something, b in base64.
func textAndRaw(b []byte) (string, string) {
	s := escapeBytes(b)
	if s == string(b) {
		return s, ""
	}
	return s, base64.StdEncoding.EncodeToString(b)
}

// escapeBytes shows invalid UTF-8 and control characters (other than
// newline, tab and carriage return) as \xNN, so that a command's output can
// neither break JSON nor drive the terminal.
func escapeBytes(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r < 0x20 && r != '\n' && r != '\t' && r != '\r', r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		default:
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

func printSSHResult(w io.Writer, r sshResult) {
	switch {
	case r.Status == "unreachable":
		fmt.Fprintf(w, "== %s: UNREACHABLE: %s\n", r.Host, r.Error)
	case r.Error != "":
		fmt.Fprintf(w, "== %s: FAILED: %s\n", r.Host, r.Error)
	default:
		fmt.Fprintf(w, "== %s: exit %d\n", r.Host, *r.ExitCode)
	}
	if r.Stdout != "" {
		fmt.Fprint(w, withNewline(r.Stdout))
	}
	if r.Stderr != "" {
		fmt.Fprintf(w, "-- stderr of %s:\n%s", r.Host, withNewline(r.Stderr))
	}
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
