package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/boltstore"
	"github.com/bounce-milter/bounce-milter/internal/cache/redisstore"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

func TestOpenChoosesBackend(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(cache.Config{}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*boltstore.Store); !ok {
		t.Fatalf("default backend is %T", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	m := miniredis.RunT(t)
	s, err = Open(storetest.Relaxed(cache.Config{Redis: cache.RedisConfig{URL: "redis://" + m.Addr()}}), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*redisstore.Store); !ok {
		t.Fatalf("with a redis URL the backend is %T", s)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(cache.Config{Backend: "memory"}, "", nil)
	if _, ok := s.(*cache.MemoryStore); !ok || err != nil {
		t.Fatalf("memory: %T %v", s, err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(cache.Config{Backend: "mysql"}, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "mysql") {
		t.Fatalf("unknown backend: %v", err)
	}
	if _, err := Open(cache.Config{Backend: "redis"}, t.TempDir(), nil); err == nil {
		t.Fatal("redis without address accepted")
	}
	if _, err := Open(cache.Config{SecretFile: filepath.Join(t.TempDir(), "missing")}, t.TempDir(), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing secret file: %v", err)
	}
}

// The secret is loaded from the file: two stores with the same file agree,
// hashes differ from the unkeyed ones.
func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	sf := filepath.Join(dir, "secret")
	if err := os.WriteFile(sf, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := miniredis.RunT(t)
	cfg := storetest.Relaxed(cache.Config{SecretFile: sf, Redis: cache.RedisConfig{URL: "redis://" + m.Addr()}})
	s, err := Open(cfg, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RecordSent(context.Background(), cache.SentMessage{MessageID: "<k@x.test>", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	find := func(cfg cache.Config) bool {
		s, err := Open(cfg, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f, err := s.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{"k@x.test"}, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return f.Sent != nil
	}
	if !find(cfg) {
		t.Fatal("a second store with the same secret file does not find the record")
	}
	if find(storetest.Relaxed(cache.Config{Redis: cache.RedisConfig{URL: "redis://" + m.Addr()}})) {
		t.Fatal("a store without the secret finds the keyed record")
	}
}
