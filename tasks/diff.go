package tasks

import (
	"fmt"
	"unicode/utf8"

	udiff "github.com/aymanbagabas/go-udiff"
)

// UnifiedDiff returns a unified diff (3 lines of context) from old to new
// content of the file at path, labelled "path (on host)" and "path (planned)".
// A missing final newline is shown as "\ No newline at end of file", and
// carriage returns are shown as "\r" so CRLF changes stay visible. Content
// that is not valid UTF-8 is summarised instead of diffed.
func UnifiedDiff(path string, old, new []byte) string {
	if !utf8.Valid(old) || !utf8.Valid(new) {
		return fmt.Sprintf("(binary content differs: %d bytes → %d bytes)\n", len(old), len(new))
	}
	return udiff.Unified(path+" (on host)", path+" (planned)", showCR(string(old)), showCR(string(new)))
}

func showCR(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' {
			out = append(out, '\\', 'r')
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}
