package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Stored records come from a file or a Redis anyone with access may have
// written: decoding never panics, and what it accepts re-encodes to a
// record that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	h := NewHasher([]byte("fuzz"))
	for _, m := range []SentMessage{
		{MessageID: "<a@b>", Sender: "alice@example.org", Recipients: []string{"x@y"}, Time: time.Unix(1_800_000_000, 0), TTL: time.Hour},
		{MessageID: "<a@b>", Sender: "first.last-team+x@example.org", Recipients: make([]string, 1000), Time: time.Unix(1_800_000_000, 0), TTL: MaxTTL},
	} {
		p, err := PrepareSent(h, m, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.Value)
		f.Add(EncodeLegacyRecord(h, m, m.Time.Add(m.TTL)))
	}
	f.Add([]byte{1})
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		r.SenderMatch(h, "alice@example.org", '+')
		if r.Legacy() {
			if v := r.Upgrade(h); v != nil {
				if _, err := DecodeRecord(v); err != nil {
					t.Fatalf("upgraded record does not decode: %v", err)
				}
			}
			return
		}
		if r.RecipientCount < 0 || r.Expires.Before(r.Time) {
			t.Fatalf("decoded %+v", r)
		}
	})
}

// The spool is read back at start from the data directory: a damaged or
// hostile file is reported, never a panic, and the records before the
// damage are kept.
func FuzzSpool(f *testing.F) {
	h := NewHasher(nil)
	p, _ := PrepareSent(h, SentMessage{MessageID: "<a@b>", Tag: "prvs=0123abcdef=a@b", Sender: "a@b", Recipients: []string{"x@y"}, Time: time.Unix(1_800_000_000, 0), TTL: time.Hour}, time.Hour)
	good := encodeSpoolRecord([]byte(spoolMagic), &p)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(spoolMagic + "\xff\xff\xff\xff"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "spool")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ps, err := readSpool(path)
		if err == nil && bytes.Equal(b, good) && (len(ps) != 1 || ps[0].ID != p.ID || !bytes.Equal(ps[0].Value, p.Value)) {
			t.Fatalf("good spool read back as %+v", ps)
		}
		for _, q := range ps {
			if _, err := DecodeRecord(q.Value); err != nil {
				t.Fatalf("spool record with an undecodable value: %v", err)
			}
		}
	})
}
