package tasks

import "sort"

// Kinds returns the task kinds a playbook may use, by their YAML key. Each
// constructor returns a new zero value to decode a task's options into.
func Kinds() map[string]func() Task {
	return map[string]func() Task{
		// one line per kind, kept sorted
		"command":              func() Task { return &Command{} },
		"docker_container":     func() Task { return &DockerContainer{} },
		"docker_daemon_config": func() Task { return &DockerDaemonConfig{} },
		"docker_network":       func() Task { return &DockerNetwork{} },
		"docker_prune":         func() Task { return &DockerPrune{} },
		"file":                 func() Task { return &File{} },
		"gitlab_runner":        func() Task { return &GitLabRunner{} },
		"kernel_module":        func() Task { return &KernelModule{} },
		"schedule":             func() Task { return &Schedule{} },
		"service":              func() Task { return &Service{} },
	}
}

// KindNames returns the names of Kinds, sorted.
func KindNames() []string {
	var names []string
	for n := range Kinds() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
