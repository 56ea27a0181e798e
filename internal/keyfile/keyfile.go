// Package keyfile loads bounce-milter's key files from disk into the
// engine's key ring. It is the one place that reads them, and it refuses
// a file that would let someone else forge bounces that pass:
//
//   - not a regular file (a FIFO would hang the daemon's reload, a device
//     or directory is a mistake): the file is opened non-blocking, so the
//     check happens before any read can block;
//   - owned by a user other than the daemon's own or root: its owner can
//     rewrite the keys;
//   - readable or writable by group or others: anyone who can read a key
//     can sign bounces that verify.
//
// The format is parsed by backscatter.ParseKeys.
package keyfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
)

// maxSize bounds what is read of a key file: ten keys of at most 64 bytes
// and comments.
const maxSize = 1 << 20

// Load reads and checks one key file for the daemon: the file must belong
// to the daemon's user or root.
func Load(path string) (*backscatter.KeySet, error) { return load(path, true) }

// LoadForTool is Load for the command-line tools (sign, verify): run by
// root, they may read the daemon's key file, which belongs to the daemon's
// user. Everything else is checked as for the daemon.
func LoadForTool(path string) (*backscatter.KeySet, error) { return load(path, os.Geteuid() != 0) }

func load(path string, checkOwner bool) (*backscatter.KeySet, error) {
	// O_NONBLOCK: opening a FIFO for reading blocks until a writer shows
	// up; non-blocking, it opens at once and the check below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && checkOwner {
		if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
			return nil, fmt.Errorf("key file %s: owned by uid %d, not by this process's user (uid %d) or root; run: chown %d %s",
				path, st.Uid, uid, uid, path)
		}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s: mode %04o lets group or others read it; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, maxSize)
	}
	return backscatter.ParseKeys(bytes.NewReader(data), path)
}

// Spec names the key files of a configuration: a default file (with an
// optional signing key overriding the file's last key) and domains with
// files of their own.
type Spec struct {
	File    string
	Signing *int
	Domains map[string]DomainSpec
}

// DomainSpec is a domain's own key file (empty: the default file) and
// signing key (nil: the file's last key).
type DomainSpec struct {
	File    string
	Signing *int
}

// Ring loads every key file spec names into a key ring: the one place that
// says which key signs for a domain. Each file is read once.
func Ring(spec Spec) (*backscatter.KeyRing, error) { return ring(spec, Load) }

// RingForTool is Ring for the command-line tools (see LoadForTool).
func RingForTool(spec Spec) (*backscatter.KeyRing, error) { return ring(spec, LoadForTool) }

func ring(spec Spec, Load func(string) (*backscatter.KeySet, error)) (*backscatter.KeyRing, error) {
	def, err := Load(spec.File)
	if err != nil {
		return nil, err
	}
	if spec.Signing != nil {
		if err := def.SetSigning(*spec.Signing); err != nil {
			return nil, err
		}
	}
	ring := backscatter.NewKeyRing(def)
	loaded := map[string]*backscatter.KeySet{spec.File: def}
	for name, d := range spec.Domains {
		file := d.File
		if file == "" {
			file = spec.File
		}
		if file == spec.File && d.Signing == nil {
			continue
		}
		ks, ok := loaded[file]
		if !ok {
			if ks, err = Load(file); err != nil {
				return nil, fmt.Errorf("domain %s: %w", name, err)
			}
			loaded[file] = ks
		}
		if d.Signing != nil {
			cp := *ks
			if err := cp.SetSigning(*d.Signing); err != nil {
				return nil, fmt.Errorf("domain %s: %w", name, err)
			}
			ks = &cp
		}
		ring.SetDomain(name, ks)
	}
	return ring, nil
}
