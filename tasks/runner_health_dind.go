package tasks

// runner_health, part 2: the dind daemon reached as the runner reaches it,
// and the runner's metrics endpoint.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// dindTarget is where config.toml points the runner's jobs.
type dindTarget struct {
	raw  string // as written, "tcp://gitlab-dind:2376"
	name string // the host name the runner uses (and TLS checks)
	port string
	ip   string // resolved as the runner resolves it
	via  string // the network it was found on ("" for an IP literal)
}

func (t dindTarget) String() string {
	s := fmt.Sprintf("%s (%s", t.raw, t.ip)
	if t.via != "" {
		s += " on network " + t.via
	}
	return s + ")"
}

// dind checks the daemon at dockerHost answers the runner (see RunnerHealth).
func (hr *healthRun) dind(ctx context.Context, runner container.InspectResponse, dockerHost, from string, tlsVerify bool, certPath string) (Health, bool) {
	useTLS := certPath != ""
	if dockerHost == "" {
		return hr.unknown(ProblemCheckNotPossible, "%s sets no docker host and the runner container has no DOCKER_HOST: jobs use the socket inside the runner container, which this check cannot reach", hr.r.ConfigFile), false
	}
	u, err := url.Parse(dockerHost)
	if err != nil || u.Host == "" {
		if err == nil && u.Scheme == "unix" {
			return hr.unknown(ProblemCheckNotPossible, "%s is %s, a socket inside the runner container, which this check cannot reach", from, dockerHost), false
		}
		return hr.fail(ProblemRunnerConfig, "%s is %q, not a tcp://HOST:PORT address", from, dockerHost), false
	}
	if u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https" {
		return hr.unknown(ProblemCheckNotPossible, "%s is %s: only tcp:// daemons are checked", from, dockerHost), false
	}
	t := dindTarget{raw: dockerHost, name: u.Hostname(), port: u.Port()}
	if t.port == "" {
		// docker's defaults (https://docs.docker.com/engine/daemon/remote-access/)
		t.port = "2375"
		if useTLS {
			t.port = "2376"
		}
	}
	if h, transient, ok := hr.resolve(ctx, runner, &t); !ok {
		return h, transient
	}

	var tlsCfg *tls.Config
	if useTLS {
		var h Health
		var transient bool
		if tlsCfg, h, transient = hr.tlsConfig(ctx, runner, certPath, t.name, tlsVerify); tlsCfg == nil {
			return h, transient
		}
	}
	addr := net.JoinHostPort(t.ip, t.port)
	first, err := DialTCP(ctx, hr.h, addr)
	if err != nil {
		return hr.dialProblem(t, err)
	}
	if tlsCfg != nil {
		tc := tls.Client(first, tlsCfg)
		limit := hr.r.handshakeTimeout
		if limit == 0 {
			limit = 10 * time.Second
		}
		hctx, cancel := context.WithTimeout(ctx, limit)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			tc.Close()
			return hr.tlsProblem(t, err, tlsVerify)
		}
		first = tc
	}
	// The client's first connection is the one just checked; any other
	// is dialled (and handshaken) the same way.
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		if c := first; c != nil {
			first = nil
			return c, nil
		}
		return dialDaemon(ctx, hr.h, addr, tlsCfg)
	}
	tr := &http.Transport{DialContext: dial, DialTLSContext: dial, MaxIdleConns: 1}
	defer tr.CloseIdleConnections()
	defer func() {
		if first != nil {
			first.Close()
		}
	}()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	cli, err := client.New(client.WithHost("tcp://"+net.JoinHostPort(t.name, t.port)), client.WithScheme(scheme),
		client.WithHTTPClient(&http.Client{Transport: tr, Timeout: 15 * time.Second}))
	if err != nil {
		return hr.fail(ProblemDindAPI, "docker client for %s: %v", t, err), false
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return hr.apiProblem(t, err, useTLS)
	}
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return hr.apiProblem(t, err, useTLS)
	}
	how := "plain TCP"
	switch {
	case tlsCfg != nil && tlsVerify:
		how = "TLS, certificate verified for " + t.name
	case tlsCfg != nil:
		how = "TLS, certificate not verified (tls_verify is false)"
	}
	hr.checked = append(hr.checked, fmt.Sprintf("dind answers at %s: Docker %s, API %s, %s", t, v.Version, v.APIVersion, how))
	return Health{Status: Healthy}, false
}

