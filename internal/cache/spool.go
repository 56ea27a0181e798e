package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// The spool holds the records a Recorder could not write before it
// stopped, for the next start: prepared records only (digests and compact
// values, no plain text). It is written to a temporary file in the same
// directory, synced, renamed over the spool and the directory synced, so a
// crash leaves the old spool or the new one, never half of one.
//
//	"bounce-milter spool 1\n"
//	per record: uvarint length, then
//	  16 id digest | 16 tag digest | 1 has-tag | uvarint recipients |
//	  8 time (unix s) | 4 TTL (s) | value
const spoolMagic = "bounce-milter spool 1\n"

func encodeSpoolRecord(b []byte, p *PreparedSent) []byte {
	var rec []byte
	rec = append(rec, p.ID[:]...)
	rec = append(rec, p.Tag[:]...)
	if p.HasTag {
		rec = append(rec, 1)
	} else {
		rec = append(rec, 0)
	}
	rec = binary.AppendUvarint(rec, uint64(p.RcptN))
	rec = binary.BigEndian.AppendUint64(rec, uint64(p.Time.Unix()))
	rec = binary.BigEndian.AppendUint32(rec, uint32(p.TTL/time.Second))
	rec = append(rec, p.Value...)
	b = binary.AppendUvarint(b, uint64(len(rec)))
	return append(b, rec...)
}

func decodeSpoolRecord(rec []byte) (PreparedSent, error) {
	var p PreparedSent
	if len(rec) < 34 {
		return p, errors.New("short record")
	}
	copy(p.ID[:], rec[:16])
	copy(p.Tag[:], rec[16:32])
	p.HasTag = rec[32] == 1
	n, k := binary.Uvarint(rec[33:])
	if k <= 0 || n > 1<<31 {
		return p, errors.New("bad recipient count")
	}
	rest := rec[33+k:]
	if len(rest) < 12 {
		return p, errors.New("short record")
	}
	p.RcptN = int64(n)
	p.Time = time.Unix(int64(binary.BigEndian.Uint64(rest[:8])), 0)
	p.TTL = time.Duration(binary.BigEndian.Uint32(rest[8:12])) * time.Second
	p.Expires = p.Time.Add(p.TTL)
	p.Value = append([]byte(nil), rest[12:]...)
	if _, err := DecodeRecord(p.Value); err != nil {
		return p, err
	}
	return p, nil
}

// writeSpool writes ps to path atomically (see above).
func writeSpool(path string, ps []PreparedSent) error {
	buf := []byte(spoolMagic)
	for i := range ps {
		buf = encodeSpoolRecord(buf, &ps[i])
	}
	return WriteFileAtomic(path, buf, 0o600)
}

// WriteFileAtomic writes data to path so that a crash leaves either the
// old file or the new one: a temporary file in the same directory,
// fsynced, renamed over path, and the directory fsynced.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readSpool reads the records of path (none when it does not exist). A
// damaged tail is reported, the records before it returned.
func readSpool(path string) ([]PreparedSent, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(spoolMagic)) {
		return nil, fmt.Errorf("%s is not a spool file", path)
	}
	r := bufio.NewReader(bytes.NewReader(b[len(spoolMagic):]))
	var ps []PreparedSent
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return ps, nil
		}
		if err != nil || n > 1<<16 {
			return ps, fmt.Errorf("spool %s damaged after %d records", path, len(ps))
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(r, rec); err != nil {
			return ps, fmt.Errorf("spool %s truncated after %d records", path, len(ps))
		}
		p, err := decodeSpoolRecord(rec)
		if err != nil {
			return ps, fmt.Errorf("spool %s: record %d: %w", path, len(ps)+1, err)
		}
		ps = append(ps, p)
	}
}

func removeSpool(path string, log *slog.Logger) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("removing the spool file failed", "path", path, "err", err)
	}
}
