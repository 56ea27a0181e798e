package milterutil

// Added by bounce-milter (not upstream): the fast paths of CrLfToLf and
// NewlineToSpace give what the transform chains give.

import (
	"testing"

	"golang.org/x/text/transform"
)

func FuzzNewlineFastPath(f *testing.F) {
	for _, s := range []string{"", "a", "a\r\nb", "a\nb", "a\rb", "a\x00b", "<prvs=1234567890=user@example.com>", "\xff\xfe\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _, _ := transform.String(transform.Chain(&NulToSpTransformer{}, &CrLfToLfTransformer{}), s)
		if got := CrLfToLf(s); got != want {
			t.Errorf("CrLfToLf(%q) = %q, want %q", s, got, want)
		}
		want, _, _ = transform.String(transform.Chain(&NulToSpTransformer{}, &NewlineToSpaceTransformer{}), s)
		if got := NewlineToSpace(s); got != want {
			t.Errorf("NewlineToSpace(%q) = %q, want %q", s, got, want)
		}
	})
}