// resolve finds the address the runner's name for dind stands for: an IP
// literal as it is; else a container named or aliased so on one of the
// runner container's networks (docker's embedded DNS answers only those).
func (hr *healthRun) resolve(ctx context.Context, runner container.InspectResponse, t *dindTarget) (Health, bool, bool) {
	if ip := net.ParseIP(t.name); ip != nil {
		t.ip = ip.String()
		return Health{}, false, true
	}
	var nets []string
	if runner.NetworkSettings != nil {
		for n := range runner.NetworkSettings.Networks {
			nets = append(nets, n)
		}
	}
	sort.Strings(nets)
	if len(nets) == 0 {
		return hr.fail(ProblemDindNotFound, "the runner container %s is on no network, so %s cannot reach %s", hr.r.Container, hr.r.Container, t.raw), false, false
	}
	d := hr.docker
	// The common case: a container of that very name.
	stopped := ""
	if c, err := d.ContainerInspect(ctx, t.name, client.ContainerInspectOptions{}); err == nil {
		if c.Container.State != nil && !c.Container.State.Running {
			stopped = describeState(c.Container.State)
		}
		for _, n := range nets {
			if ep := endpointOn(c.Container, n); ep != nil && ep.IPAddress.IsValid() {
				t.ip, t.via = ep.IPAddress.String(), n
				return Health{}, false, true
			}
		}
	} else if !DockerNotFound(err) {
		return hr.fail(ProblemDockerDown, "inspecting container %s: %v", t.name, err), DockerUnreachable(err), false
	}
	if stopped != "" {
		return hr.fail(ProblemDindUnreachable, "the dind container %s, which %s names, is %s", t.name, t.raw, stopped), strings.HasPrefix(stopped, "restarting"), false
	}
	// An alias: look at every container on the runner's networks.
	for _, n := range nets {
		ni, err := d.NetworkInspect(ctx, n, client.NetworkInspectOptions{})
		if err != nil {
			continue
		}
		ids := sortedKeys(ni.Network.Containers)
		for _, id := range ids {
			c, err := d.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				continue
			}
			ep := endpointOn(c.Container, n)
			if ep == nil || !ep.IPAddress.IsValid() {
				continue
			}
			for _, a := range append(append([]string(nil), ep.Aliases...), ep.DNSNames...) {
				if a == t.name {
					t.ip, t.via = ep.IPAddress.String(), n
					return Health{}, false, true
				}
			}
		}
	}
	return hr.fail(ProblemDindNotFound, "%s names %s, but no running container of that name or alias is on the runner container's networks (%s): the runner cannot resolve it",
		t.raw, t.name, strings.Join(nets, ", ")), true, false
}

func endpointOn(c container.InspectResponse, network string) *network.EndpointSettings {
	if c.NetworkSettings == nil {
		return nil
	}
	return c.NetworkSettings.Networks[network]
}

// tlsConfig builds the runner's TLS client settings from the files in
// certPath (ca.pem, cert.pem, key.pem, as gitlab-runner reads them), found
// on the host through the runner container's mounts; nil and the problem
// when they cannot be had. transient is true for files missing, empty or
// not matching: docker's dind entrypoint (dockerd-entrypoint.sh,
// _tls_generate_certs) writes the certificates again, in place, every time
// the container starts, so a check just after a start can read them half
// written.
func (hr *healthRun) tlsConfig(ctx context.Context, runner container.InspectResponse, certPath, serverName string, verify bool) (cfg *tls.Config, h Health, transient bool) {
	hostDir := ""
	for _, m := range runner.Mounts {
		dst := strings.TrimRight(m.Destination, "/")
		if certPath == dst || strings.HasPrefix(certPath, dst+"/") {
			if len(dst) >= len(hostDir) { // the deepest mount wins
				hostDir = m.Source + strings.TrimPrefix(certPath, dst)
			}
		}
	}
	if hostDir == "" {
		return nil, hr.fail(ProblemRunnerConfig, "%s sets tls_cert_path %s, but no mount of the runner container %s holds it: the runner has no certificates", hr.r.ConfigFile, certPath, hr.r.Container), false
	}
	cfg, err := loadClientTLS(ctx, hr.h, hostDir, serverName, verify)
	var cf *certFileError
	switch {
	case errors.As(err, &cf):
		file := path.Base(cf.Path)
		return nil, hr.fail(ProblemRunnerConfig, "the runner's client certificate %s/%s (%s on the host) %s: dind has not made its client certificates yet, or the volume is not dind's", certPath, file, cf.Path, cf.Why), true
	case err != nil:
		return nil, hr.fail(ProblemRunnerConfig, "%v", err), true
	}
	return cfg, Health{}, false
}

// dialProblem words a TCP connection to dind that failed.
func (hr *healthRun) dialProblem(t dindTarget, err error) (Health, bool) {
	switch {
	case errors.Is(err, ErrNoTCPForwarding) || errors.Is(err, ErrNoTCPDialer):
		return hr.unknown(ProblemCheckNotPossible, "cannot reach %s from the host to check it: %v (allow TCP forwarding for the login user in sshd_config: AllowTcpForwarding local)", t, err), false
	case errors.Is(err, syscall.ECONNREFUSED):
		return hr.fail(ProblemDindUnreachable, "nothing listens at %s: the runner's jobs cannot reach dind (is dind listening on port %s? 2375 is docker's plain TCP port, 2376 its TLS port)", t, t.port), true
	}
	return hr.fail(ProblemDindUnreachable, "cannot connect to %s: %v", t, err), true
}

