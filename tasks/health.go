package tasks

// Health checks: the part of a play that proves a host works, rather than
// changes it. A check kind is listed under a play's `health:`; the runner
// runs it after the play's tasks and handlers (apply), against the current
// state (plan), or alone (`dindops check`).

import (
	"context"
	"errors"
	"net"
	"sort"
)

// Checker is a health check bound to one host's variables. Check only
// reads: it never changes the host, in any mode. It returns the host's
// health; an error is never returned, a check that could not be made is
// Health{Status: HealthUnknown} with the reason.
type Checker interface {
	Check(ctx context.Context, h Host, o CheckOptions) Health
}

// CheckOptions say in which circumstances a check runs.
type CheckOptions struct {
	// AfterChange is true when the play changed the host in this run: a
	// daemon that was just started or recreated may need a moment, so a
	// problem that can be a daemon still starting is retried for a while
	// (each kind says how long) before it counts.
	AfterChange bool
}

// HealthStatus is the outcome of a health check.
type HealthStatus string

// The outcomes of a health check.
const (
	// Healthy: everything the check covers answered as it must.
	Healthy HealthStatus = "healthy"
	// Unhealthy: something the runner needs does not work; Problem says
	// what.
	Unhealthy HealthStatus = "unhealthy"
	// HealthUnknown: the check could not be made (the host refuses what
	// the check needs, such as TCP forwarding); it is not proof of a
	// fault, nor of health.
	HealthUnknown HealthStatus = "unknown"
	// NotChecked: there is nothing to check (a runner decommissioned on
	// purpose).
	NotChecked HealthStatus = "not_checked"
)

// HealthProblem is the kind of fault an unhealthy (or unknown) host has,
// for machines: the JSON output carries it beside the reason in words.
type HealthProblem string

// The problems a health check tells apart.
const (
	ProblemDockerDown        HealthProblem = "docker_down"        // the host's dockerd does not answer
	ProblemRunnerConfig      HealthProblem = "runner_config"      // config.toml is missing, unreadable, or has no such runner
	ProblemRunnerNotRunning  HealthProblem = "runner_not_running" // the runner container is missing or not running
	ProblemRunnerMetrics     HealthProblem = "runner_metrics"     // listen_address is set and does not answer
	ProblemDindNotFound      HealthProblem = "dind_not_found"     // config.toml's docker host names nothing on the runner's networks
	ProblemDindUnreachable   HealthProblem = "dind_unreachable"   // nothing listens at the address and port config.toml gives
	ProblemDindTLSMismatch   HealthProblem = "dind_tls_mismatch"  // one side speaks TLS, the other plain HTTP
	ProblemDindCertificate   HealthProblem = "dind_certificate"   // the TLS handshake fails: a certificate that does not name the host, or is not trusted
	ProblemDindAPI           HealthProblem = "dind_api"           // something answers but not as a Docker daemon
	ProblemTokenInvalid      HealthProblem = "token_invalid"      // GitLab refuses the runner's token
	ProblemCheckNotPossible  HealthProblem = "check_not_possible" // the host refuses what the check needs
	ProblemGitLabUnreachable HealthProblem = "gitlab_unreachable" // a warning only: the runner keeps working
)

// Health is a host's health as one check found it.
type Health struct {
	Status  HealthStatus  `json:"status"`
	Problem HealthProblem `json:"problem,omitempty"`
	// Reason says what is wrong, in words, when not healthy.
	Reason string `json:"reason,omitempty"`
	// Checked lists what answered, in the order checked ("dockerd",
	// "dind at tcp://gitlab-dind:2375 (172.18.0.2): Docker 27.5.1", ...).
	Checked []string `json:"checked,omitempty"`
	// Warnings are problems that do not make the host unhealthy (GitLab
	// not reachable from the controller: the runner keeps working).
	Warnings []string `json:"warnings,omitempty"`
}

// Worse returns the worse of a and b (unhealthy > unknown > healthy >
// not checked), keeping every warning and what both checked.
func Worse(a, b Health) Health {
	rank := map[HealthStatus]int{NotChecked: 0, Healthy: 1, HealthUnknown: 2, Unhealthy: 3}
	out := a
	if a.Status == "" || rank[b.Status] > rank[a.Status] {
		out = b
	}
	out.Checked = append(append([]string(nil), a.Checked...), b.Checked...)
	out.Warnings = append(append([]string(nil), a.Warnings...), b.Warnings...)
	if a.Status == "" {
		out.Checked, out.Warnings = b.Checked, b.Warnings
	}
	return out
}

// CheckKinds returns the health check kinds a play's `health:` may use, by
// their YAML key. Each constructor returns a new zero value to decode the
// check's options into.
func CheckKinds() map[string]func() Checker {
	return map[string]func() Checker{
		// one line per kind, kept sorted
		"runner_health": func() Checker { return &RunnerHealth{} },
	}
}

// CheckKindNames returns the names of CheckKinds, sorted.
func CheckKindNames() []string {
	var names []string
	for n := range CheckKinds() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TCPDialer is the optional Host ability to open a TCP connection from the
// host, as a process on it would (the SSH transport: a direct-tcpip
// channel, RFC 4254 section 7.2). Health checks use it to reach a
// container's address on a docker network the controller cannot route to.
// An error matching ErrNoTCPForwarding means the host refuses such
// channels (sshd's AllowTcpForwarding no), not that nothing listens.
type TCPDialer interface {
	DialTCP(ctx context.Context, address string) (net.Conn, error)
}

// ErrNoTCPForwarding is matched by DialTCP errors when the host refuses to
// open TCP connections on the controller's behalf.
var ErrNoTCPForwarding = errors.New("the host refuses TCP forwarding")

// ErrNoTCPDialer is returned by DialTCP for a Host without the TCPDialer
// ability.
var ErrNoTCPDialer = errors.New("this host offers no TCP connections")

// DialTCP opens a TCP connection from h to address ("ip:port").
func DialTCP(ctx context.Context, h Host, address string) (net.Conn, error) {
	d, ok := h.(TCPDialer)
	if !ok {
		return nil, ErrNoTCPDialer
	}
	return d.DialTCP(ctx, address)
}
