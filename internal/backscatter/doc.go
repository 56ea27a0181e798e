// Package backscatter is bounce-milter's decision engine: the tags it signs
// and verifies, the key ring, and every decision about a message, made the
// same way for the milter and the policy service. It does no I/O at all (a
// test keeps it so): the adapters read the configuration (package config
// converts it into Settings), load key files (package keyfile), ask the
// store and verify DKIM signatures (package dkimcheck), and hand the engine
// what they learnt.
//
// # Tags
//
// BATV prvs (draft-levine-smtp-batv-01, byte for byte Exim's ${prvs}):
// prvs=KDDDHHHHHH=local@domain, K the key number, DDD the expiry day modulo
// 1000, HHHHHH the first three bytes of HMAC-SHA1(key, K DDD local@domain);
// its sub-address form local+prvs=KDDDHHHHHH@domain; and a signed VERP that
// binds the tag to one recipient (verp.go). Foreign tags (Barracuda's btv1,
// SparkPost's msprvs1, IronPort's 9-digit prvs) and SRS are recognised only
// so that an address is never signed twice and never mistaken for ours.
//
// # Decisions
//
// decide.go says which mail is judged and how (AtRcpt at RCPT, Judge and
// Decide at end of message); evidence.go is the evidence ladder that proves
// an untagged bounce answers mail we sent, every rung bound to the bounced
// address; address.go reads envelope addresses as Postfix will deliver
// them (RFC 5321 section 4.1.2 source routes, bang paths, the percent
// hack, quoted routes, local domains stripped), or as the milter hears
// Postfix resolved them. The rules, in short:
//
//   - A tag of ours that does not verify (forged, expired, unknown key) is
//     never a real mailbox: refused at RCPT whoever sends (RFC 3834
//     auto-replies come from ordinary senders), and counted against the
//     client, so that guessing a 24-bit hash online is not free.
//   - An address in which one of our domains appears but that cannot be
//     read (a space or control character in the local part, over 1024
//     bytes, an unbalanced quote, routing too deep) is refused at RCPT,
//     not waved through as "not ours".
//   - Untagged recipients are never refused at RCPT: sender-verification
//     callouts (MAIL FROM:<>, RCPT, QUIT) must pass and spend nothing.
//   - Null-sender mail (RFC 5321 section 4.5.5 reserves the null
//     reverse-path for notifications) is judged; mail from any other sender
//     only when the bounce analysis finds a delivery report, an auto-reply,
//     a challenge or a read receipt in it. A MAILER-DAEMON- or postmaster-
//     like sender alone never makes a message backscatter.
//   - A bounce to a valid tag is counted once, at the end of a message that
//     is delivered; a tag accepts as many as it was signed for plus a
//     slack, a tag with no record of signing a small budget, and a count
//     the store cannot vouch for (a gap in its history) never refuses.
//   - What the store could not have known is never held against a bounce:
//     an untagged bounce whose original was sent during a gap is accepted
//     and marked (ReasonGap), not refused.
//   - The domain's mode bounds every outcome: "tag" only marks, "quarantine"
//     only holds, whatever the store says; only "reject" refuses or, with
//     the store down, defers.
//   - Trust (SMTP AUTH, ORIGINATING, trusted networks) decides what is
//     signed, never which bounces are believed; local submission is never
//     refused.
package backscatter
