//go:build race

package boltstore

// raceEnabled: the race detector slows the heavier tests tenfold; they
// run smaller under it (make check runs -race).
const raceEnabled = true
