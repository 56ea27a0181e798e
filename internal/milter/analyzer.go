package milter

import (
	"bytes"
	"context"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
	"github.com/bounce-milter/bounce-milter/internal/evidence"
)

// ReportAnalyzer is the Analyzer built on the engine's bounce analysis.
type ReportAnalyzer struct {
	Limits   bounce.Limits
	Evidence evidence.EvidenceOptions
}

// LooksLikeBounce is the engine's cheap header test.
func (a ReportAnalyzer) LooksLikeBounce(sender string, header func(string) string) bool {
	return bounce.LooksLikeBounce(sender, header)
}

// Analyze classifies the message and collects the evidence it carries
// itself (our DKIM signature on the returned original, our relays in its
// Received lines). A message that cannot be read at all counts as not a
// bounce: the envelope alone then decides.
func (a ReportAnalyzer) Analyze(ctx context.Context, raw []byte) Analysis {
	rep, err := bounce.Analyze(bytes.NewReader(raw), a.Limits)
	if err != nil || rep == nil {
		note := "unreadable"
		if err != nil {
			note = "unreadable: " + err.Error()
		}
		return Analysis{Kind: string(bounce.KindNotBounce), Note: note}
	}
	out := Analysis{
		Kind:       string(rep.Kind),
		MessageIDs: rep.CandidateMessageIDs(),
		Evidence:   evidence.CollectEvidence(ctx, rep, a.Evidence),
	}
	if rep.CapHit != "" {
		out.Note = "cap " + rep.CapHit
	}
	return out
}
