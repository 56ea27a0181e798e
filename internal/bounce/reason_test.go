package bounce

import (
	"slices"
	"strings"
	"testing"
)

// TestReasonFor covers the derivation rules one by one: status codes,
// precise and stock wording, the refused SMTP command, hard/soft.
func TestReasonFor(t *testing.T) {
	cases := []struct {
		name   string
		in     reasonInput
		reason Reason
		hard   bool
	}{
		{"status 5.1.1", reasonInput{action: "failed", status: "5.1.1"}, ReasonUserUnknown, true},
		{"status 5.1.2", reasonInput{action: "failed", status: "5.1.2"}, ReasonHostUnknown, true},
		{"status 5.2.2", reasonInput{action: "failed", status: "5.2.2"}, ReasonMailboxFull, false},
		{"status 5.3.4", reasonInput{action: "failed", status: "5.3.4"}, ReasonMesgTooBig, false},
		{"status 5.2.3", reasonInput{action: "failed", status: "5.2.3"}, ReasonExceedLimit, false},
		{"status 5.1.6", reasonInput{action: "failed", status: "5.1.6"}, ReasonHasMoved, true},
		{"status 5.1.8", reasonInput{action: "failed", status: "5.1.8"}, ReasonRejected, false},
		{"status 5.6.1", reasonInput{action: "failed", status: "5.6.1"}, ReasonContentError, false},
		{"null MX", reasonInput{action: "failed", status: "5.7.27"}, ReasonNotAccept, true},
		{"temporary user unknown is soft", reasonInput{action: "failed", status: "4.1.1"}, ReasonUserUnknown, false},
		{"delayed user unknown is soft", reasonInput{action: "delayed", status: "5.1.1"}, ReasonUserUnknown, false},
		{"success", reasonInput{action: "delivered", status: "2.0.0"}, ReasonDelivered, false},
		{"deliverable", reasonInput{action: "deliverable", status: "2.1.5"}, ReasonDelivered, false},
		{"delay without cause", reasonInput{action: "delayed", status: "4.0.0"}, ReasonExpired, false},
		{"Postfix user unknown", reasonInput{action: "failed", status: "5.1.1",
			diag: "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table"}, ReasonUserUnknown, true},
		{"text over generic status", reasonInput{action: "failed", status: "5.0.0", diag: "550 Mailbox quota exceeded"}, ReasonMailboxFull, false},
		{"code in the diagnostic", reasonInput{action: "failed", status: "5.0.0", diag: "smtp; 550 5.1.1 no such mailbox"}, ReasonUserUnknown, true},
		{"spam over 5.7.1", reasonInput{action: "failed", status: "5.7.1", diag: "554 5.7.1 Message rejected as spam by Content Filtering"}, ReasonSpamDetected, false},
		{"block list over 5.7.1", reasonInput{action: "failed", status: "5.7.1",
			diag: "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"}, ReasonBlocked, false},
		{"block list named in a URL", reasonInput{action: "failed", status: "5.7.1", diag: "553 http://www.spamhaus.org/query/bl?ip=192.0.2.1"}, ReasonBlocked, false},
		{"spam verdict over a reused 5.1.1", reasonInput{action: "failed", status: "5.1.1", diag: "550 5.1.1 message looks like spam"}, ReasonSpamDetected, false},
		{"relay", reasonInput{action: "failed", status: "5.7.1", diag: "554 5.7.1 <bob@example.net>: Relay access denied"}, ReasonNoRelaying, false},
		{"virus", reasonInput{action: "failed", status: "5.7.0", diag: "550 5.7.0 Virus found: Eicar-Test-Signature"}, ReasonVirusDetected, false},
		{"no virus in an address", reasonInput{action: "failed", status: "5.1.1", diag: "550 5.1.1 <antivirus@example.net>... User unknown"}, ReasonUserUnknown, true},
		{"DMARC", reasonInput{action: "failed", status: "5.7.26",
			diag: "550-5.7.26 Unauthenticated email from example.com is not accepted due to 550-5.7.26 domain's DMARC policy."}, ReasonPolicyViolation, false},
		{"SPF", reasonInput{action: "failed", status: "5.7.1", diag: "550 5.7.1 SPF check failed for 192.0.2.1"}, ReasonBlocked, false},
		{"size", reasonInput{action: "failed", status: "5.3.4", diag: "552 5.3.4 Message size exceeds fixed limit"}, ReasonMesgTooBig, false},
		{"full mailbox with 5.2.0", reasonInput{action: "failed", status: "5.2.0", diag: "552 Requested mail action aborted: exceeded storage allocation"}, ReasonMailboxFull, false},
		{"disabled account with 5.2.1", reasonInput{action: "failed", status: "5.2.1",
			diag: "550-5.2.1 The email account that you tried to reach is disabled."}, ReasonSuspend, false},
		{"stock word loses to the code", reasonInput{action: "failed", status: "5.7.1", diag: "550 5.7.1 Access denied"}, ReasonSecurityError, false},
		{"stock word without a code", reasonInput{action: "failed", diag: "550 Access denied"}, ReasonBlocked, false},
		{"host unknown", reasonInput{action: "failed", diag: "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found"}, ReasonHostUnknown, true},
		{"temporary DNS failure", reasonInput{action: "delayed", status: "4.4.3",
			diag: "Host or domain name not found. Name service error for name=example.net type=MX: Host not found, try again"}, ReasonNetworkError, false},
		{"NXDOMAIN with a temporary code", reasonInput{action: "delayed", status: "4.0.0", diag: "DNS type 'mx' lookup responded with code NXDOMAIN"}, ReasonNetworkError, false},
		{"sender refused", reasonInput{action: "failed", status: "5.7.1", diag: "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user"}, ReasonRejected, false},
		{"unknown user after DATA is the filter", reasonInput{action: "failed", diag: "550 Unknown user bob@example.jp", command: "DATA"}, ReasonFiltered, false},
		{"unknown user at RCPT TO", reasonInput{action: "failed", status: "5.2.1", diag: "550 5.2.1 <bob@example.net>... User Unknown", command: "RCPT"}, ReasonUserUnknown, true},
		{"unknown user with a mailbox-status code", reasonInput{action: "failed", status: "5.2.1", diag: "550 5.2.1 <bob@example.net>... User Unknown"}, ReasonFiltered, false},
		{"unknown user without a command", reasonInput{action: "failed", diag: "This user doesn't have a example.com account (bob@example.com) [0]"}, ReasonUserUnknown, true},
		{"refused at MAIL FROM", reasonInput{action: "failed", status: "5.1.0", diag: "553 5.1.0 example.org does not exist", command: "MAIL"}, ReasonRejected, false},
		{"refused at connection", reasonInput{action: "failed", diag: "554 mx.example.net ESMTP not accepting connections", command: "CONN"}, ReasonBlocked, false},
		{"rate limit", reasonInput{action: "delayed", status: "4.7.0", diag: "421 4.7.0 Too many concurrent SMTP connections"}, ReasonTooManyConn, false},
		{"mailer", reasonInput{action: "failed", status: "5.0.0", diagType: "x-unix", diag: "exit status 75"}, ReasonMailerError, false},
		{"mailer with a status", reasonInput{action: "failed", status: "5.3.0", diagType: "x-unix", diag: "77"}, ReasonSystemError, false},
		{"syntax", reasonInput{action: "failed", diag: "501 Syntax error in parameters"}, ReasonSyntaxError, false},
		{"expired in the queue", reasonInput{action: "failed", status: "4.4.7", diag: "retry timeout exceeded"}, ReasonExpired, false},
		{"the cause behind an expiry", reasonInput{action: "failed", status: "4.4.7", diag: "452 4.4.5 Insufficient disk space; try again later"}, ReasonSystemFull, false},
		{"vague", reasonInput{action: "failed", status: "5.0.0", diag: "Delivery to this recipient failed"}, ReasonOnHold, false},
		{"nothing", reasonInput{action: "failed"}, ReasonUndefined, false},
		{"prose decides when the diagnostic is empty", reasonInput{action: "failed", context: "Your message could not be delivered: the mailbox is full."}, ReasonMailboxFull, false},
		{"stock words in prose do not", reasonInput{action: "failed", context: "A problem occurred; see our security page."}, ReasonUndefined, false},
		{"Japanese", reasonInput{action: "failed", diag: "宛先不明のため配信できませんでした"}, ReasonUserUnknown, true},
	}
	for _, c := range cases {
		var r Recipient
		classifyRecipient(&r, c.in)
		if r.Reason != c.reason || r.Hard != c.hard {
			t.Errorf("%s: got %s hard=%v, want %s hard=%v", c.name, r.Reason, r.Hard, c.reason, c.hard)
		}
	}
}

