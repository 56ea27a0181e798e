// Package bounce reads automatic mail: delivery status notifications
// (RFC 3464 and RFC 6533, and the non-standard texts of real MTAs),
// auto-replies (RFC 3834), challenge-response messages, message disposition
// notifications (RFC 8098) and abuse reports (RFC 5965).
//
// Analyze answers, for one message, what the backscatter decision and the
// bounce events need: what kind of automatic mail it is (Kind), what it
// returns (the original's Message-ID, sender, raw bytes for a DKIM check,
// its Received hops) and which recipients failed, with what status.
//
// The reader is lenient on purpose: real bounces break every rule of MIME
// and RFC 3464 (missing boundaries, per-recipient fields in text parts,
// originals pasted inline), so the header and multipart readers here are
// hand-written, tolerant, and bounded (Limits), while go-message decodes
// transfer encodings and charsets. The package does no I/O besides reading
// the message it is given.
package bounce
