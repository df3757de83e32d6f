package results

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in          []time.Duration
		med, lo, hi time.Duration
	}{
		{nil, 0, 0, 0},
		{[]time.Duration{3, 1, 2}, 2, 1, 3},
		{[]time.Duration{4, 1, 3, 2}, 2, 1, 4}, // (2+3)/2 in integer nanoseconds
		{[]time.Duration{5}, 5, 5, 5},
	} {
		med, lo, hi := Median(c.in)
		if med != c.med || lo != c.lo || hi != c.hi {
			t.Errorf("Median(%v) = %v %v %v, want %v %v %v", c.in, med, lo, hi, c.med, c.lo, c.hi)
		}
	}
}

func TestSummariseGroupsByKey(t *testing.T) {
	k := Key{Scenario: "engine", Net: "loopback", Hosts: 10, Phase: "noop", Tool: "dindops"}
	other := k
	other.Tool = "floor"
	runs := []Run{{Key: k, Rep: 1}, {Key: other, Rep: 1}, {Key: k, Rep: 2, Changed: 2}}
	runs[0].Wall, runs[2].Wall, runs[0].MaxRSS, runs[2].MaxRSS = 1, 3, 10, 20
	runs[0].Commands, runs[0].API, runs[2].API, runs[2].Docker = 8, 7, 6, 1
	sums := Summarise(runs)
	if len(sums) != 2 || sums[0].Key != k || sums[0].Runs != 2 || sums[0].Wall != 2 || sums[0].MaxRSS != 20 || sums[0].ChangedMax != 2 {
		t.Fatalf("%+v", sums)
	}
	if sums[0].Commands != 8 || sums[0].API != 7 || sums[0].Docker != 1 || sums[1].API != 0 {
		t.Fatalf("round trips: %+v", sums)
	}
}
