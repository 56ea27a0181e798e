// Package backscatter is bounce-milter's decision engine: BATV and signed-VERP
// tags, the key ring, bounce and auto-reply classification, DSN parsing, and
// verdicts with reasons. It is pure Go and does no network I/O of its own, so
// every decision can be tested without a mail server.
package backscatter
