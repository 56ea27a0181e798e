package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bounce-milter/bounce-milter/internal/bounce"
)

// reasonTally compares our per-recipient reasons, hard/soft and recipient
// sets with sisimai's results, message by message.
type reasonTally struct {
	same, different, none int     // messages where sisimai gives a reason
	records               counter // sisimai records whose reason we match
	hard                  counter // records whose hard/soft we match
	rcpts                 counter // bounces where sisimai names recipients: same set as ours
	confusion             map[string]int
	misses                []string
}

// sisimaiHard applies sisimai 4's soft_or_hard rule to one of its records:
// userunknown, hostunknown, hasmoved and (unless the status is 4.x.x)
// notaccept are hard; delivered, feedback and vacation are neither; every
// other reason is soft.
func sisimaiHard(reason, status string) string {
	switch reason {
	case "", "delivered", "feedback", "vacation":
		return ""
	case "userunknown", "hostunknown", "hasmoved":
		return "hard"
	case "notaccept":
		if strings.HasPrefix(status, "4") {
			return "soft"
		}
		return "hard"
	}
	return "soft"
}

// ourRecord finds our recipient for sisimai's record i of n: by address,
// else by position when both list as many, else our only recipient.
func ourRecord(rep *bounce.Report, addr string, i, n int) (rc bounce.Recipient, ok bool) {
	if r := rep.Kind.EventReason(); r != "" {
		return bounce.Recipient{Reason: r}, true
	}
	for _, rc := range rep.Recipients {
		if rc.Address == addr {
			return rc, true
		}
	}
	switch {
	case len(rep.Recipients) == n && i < n:
		return rep.Recipients[i], true
	case len(rep.Recipients) == 1:
		return rep.Recipients[0], true
	}
	return bounce.Recipient{}, false
}

func (t *reasonTally) add(path, category string, rep *bounce.Report, sr sisRow) {
	if t.confusion == nil {
		t.confusion = map[string]int{}
	}
	if category == "bounce" {
		if want := sisimaiRecipients(sr); len(want) > 0 {
			ok := sameSet(rep.BouncedAddresses(), want)
			t.rcpts.add(ok)
			if !ok {
				t.misses = append(t.misses, fmt.Sprintf("rcpt-vs-sisimai %s: %q (sisimai %q)", path, rep.BouncedAddresses(), want))
			}
		}
	}
	n := 0
	for _, r := range sr.reasons {
		if r != "" && r != "reason" {
			n++
		}
	}
	if n == 0 {
		return
	}
	found, agree := 0, 0
	var diffs []string
	for i, want := range sr.reasons {
		if want == "" || want == "reason" {
			continue
		}
		addr := ""
		if i < len(sr.recipients) {
			addr = sr.recipients[i]
		}
		status := ""
		if i < len(sr.statuses) {
			status = sr.statuses[i]
		}
		rc, ok := ourRecord(rep, addr, i, len(sr.reasons))
		got, hard := rc.Reason, rc.Hard
		if !ok {
			t.records.add(false)
			t.confusion[want+" -> (none)"]++
			diffs = append(diffs, fmt.Sprintf("%s: sisimai %s, ours none", addr, want))
			continue
		}
		found++
		same := string(got) == want
		t.records.add(same)
		if same {
			agree++
		} else {
			t.confusion[want+" -> "+string(got)]++
			diffs = append(diffs, fmt.Sprintf("%s: sisimai %s %s, ours %s %s %q", addr, want, status, got, rc.Status, clipText(rc.Diagnostic, 160)))
		}
		if sh := sisimaiHard(want, status); sh != "" {
			t.hard.add((sh == "hard") == hard)
		}
	}
	switch {
	case found == 0:
		t.none++
	case agree == n:
		t.same++
	default:
		t.different++
	}
	if len(diffs) > 0 {
		t.misses = append(t.misses, fmt.Sprintf("reason %s: %s", path, strings.Join(diffs, "; ")))
	}
}

func (t *reasonTally) print(w io.Writer, verbose bool) {
	total := t.same + t.different + t.none
	fmt.Fprintf(w, "\nagainst sisimai's own results (sisimai-results.tsv):\n")
	fmt.Fprintf(w, "  %-44s %s\n", "recipients = sisimai's (bounces it answers)", t.rcpts)
	if total > 0 {
		fmt.Fprintf(w, "  %-44s %d: same %d (%.1f %%), different %d, we give none %d\n", "reason, messages where sisimai gives one",
			total, t.same, 100*float64(t.same)/float64(total), t.different, t.none)
	}
	fmt.Fprintf(w, "  %-44s %s\n", "reason, per sisimai record", t.records)
	fmt.Fprintf(w, "  %-44s %s\n", "hard/soft, per record (sisimai's rule)", t.hard)
	if !verbose {
		return
	}
	keys := make([]string, 0, len(t.confusion))
	for k := range t.confusion {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if t.confusion[keys[i]] != t.confusion[keys[j]] {
			return t.confusion[keys[i]] > t.confusion[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Fprintf(w, "  differ %3d  %s\n", t.confusion[k], k)
	}
	for _, m := range t.misses {
		fmt.Fprintf(w, "miss %s\n", m)
	}
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
