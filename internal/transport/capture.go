package transport

import "fmt"

// DefaultOutputLimit is how many bytes of a command's stdout, and as many of
// its stderr, are kept at the head and again at the tail: at most 2 MiB per
// stream in memory, whatever the command prints.
const DefaultOutputLimit = 1 << 20

// maxFileSize is the largest file ReadFile returns (bytes).
const maxFileSize = 256 << 20

// capture is an io.Writer that keeps what a command prints within bounded
// memory. In head/tail mode it keeps the first limit bytes and the last limit
// bytes, and Bytes puts a note of how much was left out between them. In
// whole mode (limit < 0) it keeps everything up to maxFileSize and then
// notes the overflow. It is written by one goroutine and read after that
// goroutine is done.
type capture struct {
	limit    int
	head     []byte
	tail     []byte // ring buffer of len limit, allocated on first use
	tpos     int    // next write position in tail
	tlen     int    // bytes held in tail
	total    int64  // bytes written
	overflow bool   // whole mode: more than maxFileSize was written
}

func newCapture(limit int) *capture { return &capture{limit: limit} }

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	if c.limit < 0 {
		if len(c.head)+len(p) > maxFileSize {
			c.overflow = true
			return n, nil
		}
		c.head = append(c.head, p...)
		return n, nil
	}
	if room := c.limit - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if c.tail == nil {
		c.tail = make([]byte, c.limit)
	}
	if len(p) >= c.limit {
		copy(c.tail, p[len(p)-c.limit:])
		c.tpos, c.tlen = 0, c.limit
		return n, nil
	}
	k := copy(c.tail[c.tpos:], p)
	copy(c.tail, p[k:])
	c.tpos = (c.tpos + len(p)) % c.limit
	c.tlen = min(c.tlen+len(p), c.limit)
	return n, nil
}

// truncated reports whether bytes were left out.
func (c *capture) truncated() bool {
	return c.overflow || c.total > int64(len(c.head)+c.tlen)
}

// Bytes returns what was kept: the head, then, when bytes were left out, a
// line "[… N bytes omitted by dindops …]", then the tail.
func (c *capture) Bytes() []byte {
	if c.tlen == 0 && !c.truncated() {
		return c.head
	}
	omitted := c.total - int64(len(c.head)) - int64(c.tlen)
	out := make([]byte, 0, len(c.head)+c.tlen+64)
	out = append(out, c.head...)
	if omitted > 0 {
		out = fmt.Appendf(out, "\n[… %d bytes omitted by dindops …]\n", omitted)
	}
	if c.tlen < c.limit {
		out = append(out, c.tail[:c.tlen]...)
	} else {
		out = append(out, c.tail[c.tpos:]...)
		out = append(out, c.tail[:c.tpos]...)
	}
	return out
}
