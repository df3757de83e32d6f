package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gofrs/flock"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// KnownKey is a known_hosts entry: the key and where it was read.
type KnownKey struct {
	File string
	Line int
	Key  ssh.PublicKey
}

// HostKeyError is a host whose key did not pass the known_hosts check: it is
// unknown (Known is empty), has changed (Known lists the expected keys), or
// is revoked. No command was run and nothing was sent but the handshake.
type HostKeyError struct {
	// Host is the display name; Addr is host:port as dialed.
	Host string
	Addr string
	// Offered is the key the host presented.
	Offered ssh.PublicKey
	// Known are the entries the host was expected to match (changed key).
	Known []KnownKey
	// Revoked is the @revoked entry that matched, if any.
	Revoked *KnownKey
	// Files are the known_hosts files consulted, in the order given.
	Files []string
}

// Unreachable reports true: as in Ansible's recap, a host whose key does
// not pass counts as unreachable (the error says why).
func (e *HostKeyError) Unreachable() bool { return true }

// Changed reports whether the host was known under another key.
func (e *HostKeyError) Changed() bool { return len(e.Known) > 0 }

// Fingerprint is the offered key's SHA256 fingerprint ("SHA256:…").
func (e *HostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Offered) }

// KnownHostsLine is the known_hosts line that would accept the offered key.
// Check the fingerprint on the host itself (ssh-keygen -lf
// /etc/ssh/ssh_host_*_key.pub) before adding it.
func (e *HostKeyError) KnownHostsLine() string {
	return knownhosts.Line([]string{e.Addr}, e.Offered)
}

func (e *HostKeyError) Error() string {
	offered := e.Offered.Type() + " " + e.Fingerprint()
	files := strings.Join(e.Files, ", ")
	if files == "" {
		files = "(no known_hosts file given)"
	}
	switch {
	case e.Revoked != nil:
		return fmt.Sprintf("host key of %s is REVOKED: it offered %s, marked @revoked at %s:%d", e.Host, offered, e.Revoked.File, e.Revoked.Line)
	case e.Changed():
		want := make([]string, len(e.Known))
		for i, k := range e.Known {
			want[i] = fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.File, k.Line)
		}
		return fmt.Sprintf("REMOTE HOST IDENTIFICATION HAS CHANGED for %s: it offered %s, known_hosts expects %s; if the host was reinstalled, remove the old entry (ssh-keygen -R %s -f %s)",
			e.Host, offered, strings.Join(want, ", "), quoteArg(knownhosts.Normalize(e.Addr)), quoteArg(e.Known[0].File))
	}
	fix := "the known_hosts file"
	if len(e.Files) > 0 {
		fix = e.Files[0]
	}
	return fmt.Sprintf("host key of %s is unknown: it offered %s, not found in %s; if that is the host's key, add this line to %s: %s",
		e.Host, offered, files, fix, e.KnownHostsLine())
}

// quoteArg quotes s for a shell hint shown to a person.
func quoteArg(s string) string {
	if strings.ContainsAny(s, "[]*? '\"$\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// hostKeyCheck builds the host key callback and the host key algorithms to
// ask for. The algorithms come from the known_hosts entries of addr, so that
// a host known only by, say, its ECDSA key is asked for that key rather than
// the one the SSH library prefers; for an unknown host they are nil (library
// default). passed is set once the check succeeded (to tell auth failures
// from handshake failures).
func hostKeyCheck(cfg *Config, name, addr string, passed *atomic.Bool) (ssh.HostKeyCallback, []string, error) {
	if cfg.InsecureIgnoreHostKey {
		return func(string, net.Addr, ssh.PublicKey) error {
			passed.Store(true)
			return nil
		}, nil, nil
	}
	if len(cfg.KnownHostsFiles) == 0 {
		return nil, nil, errors.New("no known_hosts file given (host keys are always checked unless InsecureIgnoreHostKey is set)")
	}
	// A missing known_hosts file counts as empty, as in OpenSSH.
	var existing []string
	for _, f := range cfg.KnownHostsFiles {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	db, err := knownhosts.NewDB(existing...)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	check := db.HostKeyCallback()
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		if err == nil {
			passed.Store(true)
			return nil
		}
		hkErr := &HostKeyError{Host: name, Addr: addr, Offered: key, Files: cfg.KnownHostsFiles}
		var keyErr *xknownhosts.KeyError
		var revErr *xknownhosts.RevokedError
		switch {
		case errors.As(err, &revErr):
			hkErr.Revoked = &KnownKey{File: revErr.Revoked.Filename, Line: revErr.Revoked.Line, Key: revErr.Revoked.Key}
		case errors.As(err, &keyErr):
			for _, k := range keyErr.Want {
				hkErr.Known = append(hkErr.Known, KnownKey{File: k.Filename, Line: k.Line, Key: k.Key})
			}
		default:
			return err
		}
		if cfg.AcceptNewHostKey && !hkErr.Changed() && hkErr.Revoked == nil {
			return acceptNew(cfg, hkErr, remote)
		}
		return hkErr
	}
	return cb, db.HostKeyAlgorithms(addr), nil
}

// acceptNew adds an unknown host's key to the first known_hosts file, as
// OpenSSH's StrictHostKeyChecking=accept-new. The file is locked while it is
// read again and appended to, so connections made in parallel (by this
// process or another) never lose or duplicate a line (case C18); when
// another connection added a key for the host meanwhile, that key decides.
func acceptNew(cfg *Config, hkErr *HostKeyError, remote net.Addr) error {
	file := cfg.KnownHostsFiles[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	lock := flock.New(file, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("accept new host key: lock %s: %w", file, err)
	}
	defer lock.Close()
	db, err := knownhosts.NewDB(file)
	if err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	var keyErr *xknownhosts.KeyError
	switch err := db.HostKeyCallback()(hkErr.Addr, remote, hkErr.Offered); {
	case err == nil:
		return nil // added meanwhile by another connection
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		for _, k := range keyErr.Want {
			hkErr.Known = append(hkErr.Known, KnownKey{File: k.Filename, Line: k.Line, Key: k.Key})
		}
		return hkErr
	}
	content, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	line := hkErr.KnownHostsLine() + "\n"
	if len(content) > 0 && content[len(content)-1] != '\n' {
		line = "\n" + line
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("accept new host key: write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("accept new host key: write %s: %w", file, err)
	}
	cfg.Logger.Warn("added new host key to known_hosts (accept-new)", "host", hkErr.Host, "key", hkErr.Offered.Type()+" "+hkErr.Fingerprint(), "file", file)
	return nil
}

// joinHostPort is net.JoinHostPort with the default port 22.
func joinHostPort(host string, port int) string {
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