// tlsProblem words a TLS handshake with dind that failed.
func (hr *healthRun) tlsProblem(t dindTarget, err error, verify bool) (Health, bool) {
	var rec tls.RecordHeaderError
	var name x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &rec):
		return hr.fail(ProblemDindTLSMismatch, "dind at %s speaks plain TCP, but %s gives the runner TLS (tls_cert_path): set dind to TLS, or drop tls_cert_path and tls_verify and use port 2375", t, hr.r.ConfigFile), false
	case errors.As(err, &name):
		return hr.fail(ProblemDindCertificate, "dind's certificate at %s does not name %s, the name the runner uses (it names %s): add it to DOCKER_TLS_SAN, or use a name the certificate has",
			t, t.name, certNames(name.Certificate)), false
	case errors.As(err, &unknown):
		return hr.fail(ProblemDindCertificate, "dind's certificate at %s is not signed by the runner's CA (tls_cert_path/ca.pem): the runner's certificates are not this dind's (a dind recreated with new certificates?)", t), true
	case errors.As(err, &invalid):
		return hr.fail(ProblemDindCertificate, "dind's certificate at %s is not valid: %v", t, err), false
	case errors.Is(err, io.EOF) || strings.Contains(err.Error(), "bad certificate") || strings.Contains(err.Error(), "certificate required"):
		return hr.fail(ProblemDindCertificate, "dind at %s refused the runner's client certificate: %v", t, err), false
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		// A dockerd that is starting has its socket open (connections
		// wait in the backlog) before it serves: no answer is no verdict.
		return hr.fail(ProblemDindUnreachable, "dind at %s took the connection but did not answer the TLS handshake in time (a daemon still starting?): %v", t, err), true
	}
	return hr.fail(ProblemDindCertificate, "TLS with dind at %s failed: %v", t, err), false
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// apiProblem words an Engine API request to dind that failed.
func (hr *healthRun) apiProblem(t dindTarget, err error, useTLS bool) (Health, bool) {
	msg := err.Error()
	switch {
	case !useTLS && strings.Contains(msg, "HTTP request to an HTTPS server"):
		return hr.fail(ProblemDindTLSMismatch, "dind at %s speaks TLS, but %s gives the runner plain TCP (no tls_cert_path): give the runner dind's client certificates (tls_cert_path, tls_verify = true) and port 2376, or run dind without TLS", t, hr.r.ConfigFile), false
	case strings.Contains(msg, "bad certificate") || strings.Contains(msg, "certificate required"):
		return hr.fail(ProblemDindCertificate, "dind at %s refused the runner's client certificate: %v", t, err), false
	case errors.Is(err, syscall.ECONNREFUSED):
		return hr.fail(ProblemDindUnreachable, "dind at %s stopped answering: %v", t, err), true
	}
	return hr.fail(ProblemDindAPI, "something listens at %s but does not answer as a Docker daemon: %v", t, err), true
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "nothing"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// metrics checks the runner answers GET /metrics at listen_address.
func (hr *healthRun) metrics(ctx context.Context, runner container.InspectResponse, listen string) (Health, bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return hr.fail(ProblemRunnerConfig, "%s: listen_address %q is not HOST:PORT", hr.r.ConfigFile, listen), false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		hr.checked = append(hr.checked, "metrics not checked: listen_address "+listen+" is the runner container's loopback")
		return Health{Status: Healthy}, false
	}
	ip := ""
	if runner.NetworkSettings != nil {
		for _, n := range sortedKeys(runner.NetworkSettings.Networks) {
			if ep := runner.NetworkSettings.Networks[n]; ep != nil && ep.IPAddress.IsValid() {
				ip = ep.IPAddress.String()
				break
			}
		}
	}
	if ip == "" {
		return hr.unknown(ProblemCheckNotPossible, "the runner container %s has no address to check its metrics (listen_address %s) at", hr.r.Container, listen), false
	}
	addr := net.JoinHostPort(ip, port)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return DialTCP(ctx, hr.h, addr) }}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrNoTCPForwarding) {
			return hr.unknown(ProblemCheckNotPossible, "cannot reach the runner's metrics at %s from the host: %v", addr, err), false
		}
		return hr.fail(ProblemRunnerMetrics, "the runner's metrics (listen_address %s) do not answer at %s: %v", listen, addr, err), true
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return hr.fail(ProblemRunnerMetrics, "the runner's metrics at %s answer %s", addr, resp.Status), true
	}
	hr.checked = append(hr.checked, "runner metrics answer at "+addr+"/metrics")
	return Health{Status: Healthy}, false
}
