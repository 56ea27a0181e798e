//go:build !linux

package milter

import "net"

// quickAckListener is a no-op where TCP_QUICKACK does not exist.
type quickAckListener struct{ net.Listener }
