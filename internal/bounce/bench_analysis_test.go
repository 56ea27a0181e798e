package bounce

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAnalyze analyses every corpus message once per iteration.
func BenchmarkAnalyze(b *testing.B) {
	dir := filepath.Join("testdata", "corpus")
	rows := loadManifest(b, dir)
	var msgs [][]byte
	total := 0
	for _, r := range rows {
		d, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, d)
		total += len(d)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			if _, err := Analyze(bytes.NewReader(m), Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
