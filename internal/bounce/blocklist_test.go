package bounce

import (
	"slices"
	"testing"
)

func TestBlocklists(t *testing.T) {
	for _, c := range []struct {
		diag string
		want []string
	}{
		{"554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.25", []string{"zen.spamhaus.org"}},
		{"521-5.7.1 Service unavailable; client [203.0.113.225] blocked using dnsbl.sorbs.net", []string{"dnsbl.sorbs.net"}},
		{"554 5.7.1 <e22-33.smtp-out.amazonses.com[192.0.2.127]>: Client host rejected: blocked using mail.neko.example.com; Please see http://mail.neko.example.com/rbl/?ip=192.0.2.127 to send.", []string{"mail.neko.example.com"}},
		{"550-5.1.0 MXIN506 MailFrom domain is listed in Spamhaus. To request removal from this list see https://www.spamhaus.org/query/lookup/", []string{"spamhaus.org"}},
		{"550 5.7.1 IP address blacklisted by recipient", nil},
		{"550 5.7.1 192.0.2.25 is listed at bl.spamcop.net and b.barracudacentral.org", []string{"bl.spamcop.net"}},
		{"553 Rejected: listed in Barracuda Reputation Block List", []string{"barracuda"}},
		{"550 5.7.1 Unfortunately, messages from [192.0.2.25] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", []string{"microsoft s3150"}},
		{"554 rejected: see https://www.uceprotect.net/en/rblcheck.php?ipr=192.0.2.25", []string{"uceprotect.net"}},
		{"550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown", nil},
		{"550 message blocked by mx1.remote.example", nil},
		{"550 Message rejected as spam by Content Filtering", nil},
		{"listed in 1.2.3.4", nil},
		{"", nil},
	} {
		got := Blocklists(c.diag)
		if !slices.Equal(got, c.want) {
			t.Errorf("Blocklists(%q) = %q, want %q", c.diag, got, c.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	for _, c := range []struct{ diag, want string }{
		{"554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org", "192.0.2.25"},
		{"host mx.remote.example[203.0.113.9] said: 554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org", "192.0.2.25"},
		{"554 5.7.1 <e22-33.smtp-out.amazonses.com[192.0.2.127]>: Client host rejected: blocked using mail.neko.example.com", "192.0.2.127"},
		{"550 5.7.1 Unfortunately, messages from [192.0.2.26] weren't sent.", "192.0.2.26"},
		{"550 5.7.1 192.0.2.27 is listed at bl.spamcop.net", "192.0.2.27"},
		{"421 4.7.0 [TSS04] Messages from 192.0.2.28 temporarily deferred", "192.0.2.28"},
		{"550 JunkMail rejected - mx-out.example.com [2001:db8::25]:41234 is in an RBL", "2001:db8::25"},
		{"host mx.remote.example[203.0.113.9] said: 550 5.1.1 user unknown", ""},
		{"550 5.7.1 see https://check.example.net/?ip=192.0.2.29 for details", "192.0.2.29"},
		{"550 deadbeef cafe::1", ""},
		{"550 5.7.1 version 1.2.3.4.5 refused", ""},
		{"", ""},
	} {
		got := ClientAddr(c.diag)
		s := ""
		if got.IsValid() {
			s = got.String()
		}
		if s != c.want {
			t.Errorf("ClientAddr(%q) = %q, want %q", c.diag, s, c.want)
		}
	}
}

func FuzzDiagnostic(f *testing.F) {
	for _, s := range []string{
		"554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org",
		"part of their network is on our block list (S3150)", "https://", "listed in ", "[::1]", "ip=1.2.3.4",
		"blocked using ......", "block list (s12",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, diag string) {
		ls := Blocklists(diag)
		if len(ls) > maxLists {
			t.Fatalf("%d lists", len(ls))
		}
		for _, l := range ls {
			if l == "" || len(l) > 260 {
				t.Fatalf("list name %q", l)
			}
		}
		_ = ClientAddr(diag)
	})
}
