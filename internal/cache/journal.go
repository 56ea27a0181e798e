package cache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Journal is the store's own history, kept in the store so that every
// process using it shares it: implemented by the stores of this module
// and used by the Recorder (see "Gaps" in the package doc).
type Journal interface {
	// Epoch returns the id of the store's data. A store without one (new,
	// or its data was lost: Redis restarted empty, the file deleted) takes
	// newID atomically (SET NX) and reports created.
	Epoch(ctx context.Context, newID string) (id string, created bool, err error)
	// LastBeat returns this instance's last heartbeat (found is false when
	// there is none, or it expired after MaxTTL); SaveBeat replaces it.
	LastBeat(ctx context.Context, instance string) (b Beat, found bool, err error)
	SaveBeat(ctx context.Context, instance string, b Beat) error
	// AddGaps saves gaps (kept MaxTTL after they end, at most
	// 4 × MaxGaps); Gaps returns those that ended within MaxTTL of now.
	AddGaps(ctx context.Context, ws []Window) error
	Gaps(ctx context.Context, now time.Time) ([]Window, error)
}

// Beat is one process's heartbeat.
type Beat struct {
	Time    time.Time // when it was saved
	Stopped bool      // saved by a clean stop
	// Pending is the signing time of the oldest record the process had not
	// written yet (zero: none): after a crash those are lost.
	Pending time.Time
}

// EncodeBeat is the stored form of a heartbeat: time, flags, pending.
func EncodeBeat(b Beat) []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(b.Time.Unix()))
	var flags byte
	if b.Stopped {
		flags |= 1
	}
	out = append(out, flags)
	var p int64
	if !b.Pending.IsZero() {
		p = b.Pending.Unix()
	}
	return binary.BigEndian.AppendUint64(out, uint64(p))
}

// DecodeBeat reverses EncodeBeat.
func DecodeBeat(v []byte) (Beat, error) {
	if len(v) != 17 {
		return Beat{}, errors.New("malformed heartbeat")
	}
	b := Beat{Time: time.Unix(int64(binary.BigEndian.Uint64(v[:8])), 0), Stopped: v[8]&1 != 0}
	if p := int64(binary.BigEndian.Uint64(v[9:])); p != 0 {
		b.Pending = time.Unix(p, 0)
	}
	return b, nil
}

// EncodeWindow is the stored form of a gap: To then From, unix seconds,
// big-endian (sorts by end).
func EncodeWindow(w Window) []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(w.To.Unix()))
	out = binary.BigEndian.AppendUint64(out, uint64(w.From.Unix()))
	if w.Unsigned {
		out = append(out, 'u')
	}
	return out
}

// DecodeWindow reverses EncodeWindow.
func DecodeWindow(v []byte) (Window, error) {
	if len(v) != 16 && (len(v) != 17 || v[16] != 'u') {
		return Window{}, errors.New("malformed gap")
	}
	return Window{To: time.Unix(int64(binary.BigEndian.Uint64(v[:8])), 0), From: time.Unix(int64(binary.BigEndian.Uint64(v[8:16])), 0),
		Unsigned: len(v) == 17}, nil
}

// MaxStoredGaps bounds the gaps a store keeps.
const MaxStoredGaps = 4 * MaxGaps

// NewID returns a random id (16 hex digits).
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// InstanceID names this process in the store's heartbeats: the id kept in
// <dataDir>/instance-id, created on first use, so that a restarted process
// finds its own last heartbeat and two processes on one host (each with
// its data directory) do not share one. Without a usable data directory
// it is the host name.
func InstanceID(dataDir string) string {
	host, _ := os.Hostname()
	if dataDir == "" {
		return host
	}
	p := filepath.Join(dataDir, "instance-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	id := host + "-" + NewID()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return host
	}
	if err := WriteFileAtomic(p, []byte(id+"\n"), 0o600); err != nil {
		return host
	}
	return id
}
