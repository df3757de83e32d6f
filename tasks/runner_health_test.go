package tasks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dindops/dindops/fixtures/fakegitlab"
	"github.com/dindops/dindops/tasks"
	"github.com/dindops/dindops/tasks/tasktest"
)

// fakeDind answers the two Engine API requests the health check makes, as
// dockerd does.
var fakeDind = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.47")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		fmt.Fprint(w, "OK")
	case strings.HasSuffix(r.URL.Path, "/version"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"Version":"27.5.1","ApiVersion":"1.47","MinAPIVersion":"1.24"}`)
	default:
		http.NotFound(w, r)
	}
})

// healthEnv is a host with the shipped playbook's runner and dind
// containers on the runner network, a config.toml, and listeners that
// stand for what listens at each address:port on the host's networks.
type healthEnv struct {
	t         *testing.T
	h         *tasktest.Host
	d         *tasktest.Docker
	gitlab    *gitlabFixture
	listeners map[string]string // "ip:port" -> the test server's address
	token     string
}

func newHealthEnv(t *testing.T) *healthEnv {
	t.Helper()
	h, d := dockerHost(t)
	e := &healthEnv{t: t, h: h, d: d, gitlab: newGitLab(t, fakegitlab.Options{}), listeners: map[string]string{}}
	_, e.token = e.gitlab.fake.CreateRunner(fakegitlab.NewRunner{Description: "build-1"})
	if err := d.RunContainer(client.ContainerCreateOptions{Name: "gitlab-dind", Config: &container.Config{Image: "docker:27-dind"},
		HostConfig: &container.HostConfig{Binds: []string{"gitlab-dind-certs:/certs"}, NetworkMode: "gitlab-runner-net"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.RunContainer(client.ContainerCreateOptions{Name: "gitlab-runner", Config: &container.Config{Image: "gitlab/gitlab-runner:alpine-v17.11.0"},
		HostConfig: &container.HostConfig{Binds: []string{"/srv/gitlab-runner/config:/etc/gitlab-runner", "gitlab-dind-certs:/certs:ro"}, NetworkMode: "gitlab-runner-net"}}); err != nil {
		t.Fatal(err)
	}
	e.config(`host = "tcp://gitlab-dind:2375"`, "")
	h.SetFile(sysIDPath, "s_0123456789ab\n", 0o600, "root", "root")
	h.SetDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		if to, ok := e.listeners[addr]; ok {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", to)
		}
		return nil, fmt.Errorf("connecting to %s: %w", addr, syscall.ECONNREFUSED)
	})
	return e
}

// config writes config.toml with the runner's [runners.docker] lines
// and top-level lines.
func (e *healthEnv) config(docker, top string) {
	e.h.SetFile(cfgPath, fmt.Sprintf(`concurrent = 4
%s

[[runners]]
  name = "build-1"
  url = %q
  token = %q
  executor = "docker"
  [runners.docker]
    %s
    image = "docker:27"
`, top, e.gitlab.srv.URL, e.token, strings.ReplaceAll(docker, "\n", "\n    ")), 0o600, "root", "root")
}

// ip is the named container's address on the runner network.
func (e *healthEnv) ip(name string) string {
	return e.d.Container(name).NetworkSettings.Networks["gitlab-runner-net"].IPAddress.String()
}

// listen makes srv answer at the container's address and port.
func (e *healthEnv) listen(name, port string, srv *httptest.Server) {
	e.listeners[net.JoinHostPort(e.ip(name), port)] = srv.Listener.Addr().String()
}

func (e *healthEnv) check(o tasks.CheckOptions) tasks.Health {
	e.t.Helper()
	c := &tasks.RunnerHealth{ConfigFile: cfgPath, Name: "build-1", Container: "gitlab-runner"}
	if err := c.Validate(); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Prepare(e.gitlab.controller()); err != nil {
		e.t.Fatal(err)
	}
	tasks.SetHealthRetry(c, 10*time.Millisecond)
	return c.Check(context.Background(), e.h, o)
}

func wantHealth(t *testing.T, got tasks.Health, status tasks.HealthStatus, problem tasks.HealthProblem, reason string) {
	t.Helper()
	if got.Status != status || got.Problem != problem || !strings.Contains(got.Reason, reason) {
		t.Fatalf("health = %s %s %q (checked %q); want %s %s with %q", got.Status, got.Problem, got.Reason, got.Checked, status, problem, reason)
	}
}

func TestRunnerHealthPlainTCP(t *testing.T) {
	e := newHealthEnv(t)
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2375", srv)
	got := e.check(tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	joined := strings.Join(got.Checked, "\n")
	for _, want := range []string{"dockerd answers", "runner container gitlab-runner runs", "dind answers at tcp://gitlab-dind:2375 (" + e.ip("gitlab-dind") + " on network gitlab-runner-net): Docker 27.5.1, API 1.47, plain TCP", "GitLab accepts the runner's token"} {
		if !strings.Contains(joined, want) {
			t.Errorf("checked %q lacks %q (warnings %q)", got.Checked, want, got.Warnings)
		}
	}
	// The token check is the runner's own verify call, with its token.
	if n := e.gitlab.fake.CountRequests("POST", "/api/v4/runners/verify"); n != 1 {
		t.Errorf("verify requests = %d, want 1", n)
	}
}

// Without a name, every runner of config.toml is checked: the daemon they
// share once, each token; one refused token is named.
func TestRunnerHealthEveryRunner(t *testing.T) {
	e := newHealthEnv(t)
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2375", srv)
	id2, second := e.gitlab.fake.CreateRunner(fakegitlab.NewRunner{Description: "build-2"})
	one, _ := e.h.File(cfgPath)
	e.h.SetFile(cfgPath, string(one.Content)+fmt.Sprintf(`
