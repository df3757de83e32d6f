// Package machine describes the machine a benchmark ran on: CPUs, memory,
// kernel, load, and the versions of every tool involved.
package machine

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Info is the machine and the tool versions.
type Info struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	OS        string `json:"os"`
	// LoadStart and LoadEnd are /proc/loadavg's three averages when the
	// benchmark started (before any fleet) and when it ended.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
	// Versions by program: dindops, ansible-core, the collections, python,
	// OpenSSH, docker, Go.
	Versions map[string]string `json:"versions"`
}

// Describe reads the machine; dindops is the dindops binary.
func Describe(ctx context.Context, dindops string) Info {
	in := Info{CPUs: runtime.NumCPU(), LoadStart: Load(), Versions: map[string]string{}}
	in.CPUModel = field("/proc/cpuinfo", "model name")
	in.MemoryMiB = MemoryMiB()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		in.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	in.OS = strings.Trim(field("/etc/os-release", "PRETTY_NAME"), `"`)
	in.Versions = Versions(ctx, dindops)
	return in
}

// MemoryMiB is the machine's memory (MemTotal).
func MemoryMiB() int64 {
	f := strings.Fields(field("/proc/meminfo", "MemTotal"))
	if len(f) == 0 {
		return 0
	}
	kb, _ := strconv.ParseInt(f[0], 10, 64)
	return kb / 1024
}

// Load is /proc/loadavg's 1, 5 and 15 minute averages.
func Load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Load1 is the 1-minute load average.
func Load1() float64 {
	f := strings.Fields(Load())
	if len(f) == 0 {
		return 0
	}
	l, _ := strconv.ParseFloat(f[0], 64)
	return l
}

// Versions asks every program for its version.
func Versions(ctx context.Context, dindops string) map[string]string {
	v := map[string]string{"go (bench harness)": runtime.Version()}
	add := func(name string, argv ...string) {
		if s := firstLine(ctx, argv...); s != "" {
			v[name] = s
		}
	}
	add("dindops", dindops, "--version")
	add("ansible", "ansible-playbook", "--version")
	add("ansible-mitogen (Debian package)", "dpkg-query", "-W", "-f=${Version}", "ansible-mitogen")
	add("python3 (controller)", "python3", "--version")
	add("openssh client", "ssh", "-V")
	add("docker engine", "docker", "version", "-f", "{{.Server.Version}}")
	for _, c := range []string{"community.docker", "community.general"} {
		p := "/usr/lib/python3/dist-packages/ansible_collections/" + strings.ReplaceAll(c, ".", "/") + "/MANIFEST.json"
		if b, err := os.ReadFile(p); err == nil {
			var m struct {
				CollectionInfo struct {
					Version string `json:"version"`
				} `json:"collection_info"`
			}
			if json.Unmarshal(b, &m) == nil && m.CollectionInfo.Version != "" {
				v[c] = m.CollectionInfo.Version
			}
		}
	}
	return v
}

func firstLine(ctx context.Context, argv ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// field is the value of the first "key: value" or "key=value" line.
func field(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, sep := range []string{":", "="} {
			k, v, ok := strings.Cut(line, sep)
			if ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}
