package bounce

import (
	"fmt"
	"strings"
)

func ExampleAnalyze() {
	msg := "From: MAILER-DAEMON@mx.example.net\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" +
		"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
		"Received: from out1.example.com by mx.example.net\r\n" +
		"From: alice@example.com\r\nMessage-ID: <1234@example.com>\r\n\r\n--b--\r\n"
	rep, err := Analyze(strings.NewReader(msg), DefaultLimits())
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.Kind, rep.OriginalMessageID, rep.BouncedAddresses(), rep.CandidateMessageIDs())
	// Output:
	// dsn 1234@example.com [bob@example.net] [1234@example.com]
}
