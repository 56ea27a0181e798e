package bounce

import (
	"strings"
	"testing"
)

func TestParseHop(t *testing.T) {
	cases := []struct {
		in                 string
		helo, name, ip, by string
	}{
		{"from Out1.Example.COM. (out1.example.com [192.0.2.7]) by mx.example.net (Postfix) with ESMTPS id 4X; Mon, 1 Jan 2024",
			"out1.example.com", "out1.example.com", "192.0.2.7", "mx.example.net"},
		{"from evil.test (foo.mx1.example.com [198.51.100.9])\r\n\tby victim.example (Postfix) with SMTP id Q",
			"evil.test", "foo.mx1.example.com", "198.51.100.9", "victim.example"},
		{"from unknown (HELO mx1.example.com) ([203.0.113.5]) by victim.example", "mx1.example.com", "", "203.0.113.5", "victim.example"},
		{"from rdns.example.net (HELO mx1.example.com) (198.51.100.1) by victim.example", "mx1.example.com", "rdns.example.net", "198.51.100.1", "victim.example"},
		{"from mail.example.org ([192.0.2.44] helo=fake.example.com) by mx.remote.example with esmtp (Exim 4.96)",
			"fake.example.com", "mail.example.org", "192.0.2.44", "mx.remote.example"},
		{"from [IPv6:2001:db8::1] by relay.example.org (8.14.4/8.14.4) for <bob@example.net>", "", "", "2001:db8::1", "relay.example.org"},
		{"by mx.example.net with LMTP id 7", "", "", "", "mx.example.net"},
		{"from host.example (192.0.2.3) by EXCH01.corp.example (10.0.0.1) with Microsoft SMTP Server", "host.example", "", "192.0.2.3", "exch01.corp.example"},
	}
	for _, c := range cases {
		h, ok := parseHop(c.in)
		if !ok {
			t.Errorf("%q: not parsed", c.in)
			continue
		}
		ip := ""
		if h.IP.IsValid() {
			ip = h.IP.String()
		}
		if h.Helo != c.helo || h.Name != c.name || ip != c.ip || h.By != c.by {
			t.Errorf("%q:\n got helo=%q name=%q ip=%q by=%q\nwant helo=%q name=%q ip=%q by=%q", c.in, h.Helo, h.Name, ip, h.By, c.helo, c.name, c.ip, c.by)
		}
	}
	if _, ok := parseHop("garbage"); ok {
		t.Error("garbage parsed as a hop")
	}
}

func TestOriginalReceivedAndDate(t *testing.T) {
	msg := "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
		"Final-Recipient: rfc822; bob@example.net\nAction: failed\nStatus: 5.1.1\n\n" +
		"--b\nContent-Type: text/rfc822-headers\n\n" +
		"Received: from out1.example.com (out1.example.com [192.0.2.7]) by mx.example.net; Mon, 1 Jan 2024 00:00:00 +0000\n" +
		"Received: from client (client.example.com [192.0.2.99]) by out1.example.com; Mon, 1 Jan 2024 00:00:00 +0000\n" +
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\nFrom: alice@example.com\nMessage-ID: <1@example.com>\n\n--b--\n"
	rep, err := Analyze(strings.NewReader(msg), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.OriginalReceived) != 2 || rep.OriginalReceived[0].Name != "out1.example.com" || rep.OriginalReceived[1].By != "out1.example.com" {
		t.Fatalf("hops %+v", rep.OriginalReceived)
	}
	if rep.OriginalDate.IsZero() || rep.OriginalDate.Year() != 2024 {
		t.Fatalf("date %v", rep.OriginalDate)
	}
}
