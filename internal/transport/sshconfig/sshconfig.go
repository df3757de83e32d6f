// Package sshconfig reads OpenSSH client configuration files (~/.ssh/config,
// /etc/ssh/ssh_config) with github.com/kevinburke/ssh_config and answers,
// for one host, the values dindops honours, each with the file and line it
// came from:
//
//	HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile,
//	StrictHostKeyChecking, ServerAliveInterval, ServerAliveCountMax,
//	ConnectTimeout
//
// As in OpenSSH, files are read in order and the first value obtained for a
// keyword wins (IdentityFile accumulates). A Host block applies to an
// inventory host when one of its patterns matches the host's inventory name
// or its address and no negated pattern matches either. "Match all",
// "Match host" and "Match originalhost" blocks are understood; a Match block
// with any other criterion (exec, user, ...) is skipped, and Skipped says so
// (dindops warns when such a block sets a keyword it honours).
package sshconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// Keywords dindops honours, in the order they are reported.
var Keywords = []string{
	"HostName", "User", "Port", "IdentityFile", "ProxyJump", "UserKnownHostsFile",
	"StrictHostKeyChecking", "ServerAliveInterval", "ServerAliveCountMax", "ConnectTimeout",
}

// multi are the keywords whose every value counts.
var multi = map[string]bool{"identityfile": true}

// File is one parsed configuration file.
type File struct {
	Path string
	cfg  *ssh_config.Config
	// Skipped lists the Match blocks that were not understood.
	Skipped []SkippedBlock
}

// SkippedBlock is a Match block whose criteria dindops cannot evaluate.
type SkippedBlock struct {
	Line     int
	Criteria string
	// Keywords are the honoured keywords it would have set.
	Keywords []string
}

// Config is the files read, in order of precedence.
type Config struct {
	Files []*File
}

// Value is one keyword's value for a host and where it was set.
type Value struct {
	Keyword string
	Value   string   // the first value
	All     []string // every value (IdentityFile)
	File    string
	Line    int // 0 when set in an Included file
}

// Where is "FILE:LINE" (or the file alone).
func (v Value) Where() string {
	if v.Line > 0 {
		return fmt.Sprintf("%s:%d", v.File, v.Line)
	}
	return v.File + " (Include)"
}

// Settings are the values that apply to one host, by keyword (as written
// in Keywords).
type Settings map[string]Value

// Get returns the value of keyword, or "".
func (s Settings) Get(keyword string) string { return s[keyword].Value }

// Load reads the files that exist among paths; a missing file counts as
// empty, unless required (a file the user named) says otherwise. A file
// that cannot be parsed is an error naming it.
func Load(paths []string, required bool) (*Config, error) {
	c := &Config{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !required {
				continue
			}
			return nil, fmt.Errorf("ssh config: %w", err)
		}
		f, err := Parse(p, data)
		if err != nil {
			return nil, err
		}
		c.Files = append(c.Files, f)
	}
	return c, nil
}

// Parse parses data as the configuration file path.
func Parse(path string, data []byte) (*File, error) {
	rewritten, skipped := rewriteMatch(data)
	cfg, err := ssh_config.DecodeBytes(rewritten)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %v (use --ssh-config FILE to read another file, or --no-ssh-config)", path, err)
	}
	f := &File{Path: path, cfg: cfg, Skipped: skipped}
	return f, nil
}

// rewriteMatch turns the Match lines the parser would misread into Host
// lines of the same meaning, line numbers kept: "Match all" → "Host *",
// "Match host a,b originalhost c" → "Host a b c", and any other Match →
// "Host !*" (never matches), noted in skipped.
func rewriteMatch(data []byte) ([]byte, []SkippedBlock) {
	lines := bytes.Split(data, []byte("\n"))
	var skipped []SkippedBlock
	current := -1 // index in skipped of the block being read
	for i, raw := range lines {
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		key, rest := splitKeyword(line)
		switch strings.ToLower(key) {
		case "host":
			current = -1
			continue
		case "match":
		default:
			if current >= 0 && key != "" && !strings.HasPrefix(key, "#") {
				for _, k := range Keywords {
					if strings.EqualFold(k, key) {
						skipped[current].Keywords = append(skipped[current].Keywords, k)
					}
				}
			}
			continue
		}
		current = -1
		if c := strings.Index(rest, "#"); c >= 0 {
			rest = rest[:c]
		}
		fields := strings.Fields(rest)
		var patterns []string
		ok := len(fields) > 0
		for j := 0; j < len(fields) && ok; j++ {
			switch strings.ToLower(fields[j]) {
			case "all":
				if len(fields) == 1 {
					patterns = []string{"*"}
				} else {
					ok = false
				}
			case "host", "originalhost":
				if j+1 >= len(fields) {
					ok = false
					break
				}
				j++
				patterns = append(patterns, strings.Split(fields[j], ",")...)
			default:
				ok = false
			}
		}
		if ok && len(patterns) > 0 {
			lines[i] = []byte("Host " + strings.Join(patterns, " "))
			continue
		}
		lines[i] = []byte("Host !*")
		skipped = append(skipped, SkippedBlock{Line: i + 1, Criteria: strings.TrimSpace(rest)})
		current = len(skipped) - 1
	}
	return bytes.Join(lines, []byte("\n")), skipped
}

// splitKeyword splits "Key value", "Key=value" or "Key = value".
func splitKeyword(line string) (string, string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	return key, rest
}

