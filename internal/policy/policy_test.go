package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
)

const policyTop = `grace = "0s"
mode = "reject"
`

const policyConf = `[domains."example.com"]
[domains."tagmode.example"]
mode = "tag"
[domains."hold.example"]
mode = "quarantine"
`

var policyNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func policyEngine(t testing.TB, extra string) *backscatter.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte(policyTop+extra+policyConf), "t")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := backscatter.ParseKeys(strings.NewReader("2 policy-secret\n"), "k")
	if err != nil {
		t.Fatal(err)
	}
	e := backscatter.New(cfg.Engine(nil), backscatter.NewKeyRing(ks))
	e.Now = func() time.Time { return policyNow }
	return e
}

func sign(t testing.TB, addr string, key int, secret string, at time.Time) string {
	t.Helper()
	s, err := backscatter.SignPRVS(addr, []byte(secret), key, at, 7)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeStore answers Inbound with fixed facts or an error, and records the
// queries. hang makes it block until its context ends (or forever with
// ignoreCtx); panicking makes it panic.
type fakeStore struct {
	mu        sync.Mutex
	facts     cache.InboundFacts
	err       error
	hang      bool
	ignoreCtx bool
	panicking bool
	queries   []cache.InboundQuery
}

func (s *fakeStore) RecordSent(context.Context, cache.SentMessage) error { return nil }
func (s *fakeStore) RecordSentBatch(context.Context, []cache.SentMessage) error {
	return nil
}
func (s *fakeStore) Ping(context.Context) error { return nil }
func (s *fakeStore) Close() error               { return nil }
func (s *fakeStore) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	s.mu.Lock()
	s.queries = append(s.queries, q)
	facts, err, hang, ignore, pan := s.facts, s.err, s.hang, s.ignoreCtx, s.panicking
	s.mu.Unlock()
	switch {
	case pan:
		panic("boom")
	case hang && ignore:
		select {}
	case hang:
		<-ctx.Done()
		return cache.InboundFacts{}, ctx.Err()
	}
	return facts, err
}

// total is the number of queries (under the lock: a store call may still
// be finishing in its goroutine).
func (s *fakeStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queries)
}

func (s *fakeStore) counted() (n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queries {
		if q.Count {
			n++
		}
	}
	return n
}

func (s *fakeStore) inbound(q cache.InboundQuery) (cache.InboundFacts, error) {
	return s.Inbound(context.Background(), q)
}

