package tasks

// The Docker daemon that runs inside a container on the host (a
// docker:dind container), reached as a client on the container's network
// reaches it: over TCP from the host (TCPDialer), with TLS and dind's own
// client certificates when the container makes them.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// nestedDaemon is where the daemon inside a container listens, as found
// from the container's inspect.
type nestedDaemon struct {
	container string // its name, which dind's server certificate names
	addr      string // "ip:port" on the container's first network with an address
	network   string
	// certDir is the host directory of the container's client
	// certificates ($DOCKER_TLS_CERTDIR/client), "" for plain TCP.
	certDir string
	// startedAt is when the container last started: a daemon that
	// started moments ago may not listen yet.
	startedAt time.Time
}

// findNestedDaemon reads where the daemon of container c listens, by the
// contract of the docker:dind image's entrypoint (docker-library/docker,
// dockerd-entrypoint.sh; https://hub.docker.com/_/docker "TLS"): with
// DOCKER_TLS_CERTDIR set it listens on 2376 with TLS and writes client
// certificates to $DOCKER_TLS_CERTDIR/client; with it empty, plain TCP on
// 2375. The client directory must be a mount (a volume), so the host can
// read it.
func findNestedDaemon(c container.InspectResponse) (nestedDaemon, error) {
	name := strings.TrimPrefix(c.Name, "/")
	d := nestedDaemon{container: name}
	if c.State == nil || !c.State.Running {
		return d, fmt.Errorf("container %s is %s: its daemon does not run", name, describeState(c.State))
	}
	d.startedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	certs := ""
	if c.Config != nil {
		for _, e := range c.Config.Env {
			if v, ok := strings.CutPrefix(e, "DOCKER_TLS_CERTDIR="); ok {
				certs = strings.TrimRight(v, "/")
			}
		}
	}
	port := "2375"
	if certs != "" {
		port = "2376"
		client := certs + "/client"
		best := ""
		for _, m := range c.Mounts {
			dst := strings.TrimRight(m.Destination, "/")
			if (client == dst || strings.HasPrefix(client, dst+"/")) && len(dst) >= len(best) {
				best, d.certDir = dst, m.Source+strings.TrimPrefix(client, dst)
			}
		}
		if d.certDir == "" {
			return d, fmt.Errorf("container %s makes TLS certificates (DOCKER_TLS_CERTDIR=%s) but has no mount holding %s: mount a volume there, so its client certificates can be read from the host", name, certs, client)
		}
	}
	var nets []string
	if c.NetworkSettings != nil {
		for n, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				nets = append(nets, n)
			}
		}
	}
	if len(nets) == 0 {
		return d, &nestedUnreachableError{d: d, err: errors.New("the container has no address on any network (is it disconnected from its network?)")}
	}
	sort.Strings(nets)
	d.network = nets[0]
	d.addr = net.JoinHostPort(c.NetworkSettings.Networks[d.network].IPAddress.String(), port)
	return d, nil
}

// certFileError is a client certificate file that is missing, empty or
// not what it should be.
type certFileError struct {
	Path string
	Why  string
}

func (e *certFileError) Error() string { return e.Path + " " + e.Why }