[[runners]]
  name = "build-2"
  url = %q
  token = %q
  executor = "docker"
  [runners.docker]
    host = "tcp://gitlab-dind:2375"
    image = "docker:27"
`, e.gitlab.srv.URL, second), 0o600, "root", "root")
	c := &tasks.RunnerHealth{ConfigFile: cfgPath, Container: "gitlab-runner"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(e.gitlab.controller()); err != nil {
		t.Fatal(err)
	}
	got := c.Check(context.Background(), e.h, tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	joined := strings.Join(got.Checked, "\n")
	if strings.Count(joined, "dind answers at") != 1 || !strings.Contains(joined, "GitLab accepts runner build-1's token") || !strings.Contains(joined, "GitLab accepts runner build-2's token") {
		t.Errorf("checked %q", got.Checked)
	}
	// Only the runners named (those of the gitlab_runner task's list that
	// are present): a hand-made entry is left alone.
	named := &tasks.RunnerHealth{ConfigFile: cfgPath, Container: "gitlab-runner", Runners: []tasks.RunnerHealthItem{{Name: "build-2"}, {Name: "gone", State: "absent"}}}
	if err := named.Prepare(e.gitlab.controller()); err != nil {
		t.Fatal(err)
	}
	got = named.Check(context.Background(), e.h, tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	if joined := strings.Join(got.Checked, "\n"); strings.Contains(joined, "build-1") || !strings.Contains(joined, "GitLab accepts the runner's token") {
		t.Errorf("checked %q", got.Checked)
	}
	named.Runners = []tasks.RunnerHealthItem{{Name: "gone", State: "absent"}}
	wantHealth(t, named.Check(context.Background(), e.h, tasks.CheckOptions{}), tasks.NotChecked, "", "decommissioned")
	named.Runners = []tasks.RunnerHealthItem{{Name: "build-3"}}
	wantHealth(t, named.Check(context.Background(), e.h, tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, `no runner named "build-3"`)

	e.gitlab.fake.DeleteRunner(id2)
	wantHealth(t, c.Check(context.Background(), e.h, tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemTokenInvalid, "refuses runner build-2's token")
	e.h.SetFile(cfgPath, "concurrent = 4\n", 0o600, "root", "root")
	wantHealth(t, c.Check(context.Background(), e.h, tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "has no runners")
}

func TestRunnerHealthPortMismatch(t *testing.T) {
	e := newHealthEnv(t)
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2375", srv)
	e.config(`host = "tcp://gitlab-dind:2376"`, "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindUnreachable, "nothing listens at tcp://gitlab-dind:2376")
}

func TestRunnerHealthTLSMismatch(t *testing.T) {
	// dind speaks TLS; config.toml gives the runner plain TCP.
	e := newHealthEnv(t)
	pki := newTestPKI(t, "gitlab-dind")
	srv := pki.server(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2375", srv)
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindTLSMismatch, "speaks TLS, but")

	// dind speaks plain TCP; config.toml gives the runner TLS.
	plain := httptest.NewServer(fakeDind)
	defer plain.Close()
	e.listen("gitlab-dind", "2376", plain)
	pki.install(e.h, "/var/lib/docker/volumes/gitlab-dind-certs/_data/client")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindTLSMismatch, "speaks plain TCP")
}

func TestRunnerHealthTLS(t *testing.T) {
	e := newHealthEnv(t)
	pki := newTestPKI(t, "gitlab-dind", "docker", "localhost")
	srv := pki.server(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2376", srv)
	pki.install(e.h, "/var/lib/docker/volumes/gitlab-dind-certs/_data/client")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	got := e.check(tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	if !strings.Contains(strings.Join(got.Checked, "\n"), "TLS, certificate verified for gitlab-dind") {
		t.Errorf("checked %q", got.Checked)
	}
	if !pki.sawClientCert {
		t.Error("dind saw no client certificate: the check must present the runner's")
	}
}

func TestRunnerHealthCertificateName(t *testing.T) {
	// C35: the certificate names the container's other names, not the one
	// the runner uses.
	e := newHealthEnv(t)
	pki := newTestPKI(t, "docker", "localhost")
	srv := pki.server(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2376", srv)
	pki.install(e.h, "/var/lib/docker/volumes/gitlab-dind-certs/_data/client")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindCertificate, "does not name gitlab-dind, the name the runner uses (it names docker, localhost)")

	// Another CA: certificates of a dind recreated since.
	named := newTestPKI(t, "gitlab-dind")
	srv2 := named.server(fakeDind)
	defer srv2.Close()
	e.listen("gitlab-dind", "2376", srv2)
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindCertificate, "not signed by the runner's CA")
}

func TestRunnerHealthCertificatesMissing(t *testing.T) {
	e := newHealthEnv(t)
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "/certs/client/ca.pem")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/elsewhere\"", "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "no mount of the runner container gitlab-runner holds it")
}

// dind's entrypoint writes its certificates again, in place, at every start
// (a docker restart restarts dind): a check after a change that reads them
// half written waits for them, as it waits for a daemon still starting.
func TestRunnerHealthWaitsForCertificatesBeingWritten(t *testing.T) {
	e := newHealthEnv(t)
	pki := newTestPKI(t, "gitlab-dind")
	srv := pki.server(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2376", srv)
	dir := "/var/lib/docker/volumes/gitlab-dind-certs/_data/client"
	pki.install(e.h, dir)
	e.h.SetFile(dir+"/cert.pem", "", 0o644, "root", "root")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	// Without a change, a half-written certificate is the answer at once.
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "client certificate")
	go func() {
		time.Sleep(50 * time.Millisecond)
		pki.install(e.h, dir)
	}()
	wantHealth(t, e.check(tasks.CheckOptions{AfterChange: true}), tasks.Healthy, "", "")
}

// A dockerd that is starting has its TLS port open but does not answer
// yet: after a change, that is waited for.
func TestRunnerHealthWaitsForATLSHandshake(t *testing.T) {
	e := newHealthEnv(t)
	pki := newTestPKI(t, "gitlab-dind")
	srv := pki.server(fakeDind)
	defer srv.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	e.listeners[net.JoinHostPort(e.ip("gitlab-dind"), "2376")] = silent.Addr().String()
	pki.install(e.h, "/var/lib/docker/volumes/gitlab-dind-certs/_data/client")
	e.config("host = \"tcp://gitlab-dind:2376\"\ntls_verify = true\ntls_cert_path = \"/certs/client\"", "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindUnreachable, "did not answer the TLS handshake")
	go func() {
		time.Sleep(300 * time.Millisecond)
		e.h.SetDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
		})
	}()
	wantHealth(t, e.check(tasks.CheckOptions{AfterChange: true}), tasks.Healthy, "", "")
}

func TestRunnerHealthDindNotOnTheRunnerNetwork(t *testing.T) {
	e := newHealthEnv(t)
	e.config(`host = "tcp://docker:2375"`, "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindNotFound, "no running container of that name or alias is on the runner container's networks (gitlab-runner-net)")

	e.d.Stop("gitlab-dind")
	e.config(`host = "tcp://gitlab-dind:2375"`, "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindUnreachable, "the dind container gitlab-dind, which tcp://gitlab-dind:2375 names, is exited")
}

func TestRunnerHealthDindAlias(t *testing.T) {
	e := newHealthEnv(t)
	e.d.Stop("gitlab-dind")
	if err := e.d.RunContainer(client.ContainerCreateOptions{Name: "dind-2", Config: &container.Config{Image: "docker:27-dind"},
		HostConfig: &container.HostConfig{NetworkMode: "gitlab-runner-net"}}); err != nil {
		t.Fatal(err)
	}
	// An alias on the network, as docker run --network-alias docker sets.
	e.d.Container("dind-2") // exists
	e.d.SetAlias("dind-2", "gitlab-runner-net", "docker")
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	e.listen("dind-2", "2375", srv)
	e.config(`host = "tcp://docker:2375"`, "")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Healthy, "", "")
}

func TestRunnerHealthRunner(t *testing.T) {
	e := newHealthEnv(t)
	e.d.Exit("gitlab-runner", 1)
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerNotRunning, "the runner container gitlab-runner is exited (exit code 1)")
	e.d.RemoveContainer("gitlab-runner")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerNotRunning, "does not exist")
}

func TestRunnerHealthConfig(t *testing.T) {
	e := newHealthEnv(t)
	e.h.SetFile(cfgPath, "concurrent = 4\n", 0o600, "root", "root")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, `has no runner named "build-1"`)
	e.h.SetFile(cfgPath, "concurrent = \n", 0o600, "root", "root")
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "not valid TOML")
	e.h.RemoveFile(cfgPath)
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerConfig, "does not exist")
}

func TestRunnerHealthDockerDown(t *testing.T) {
	e := newHealthEnv(t)
	e.d.StopDaemon()
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDockerDown, "the host's docker daemon does not answer")
}

func TestRunnerHealthToken(t *testing.T) {
	e := newHealthEnv(t)
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	e.listen("gitlab-dind", "2375", srv)
	e.token = "glrt-revoked"
	e.config(`host = "tcp://gitlab-dind:2375"`, "")
	got := e.check(tasks.CheckOptions{})
	wantHealth(t, got, tasks.Unhealthy, tasks.ProblemTokenInvalid, "refuses the runner's token")
	if strings.Contains(fmt.Sprint(got), "glrt-revoked") {
		t.Fatalf("the token is shown: %+v", got)
	}

	// A GitLab that cannot be reached: a warning, the runner keeps working.
	e.gitlab.srv.Close()
	got = e.check(tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "the runner's token was not checked") {
		t.Fatalf("warnings = %q", got.Warnings)
	}
}

func TestRunnerHealthMetrics(t *testing.T) {
	e := newHealthEnv(t)
	dind := httptest.NewServer(fakeDind)
	defer dind.Close()
	e.listen("gitlab-dind", "2375", dind)
	e.config(`host = "tcp://gitlab-dind:2375"`, `listen_address = ":9252"`)
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemRunnerMetrics, "do not answer")
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "gitlab_runner_version_info 1")
	}))
	defer metrics.Close()
	e.listen("gitlab-runner", "9252", metrics)
	got := e.check(tasks.CheckOptions{})
	wantHealth(t, got, tasks.Healthy, "", "")
	if !strings.Contains(strings.Join(got.Checked, "\n"), "runner metrics answer at "+e.ip("gitlab-runner")+":9252/metrics") {
		t.Errorf("checked %q", got.Checked)
	}
}

func TestRunnerHealthSettlesAfterAChange(t *testing.T) {
	e := newHealthEnv(t)
	srv := httptest.NewServer(fakeDind)
	defer srv.Close()
	// Nothing listens yet: without a change, that is the answer at once.
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.Unhealthy, tasks.ProblemDindUnreachable, "nothing listens")
	// After a change, the check waits for a daemon still starting.
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.h.SetDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
		})
	}()
	wantHealth(t, e.check(tasks.CheckOptions{AfterChange: true}), tasks.Healthy, "", "")
}

func TestRunnerHealthNoForwarding(t *testing.T) {
	e := newHealthEnv(t)
	e.h.SetDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return nil, fmt.Errorf("sshd refused a TCP channel to %s: %w", addr, tasks.ErrNoTCPForwarding)
	})
	wantHealth(t, e.check(tasks.CheckOptions{}), tasks.HealthUnknown, tasks.ProblemCheckNotPossible, "AllowTcpForwarding")
}

func TestRunnerHealthAbsent(t *testing.T) {
	c := &tasks.RunnerHealth{State: "absent"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Check(context.Background(), tasktest.New(), tasks.CheckOptions{}); got.Status != tasks.NotChecked {
		t.Fatalf("health = %+v", got)
	}
}

// testPKI is what dind's entrypoint makes for TLS: a CA, a server
// certificate for names, and a client certificate.
type testPKI struct {
	t                   *testing.T
	caPEM               []byte
	server_             tls.Certificate
	clientCert, clientK []byte
	pool                *x509.CertPool
	sawClientCert       bool
}

func newTestPKI(t *testing.T, names ...string) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "docker:dind CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dns,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := &testPKI{t: t, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	sc, sk := leaf("docker:dind server", x509.ExtKeyUsageServerAuth, names)
	p.server_, err = tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	p.clientCert, p.clientK = leaf("client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// server is a TLS server that, like dockerd --tlsverify, wants a client
// certificate signed by the CA.
func (p *testPKI) server(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			p.sawClientCert = true
		}
		h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are what the tests make
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server_}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
	srv.StartTLS()
	return srv
}

// install puts the client files where dind's entrypoint leaves them.
func (p *testPKI) install(h *tasktest.Host, dir string) {
	h.SetFile(dir+"/ca.pem", string(p.caPEM), 0o644, "root", "root")
	h.SetFile(dir+"/cert.pem", string(p.clientCert), 0o644, "root", "root")
	h.SetFile(dir+"/key.pem", string(p.clientK), 0o600, "root", "root")
}
