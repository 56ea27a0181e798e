package labels

import "testing"

func TestLabel(t *testing.T) {
	var s Domains
	if got := s.Label("example.com"); got != Other {
		t.Errorf("zero Set: got %q, want %q", got, Other)
	}
	s.Replace([]string{"Example.COM.", "example.net"})
	for in, want := range map[string]string{
		"example.com":     "example.com",
		"EXAMPLE.com.":    "example.com",
		"example.net":     "example.net",
		"spam.example":    Other,
		"":                Other,
		"sub.example.com": Other,
	} {
		if got := s.Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
	s.Replace(nil)
	if got := s.Label("example.com"); got != Other {
		t.Errorf("after Replace(nil): got %q, want %q", got, Other)
	}
}

func TestBounded(t *testing.T) {
	allowed := Set("reject", "accept")
	for in, want := range map[string]string{"reject": "reject", "accept": "accept", "Reject": Other, "": Other, "drop": Other} {
		if got := Bounded(allowed, in); got != want {
			t.Errorf("Bounded(%q) = %q, want %q", in, got, want)
		}
	}
}
