package tasks

import "time"

// SetDrainPoll sets how often a drain looks at its containers, so tests of
// drains need not wait two seconds between looks.
func SetDrainPoll(d *Drain, every time.Duration) { d.poll = every }
