package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// AlertsFactory opens a fresh, empty alert store; stores opened by one
// factory must not see each other's data.
type AlertsFactory func(t *testing.T) cache.AlertStore

// RunAlerts is the conformance suite of cache.AlertStore (the hosts of a
// fleet are holders of one handle here; the end-to-end tests run two
// processes on one Redis).
func RunAlerts(t *testing.T, open AlertsFactory) {
	t.Run("LeaseAndState", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		if doc, err := s.LoadAlerts(c); err != nil || doc != nil {
			t.Fatalf("empty store: %q %v", doc, err)
		}
		ok, err := s.AlertLease(c, "host-a", time.Second)
		if err != nil || !ok {
			t.Fatalf("first lease: %v %v", ok, err)
		}
		if ok, err := s.AlertLease(c, "host-b", time.Second); err != nil || ok {
			t.Fatalf("second holder got the lease: %v %v", ok, err)
		}
		if ok, err := s.AlertLease(c, "host-a", time.Second); err != nil || !ok {
			t.Fatalf("renewal: %v %v", ok, err)
		}
		if err := s.SaveAlerts(c, "host-b", []byte(`{"x":1}`)); !errors.Is(err, cache.ErrNotLeaseHolder) {
			t.Fatalf("a host without the lease saved: %v", err)
		}
		doc := []byte(`{"active":[{"kind":"forged-domain"}]}`)
		if err := s.SaveAlerts(c, "host-a", doc); err != nil {
			t.Fatal(err)
		}
		if got, err := s.LoadAlerts(c); err != nil || !bytes.Equal(got, doc) {
			t.Fatalf("load: %q %v", got, err)
		}
		if err := s.SaveAlerts(c, "host-a", bytes.Repeat([]byte("x"), cache.MaxAlertDoc+1)); err == nil {
			t.Fatal("an oversized document was saved")
		}
		// The lease runs out: another host takes it, the first can no
		// longer save.
		time.Sleep(1200 * time.Millisecond)
		if ok, err := s.AlertLease(c, "host-b", 2*time.Second); err != nil || !ok {
			t.Fatalf("lease after expiry: %v %v", ok, err)
		}
		if err := s.SaveAlerts(c, "host-a", []byte(`{}`)); !errors.Is(err, cache.ErrNotLeaseHolder) {
			t.Fatalf("the old holder saved: %v", err)
		}
		if got, _ := s.LoadAlerts(c); !bytes.Equal(got, doc) {
			t.Fatalf("state changed by the old holder: %q", got)
		}
	})

	t.Run("OneHolderAtATime", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		var held atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, err := s.AlertLease(c, fmt.Sprintf("host-%d", i), 5*time.Second); err == nil && ok {
					held.Add(1)
				}
			}()
		}
		wg.Wait()
		if held.Load() != 1 {
			t.Fatalf("%d holders at once", held.Load())
		}
	})

	t.Run("ClearRequests", func(t *testing.T) {
		s := open(t)
		c := ctx(t)
		at := time.Now().Truncate(time.Millisecond)
		if err := s.RequestAlertClear(c, "compromised-account|mallory@example.com", at); err != nil {
			t.Fatal(err)
		}
		if err := s.RequestAlertClear(c, "forged-domain|example.com", at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.RequestAlertClear(c, "", at); err == nil {
			t.Fatal("an empty key was taken")
		}
		if err := s.RequestAlertClear(c, strings.Repeat("k", cache.MaxAlertKey+1), at); err == nil {
			t.Fatal("an oversized key was taken")
		}
		got, err := s.TakeAlertClears(c)
		if err != nil || len(got) != 2 || !got["compromised-account|mallory@example.com"].Equal(at) || !got["forged-domain|example.com"].Equal(at.Add(time.Second)) {
			t.Fatalf("take: %v %v", got, err)
		}
		if got, err := s.TakeAlertClears(c); err != nil || len(got) != 0 {
			t.Fatalf("taken twice: %v %v", got, err)
		}
		for i := 0; i < cache.MaxAlertClears; i++ {
			if err := s.RequestAlertClear(c, fmt.Sprintf("k%d", i), at); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RequestAlertClear(c, "one-more", at); err == nil {
			t.Fatal("more than MaxAlertClears requests kept")
		}
		if err := s.RequestAlertClear(c, "k1", at.Add(time.Minute)); err != nil {
			t.Fatalf("a request already waiting is renewed: %v", err)
		}
	})
}
