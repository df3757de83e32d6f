package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/client"

	"github.com/dindops/dindops/tasks"
)

// engineSocket serves a tiny Docker Engine API (GET /_ping and
// /v1.41/info, as Docker 20.10 answers them) on a unix socket in a
// temporary directory, and counts the requests.
func engineSocket(t *testing.T) (path string, requests *atomic.Int64) {
	t.Helper()
	dir, err := os.MkdirTemp("", "eng") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	requests = new(atomic.Int64)
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Api-Version", "1.41")
		io.WriteString(w, "OK")
	})
	mux.HandleFunc("/v1.41/info", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Driver":"overlay2","Images":2,"Containers":1,"ServerVersion":"20.10.24"}`)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path, requests
}

// TestHelperDialStdio is not a test: run as the fake `docker` CLI by
// fakeDockerCLI, it does what `docker system dial-stdio` does, relaying
// stdin and stdout to $FAKE_DOCKER_SOCKET, or fails as the docker CLI does
// when no daemon answers.
func TestHelperDialStdio(t *testing.T) {
	sock := os.Getenv("FAKE_DOCKER_SOCKET")
	if sock == "" {
		t.Skip("the fake docker CLI of the dial-stdio tests")
	}
	fmt.Fprintln(os.Stderr) // keep the test framework's output off stdout
	if os.Getenv("FAKE_DOCKER_DOWN") != "" {
		fmt.Fprintf(os.Stderr, "Cannot connect to the Docker daemon at unix://%s. Is the docker daemon running?\n", sock)
		os.Exit(1)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.UnixConn).CloseWrite()
	}()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}

// fakeDockerCLI returns the environment of a host whose `docker` is a fake
// dial-stdio to sock (down: says the daemon is not running), logging its
// argv to the returned file.
func fakeDockerCLI(t *testing.T, sock string, down bool) (env []string, argvLog string) {
	t.Helper()
	bin := t.TempDir()
	argvLog = filepath.Join(t.TempDir(), "docker.argv")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >>%s\nexec %s -test.run='^TestHelperDialStdio$' 2>/dev/null\n", argvLog, self)
	if down {
		script = fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >>%s\necho 'Cannot connect to the Docker daemon at unix://%s. Is the docker daemon running?' >&2\nexit 1\n", argvLog, sock)
	}
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_DOCKER_SOCKET=" + sock}, argvLog
}

