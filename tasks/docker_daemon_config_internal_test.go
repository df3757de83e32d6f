package tasks

import "testing"

func TestDockerMajor(t *testing.T) {
	for v, want := range map[string]int{"20.10.24+dfsg1": 20, "24.0.9": 24, "17.03.2-ce": 17, "28.0.0-rc.1": 28, "": 0, "dev": 0, "master.x": 0} {
		got, ok := dockerMajor(v)
		if got != want || ok != (want > 0) {
			t.Errorf("dockerMajor(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}
}
