// Command floor is the benchmark's lower bound: the least a Go program must
// do to issue a given number of remote commands, SFTP requests and Docker
// Engine API requests on every host. It opens one SSH connection per host
// (all hosts at once, host keys checked against known_hosts), runs "true"
// in a new session once per command, one after the other, then opens one
// SFTP session and makes the SFTP requests (stat of "/") one after the
// other, then opens one direct-streamlocal@openssh.com channel to the
// host's /var/run/docker.sock on the same connection and sends the API
// requests over it one after the other (HTTP/1.1 GET /_ping, keep-alive,
// each answer checked to be 200). The counts per host come from dindops's
// own -v output for the same run ("round trips"), written by the benchmark
// into the targets file; the physical floor (floor-physical) is this
// program with one command per host and nothing else.
//
//	floor -targets targets.json
//
// It prints nothing on success and exits 1 when any host fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

type target struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Commands int    `json:"commands"`
	SFTP     int    `json:"sftp"`
	API      int    `json:"api"`
	// Via is how dindops reached the API on this host: streamlocal (the
	// floor's way) or dial-stdio, which the floor does not do.
	Via string `json:"via"`
}

type targets struct {
	User         string   `json:"user"`
	IdentityFile string   `json:"identity_file"`
	KnownHosts   string   `json:"known_hosts"`
	Hosts        []target `json:"hosts"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("targets", "", "JSON file: user, identity_file, known_hosts, hosts[{name, address, port, commands, sftp, api}]")
	socket := fs.String("docker-socket", "/var/run/docker.sock", "the Docker daemon's socket on the hosts (the API requests' channel)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: floor -targets FILE")
		return 2
	}
	t, cfg, err := load(*path)
	if err != nil {
		fmt.Fprintln(stderr, "floor:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	errs := make([]error, len(t.Hosts))
	var wg sync.WaitGroup
	for i, h := range t.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = converge(ctx, cfg, h, *socket)
		}()
	}
	wg.Wait()
	code := 0
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "floor: %s: %v\n", t.Hosts[i].Name, err)
			code = 1
		}
	}
	return code
}

func load(path string) (*targets, *ssh.ClientConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var t targets
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	key, err := os.ReadFile(t.IdentityFile)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.IdentityFile, err)
	}
	hostKeys, err := knownhosts.New(t.KnownHosts)
	if err != nil {
		return nil, nil, err
	}
	return &t, &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         15 * time.Second,
	}, nil
}

// converge issues h's commands, SFTP requests and API requests over one
// connection.
func converge(ctx context.Context, cfg *ssh.ClientConfig, h target, socket string) error {
	if h.API > 0 && h.Via != "" && h.Via != "streamlocal" {
		return fmt.Errorf("dindops reached the Docker API via %s; the floor only opens a direct-streamlocal channel", h.Via)
	}
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	for i := 0; i < h.Commands; i++ {
		s, err := client.NewSession()
		if err != nil {
			return err
		}
		err = s.Run("true")
		s.Close()
		if err != nil {
			return fmt.Errorf("command %d: %w", i+1, err)
		}
	}
	if h.SFTP > 0 {
		sc, err := sftp.NewClient(client)
		if err != nil {
			return fmt.Errorf("sftp: %w", err)
		}
		defer sc.Close()
		for i := 0; i < h.SFTP; i++ {
			if _, err := sc.Stat("/"); err != nil {
				return fmt.Errorf("sftp request %d: %w", i+1, err)
			}
		}
	}
	if h.API > 0 {
		conn, err := client.Dial("unix", socket)
		if err != nil {
			return fmt.Errorf("direct-streamlocal channel to %s: %w", socket, err)
		}
		defer conn.Close()
		if err := apiRequests(ctx, conn, h.API); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// apiRequests sends n Docker Engine API requests (GET /_ping, the cheapest
// real one) over conn, one after the other, HTTP/1.1 with keep-alive, and
// checks that each is answered 200. conn is the only connection: the
// requests never dial another (one that would is an error).
func apiRequests(ctx context.Context, conn net.Conn, n int) error {
	var dialed atomic.Bool
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if dialed.Swap(true) {
				return nil, errors.New("the API connection closed before the last request")
			}
			return conn, nil
		},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := 1; i <= n; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("API request %d: %w", i, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("API request %d: %w", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("API request %d: GET /_ping answered %s", i, resp.Status)
		}
	}
	return nil
}
