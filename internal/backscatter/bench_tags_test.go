package backscatter

import (
	"testing"
	"time"
)

func BenchmarkSignPRVS(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignPRVS("user@example.com", secret, 1, now, 7); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPRVS(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	addr, _ := SignPRVS("user@example.com", secret, 1, now, 7)
	keys := func(string, int) ([]byte, bool) { return secret, true }
	b.ReportAllocs()
	for b.Loop() {
		tag, err := ParseTag(addr, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyPRVS(tag, keys, now, 7); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUntagged(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTag("someone.else@example.org", 0); err != nil {
			b.Fatal(err)
		}
	}
}
