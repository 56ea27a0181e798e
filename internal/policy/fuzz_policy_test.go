package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// FuzzReadRequest feeds arbitrary bytes to the request parser: it must not
// panic, must stay within its bounds, must fail only with ErrMalformed or
// io.EOF on a reader that cannot fail, and what it accepts must parse the
// same when written out again.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		policyReq("RCPT", "", "prvs=2000000000=alice@example.com"),
		policyReq("DATA", "", "", "recipient_count=2") + policyReq("END-OF-MESSAGE", "x@y", "a@b"),
		"request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n",
		"a=b\n\n\n", "sender=a\r\r\n\n", "\n", "=\n\n", "a\n\n", "recipient_count=-1\n\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReader(strings.NewReader(in))
		for {
			req, err := ReadRequest(br)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && err != io.EOF {
					t.Fatalf("error %v is neither ErrMalformed nor io.EOF", err)
				}
				return
			}
			if req.Attrs < 1 || req.Attrs > MaxAttrs {
				t.Fatalf("%d attributes accepted", req.Attrs)
			}
			if req.RecipientCount < -1 || len(render(req)) > len(in)+400 {
				t.Fatalf("out of bounds: %+v", req)
			}
			again, err := ReadRequest(bufio.NewReader(strings.NewReader(render(req))))
			if err != nil {
				t.Fatalf("re-reading %+v: %v", req, err)
			}
			again.Attrs = req.Attrs
			if again != req {
				t.Fatalf("round trip: %+v, then %+v", req, again)
			}
		}
	})
}

// render writes the known attributes of req as a request.
func render(r Request) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"request", r.Request}, {"protocol_state", r.ProtocolState}, {"sender", r.Sender},
		{"recipient", r.Recipient}, {"client_address", r.ClientAddress}, {"client_name", r.ClientName},
		{"queue_id", r.QueueID}, {"instance", r.Instance}, {"sasl_username", r.SASLUsername},
		{"policy_context", r.PolicyContext},
	} {
		fmt.Fprintf(&b, "%s=%s\r\n", kv[0], kv[1]) // CRLF: a value may end in CR
	}
	if r.RecipientCount >= 0 {
		fmt.Fprintf(&b, "recipient_count=%d\n", r.RecipientCount)
	}
	b.WriteString("\n")
	return b.String()
}
