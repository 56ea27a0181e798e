//go:build race

package redisstore

// raceEnabled: the race detector slows the heavier tests; they run
// smaller under it (make check runs -race).
const raceEnabled = true