func dockerOf(t *testing.T, h tasks.Host) tasks.DockerEngine {
	t.Helper()
	api, err := tasks.Docker(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// The login user may open the socket: the API goes through a stream-local
// channel, and no command is started on the host.
func TestDockerAPIThroughStreamLocal(t *testing.T) {
	sock, requests := engineSocket(t)
	s := newServer(t, serverOpts{streamLocal: true})
	cfg := s.config()
	cfg.DockerSocket = sock
	var logs syncBuffer
	cfg.Logger = debugLogger(&logs)
	c := dial(t, cfg)
	api := dockerOf(t, c.Host(false))
	for range 3 {
		info, err := api.Info(context.Background(), client.InfoOptions{})
		if err != nil || info.Info.Driver != "overlay2" {
			t.Fatalf("info: %+v %v", info, err)
		}
	}
	if again := dockerOf(t, c.Host(false)); again != api {
		t.Error("a second Docker call made another client")
	}
	st := c.Stats()
	// The version is negotiated once (GET /_ping), then three infos.
	if st.APIRequests != 4 || requests.Load() != 4 || st.DockerCommands != 0 || st.Commands != 0 || st.DockerVia != ViaStreamLocal {
		t.Errorf("stats %+v, engine saw %d requests", st, requests.Load())
	}
	if !strings.Contains(logs.String(), "docker api path") || !strings.Contains(logs.String(), "via=streamlocal") {
		t.Errorf("-v does not say the path:\n%s", logs.String())
	}
}

// sshd refuses stream-local forwarding: `docker system dial-stdio` carries
// the API, with the reason logged, and the refused way is not tried again.
func TestDockerAPIFallsBackToDialStdio(t *testing.T) {
	sock, _ := engineSocket(t)
	env, argvLog := fakeDockerCLI(t, sock, false)
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.DockerSocket = sock
	var logs syncBuffer
	cfg.Logger = debugLogger(&logs)
	c := dial(t, cfg)
	api := dockerOf(t, c.Host(false))
	for range 2 {
		if info, err := api.Info(context.Background(), client.InfoOptions{}); err != nil || info.Info.Driver != "overlay2" {
			t.Fatalf("info: %+v %v", info, err)
		}
	}
	st := c.Stats()
	if st.DockerVia != ViaDialStdio || st.DockerCommands < 1 || st.APIRequests != 3 {
		t.Errorf("stats %+v", st)
	}
	if n := s.streamLocals.Load(); n != 1 {
		t.Errorf("%d stream-local attempts, want 1 (then dial-stdio is remembered)", n)
	}
	argv, _ := os.ReadFile(argvLog)
	if !strings.Contains(string(argv), "--host=unix://"+sock+" system dial-stdio") {
		t.Errorf("docker argv %q", argv)
	}
	if l := logs.String(); !strings.Contains(l, "via=dial-stdio") || !strings.Contains(l, "stream-local channel") {
		t.Errorf("-v does not say why dial-stdio:\n%s", l)
	}
}

// With become, dial-stdio runs under sudo -n as the become user.
func TestDockerAPIDialStdioUnderSudo(t *testing.T) {
	sock, _ := engineSocket(t)
	env, _ := fakeDockerCLI(t, sock, false)
	sudoEnv, sudoLog := fakeSudo(t, "nopasswd")
	// The fake sudo's PATH first, then the fake docker's.
	env = append([]string{sudoEnv[0] + ":" + strings.TrimPrefix(env[0], "PATH=")}, append(env[1:], sudoEnv[1:]...)...)
	s := newServer(t, serverOpts{env: env})
	cfg := s.config()
	cfg.DockerSocket = sock
	cfg.BecomeUser = "root"
	cfg.User = "tester"
	c := dial(t, cfg)
	if _, err := dockerOf(t, c.Host(true)).Info(context.Background(), client.InfoOptions{}); err != nil {
		t.Fatal(err)
	}
	argv, _ := os.ReadFile(sudoLog)
	if !strings.Contains(string(argv), "-n\n-u\nroot\n--\ndocker\n--host=unix://"+sock+"\nsystem\ndial-stdio") {
		t.Errorf("sudo argv:\n%s", argv)
	}
	if st := c.Stats(); st.DockerVia != ViaDialStdio {
		t.Errorf("stats %+v", st)
	}
}

// Neither way works: the error names both attempts, stays typed, and says
// what to change; a daemon that is down is told apart.
func TestDockerAPINeitherWayWorks(t *testing.T) {
	for _, down := range []bool{false, true} {
		sock := "/nonexistent/docker.sock"
		var env []string
		if down {
			env, _ = fakeDockerCLI(t, sock, true)
		} else {
			env = []string{"PATH=" + t.TempDir()} // no docker CLI
		}
		s := newServer(t, serverOpts{env: env, streamLocal: true})
		cfg := s.config()
		cfg.DockerSocket = sock
		c := dial(t, cfg)
		_, err := dockerOf(t, c.Host(false)).Info(context.Background(), client.InfoOptions{})
		var de *DockerDialError
		if !errors.As(err, &de) || de.StreamLocal == nil || de.DialStdio == nil {
			t.Fatalf("down=%v: want a *DockerDialError with both attempts, got %v", down, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "stream-local channel to "+sock) || !strings.Contains(msg, "docker system dial-stdio") {
			t.Errorf("down=%v: message does not name both attempts: %s", down, msg)
		}
		if got := errors.Is(err, tasks.ErrDockerUnreachable); got != down || tasks.DockerUnreachable(err) != down {
			t.Errorf("down=%v: ErrDockerUnreachable %v: %s", down, got, msg)
		}
		if down && !strings.Contains(msg, "service docker start") {
			t.Errorf("no hint to start docker: %s", msg)
		}
		if !down && !strings.Contains(msg, "docker group") {
			t.Errorf("no hint of what to change: %s", msg)
		}
	}
}

// A daemon reached through the socket before that stops answering is
// unreachable, said without starting a docker CLI.
func TestDockerAPIDaemonGoneAfterWorking(t *testing.T) {
	sock, _ := engineSocket(t)
	s := newServer(t, serverOpts{streamLocal: true})
	cfg := s.config()
	cfg.DockerSocket = sock
	c := dial(t, cfg)
	api := dockerOf(t, c.Host(false))
	if _, err := api.Info(context.Background(), client.InfoOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(sock) // the daemon is gone (its socket with it)
	c.dockers[0].close()
	_, err := api.Info(context.Background(), client.InfoOptions{})
	if !tasks.DockerUnreachable(err) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("want the daemon unreachable at %s, got %v", sock, err)
	}
	if st := c.Stats(); st.Commands != 0 || st.DockerCommands != 0 {
		t.Errorf("commands started: %+v", st)
	}
}

// Commands whose program is docker are counted; dockerd is not docker.
func TestDockerCommandsCounted(t *testing.T) {
	s := newServer(t, serverOpts{})
	c := dial(t, s.config())
	h := c.Host(false)
	for _, args := range [][]string{{"true"}, {"docker", "--version"}, {"dockerd", "--version"}} {
		if _, err := h.Run(context.Background(), tasks.Cmd{Args: args}); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Commands != 3 || st.DockerCommands != 1 {
		t.Errorf("stats %+v, want 3 commands of which 1 docker", st)
	}
}