// TestReasonTaxonomy keeps the documented list and the rules in step:
// every rule names a reason of the list, and the hard ones are hard.
func TestReasonTaxonomy(t *testing.T) {
	all := Reasons()
	for _, r := range textRules {
		if !slices.Contains(all, r.reason) {
			t.Errorf("rule with unknown reason %q", r.reason)
		}
		for _, p := range r.phrases {
			if p != strings.ToLower(p) || strings.TrimSpace(p) == "" {
				t.Errorf("%s: phrase %q is not lower case", r.reason, p)
			}
		}
	}
	for _, r := range all {
		want := r == ReasonUserUnknown || r == ReasonHostUnknown || r == ReasonHasMoved || r == ReasonNotAccept
		if hardReason(r) != want {
			t.Errorf("hardReason(%s) = %v", r, hardReason(r))
		}
	}
	if KindAutoreply.EventReason() != ReasonVacation || KindARF.EventReason() != ReasonFeedback || KindDSN.EventReason() != "" {
		t.Error("EventReason")
	}
}

func TestSMTPCommand(t *testing.T) {
	for text, want := range map[string]string{
		"host mx[192.0.2.1] said: 550 5.1.1 <a@b>: User unknown (in reply to RCPT TO command)": "RCPT",
		"SMTP error from remote mail server after end of data: 550 rejected":                   "DATA",
		"... while talking to mx.example.net.:\n>>> MAIL From:<a@b> SIZE=10\n<<< 553 denied":   "MAIL",
		">>> RCPT To:<a@b>\n<<< 250 ok\n>>> DATA\n<<< 554 no":                                  "DATA",
		"SMTP error from remote mail server after initial connection: 554 go away":             "CONN",
		"Connected to 192.0.2.1 but my name was rejected.":                                     "HELO",
		"550 User unknown": "",
	} {
		if got := smtpCommand(text); got != want {
			t.Errorf("smtpCommand(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestFormats reads synthetic reports in the documented formats of MTAs
// that are not (or barely) in the corpus: recipients and reasons.
func TestFormats(t *testing.T) {
	const orig = "Message-ID: <orig-9@example.com>\nFrom: alice@example.com\nTo: list@example.com\nSubject: hello\n"
	type want struct {
		addr   string
		reason Reason
		hard   bool
	}
	cases := []struct {
		name string
		msg  string
		want []want
	}{
		{
			name: "X.400 Final-Recipient, RFC 822 address in Original-Recipient",
			msg: "From: postmaster@gw.example.net\nSubject: Delivery failure\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n" +
				"--x\nContent-Type: text/plain\n\nYour message was not delivered.\n\n--x\nContent-Type: message/delivery-status\n\nReporting-MTA: x400; gw.example.net\n\n" +
				"Original-Recipient: rfc822;John.Doe@example.net\nFinal-Recipient: x400; /C=US/ADMD= /PRMD=EXAMPLE/O=HQ/S=Doe/G=John/\nAction: failed\nStatus: 5.1.1\n\n" +
				"--x\nContent-Type: text/rfc822-headers\n\n" + orig + "\n--x--\n",
			want: []want{{"john.doe@example.net", ReasonUserUnknown, true}},
		},
		{
			name: "domain-less Final-Recipient, address in the text",
			msg: "From: MAILER-DAEMON@mx.example.net\nSubject: Undeliverable\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n" +
				"--x\nContent-Type: text/plain\n\nDelivery to the following recipient failed permanently:\n\n    jsmith@example.net\n\nMailbox is full\n\n" +
				"--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: LOCAL; jsmith\nAction: failed\nStatus: 5.2.2\n\n--x--\n",
			want: []want{{"jsmith@example.net", ReasonMailboxFull, false}},
		},
		{
			name: "SIMS: internal host in Final-Recipient",
			msg: "From: Internet Mail Delivery <postmaster@mail.example.com>\nSubject: Delivery Notification: Delivery has failed\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n" +
				"--x\nContent-Type: text/plain\n\nThis report relates to a message you sent.\n\n--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mail.example.com\n\n" +
				"Action: failed\nStatus: 5.0.0 (recipient reached disk quota)\nOriginal-recipient: rfc822;Carol@example.com\nFinal-recipient: rfc822;Carol@ims-ms-daemon\n\n--x--\n",
			want: []want{{"carol@example.com", ReasonMailboxFull, false}},
		},
		{
			name: "Netscape Messaging Server: a report without recipient blocks",
			msg: "From: Mail Administrator <Postmaster@mail.example.org>\nSubject: Mail System Error - Returned Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n" +
				"--x\nContent-Type: text/plain\n\nThis Message was undeliverable due to the following reason:\n\nYour message was not delivered because the destination computer was\nnot reachable within the allowed queue period.\n\n" +
				"The following recipients did not receive your message:\n\n     <dave@example.org>\n\nThe following recipients did not receive your message:\n\n     <erin@example.org>\n\n" +
				"--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mail.example.org\n\n--x--\n",
			want: []want{{"dave@example.org", ReasonExpired, false}, {"erin@example.org", ReasonExpired, false}},
		},
		{
			name: "Exchange 5.5 with an X.400 recipient",
			msg: "From: System Administrator <postmaster@example.com>\nSubject: Undeliverable: hello\nContent-Type: text/plain\n\n" +
				"Your message\n\n  To:      list@example.com\n  Subject: hello\n  Sent:    Fri, 4 Oct 2002 17:10:56 -0400\n\ndid not reach the following recipient(s):\n\n" +
				"c=US;a= ;p=EXAMPLE;o=Site1;dda:SMTP=FRANK@EXAMPLE.COM; on Fri, 4 Oct 2002 17:12:28 -0400\n    The recipient name is not recognized\n" +
				"\tThe MTS-ID of the original message is: c=us;a= ;p=example;l=SRV-0210042112\n    MSEXCH:IMS:EXAMPLE:Site1:SRV 0 (000C05A6) Unknown Recipient\n",
			want: []want{{"frank@example.com", ReasonUserUnknown, true}},
		},
		{
			name: "Exchange 2000, several recipients",
			msg: "From: postmaster@example.com\nSubject: Undeliverable: hello\nContent-Type: text/plain\n\nYour message did not reach some or all of the intended recipients.\n\n" +
				"      Subject:  hello\n      Sent:     3/10/2004 10:07 AM\n\nThe following recipient(s) could not be reached:\n\n" +
				"      gina@example.com on 3/10/2004 10:07 AM\n            The e-mail address could not be found.\n            <mx.example.com #5.1.1>\n\n" +
				"      hank@example.com on 3/10/2004 10:07 AM\n            The recipient's mailbox is full and can't accept messages now.\n            <mx.example.com #5.2.2>\n",
			want: []want{{"gina@example.com", ReasonUserUnknown, true}, {"hank@example.com", ReasonMailboxFull, false}},
		},
		{
			name: "Lotus Domino",
			msg: "From: Postmaster@notes.example.com\nSubject: DELIVERY FAILURE: User ivan (ivan@example.com) not listed in Domino Directory\nContent-Type: text/plain\n\n" +
				"Your message\n\n  Subject: hello\n\nwas not delivered to:\n\n  ivan@example.com\n\nbecause:\n\n  User ivan (ivan@example.com) not listed in Domino Directory\n",
			want: []want{{"ivan@example.com", ReasonUserUnknown, true}},
		},
		{
			name: "Lotus Notes, the reason above the address",
			msg: "From: postmaster@notes.example.co.jp\nSubject: Undeliverable message\nContent-Type: text/plain; charset=utf-8\n\n------- Failure Reasons  --------\n\n" +
				"User not listed in public Name & Address Book\njudy@example.co.jp\n\n------- Returned Message --------\n" + orig,
			want: []want{{"judy@example.co.jp", ReasonUserUnknown, true}},
		},
		{
			name: "Novell GroupWise",
			msg: "From: Mail Administrator <postmaster@gw.example.net>\nSubject: Message status - undeliverable\nContent-Type: text/plain\n\n" +
				"The message that you sent was undeliverable to the following:\n\tkate@example.net (user not found)\n\tleo@example.net (mailbox full)\n\nPossible causes are listed below.\n",
			want: []want{{"kate@example.net", ReasonUserUnknown, true}, {"leo@example.net", ReasonMailboxFull, false}},
		},
		{
			name: "qmail, several recipients",
			msg: "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n" +
				"<mike@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n<nina@example.org>:\nThe users mailfolder is over the allowed quota (size). (#5.2.2)\n\n" +
				"<oscar@example.net>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 5.7.1 <oscar@example.net>: Relay access denied\nGiving up on 192.0.2.7.\n\n--- Below this line is a copy of the message.\n\n" + orig,
			want: []want{{"mike@example.org", ReasonUserUnknown, true}, {"nina@example.org", ReasonMailboxFull, false}, {"oscar@example.net", ReasonNoRelaying, false}},
		},
		{
			name: "old Sendmail without DSN",
			msg: "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.edu>\nSubject: Returned mail: User unknown\n\n   ----- Transcript of session follows -----\n" +
				"... while talking to mail.example.edu.:\n>>> RCPT To:<paul@example.edu>\n<<< 550 <paul@example.edu>... User unknown\n550 <paul@example.edu>... User unknown\n" +
				"... while talking to mx.example.com.:\n>>> DATA\n<<< 554 5.7.1 Message rejected: spam score too high\n554 <quinn@example.com>... Service unavailable\n\n   ----- Unsent message follows -----\n" + orig,
			want: []want{{"paul@example.edu", ReasonUserUnknown, true}, {"quinn@example.com", ReasonSpamDetected, false}},
		},
		{
			name: "Exim, three recipients, three reasons",
			msg: "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nSubject: Mail delivery failed: returning message to sender\n\n" +
				"This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n" +
				"  rita@example.net\n    SMTP error from remote mail server after RCPT TO:<rita@example.net>:\n    host mx.example.net [192.0.2.1]: 550 5.1.1 <rita@example.net>: No such user\n" +
				"  sam@example.com\n    SMTP error from remote mail server after end of data:\n    host mx.example.com [192.0.2.2]: 552 5.3.4 Message size exceeds fixed limit\n" +
				"  tom@example.invalid\n    Unrouteable address\n\n------ This is a copy of the message, including all the headers. ------\n\n" + orig,
			want: []want{{"rita@example.net", ReasonUserUnknown, true}, {"sam@example.com", ReasonMesgTooBig, false}, {"tom@example.invalid", ReasonHostUnknown, true}},
		},
		{
			name: "AOL screen names",
			msg: "From: Mail Delivery Subsystem <MAILER-DAEMON@aol.example>\nSubject: Mail Delivery Problem\nContent-Type: text/plain\n\n" +
				"Your mail to the following recipients could not be delivered because they are not accepting mail from alice@example.com:\n\tursula\n\tvictor\n",
			want: []want{{"ursula@aol.example", ReasonFiltered, false}, {"victor@aol.example", ReasonFiltered, false}},
		},
		{
			name: "delay warning in prose",
			msg: "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nSubject: Warning: message delayed\n\n" +
				"This message was created automatically by mail delivery software.\nA message that you sent has not yet been delivered to one or more of its\nrecipients after more than 24 hours on the queue on mx.example.org.\n\n" +
				"  walt@example.net\n    Delay reason: SMTP error from remote mail server after RCPT TO:<walt@example.net>:\n    451 4.3.2 Connection rate limit exceeded\n\nNo action is required on your part.\n",
			want: []want{{"walt@example.net", ReasonTooManyConn, false}},
		},
	}
	for _, c := range cases {
		rep := analyzeString(t, c.msg)
		if rep.Kind != KindDSN {
			t.Errorf("%s: kind %s", c.name, rep.Kind)
			continue
		}
		var got []want
		for _, r := range rep.Recipients {
			got = append(got, want{r.Address, r.Reason, r.Hard})
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
}

// TestMatcherSizes keeps the phrase automata within the 15-bit states
// they are stored with, and the reason rules' rows within a cache line.
func TestMatcherSizes(t *testing.T) {
	for name, m := range map[string]*phraseMatcher{"reason": reasonPhrases(), "body": bodyPhrases(), "hint": hintPhrases(),
		"command": commandPhrases(), "delay": delayPhrases(), "marker": markerPhrases()} {
		if len(m.groups) >= maxStates {
			t.Errorf("%s: %d states", name, len(m.groups))
		}
	}
	if m := reasonPhrases(); m.nclass > 32 {
		t.Errorf("reason rules: %d byte classes, rows no longer fit a cache line", m.nclass)
	}
}

// TestMatchWords: phrases split by folding or by the codes of a
// multi-line reply still match; words inside addresses do not.
func TestMatchWords(t *testing.T) {
	m := newMatcher([][]string{{"not permitted to relay"}, {"virus"}, {"送信に失敗"}})
	for text, want := range map[string]uint64{
		"550-mx.example.net is not permitted to\n550 relay through this server": 1,
		"550-5.7.1 not permitted\n550-5.7.1 to  relay":                          1,
		"550 5.1.1 <antivirus@example.net>... User unknown":                     0,
		"Virus found: http://av.example/virus.html":                             2,
		"メールの送信に失敗しました":                                                         4,
	} {
		if got := matchWords(m, text); got != want {
			t.Errorf("matchWords(%q) = %b, want %b", text, got, want)
		}
	}
}

func TestIndexFold(t *testing.T) {
	alpha := "aAbB@.xX"
	// Every string of up to 5 bytes over a small alphabet, every needle
	// of up to 2: indexFold agrees with strings.Index on lowered text.
	var gen func(prefix string, n int, f func(string))
	gen = func(prefix string, n int, f func(string)) {
		f(prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(alpha); i++ {
			gen(prefix+alpha[i:i+1], n-1, f)
		}
	}
	gen("", 5, func(s string) {
		for _, needle := range []string{"", "a", "b", "ab", "ba", "@.", "xa", ".x", "aa"} {
			if got, want := indexFold(s, needle), strings.Index(strings.ToLower(s), needle); got != want {
				t.Fatalf("indexFold(%q, %q) = %d, want %d", s, needle, got, want)
			}
		}
	})
}

// TestBareLocalFinalRecipients: several Final-Recipient values without a
// domain are matched to the text's addresses by local part.
func TestBareLocalFinalRecipients(t *testing.T) {
	rep := analyzeString(t, "From: MAILER-DAEMON@mx.example.net\nSubject: Undeliverable\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"+
		"--x\nContent-Type: text/plain\n\nDelivery to the following recipients failed permanently:\n\n    Bob@example.net\n    carol@example.org\n\n"+
		"--x\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"+
		"Final-Recipient: LOCAL; carol\nAction: failed\nStatus: 5.2.2\n\nFinal-Recipient: LOCAL; bob\nAction: failed\nStatus: 5.1.1\n\n--x--\n")
	if got := rep.BouncedAddresses(); !slices.Equal(got, []string{"carol@example.org", "bob@example.net"}) {
		t.Errorf("recipients %q", got)
	}
}
