package backscatter

import "fmt"

// Reason is the machine-readable reason of a decision: a metric label, a
// log value and a word in SMTP replies and headers, so the set is closed
// (Reasons lists it) and the strings are stable.
type Reason string

// Why a tag did not verify.
const (
	ReasonNotTagged    Reason = "not-tagged"
	ReasonBadSignature Reason = "bad-signature"
	ReasonExpired      Reason = "expired"
	ReasonUnknownKey   Reason = "unknown-key"
	ReasonForeignTag   Reason = "foreign-tag"
	ReasonMalformed    Reason = "malformed"
)

// Why a recipient or a message was decided as it was.
const (
	ReasonValidTag    Reason = "valid-tag"   // our tag verified
	ReasonReplayed    Reason = "replayed"    // a valid tag used more often than it was signed for
	ReasonEvidence    Reason = "evidence"    // untagged, and we sent the original
	ReasonBackscatter Reason = "no-evidence" // untagged, and nothing shows we sent the original
	ReasonFlood       Reason = "flood"       // untagged, during a bounce flood to the recipient or from the client
	ReasonExempt      Reason = "exempt"      // postmaster, abuse and configured recipients
	ReasonModeOff     Reason = "mode-off"    // checks off for the domain
	ReasonGrace       Reason = "grace"       // signing began too recently
	ReasonGap         Reason = "gap"         // the original was sent while the store could not record it
	ReasonStoreError  Reason = "store-error" // the store could not answer
	ReasonBadAddress  Reason = "bad-address" // an address of ours that cannot be read
	ReasonNotChecked  Reason = "not-checked" // a bounce the service cannot judge (no body: policy only)
	ReasonInternal    Reason = "internal-error"
)

// Why outbound mail was or was not signed.
const (
	ReasonSigned        Reason = "signed"
	ReasonNotOurDomain  Reason = "not-our-domain"
	ReasonAlreadyTagged Reason = "already-tagged"
	ReasonSRS           Reason = "srs"
	ReasonVERP          Reason = "verp"
	ReasonOptedOut      Reason = "opted-out"
	// ReasonPassThrough: the sender is an address whose bounces are left
	// alone ([inbound] pass_through: a list's bounce or owner address):
	// a tag would protect nothing, and its genuine bounces, all delivered,
	// would count against it as a sender's.
	ReasonPassThrough Reason = "pass-through"
	ReasonSigningOff  Reason = "signing-off"
	ReasonNoKey       Reason = "no-key"
	ReasonNullSender  Reason = "null-sender"
	ReasonUnparsable  Reason = "unparsable-sender"
	ReasonSignError   Reason = "sign-error"
	// A response to an alert (package alerts): the sender's account looks
	// compromised, and the site chose to stop signing its mail, or to
	// defer it until an admin clears the alert.
	ReasonAlertNoSign Reason = "alert-no-sign"
	ReasonAlertHold   Reason = "alert-hold"
)

// Reasons is the closed set of reasons, for metric label validation and
// documentation.
var Reasons = []Reason{
	ReasonNotTagged, ReasonBadSignature, ReasonExpired, ReasonUnknownKey, ReasonForeignTag, ReasonMalformed,
	ReasonValidTag, ReasonReplayed, ReasonEvidence, ReasonBackscatter, ReasonFlood, ReasonExempt, ReasonModeOff,
	ReasonGrace, ReasonGap, ReasonStoreError, ReasonBadAddress, ReasonNotChecked, ReasonInternal,
	ReasonSigned, ReasonNotOurDomain, ReasonAlreadyTagged, ReasonSRS, ReasonVERP, ReasonOptedOut, ReasonPassThrough, ReasonSigningOff,
	ReasonNoKey, ReasonNullSender, ReasonUnparsable, ReasonSignError, ReasonAlertNoSign, ReasonAlertHold,
}

// Result is a verdict header's result word, as in Authentication-Results.
type Result string

// Results.
const (
	ResultPass    Result = "pass"
	ResultFail    Result = "fail"
	ResultNeutral Result = "neutral"
	ResultNone    Result = "none"
)

func (r Result) rank() int {
	switch r {
	case ResultFail:
		return 3
	case ResultNeutral:
		return 2
	case ResultPass:
		return 1
	}
	return 0
}

// Action is what becomes of one recipient.
type Action int

// Actions.
const (
	ActAccept Action = iota
	ActReject
	ActTempfail
	ActQuarantine
	// ActDrop is a refused recipient removed from a message that is
	// delivered to its other recipients (the milter deletes it): what a
	// rejection becomes once the message is combined (Decide).
	ActDrop
)

func (a Action) String() string {
	switch a {
	case ActDrop:
		return "drop-recipient"
	case ActAccept:
		return "accept"
	case ActReject:
		return "reject"
	case ActTempfail:
		return "tempfail"
	case ActQuarantine:
		return "quarantine"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Verdict is a decision about one recipient with everything needed to act
// on it and log it.
type Verdict struct {
	Action  Action
	Result  Result
	Reason  Reason
	Comment string // human-readable, goes in the header's parentheses
	// Evidence that decided, e.g. "store:<id>", "dkim:example.com".
	Evidence []string
}

// Header is the verdict header's value: RESULT (COMMENT).
func (v Verdict) Header() string {
	if v.Comment == "" {
		return string(v.Result)
	}
	return fmt.Sprintf("%s (%s)", v.Result, v.Comment)
}

// RejectText is the SMTP reply text (enhanced code first) for a refusal.
func RejectText(reason Reason) string {
	switch reason {
	case ReasonBadSignature:
		return "5.7.1 Bounce address tag is forged (bad-signature): we did not send the message this bounce is for"
	case ReasonExpired:
		return "5.7.1 Bounce address tag has expired (expired): we did not send the message this bounce is for recently"
	case ReasonUnknownKey:
		return "5.7.1 Bounce address tag names an unknown key (unknown-key): we did not send the message this bounce is for"
	case ReasonReplayed:
		return "5.7.1 Bounce address tag used more often than the message had recipients (replayed)"
	case ReasonBackscatter:
		return "5.7.1 Backscatter: this bounce or auto-reply is for mail we did not send (no-evidence)"
	case ReasonFlood:
		return "5.7.1 Backscatter: too many bounces to this address; untagged bounces refused for now (flood)"
	case ReasonBadAddress:
		return "5.1.3 Recipient address of our domain cannot be read (bad-address)"
	}
	return fmt.Sprintf("5.7.1 Bounce address tag not valid (%s)", reason)
}

// HoldText is the SMTP reply text of our user's mail deferred by an
// alert's response (alert-hold).
const HoldText = "4.7.1 Sending from this address is suspended: it looks compromised; contact your postmaster"

// TempfailText is the SMTP reply text of a temporary refusal.
const TempfailText = "4.3.0 Bounce check temporarily unavailable; try again later"
