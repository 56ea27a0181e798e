package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// A case is one piece of mail a site meets, and what must become of it.
type result struct {
	name    string
	genuine bool // genuine mail: must be delivered; else backscatter: must be refused
	// needsBody is set for backscatter that only a reader of the body can
	// tell apart (untagged): a policy service without the milter marks it.
	needsBody bool
	ok        bool
	marked    bool // backscatter delivered marked "not checked" (policy only)
	detail    string
}

type sent struct {
	tag, msgid, from string
	tok              string // the token in its subject, to find it at the sink
}

// run sends the outbound mail, then every case, and prints the outcome.
func run() int {
	T := *token
	now := time.Now().UTC()
	date := now.Format(time.RFC1123Z)
	policyOnly := *deployment == "policy"

	// --- Our users' mail, through the submission service. ---
	outbound := func(name, from string, rcpts []string) sent {
		id := fmt.Sprintf("%s.%s@example.com", name, T)
		tok := "tok-out-" + name + "-" + T
		data := crlf(fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <%s>\n\nHello, this is %s.\n",
			from, strings.Join(rcpts, ", "), tok, date, id, tok))
		o, refused := send(*subAddr, from, rcpts, data)
		if !o.accepted || len(refused) > 0 {
			fmt.Fprintf(os.Stderr, "outbound %s: %v %v\n", name, o, refused)
			os.Exit(1)
		}
		return sent{msgid: id, from: from, tok: tok}
	}
	// tagOf waits for an outbound message at the sink: its (signed) sender.
	tagOf := func(s *sent) {
		if ms := waitFor(s.tok, 1, 20*time.Second); len(ms) > 0 {
			s.tag = ms[0].From
		}
	}
	// alice writes to four: her tag takes 4 + 5 bounces (five come back below).
	alice := outbound("alice", "alice@example.com", []string{"dest1@remote.example", "dest1b@remote.example", "dest1c@remote.example", "dest1d@remote.example"})
	bob := outbound("bob", "bob@example.com", []string{"dest2@remote.example", "dest3@remote.example"})
	news := outbound("news", "alice+news@example.com", []string{"dest4@remote.example"})
	erin := outbound("erin", "erin@example.com", []string{"dest5@remote.example"})
	// A mailing list's post, sent with its bounce address: that address
	// is pass_through (its bounces go to the list software unjudged), so
	// it leaves unsigned.
	list := outbound("list", "list-bounces@example.com", []string{"member@remote.example"})
	// A sender written in mixed case, as some mail clients send it.
	carol := outbound("carol", "Carol@Example.COM", []string{"dest6@remote.example"})
	// All sent first, then waited for together.
	carolFwd := func() string {
		// A remote sender's mail forwarded by our alias: PostSRSd rewrites
		// its sender to an SRS0= address of ours.
		tok := "tok-fwd-" + T
		data := crlf(fmt.Sprintf("From: carol@remote.example\nTo: fwd@example.com\nSubject: %s\nDate: %s\nMessage-ID: <fwd.%s@remote.example>\n\nforward me\n", tok, date, T))
		if o, _ := send(*mxAddr, "carol@remote.example", []string{"fwd@example.com"}, data); !o.accepted {
			fmt.Fprintf(os.Stderr, "forwarded mail: %v\n", o)
			os.Exit(1)
		}
		if ms := waitFor(tok, 1, 20*time.Second); len(ms) > 0 {
			return ms[0].From
		}
		return ""
	}()
	for _, s := range []*sent{&alice, &bob, &news, &erin, &list, &carol} {
		tagOf(s)
	}
	if list.tag != list.from {
		fmt.Fprintf(os.Stderr, "a list's bounce address (pass_through) left as %q, want %q unsigned\n", list.tag, list.from)
		os.Exit(1)
	}
	for _, s := range []sent{alice, bob, news, erin, carol} {
		if !strings.HasPrefix(strings.ToLower(s.tag), "prvs=") {
			fmt.Fprintf(os.Stderr, "outbound mail from %s left unsigned (%q)\n", s.from, s.tag)
			os.Exit(1)
		}
	}
	if !strings.HasPrefix(strings.ToUpper(carolFwd), "SRS0=") {
		fmt.Fprintf(os.Stderr, "forwarded mail not SRS-rewritten: %q\n", carolFwd)
		os.Exit(1)
	}
	// frank's mail to an address the remote site refuses: Postfix bounces
	// it itself, to frank's tag.
	frankTok := "tok-out-frank-" + T
	if o, _ := send(*subAddr, "frank@example.com", []string{"nobody@remote.example"},
		crlf(fmt.Sprintf("From: frank@example.com\nTo: nobody@remote.example\nSubject: %s\nDate: %s\nMessage-ID: <frank.%s@example.com>\n\nhi\n", frankTok, date, T))); !o.accepted {
		fmt.Fprintf(os.Stderr, "frank's mail: %v\n", o)
		os.Exit(1)
	}
	// Records are written in the background: give them a moment.
	time.Sleep(1500 * time.Millisecond)

	// Every message is sent at once, in order (the store counts as they
	// arrive); what each one became is checked at the end, so that the
	// waits for delivery overlap instead of adding up.
	var checks []func() result
	later := func(f func() result) { checks = append(checks, f) }
	add := func(r result) { later(func() result { return r }) }

	// deliver checks a genuine message: accepted for every recipient and
	// delivered to want (untagged addresses), never marked fail.
	deliver := func(name string, from string, rcpts []string, data, tok string, want ...string) {
		r := result{name: name, genuine: true}
		o, refused := send(*mxAddr, from, rcpts, data)
		switch {
		case !o.accepted:
			r.detail = "refused: " + o.String()
		case len(refused) > 0:
			r.detail = fmt.Sprintf("recipients refused at RCPT: %v", refused)
		default:
			later(func() result {
				r := r
				r.detail, r.ok = delivered(tok, want)
				return r
			})
			return
		}
		add(r)
	}
	// refuse checks backscatter: refused (at RCPT or after DATA) and never
	// delivered. A policy service without the milter marks what needs the
	// body instead.
	refuse := func(name string, needsBody bool, from string, rcpts []string, data, tok string) {
		r := result{name: name, needsBody: needsBody}
		o, refused := send(*mxAddr, from, rcpts, data)
		if o.accepted {
			later(func() result {
				r := r
				got := waitFor(tok, 1, 10*time.Second)
				// A policy service reads no body: untagged null-sender mail is
				// marked "not checked", and an auto-reply from an ordinary
				// sender looks like any mail to it.
				h := ""
				if len(got) > 0 {
					h = header(got[0].Data, "X-Bounce-Check")
				}
				switch {
				case policyOnly && needsBody && len(got) > 0 && (h == "" || strings.Contains(h, "not checked")):
					r.ok, r.marked = true, true
					r.detail = "delivered unjudged (no body): " + h
				default:
					r.detail = fmt.Sprintf("accepted (refused at RCPT: %v), delivered %d", refused, len(got))
				}
				return r
			})
			return
		} else {
			r.ok = true
			r.detail = "refused: " + o.String()
		}
		add(r)
	}

	origHeaders := func(s sent, to string) string {
		return fmt.Sprintf("Received: from client.example.com (client.example.com [192.0.2.50])\n\tby mx.example.com (Postfix) with ESMTPSA id 4ABC; %s\nDate: %s\nFrom: %s\nTo: %s\nSubject: your message\nMessage-ID: <%s>\n", date, date, s.from, to, s.msgid)
	}
	dsn := func(tok, finalRcpt, status, action, orig string, headersOnly bool) string {
		part := "message/rfc822"
		body := orig + "\nthe original body\n"
		if headersOnly {
			part, body = "text/rfc822-headers", orig
		}
		return crlf(fmt.Sprintf(`From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
To: someone@example.com
Subject: Undelivered Mail Returned to Sender %s
Date: %s
Message-ID: <dsn.%s@mx.remote.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B%s"

--B%s
Content-Type: text/plain

This is the mail system at host mx.remote.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<%s>: host mx.remote.example said: %s (in reply to RCPT TO command)

--B%s
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example
Arrival-Date: %s

Final-Recipient: rfc822; %s
Action: %s
Status: %s
Diagnostic-Code: smtp; 550 %s mailbox unavailable

--B%s
Content-Type: %s

%s
--B%s--
`, tok, date, tok, tok, tok, finalRcpt, status, tok, date, finalRcpt, action, status, status, tok, part, body, tok))
	}
	qmail := func(tok, rcpt, orig string) string {
		return crlf(fmt.Sprintf(`From: MAILER-DAEMON@remote.example
To: someone@example.com
Subject: failure notice %s
Date: %s

Hi. This is the qmail-send program at remote.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<%s>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

%s
the original body
`, tok, date, rcpt, orig))
	}
	vacation := func(tok, from, inReplyTo, marker string) string {
		return crlf(fmt.Sprintf("From: %s\nTo: someone@example.com\nSubject: Out of office: your message %s\nDate: %s\nMessage-ID: <ooo.%s@remote.example>\nIn-Reply-To: <%s>\n%s\n\nI am away until Monday and will read your message then.\n",
			from, tok, date, tok, inReplyTo, marker))
	}

	// ===== Genuine mail =====
	tok := "tok-g1-" + T
	deliver("bounce (RFC 3464) to a valid tag", "", []string{alice.tag}, dsn(tok, "dest1@remote.example", "5.1.1", "failed", origHeaders(alice, "dest1@remote.example"), false), tok, "alice@example.com")
	tok = "tok-g2-" + T
	deliver("non-standard (qmail) bounce to a valid tag", "", []string{alice.tag}, qmail(tok, "dest1@remote.example", origHeaders(alice, "dest1@remote.example")), tok, "alice@example.com")
	tok = "tok-g3-" + T
	deliver("untagged bounce, headers-only return of our message", "", []string{"bob@example.com"}, dsn(tok, "dest2@remote.example", "5.1.1", "failed", origHeaders(bob, "dest2@remote.example"), true), tok, "bob@example.com")
	tok = "tok-g4-" + T
	deliver("untagged bounce, whole original returned", "", []string{"bob@example.com"}, dsn(tok, "dest3@remote.example", "5.2.2", "failed", origHeaders(bob, "dest3@remote.example"), false), tok, "bob@example.com")
	tok = "tok-g5-" + T
	deliver("delayed DSN to a valid tag", "", []string{bob.tag}, dsn(tok, "dest2@remote.example", "4.4.1", "delayed", origHeaders(bob, "dest2@remote.example"), true), tok, "bob@example.com")
	tok = "tok-g6-" + T
	deliver("vacation auto-reply (null sender) to a valid tag", "", []string{alice.tag}, vacation(tok, "dest1@remote.example", alice.msgid, "Auto-Submitted: auto-replied"), tok, "alice@example.com")
	tok = "tok-g7-" + T
	deliver("auto-reply from the person (X-Autoresponder) to a valid tag", "dest1@remote.example", []string{alice.tag}, vacation(tok, "dest1@remote.example", alice.msgid, "X-Autoresponder: yes"), tok, "alice@example.com")
	tok = "tok-g8-" + T
	deliver("auto-reply to the From address (untagged), answering our mail", "dest1@remote.example", []string{"alice@example.com"}, vacation(tok, "dest1@remote.example", alice.msgid, "Auto-Submitted: auto-replied"), tok, "alice@example.com")
	tok = "tok-g9-" + T
	mdn := crlf(fmt.Sprintf(`From: dest2@remote.example
To: bob@example.com
Subject: Read: your message %s
Date: %s
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="M%s"

--M%s
Content-Type: text/plain

Your message was displayed.

--M%s
Content-Type: message/disposition-notification

Reporting-UA: remote.example; Thunderbird
Final-Recipient: rfc822; dest2@remote.example
Original-Message-ID: <%s>
Disposition: manual-action/MDN-sent-manually; displayed

--M%s--
`, tok, date, tok, tok, tok, bob.msgid, tok))
	deliver("read receipt (MDN, null sender) to the untagged From address", "", []string{"bob@example.com"}, mdn, tok, "bob@example.com")
	tok = "tok-g10-" + T
	deliver("bounce to a PostSRSd SRS address (forwarded mail)", "", []string{carolFwd}, dsn(tok, "dest@remote.example", "5.1.1", "failed", "From: carol@remote.example\nMessage-ID: <fwd."+T+"@remote.example>\n", true), tok, "carol@remote.example")
	tok = "tok-g11-" + T
	deliver("bounce to a list's VERP bounce address", "", []string{"list-bounces+member=remote.example@example.com"}, dsn(tok, "member@remote.example", "5.1.1", "failed", "From: list@example.com\nMessage-ID: <list."+T+"@example.com>\n", true), tok, "list-bounces+member=remote.example@example.com")
	tok = "tok-g12-" + T
	deliver("bounce to a list owner address", "", []string{"owner-list@example.com"}, dsn(tok, "member@remote.example", "5.1.1", "failed", "From: owner-list@example.com\nMessage-ID: <owner."+T+"@example.com>\n", true), tok, "owner-list@example.com")
	// Callout probes first: they must not spend erin's budget (1 recipient
	// + replay_slack 5).
	for i := 0; i < 4; i++ {
		if o := probe(*mxAddr, erin.tag); !o.accepted {
			add(result{name: "callout probe to a valid tag", genuine: true, detail: "probe refused: " + o.String()})
		}
	}
	// A relay that holds erin's message warns once a day for three days
	// (Exim's delay_warning), then fails it; two more hops of a remote
	// alias report their copies failed: 6 bounces, the whole budget.
	for i := 1; i <= 6; i++ {
		tok = fmt.Sprintf("tok-g13-%d-%s", i, T)
		status, action := "5.1.1", "failed"
		if i <= 3 {
			status, action = "4.4.1", "delayed"
		}
		deliver(fmt.Sprintf("bounce %d of 6 (%s) to a 1-recipient tag after 4 callout probes", i, action), "", []string{erin.tag},
			dsn(tok, "dest5@remote.example", status, action, origHeaders(erin, "dest5@remote.example"), true), tok, "erin@example.com")
	}
	tok = "tok-g14-" + T
	deliver("ordinary mail from another site's postmaster", "postmaster@remote.example", []string{"alice@example.com"},
		crlf(fmt.Sprintf("From: postmaster@remote.example\nTo: alice@example.com\nSubject: about your server %s\nDate: %s\nMessage-ID: <pm.%s@remote.example>\n\nHello, your TLS certificate expires next week.\n", tok, date, T)), tok, "alice@example.com")
	tok = "tok-g15-" + T
	deliver("ordinary mail from another site's mailer-daemon address", "mailer-daemon@remote.example", []string{"bob@example.com"},
		crlf(fmt.Sprintf("From: mailer-daemon@remote.example\nTo: bob@example.com\nSubject: newsletter %s\nDate: %s\nMessage-ID: <md.%s@remote.example>\n\nOur mail system moves to a new address next month.\n", tok, date, T)), tok, "bob@example.com")
	tok = "tok-g16-" + T
	deliver("untagged bounce to postmaster", "", []string{"postmaster@example.com"}, dsn(tok, "x@remote.example", "5.1.1", "failed", "From: someone@remote.example\nMessage-ID: <pm."+T+"@remote.example>\n", true), tok, "postmaster@example.com")
	tok = "tok-g17-" + T
	deliver("bounce to a sub-addressed sender's tag", "", []string{news.tag}, dsn(tok, "dest4@remote.example", "5.1.1", "failed", origHeaders(news, "dest4@remote.example"), true), tok, "alice+news@example.com")
	// Relays that fold the case of the return path before they bounce: a
	// sendmail that canonicalizes the domain, a gateway that lower-cases
	// the whole address. Carol's tag must verify either way.
	tok = "tok-g19-" + T
	deliver("bounce to a mixed-case sender's tag, lower-cased by a relay", "", []string{strings.ToLower(carol.tag)},
		dsn(tok, "dest6@remote.example", "5.1.1", "failed", origHeaders(carol, "dest6@remote.example"), true), tok, "carol@example.com")
	tok = "tok-g20-" + T
	at := strings.LastIndexByte(carol.tag, '@')
	deliver("bounce to a mixed-case sender's tag, domain upper-cased by a relay", "", []string{carol.tag[:at] + strings.ToUpper(carol.tag[at:])},
		dsn(tok, "dest6@remote.example", "4.4.1", "delayed", origHeaders(carol, "dest6@remote.example"), true), tok, "carol@example.com")
	tok = "tok-g18-" + T
	deliver("one DSN to two valid tags", "", []string{alice.tag, bob.tag}, dsn(tok, "dest1@remote.example", "5.1.1", "failed", origHeaders(alice, "dest1@remote.example"), true), tok, "alice@example.com", "bob@example.com")
	later(func() result {
		r := result{name: "Postfix's own bounce of a signed message reaches the sender", genuine: true}
		bounceToFrank := func(m sinkMsg) bool {
			for _, t := range m.To {
				if strings.EqualFold(t, "frank@example.com") && m.From == "" {
					return true
				}
			}
			return false
		}
		got := waitForMatch(frankTok, bounceToFrank, 20*time.Second)
		for _, m := range got {
			if bounceToFrank(m) {
				r.ok, r.detail = true, "delivered to frank@example.com"
			}
		}
		if !r.ok {
			r.detail = fmt.Sprintf("%d messages with the token, none a bounce to frank@example.com", len(got))
		}
		return r
	})

	// ===== Backscatter =====
	forged := func(tag, user string) string {
		at := strings.LastIndexByte(tag, '=')
		return tag[:at+1] + user + "@" + domain
	}
	other := sent{from: "alice@example.com", msgid: "spam." + T + "@botnet.example"}
	tok = "tok-b1-" + T
	refuse("untagged bounce of mail we never sent", true, "", []string{"alice@example.com"}, dsn(tok, "victim@remote.example", "5.1.1", "failed", origHeaders(other, "victim@remote.example"), false), tok)
	tok = "tok-b2-" + T
	refuse("untagged text bounce of mail we never sent", true, "", []string{"bob@example.com"}, qmail(tok, "victim@remote.example", origHeaders(other, "victim@remote.example")), tok)
	tok = "tok-b3-" + T
	refuse("forged tag (another user's hash)", false, "", []string{forged(alice.tag, "dave")}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)
	tok = "tok-b4-" + T
	refuse("expired tag", false, "", []string{sign("alice@example.com", now.AddDate(0, 0, -20))}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)
	tok = "tok-b5-" + T
	refuse("unknown-key tag", false, "", []string{"prvs=7" + alice.tag[6:]}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)
	tok = "tok-b6-" + T
	refuse("replay past the budget (7th bounce to a 1-recipient tag)", false, "", []string{erin.tag}, dsn(tok, "dest5@remote.example", "5.1.1", "failed", origHeaders(erin, "dest5@remote.example"), true), tok)
	tok = "tok-b7-" + T
	refuse("untagged bounce quoting another user's Message-ID", true, "", []string{"dave@example.com"}, dsn(tok, "dest1@remote.example", "5.1.1", "failed", origHeaders(alice, "dest1@remote.example"), true), tok)
	tok = "tok-b8-" + T
	refuse("auto-reply (ordinary sender) to a forged tag", false, "victim@remote.example", []string{forged(alice.tag, "carol")}, vacation(tok, "victim@remote.example", "spam."+T+"@botnet.example", "Auto-Submitted: auto-replied"), tok)
	tok = "tok-b9-" + T
	refuse("auto-reply marked only by X-Vacation, answering nothing we sent", true, "victim@remote.example", []string{"alice@example.com"}, vacation(tok, "victim@remote.example", "spam."+T+"@botnet.example", "X-Vacation: on"), tok)
	tok = "tok-b10-" + T
	refuse("auto-reply marked only by X-MS-Exchange-Inbox-Rules-Loop", true, "victim@remote.example", []string{"bob@example.com"}, vacation(tok, "victim@remote.example", "spam2."+T+"@botnet.example", "X-MS-Exchange-Inbox-Rules-Loop: victim@remote.example"), tok)
	tok = "tok-b11-" + T
	challenge := crlf(fmt.Sprintf("From: challenge@remote.example\nTo: alice@example.com\nSubject: Please confirm your message %s\nDate: %s\nIn-Reply-To: <spam.%s@botnet.example>\nAuto-Submitted: auto-replied\n\nYour message to victim@remote.example is being held. To confirm that you are a human\nand not a spammer, please click the link below or reply to this challenge.\n\nhttps://remote.example/confirm?id=123\n", tok, date, T))
	refuse("challenge-response to our user", true, "challenge@remote.example", []string{"alice@example.com"}, challenge, tok)
	tok = "tok-b12-" + T
	refuse("null-sender mail, no report, References to our mail", true, "", []string{"alice@example.com"},
		crlf(fmt.Sprintf("From: friend@remote.example\nTo: alice@example.com\nSubject: cheap pills %s\nDate: %s\nReferences: <%s>\n\nbuy now\n", tok, date, alice.msgid)), tok)
	tok = "tok-b13-" + T
	refuse("forged tag of a user who does not exist", false, "", []string{forged(bob.tag, "nosuchuser")}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)
	tok = "tok-b14-" + T
	refuse("forged SRS address", false, "", []string{"SRS0=abcd=ZZ=remote.example=victim@example.com"}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)
	tok = "tok-b15-" + T
	refuse("untagged bounce to an unknown user", false, "", []string{"nosuchuser@example.com"}, dsn(tok, "x@remote.example", "5.1.1", "failed", origHeaders(other, "x@remote.example"), true), tok)

	// ===== Report =====
	var gOK, gN, bOK, bN, marked int
	var results []result
	for _, check := range checks {
		results = append(results, check())
	}
	for _, r := range results {
		status := "ok  "
		if !r.ok {
			status = "FAIL"
		}
		kind := "backscatter"
		if r.genuine {
			kind = "genuine"
			gN++
			if r.ok {
				gOK++
			}
		} else if r.marked {
			marked++
		} else {
			bN++
			if r.ok {
				bOK++
			}
		}
		if *verbose || !r.ok {
			fmt.Printf("%s %-11s %-70s %s\n", status, kind, r.name, r.detail)
		}
	}
	summary := fmt.Sprintf("%s: genuine delivered %d/%d, backscatter refused %d/%d", *deployment, gOK, gN, bOK, bN)
	if marked > 0 {
		summary += fmt.Sprintf(" (+%d untagged backscatter delivered unjudged: a policy service reads no body)", marked)
	}
	fmt.Println(summary)
	if gOK != gN || bOK != bN {
		return 1
	}
	return 0
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// delivered waits for the message carrying tok and says whether it reached
// every address in want, never marked fail.
func delivered(tok string, want []string) (string, bool) {
	got := waitFor(tok, 1, 15*time.Second)
	have := map[string]bool{}
	fail := ""
	for _, m := range got {
		for _, t := range m.To {
			have[strings.ToLower(t)] = true
		}
		if h := header(m.Data, "X-Bounce-Check"); strings.HasPrefix(h, "fail") {
			fail = h
		}
	}
	var missing []string
	for _, w := range want {
		if !have[strings.ToLower(w)] {
			missing = append(missing, w)
		}
	}
	switch {
	case len(got) == 0:
		return "accepted but never delivered", false
	case len(missing) > 0:
		return fmt.Sprintf("delivered to %v, not to %v", keys(have), missing), false
	case fail != "":
		return "delivered marked " + fail, false
	}
	return "delivered to " + strings.Join(want, ", "), true
}