func TestDecide(t *testing.T) {
	e := policyEngine(t, "")
	valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
	forged := strings.Replace(valid, "=alice@", "=mallory@", 1)
	expired := sign(t, "alice@example.com", 2, "policy-secret", policyNow.AddDate(0, 0, -20))
	unknown := sign(t, "alice@example.com", 7, "other-secret", policyNow)
	forgedPM := strings.Replace(valid, "=alice@", "=postmaster@", 1)
	rcpt := func(sender, rcpt string) Request {
		return Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Sender: sender, Recipient: rcpt,
			RecipientCount: 0, ClientAddress: "192.0.2.1", Instance: "1.2.3"}
	}
	data := func(state, rcpt string, n int) Request {
		return Request{Request: "smtpd_access_policy", ProtocolState: state, Sender: "", Recipient: rcpt,
			RecipientCount: n, ClientAddress: "192.0.2.1", Instance: "1.2.3"}
	}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	noStore := errors.New("no store")
	// One recipient, its budget (1 + the default slack) spent.
	spent := cache.InboundFacts{TagRecipients: 1, TagBounces: 1 + cache.DefaultReplaySlack}
	for _, tc := range []struct {
		name       string
		req        Request
		milter     bool
		facts      cache.InboundFacts
		storeErr   error // noStore: env.Inbound is nil
		want       string
		wantReason backscatter.Reason // "" when no verdict is expected
		wantCounts []bool             // Count of each store query made
	}{
		{"forged tag at RCPT: refused, the client counted", rcpt("", forged), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag is forged (bad-signature)", backscatter.ReasonBadSignature, []bool{true}},
		{"expired tag at RCPT", rcpt("", expired), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag has expired (expired)", backscatter.ReasonExpired, []bool{true}},
		{"unknown key at RCPT", rcpt("", unknown), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag names an unknown key (unknown-key)", backscatter.ReasonUnknownKey, []bool{true}},
		{"forged tag, upper-case domain", rcpt("", strings.Replace(forged, "example.com", "EXAMPLE.COM", 1)), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag is forged", backscatter.ReasonBadSignature, []bool{true}},
		{"forged tag from MAILER-DAEMON", rcpt("MAILER-DAEMON@mx.example.org", forged), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag is forged", backscatter.ReasonBadSignature, []bool{true}},
		{"forged tag, ordinary sender (an auto-reply): refused too", rcpt("bob@example.org", forged), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag is forged", backscatter.ReasonBadSignature, []bool{true}},
		{"forged tag, authenticated client: refused too", with(rcpt("", forged), func(r *Request) { r.SASLUsername = "alice" }), false, cache.InboundFacts{}, nil,
			"550 5.7.1 Bounce address tag is forged", backscatter.ReasonBadSignature, []bool{true}},
		{"unreadable address of ours", rcpt("", "\"alice x\"@example.com"), false, cache.InboundFacts{}, nil,
			"550 5.1.3", backscatter.ReasonBadAddress, nil},
		{"valid tag: budget asked, not counted", rcpt("", valid), false, cache.InboundFacts{}, nil, "DUNNO", "", []bool{false}},
		{"valid tag, budget spent", rcpt("", valid), false, spent, nil,
			"550 5.7.1 Bounce address tag used more often", backscatter.ReasonReplayed, []bool{false}},
		{"valid tag, milter too, budget spent", rcpt("", valid), true, spent, nil,
			"550 5.7.1 Bounce address tag used more often", backscatter.ReasonReplayed, []bool{false}},
		{"valid tag, store down: the HMAC suffices", rcpt("", valid), false, spent, errors.New("down"), "DUNNO", "", []bool{false}},
		{"valid tag, no store", rcpt("", valid), false, cache.InboundFacts{}, noStore, "DUNNO", "", nil},
		{"untagged at RCPT: callout probes pass", rcpt("", "alice@example.com"), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"foreign domain", rcpt("", "prvs=2000000000=bob@example.org"), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"forged tag to postmaster: exempt", rcpt("", forgedPM), false, cache.InboundFacts{}, nil, "DUNNO", "", []bool{true}},
		{"MAIL state", with(rcpt("", forged), func(r *Request) { r.ProtocolState = "MAIL" }), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"other request type", with(rcpt("", forged), func(r *Request) { r.Request = "junk" }), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},

		{"untagged bounce at DATA: marked, never refused (no body)", data("DATA", "alice@example.com", 1), false, cache.InboundFacts{}, nil,
			"PREPEND X-Bounce-Check: neutral (untagged bounce; not checked here (no body))", backscatter.ReasonNotChecked, nil},
		{"untagged at DATA, postmaster", data("DATA", "postmaster@example.com", 1), false, cache.InboundFacts{}, nil,
			"PREPEND X-Bounce-Check: none (exempt recipient)", backscatter.ReasonExempt, nil},
		{"untagged at DATA, milter decides", data("DATA", "alice@example.com", 1), true, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"untagged at END-OF-MESSAGE: no PREPEND there", data("END-OF-MESSAGE", "alice@example.com", 1), false, cache.InboundFacts{}, nil,
			"DUNNO", backscatter.ReasonNotChecked, nil},
		{"valid tag at DATA: verdict header, nothing counted", data("DATA", valid, 1), false, cache.InboundFacts{}, nil,
			"PREPEND X-Bounce-Check: pass (valid prvs tag, key 2)", backscatter.ReasonValidTag, nil},
		{"valid tag at END-OF-MESSAGE: counted", data("END-OF-MESSAGE", valid, 1), false, cache.InboundFacts{}, nil,
			"DUNNO", backscatter.ReasonValidTag, []bool{true}},
		{"valid tag at DATA, milter writes the header", data("DATA", valid, 1), true, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"forged tag at END-OF-MESSAGE, milter too", data("END-OF-MESSAGE", forged, 1), true, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"forged tag at DATA (no RCPT check)", data("DATA", forged, 1), false, cache.InboundFacts{}, nil, "550 5.7.1 Bounce address tag is forged", backscatter.ReasonBadSignature, nil},
		{"several recipients at DATA, nothing remembered", data("DATA", "", 2), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"untagged at DATA, ordinary sender", with(data("DATA", "alice@example.com", 1), func(r *Request) { r.Sender = "bob@example.org" }), false, cache.InboundFacts{}, nil, "DUNNO", "", nil},
		{"postmaster of another domain writing", with(data("DATA", "alice@example.com", 1), func(r *Request) { r.Sender = "postmaster@example.org" }), false, cache.InboundFacts{}, nil,
			"PREPEND X-Bounce-Check: neutral", backscatter.ReasonNotChecked, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{facts: tc.facts, err: tc.storeErr}
			env := Env{Engine: e, WithMilter: tc.milter, Inbound: st.inbound}
			if tc.storeErr == noStore {
				env.Inbound = nil
			}
			got := Decide(env, tc.req, nil)
			if !strings.HasPrefix(got.Action, tc.want) {
				t.Errorf("action %q, want prefix %q", got.Action, tc.want)
			}
			switch {
			case tc.wantReason == "" && len(got.Verdicts) != 0:
				t.Errorf("verdicts %+v, want none", got.Verdicts)
			case tc.wantReason != "" && len(got.Verdicts) == 0:
				t.Errorf("no verdict, want reason %s", tc.wantReason)
			case tc.wantReason != "" && got.Verdicts[0].Verdict.Reason != tc.wantReason:
				t.Errorf("reason %s, want %s", got.Verdicts[0].Verdict.Reason, tc.wantReason)
			}
			var counts []bool
			for _, q := range st.queries {
				counts = append(counts, q.Count)
				if q.ClientIP != "192.0.2.1" && q.ClientIP != "" || q.Recipient != strings.ToLower(q.Recipient) || q.Tag != strings.ToLower(q.Tag) {
					t.Errorf("query %+v: client or case wrong", q)
				}
			}
			if fmt.Sprint(counts) != fmt.Sprint(tc.wantCounts) {
				t.Errorf("store queries with Count %v, want %v", counts, tc.wantCounts)
			}
			if tc.storeErr != nil && tc.storeErr != noStore && len(st.queries) > 0 && got.StoreErr == nil {
				t.Error("store error not reported")
			}
		})
	}
}

// A message's recipients are remembered from RCPT, so that with several
// recipients (when Postfix names none at DATA) the header is still right
// and each valid tag is counted once, at the end of the message.
func TestDecideRemembersTheMessage(t *testing.T) {
	e := policyEngine(t, "")
	valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
	st := &fakeStore{}
	env := Env{Engine: e, Inbound: st.inbound}
	msg := &Message{}
	req := func(state, rcpt string) Request {
		return Request{ProtocolState: state, Recipient: rcpt, ClientAddress: "192.0.2.1", RecipientCount: 2}
	}
	for _, r := range []string{valid, "bob@example.com"} {
		if got := Decide(env, req("RCPT", r), msg); got.Action != Dunno {
			t.Fatalf("RCPT %s: %q", r, got.Action)
		}
	}
	got := Decide(env, req("DATA", ""), msg)
	if !strings.HasPrefix(got.Action, "PREPEND X-Bounce-Check: neutral") || len(got.Verdicts) != 2 {
		t.Fatalf("DATA: %q %+v", got.Action, got.Verdicts)
	}
	before := st.counted()
	got = Decide(env, req("END-OF-MESSAGE", ""), msg)
	if got.Action != Dunno || len(got.Verdicts) != 0 || st.counted()-before != 1 {
		t.Fatalf("END-OF-MESSAGE: %q %d verdicts, %d counted", got.Action, len(got.Verdicts), st.counted()-before)
	}
	Decide(env, req("END-OF-MESSAGE", ""), msg)
	if st.counted()-before != 1 {
		t.Fatal("counted twice")
	}
}

func TestReadRequest(t *testing.T) {
	long := strings.Repeat("x", MaxLine)
	var many strings.Builder
	for i := 0; i <= MaxAttrs; i++ {
		fmt.Fprintf(&many, "a%d=1\n", i)
	}
	var big strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&big, "a%d=%s\n", i, strings.Repeat("y", MaxLine-10))
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
		check    func(Request) bool
	}{
		{"minimal", "request=smtpd_access_policy\nprotocol_state=RCPT\nsender=\nrecipient=a@b\nrecipient_count=0\n\n", true,
			func(r Request) bool {
				return r.ProtocolState == "RCPT" && r.Recipient == "a@b" && r.Sender == "" && r.RecipientCount == 0 && r.Attrs == 5
			}},
		{"CRLF and unknown attributes", "x_new_attr=whatever\r\nprotocol_state=data\r\nrecipient_count=2\r\nsender=a=b@c\r\n\r\n", true,
			func(r Request) bool { return r.ProtocolState == "DATA" && r.RecipientCount == 2 && r.Sender == "a=b@c" }},
		{"bad count", "recipient_count=many\n\n", true, func(r Request) bool { return r.RecipientCount == -1 }},
		{"repeated attribute: last wins", "sender=a\nsender=b\n\n", true, func(r Request) bool { return r.Sender == "b" }},
		{"longest line", "a=" + long[:MaxLine-2] + "\n\n", true, nil},
		{"line too long", "a=" + long[:MaxLine-1] + "\n\n", false, nil},
		{"line too long, no newline", "a=" + long + long, false, nil},
		{"no '='", "protocol_state RCPT\n\n", false, nil},
		{"empty name", "=x\n\n", false, nil},
		{"long name", strings.Repeat("n", MaxName+1) + "=x\n\n", false, nil},
		{"too many attributes", many.String() + "\n", false, nil},
		{"request too large", big.String() + "\n", false, nil},
		{"empty request", "\n", false, nil},
		{"cut inside a request", "sender=a\n", false, nil},
		{"cut inside a line", "sender=a", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ReadRequest(bufio.NewReader(strings.NewReader(tc.in)))
			if tc.ok {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if tc.check != nil && !tc.check(req) {
					t.Fatalf("parsed as %+v", req)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(""))); err != io.EOF {
		t.Fatalf("clean end: %v, want io.EOF", err)
	}
}

func startPolicy(t *testing.T, st cache.Store, milter bool, timeout time.Duration) (*Service, string) {
	t.Helper()
	p := NewService(Options{Settings: Settings{Engine: policyEngine(t, "")}, Store: st, WithMilter: milter, StoreTimeout: timeout,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return p, ln.Addr().String()
}

func policyReq(state, sender, rcpt string, extra ...string) string {
	var b strings.Builder
	b.WriteString("request=smtpd_access_policy\nprotocol_state=" + state + "\nprotocol_name=ESMTP\nclient_address=192.0.2.1\nclient_name=unknown\nhelo_name=x\nqueue_id=\ninstance=42.1\n")
	b.WriteString("sender=" + sender + "\nrecipient=" + rcpt + "\n")
	for _, x := range extra {
		b.WriteString(x + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// readReply reads "action=...\n\n".
func readReply(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	blank, err := br.ReadString('\n')
	if err != nil || blank != "\n" {
		t.Fatalf("reply not ended by an empty line: %q %v", blank, err)
	}
	a, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "action=")
	if !ok {
		t.Fatalf("reply %q", line)
	}
	return a
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestPolicyOverSocketPipelined(t *testing.T) {
	_, addr := startPolicy(t, nil, false, 0)
	valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
	forged := strings.Replace(valid, "=alice@", "=mallory@", 1)
	reqs := []struct{ req, want string }{
		{policyReq("RCPT", "", forged), "550 5.7.1 Bounce address tag is forged"},
		{policyReq("RCPT", "", "alice@example.com"), "DUNNO"},
		{policyReq("DATA", "", "alice@example.com", "recipient_count=1"), "PREPEND X-Bounce-Check: neutral (untagged bounce; not checked"},
		{policyReq("RCPT", "bob@example.org", forged, "instance=42.2"), "550 5.7.1 Bounce address tag is forged"},
		{policyReq("RCPT", "", valid, "future_attribute=1", "instance=42.3"), "DUNNO"},
		{policyReq("DATA", "", valid, "recipient_count=1", "instance=42.3"), "PREPEND X-Bounce-Check: pass (valid prvs tag, key 2)"},
	}
	c, br := dial(t, addr)
	var all strings.Builder
	for _, r := range reqs {
		all.WriteString(r.req)
	}
	// All requests in one write: answered in order.
	if _, err := io.WriteString(c, all.String()); err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if got := readReply(t, br); !strings.HasPrefix(got, r.want) {
			t.Errorf("request %d: %q, want prefix %q", i, got, r.want)
		}
	}
	// The same connection goes on serving (persistent, as Postfix uses it).
	io.WriteString(c, reqs[0].req)
	if got := readReply(t, br); !strings.HasPrefix(got, reqs[0].want) {
		t.Errorf("after the pipeline: %q", got)
	}
}

func TestPolicyMalformedClosesOnlyThatConnection(t *testing.T) {
	_, addr := startPolicy(t, nil, false, 0)
	for _, bad := range []string{
		"protocol_state RCPT\n\n",
		"recipient=" + strings.Repeat("a", MaxLine) + "\n\n",
		strings.Repeat("x=1\n", MaxAttrs+1) + "\n",
		"\n",
		"=x\n\n",
	} {
		c, br := dial(t, addr)
		// A good request first: answered before the bad one closes.
		io.WriteString(c, policyReq("RCPT", "", "alice@example.com")+bad)
		if got := readReply(t, br); got != "DUNNO" {
			t.Fatalf("good request before a bad one: %q", got)
		}
		if b, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("bad request %.30q: connection not closed (read %q, %v)", bad, b, err)
		}
	}
	c, br := dial(t, addr)
	io.WriteString(c, policyReq("RCPT", "", "prvs=2000000000=alice@example.com"))
	if got := readReply(t, br); !strings.HasPrefix(got, "550 ") {
		t.Fatalf("service after bad clients: %q", got)
	}
}

func TestPolicyConcurrentConnections(t *testing.T) {
	st := &fakeStore{}
	// A store timeout no loaded machine reaches: a call that timed out
	// would be answered without it and counted late.
	_, addr := startPolicy(t, st, false, 10*time.Second)
	valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
	const conns, each = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for j := 0; j < each; j++ {
				rcpt, want := valid, "action=DUNNO\n"
				if (i+j)%2 == 1 {
					rcpt, want = "prvs=2000000000=alice@example.com", "action=550 "
				}
				if _, err := io.WriteString(c, policyReq("RCPT", "", rcpt)); err != nil {
					errs <- err
					return
				}
				line, err := br.ReadString('\n')
				if err == nil {
					_, err = br.ReadString('\n')
				}
				if err != nil || !strings.HasPrefix(line, want) {
					errs <- fmt.Errorf("conn %d request %d: %q %v, want %q", i, j, line, err, want)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Valid tags asked about without counting; bad tags counted against
	// the client.
	if n, all := st.counted(), st.total(); n != conns*each/2 || all != conns*each {
		t.Errorf("%d store queries, %d counted; want %d, %d", all, n, conns*each, conns*each/2)
	}
}

func TestPolicyStoreHangs(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		st := &fakeStore{hang: true, ignoreCtx: ignore}
		_, addr := startPolicy(t, st, false, 100*time.Millisecond)
		c, br := dial(t, addr)
		start := time.Now()
		valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
		// A valid tag still passes on its HMAC, within the budget.
		io.WriteString(c, policyReq("RCPT", "", valid))
		if got := readReply(t, br); got != "DUNNO" {
			t.Errorf("valid tag with the store hung: %q", got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("ignoreCtx=%v: answered after %s", ignore, d)
		}
	}
}

func TestPolicyStorePanics(t *testing.T) {
	_, addr := startPolicy(t, &fakeStore{panicking: true}, false, 0)
	c, br := dial(t, addr)
	io.WriteString(c, policyReq("RCPT", "", sign(t, "alice@example.com", 2, "policy-secret", policyNow)))
	if got := readReply(t, br); got != "DUNNO" {
		t.Fatalf("%q, want DUNNO", got)
	}
}

func TestPolicyCountsOncePerMessage(t *testing.T) {
	// Policy only: RCPT asks, END-OF-MESSAGE counts once.
	st := &fakeStore{}
	valid := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
	_, addr := startPolicy(t, st, false, 0)
	c, br := dial(t, addr)
	io.WriteString(c, policyReq("RCPT", "", valid)+policyReq("DATA", "", valid, "recipient_count=1")+
		policyReq("END-OF-MESSAGE", "", valid, "recipient_count=1"))
	for _, want := range []string{"DUNNO", "PREPEND X-Bounce-Check: pass", "DUNNO"} {
		if got := readReply(t, br); !strings.HasPrefix(got, want) {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	if n := st.counted(); n != 1 {
		t.Fatalf("counted %d times, want 1", n)
	}
	// With the milter: nothing counted by the policy service.
	st2 := &fakeStore{}
	_, addr2 := startPolicy(t, st2, true, 0)
	c2, br2 := dial(t, addr2)
	io.WriteString(c2, policyReq("RCPT", "", valid)+policyReq("DATA", "", valid, "recipient_count=1"))
	readReply(t, br2)
	if got := readReply(t, br2); got != "DUNNO" {
		t.Fatalf("DATA with the milter: %q", got)
	}
	if n := st2.counted(); n != 0 || st2.total() != 1 {
		t.Fatalf("with the milter: %d queries, %d counted; want 1, 0", st2.total(), n)
	}
}

func TestPolicyShutdownClosesIdle(t *testing.T) {
	p := NewService(Options{Settings: Settings{Engine: policyEngine(t, "")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	c, br := dial(t, ln.Addr().String())
	io.WriteString(c, policyReq("RCPT", "", "alice@example.com"))
	readReply(t, br)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an idle connection: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
}

func TestMessageSetBounded(t *testing.T) {
	var d messageSet
	d.init(3, 100)
	a := d.get("a")
	for _, id := range []string{"b", "c", "d"} {
		d.get(id)
	}
	if d.len() != 3 || d.get("") != nil {
		t.Fatalf("%d remembered", d.len())
	}
	if d.get("d") == nil || d.get("a") == a {
		t.Fatal("the oldest message was not forgotten")
	}
	if d.get(strings.Repeat("x", maxInstanceLen+1)) != nil {
		t.Fatal("an overlong instance name keeps state")
	}
}

// Recipients remembered are bounded per message and in all: a client that
// names many recipients, or many messages with many, makes the service
// forget the oldest messages, never grow without limit.
func TestMessageSetRecipientsBounded(t *testing.T) {
	p := NewService(Options{Settings: Settings{Engine: policyEngine(t, "")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for m := range 30 {
		inst := fmt.Sprintf("inst-%d", m)
		for i := range MaxMessageRcpts + 10 {
			req := Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Sender: "",
				Recipient: fmt.Sprintf("user%d@example.com", i), Instance: inst, RecipientCount: -1}
			p.Answer(req)
		}
		if got := len(p.messages.get(inst).Rcpts); got != MaxMessageRcpts {
			t.Fatalf("message %d: %d recipients remembered, want %d", m, got, MaxMessageRcpts)
		}
	}
	p.messages.mu.Lock()
	total := 0
	for id, m := range p.messages.set {
		if m.held != len(m.Rcpts) {
			t.Errorf("%s: %d recipients accounted for, %d remembered", id, m.held, len(m.Rcpts))
		}
		total += m.held
	}
	counted := p.messages.rcpts
	p.messages.mu.Unlock()
	if total > maxRemembered || total != counted {
		t.Fatalf("%d recipients remembered (counted %d), bound %d", total, counted, maxRemembered)
	}
}

// BenchmarkPolicySocket is one RCPT request and its answer over loopback
// TCP (a forged tag: one HMAC, no store), sequentially on one connection,
// and in parallel on one connection per goroutine as smtpd processes do.
func BenchmarkPolicySocket(b *testing.B) {
	p := NewService(Options{Settings: Settings{Engine: policyEngine(b, "")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)
	defer p.Shutdown(context.Background())
	req := policyReq("RCPT", "", "prvs=2000000000=alice@example.com")
	roundTrips := func(b *testing.B, next func() bool) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for next() {
			if _, err := io.WriteString(c, req); err != nil {
				b.Error(err)
				return
			}
			line, err := br.ReadString('\n')
			if err == nil {
				_, err = br.ReadString('\n')
			}
			if err != nil || !strings.HasPrefix(line, "action=550 ") {
				b.Errorf("%q %v", line, err)
				return
			}
		}
	}
	b.Run("sequential", func(b *testing.B) {
		i := 0
		roundTrips(b, func() bool { i++; return i <= b.N })
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) { roundTrips(b, pb.Next) })
	})
}

func TestAnswerInternalError(t *testing.T) {
	// An engine whose clock panics fails on the first tag it verifies;
	// the service answers per inbound.on_error instead of dying.
	for _, tc := range []struct {
		act  backscatter.ErrorAction
		want string
	}{
		{backscatter.ErrorAccept, Dunno},
		{backscatter.ErrorTempfail, TempfailAction},
		{backscatter.ErrorReject, "550 5.3.0 Bounce check failed"},
	} {
		e := policyEngine(t, "")
		e.Now = func() time.Time { panic("clock broke") }
		p := NewService(Options{Settings: Settings{Engine: e, OnError: tc.act}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		tag := sign(t, "alice@example.com", 2, "policy-secret", policyNow)
		got := p.Answer(Request{ProtocolState: "RCPT", Recipient: tag})
		if got.Action != tc.want {
			t.Errorf("on_error %s: %q, want %q", tc.act, got.Action, tc.want)
		}
	}
}

type floodCounter struct {
	mu            sync.Mutex
	entered, left int
	decisions     int
}

func (f *floodCounter) Decision(string, string, string, string) {
	f.mu.Lock()
	f.decisions++
	f.mu.Unlock()
}
func (f *floodCounter) FloodEntered() { f.mu.Lock(); f.entered++; f.mu.Unlock() }
func (f *floodCounter) FloodLeft()    { f.mu.Lock(); f.left++; f.mu.Unlock() }

// The policy service reports flood transitions as the milter does: the
// metrics' strict-state gauge follows them.
func TestPolicyFloodObserved(t *testing.T) {
	e := policyEngine(t, "")
	forged := strings.Replace(sign(t, "alice@example.com", 2, "policy-secret", policyNow), "=alice@", "=mallory@", 1)
	st := &fakeStore{facts: cache.InboundFacts{ClientStrict: true, FloodEntered: true}}
	obs := &floodCounter{}
	p := NewService(Options{Settings: Settings{Engine: e}, Store: st, Observer: obs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rep := p.Answer(Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Recipient: forged, ClientAddress: "192.0.2.7"})
	if !strings.HasPrefix(rep.Action, "550") || !rep.FloodEntered {
		t.Fatalf("bad tag: %+v", rep)
	}
	st.mu.Lock()
	st.facts = cache.InboundFacts{FloodLeft: true}
	st.mu.Unlock()
	p.Answer(Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Recipient: forged, ClientAddress: "192.0.2.7"})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.entered != 1 || obs.left != 1 || obs.decisions != 2 {
		t.Fatalf("observer: %+v", obs)
	}
}

// A client that keeps sending without reading the answers is not Postfix:
// past MaxPipelined requests answered that way, its connection is closed
// (it would otherwise make the service decide as fast as it can write).
func TestPolicyPipeliningWithoutReadingIsCutOff(t *testing.T) {
	_, addr := startPolicy(t, nil, false, 0)
	c, br := dial(t, addr)
	req := policyReq("RCPT", "", "alice@example.com")
	if _, err := io.WriteString(c, strings.Repeat(req, 10*MaxPipelined)); err != nil {
		t.Fatal(err)
	}
	answers := 0
	for {
		if _, err := br.ReadString('\n'); err != nil {
			// Closed with requests unread: a reset rather than EOF.
			if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %d answer lines: %v, want the connection closed", answers, err)
			}
			break
		}
		answers++
	}
	// Each answer is two lines ("action=..." and the empty line).
	if got := answers / 2; got > MaxPipelined+1 || got < MaxPipelined {
		t.Errorf("%d answers before the connection was closed, want %d", got, MaxPipelined)
	}
	// A client that waits for each answer is never cut off.
	c2, br2 := dial(t, addr)
	for i := 0; i < 2*MaxPipelined; i++ {
		io.WriteString(c2, req)
		if got := readReply(t, br2); got != "DUNNO" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
}
