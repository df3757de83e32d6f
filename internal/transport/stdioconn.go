package transport

import (
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// stdioConn is a remote command's stdin and stdout as a net.Conn (the
// command is `docker system dial-stdio`, which relays them to the daemon's
// socket). Its stderr is kept, bounded, for the error of a stream that ends
// before any data. Deadlines are not supported (the HTTP client does not
// need them; the context of each request bounds it).
type stdioConn struct {
	sess    *ssh.Session
	release func()
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  *capture
	done    chan struct{} // closed when the command has exited

	onData     func()                    // called once, at the first data read
	onEarlyEOF func(stderr string) error // the error of a stream that ends before any data

	mu      sync.Mutex
	gotData bool
	once    sync.Once
}

// stderrLimit bounds what is kept of dial-stdio's stderr.
const stderrLimit = 4 << 10

func newStdioConn(sess *ssh.Session, release func(), line string) (*stdioConn, error) {
	sc := &stdioConn{sess: sess, release: release, stderr: newCapture(stderrLimit), done: make(chan struct{})}
	var err error
	if sc.stdin, err = sess.StdinPipe(); err != nil {
		sc.closeSession()
		return nil, err
	}
	if sc.stdout, err = sess.StdoutPipe(); err != nil {
		sc.closeSession()
		return nil, err
	}
	sess.Stderr = sc.stderr
	if err := sess.Start(line); err != nil {
		sc.closeSession()
		return nil, err
	}
	go func() { _ = sess.Wait(); close(sc.done) }()
	return sc, nil
}

func (sc *stdioConn) Read(p []byte) (int, error) {
	n, err := sc.stdout.Read(p)
	if n > 0 {
		sc.mu.Lock()
		first := !sc.gotData
		sc.gotData = true
		sc.mu.Unlock()
		if first && sc.onData != nil {
			sc.onData()
		}
	}
	if err == io.EOF {
		sc.mu.Lock()
		early := !sc.gotData
		sc.mu.Unlock()
		if early && sc.onEarlyEOF != nil {
			// stderr may trail stdout's end by a moment.
			select {
			case <-sc.done:
			case <-time.After(2 * time.Second):
			}
			return n, sc.onEarlyEOF(string(sc.stderr.Bytes()))
		}
	}
	return n, err
}

func (sc *stdioConn) Write(p []byte) (int, error) { return sc.stdin.Write(p) }

// Close ends the command: its stdin closed (dial-stdio then exits), the
// session closed and its slot released.
func (sc *stdioConn) Close() error {
	sc.once.Do(func() {
		_ = sc.stdin.Close()
		sc.closeSession()
	})
	return nil
}

func (sc *stdioConn) closeSession() {
	_ = sc.sess.Close()
	sc.release()
}

func (sc *stdioConn) LocalAddr() net.Addr                { return stdioAddr{} }
func (sc *stdioConn) RemoteAddr() net.Addr               { return stdioAddr{} }
func (sc *stdioConn) SetDeadline(t time.Time) error      { return nil }
func (sc *stdioConn) SetReadDeadline(t time.Time) error  { return nil }
func (sc *stdioConn) SetWriteDeadline(t time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "docker-dial-stdio" }
func (stdioAddr) String() string  { return "docker system dial-stdio" }