// loadClientTLS reads ca.pem, cert.pem and key.pem (the files docker's
// client reads from DOCKER_CERT_PATH) from dir on the host, in one round
// trip, and returns TLS client settings that verify the server's
// certificate against that CA for serverName. A *certFileError names a
// file that is missing or not PEM.
func loadClientTLS(ctx context.Context, h Host, dir, serverName string, verify bool) (*tls.Config, error) {
	names := []string{"ca.pem", "cert.pem", "key.pem"}
	probes := make([]Probe, len(names))
	for i, n := range names {
		probes[i] = ReadProbe(dir + "/" + n)
	}
	res, err := RunProbes(ctx, h, probes...)
	if err != nil {
		return nil, fmt.Errorf("reading the client certificates in %s: %w", dir, err)
	}
	for i, r := range res {
		switch {
		case r.Err != nil:
			return nil, &certFileError{Path: dir + "/" + names[i], Why: r.Err.Error()}
		case !r.Exists:
			return nil, &certFileError{Path: dir + "/" + names[i], Why: "does not exist"}
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(res[0].File.Content) {
		return nil, &certFileError{Path: dir + "/ca.pem", Why: "holds no PEM certificate"}
	}
	cert, err := tls.X509KeyPair(res[1].File.Content, res[2].File.Content)
	if err != nil {
		return nil, &certFileError{Path: dir + "/cert.pem", Why: "with key.pem: " + err.Error()}
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: serverName,
		InsecureSkipVerify: !verify, MinVersion: tls.VersionTLS12}, nil
}

// nestedClient is an Engine API client of d's daemon, on connections the
// host opens (DialTCP), TLS-verified for the container's name when the
// daemon uses TLS. The client negotiates the API version with the daemon.
func nestedClient(ctx context.Context, h Host, d nestedDaemon) (*client.Client, error) {
	var tlsCfg *tls.Config
	if d.certDir != "" {
		var err error
		if tlsCfg, err = loadClientTLS(ctx, h, d.certDir, d.container, true); err != nil {
			return nil, err
		}
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return dialDaemon(ctx, h, d.addr, tlsCfg) }
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	tr := &http.Transport{DialContext: dial, DialTLSContext: dial, MaxIdleConnsPerHost: 2}
	_, port, _ := net.SplitHostPort(d.addr)
	return client.New(client.WithHost("tcp://"+net.JoinHostPort(d.container, port)), client.WithScheme(scheme),
		client.WithHTTPClient(&http.Client{Transport: tr}))
}

// dialDaemon opens a connection from h to a daemon at addr, TLS with cfg
// (handshake done) unless cfg is nil.
func dialDaemon(ctx context.Context, h Host, addr string, cfg *tls.Config) (net.Conn, error) {
	c, err := DialTCP(ctx, h, addr)
	if err != nil || cfg == nil {
		return c, err
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// nestedUnreachableError is a daemon in a container that does not answer
// from the host (or the host cannot reach it at all).
type nestedUnreachableError struct {
	d    nestedDaemon
	hint string
	err  error
}

func (e *nestedUnreachableError) Error() string {
	if e.d.addr == "" {
		return fmt.Sprintf("the daemon in container %s cannot be reached: %v%s", e.d.container, e.err, e.hint)
	}
	return fmt.Sprintf("the daemon in container %s (%s on network %s) does not answer from the host: %v%s", e.d.container, e.d.addr, e.d.network, e.err, e.hint)
}
func (e *nestedUnreachableError) Unwrap() error { return e.err }

// nestedStartGrace is how long after its container started a daemon
// that does not answer yet is waited for.
const nestedStartGrace = 90 * time.Second

// connectNested pings d's daemon, waiting (every second) while its
// container started less than nestedStartGrace ago and the daemon does not
// answer yet: dind makes its certificates, then dockerd starts (and
// without --tls=false, a plain-TCP dockerd of moby 27+ waits ~16 s before
// it listens).
func connectNested(ctx context.Context, h Host, d nestedDaemon, now func() time.Time) (*client.Client, error) {
	for {
		cli, err := nestedClient(ctx, h, d)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, err = cli.Ping(pctx, client.PingOptions{})
			cancel()
			if err == nil {
				return cli, nil
			}
			cli.Close()
		}
		if errors.Is(err, ErrNoTCPForwarding) || errors.Is(err, ErrNoTCPDialer) {
			return nil, &nestedUnreachableError{d: d, hint: " (allow TCP forwarding for the login user in sshd_config: AllowTcpForwarding local)", err: err}
		}
		if d.startedAt.IsZero() || now().Sub(d.startedAt) > nestedStartGrace {
			return nil, &nestedUnreachableError{d: d, err: err}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