// Lookup returns the settings that apply to the host with this inventory
// name and address (either may match a Host pattern).
func (c *Config) Lookup(name, address string) Settings {
	out := Settings{}
	if c == nil {
		return out
	}
	for _, f := range c.Files {
		for _, h := range f.cfg.Hosts {
			if !applies(h, name, address) {
				continue
			}
			for _, n := range h.Nodes {
				switch kv := n.(type) {
				case *ssh_config.KV:
					out.add(kv.Key, kv.Value, f.Path, kv.Pos().Line)
				case *ssh_config.Include:
					for _, k := range Keywords {
						if multi[strings.ToLower(k)] {
							all, _ := kv.GetAll(name, k)
							if len(all) == 0 && address != name {
								all, _ = kv.GetAll(address, k)
							}
							for _, v := range all {
								out.add(k, v, f.Path, 0)
							}
							continue
						}
						v := kv.Get(name, k)
						if v == "" && address != name {
							v = kv.Get(address, k)
						}
						if v != "" {
							out.add(k, v, f.Path, 0)
						}
					}
				}
			}
		}
	}
	return out
}

// add records a keyword's value unless one was obtained before.
func (s Settings) add(key, value, file string, line int) {
	for _, k := range Keywords {
		if !strings.EqualFold(k, key) {
			continue
		}
		value = unquote(value)
		v, seen := s[k]
		switch {
		case !seen:
			s[k] = Value{Keyword: k, Value: value, All: []string{value}, File: file, Line: line}
		case multi[strings.ToLower(k)]:
			v.All = append(v.All, value)
			s[k] = v
		}
	}
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// applies reports whether a Host block applies to name or address: a
// positive pattern matches one of them and no negated pattern matches
// either.
func applies(h *ssh_config.Host, name, address string) bool {
	found := false
	for _, p := range h.Patterns {
		pat := p.String()
		neg := strings.HasPrefix(pat, "!")
		pat = strings.TrimPrefix(pat, "!")
		m := Glob(pat, name) || Glob(pat, address)
		if m && neg {
			return false
		}
		if m {
			found = true
		}
	}
	return found
}

// Glob matches s against an ssh_config pattern: * is any run of
// characters, ? exactly one.
func Glob(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for pattern != "" && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if Glob(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		}
	}
	return s == ""
}

// Tokens are the values of OpenSSH's % tokens for one host.
type Tokens struct {
	Home       string // %d
	Host       string // %h: the host name connected to (after HostName)
	Alias      string // %n: the name as given
	Port       int    // %p
	RemoteUser string // %r
	LocalUser  string // %u
}

// Expand replaces ~ at the start, ${VAR} and the tokens %d %h %n %p %r %u
// %% in a path or host name, as OpenSSH does for IdentityFile,
// UserKnownHostsFile and HostName.
func Expand(s string, t Tokens) string {
	if s == "~" || strings.HasPrefix(s, "~/") {
		s = t.Home + s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && i+1 < len(s):
			i++
			switch s[i] {
			case '%':
				b.WriteByte('%')
			case 'd':
				b.WriteString(t.Home)
			case 'h':
				b.WriteString(t.Host)
			case 'n':
				b.WriteString(t.Alias)
			case 'p':
				b.WriteString(strconv.Itoa(t.Port))
			case 'r':
				b.WriteString(t.RemoteUser)
			case 'u':
				b.WriteString(t.LocalUser)
			default:
				b.WriteByte('%')
				b.WriteByte(s[i])
			}
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			b.WriteString(os.Getenv(s[i+2 : i+end]))
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Hop is one jump host of a ProxyJump value.
type Hop struct {
	User string // empty: not given
	Host string
	Port int // 0: not given
}

func (h Hop) String() string {
	s := h.Host
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if h.User != "" {
		s = h.User + "@" + s
	}
	if h.Port != 0 {
		s += ":" + strconv.Itoa(h.Port)
	}
	return s
}

// ParseProxyJump parses a ProxyJump value: "none", or comma-separated
// [user@]host[:port] or ssh://[user@]host[:port], IPv6 in brackets.
func ParseProxyJump(v string) ([]Hop, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "none") {
		return nil, nil
	}
	var hops []Hop
	for _, part := range strings.Split(v, ",") {
		h, err := ParseHop(part)
		if err != nil {
			return nil, err
		}
		hops = append(hops, h)
	}
	return hops, nil
}

// ParseHop parses one [user@]host[:port] or ssh://[user@]host[:port].
func ParseHop(s string) (Hop, error) {
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "ssh://")
	s = strings.TrimSuffix(s, "/")
	var h Hop
	if at := strings.LastIndex(s, "@"); at >= 0 {
		h.User, s = s[:at], s[at+1:]
		if h.User == "" {
			return Hop{}, fmt.Errorf("jump host %q: empty user before @", orig)
		}
	}
	port := ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return Hop{}, fmt.Errorf("jump host %q: missing ']'", orig)
		}
		h.Host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if s[end+1:] != "" && !strings.HasPrefix(s[end+1:], ":") {
			return Hop{}, fmt.Errorf("jump host %q: expected :port after ']'", orig)
		}
	case strings.Count(s, ":") == 1:
		h.Host, port, _ = strings.Cut(s, ":")
	default:
		h.Host = s
	}
	if h.Host == "" || strings.ContainsAny(h.Host, " \t/") {
		return Hop{}, fmt.Errorf("jump host %q: want [user@]host[:port]", orig)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Hop{}, fmt.Errorf("jump host %q: invalid port %q", orig, port)
		}
		h.Port = n
	}
	return h, nil
}

// DefaultFiles are the files OpenSSH reads when not told otherwise: the
// user's, then the system's.
func DefaultFiles(home string) []string {
	var files []string
	if home != "" {
		files = append(files, filepath.Join(home, ".ssh", "config"))
	}
	return append(files, "/etc/ssh/ssh_config")
}
