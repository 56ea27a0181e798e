package milter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
)

var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// testStore is the cache package's in-memory store (its semantics are
// tested there, and against bbolt and redis-server in internal/cache and
// test/t-2*) with a switch that makes every call fail, for the failure
// policy.
type testStore struct {
	*cache.MemoryStore
	mu  sync.Mutex
	err error
}

func newTestStore() *testStore {
	return &testStore{MemoryStore: cache.NewMemoryStore(cache.Config{}.WithDefaults())}
}

func (s *testStore) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *testStore) failing() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *testStore) RecordSent(ctx context.Context, m cache.SentMessage) error {
	if err := s.failing(); err != nil {
		return err
	}
	return s.MemoryStore.RecordSent(ctx, m)
}

func (s *testStore) Inbound(ctx context.Context, q cache.InboundQuery) (cache.InboundFacts, error) {
	if err := s.failing(); err != nil {
		return cache.InboundFacts{}, err
	}
	return s.MemoryStore.Inbound(ctx, q)
}

// sent reports whether a message with this id was recorded.
func (s *testStore) sent(id string) bool {
	f, err := s.MemoryStore.Inbound(context.Background(), cache.InboundQuery{MessageIDs: []string{id}, Now: testNow})
	return err == nil && f.Sent != nil
}

type harness struct {
	t      *testing.T
	srv    *Server
	sock   string
	store  *testStore
	secret []byte
}

// newEngineFor builds the engine from a configuration text as serve does.
func newEngineFor(t *testing.T, cfgText, secret string) (*config.Config, *backscatter.Engine) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := backscatter.ParseKeys(strings.NewReader("2 "+secret+"\n"), "keys")
	if err != nil {
		t.Fatal(err)
	}
	since := map[string]time.Time{}
	for _, d := range cfg.DomainNames() {
		since[d] = testNow.AddDate(0, -1, 0)
	}
	eng := backscatter.New(cfg.Engine(since), backscatter.NewKeyRing(ks))
	eng.Now = func() time.Time { return testNow }
	return cfg, eng
}

// newHarness runs the milter with the real bounce analysis (no DKIM) on a
// unix socket, stripping tags itself.
func newHarness(t *testing.T, cfgText string) *harness {
	t.Helper()
	_, eng := newEngineFor(t, cfgText, "test-secret")
	st := newTestStore()
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: st,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &harness{t: t, srv: srv, sock: serveUnix(t, srv), store: st, secret: []byte("test-secret")}
}

// serveUnix runs srv on a unix socket in a fresh directory (short enough
// for sun_path) until the test ends, and returns the socket's path.
func serveUnix(t *testing.T, srv *Server) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bm-milter")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	return sock
}

const baseConfig = `
mode = "reject"
[domains."example.com"]
[domains."tagmode.example"]
mode = "tag"
`

type txn struct {
	port   uint16
	auth   string
	daemon string
	from   string
	rcpts  []string
	// rcptAddrs are the {rcpt_addr} macros of rcpts (Postfix's resolved
	// address), when set.
	rcptAddrs []string
	headers   [][2]string
	body      string
}

type result struct {
	rcptCodes []uint16
	eoh       *gomilter.Action // the answer at the end of the header
	mods      []gomilter.ModifyAction
	final     *gomilter.Action
}

func (h *harness) run(tx txn) result {
	h.t.Helper()
	macros := gomilter.NewMacroBag()
	client := gomilter.NewClient("unix", h.sock, gomilter.WithActions(gomilter.AllClientSupportedActionMasks))
	s, err := client.Session(macros)
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	port := tx.port
	if port == 0 {
		port = 40000
	}
	if tx.port == 1 {
		port = 0
	}
	macros.Set(gomilter.MacroDaemonName, tx.daemon)
	host, addr := "client.example.net", "192.0.2.10"
	if port == 0 {
		host, addr = "localhost", "127.0.0.1"
	}
	if _, err := s.Conn(host, gomilter.FamilyInet, port, addr); err != nil {
		h.t.Fatal(err)
	}
	if _, err := s.Helo("client.example.net"); err != nil {
		h.t.Fatal(err)
	}
	macros.Set(gomilter.MacroAuthAuthen, tx.auth)
	if _, err := s.Mail(tx.from, ""); err != nil {
		h.t.Fatal(err)
	}
	var res result
	for i, r := range tx.rcpts {
		if i < len(tx.rcptAddrs) {
			macros.Set(gomilter.MacroRcptAddr, tx.rcptAddrs[i])
		}
		act, err := s.Rcpt(r, "")
		if err != nil {
			h.t.Fatal(err)
		}
		res.rcptCodes = append(res.rcptCodes, act.SMTPCode)
	}
	if _, err := s.DataStart(); err != nil {
		h.t.Fatal(err)
	}
	for _, hd := range tx.headers {
		if _, err := s.HeaderField(hd[0], hd[1], nil); err != nil {
			h.t.Fatal(err)
		}
	}
	eoh, err := s.HeaderEnd()
	if err != nil {
		h.t.Fatal(err)
	}
	res.eoh = eoh
	if tx.body == "" {
		tx.body = "hello\r\n"
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader(tx.body))
	if err != nil {
		h.t.Fatal(err)
	}
	res.mods, res.final = mods, act
	return res
}

func (r result) changeFrom() string {
	for _, m := range r.mods {
		if m.Type == gomilter.ActionChangeFrom {
			return m.From
		}
	}
	return ""
}

func (r result) header(name string) (string, bool) {
	for _, m := range r.mods {
		if (m.Type == gomilter.ActionInsertHeader || m.Type == gomilter.ActionAddHeader) && strings.EqualFold(m.HeaderName, name) {
			return strings.TrimSpace(m.HeaderValue), true
		}
	}
	return "", false
}

func (h *harness) sign(addr string, when time.Time) string {
	s, err := backscatter.SignPRVS(addr, h.secret, 2, when, 7)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func TestOutboundSigning(t *testing.T) {
	h := newHarness(t, baseConfig)
	for _, tc := range []struct {
		name   string
		tx     txn
		signed bool
	}{
		{"authenticated", txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}}, true},
		{"originating daemon", txn{daemon: "ORIGINATING", from: "alice@Example.COM", rcpts: []string{"bob@example.org"}}, true},
		{"local submission", txn{port: 1, from: "alice@example.com", rcpts: []string{"bob@example.org"}}, true},
		{"foreign domain", txn{auth: "alice", from: "alice@example.net", rcpts: []string{"bob@example.org"}}, false},
		{"not ours", txn{from: "alice@example.com", rcpts: []string{"bob@example.org"}}, false},
		{"null sender", txn{auth: "x", from: "", rcpts: []string{"bob@example.org"}}, false},
		{"already tagged", txn{auth: "x", from: "prvs=0123cfcd40=alice@example.com", rcpts: []string{"bob@example.org"}}, false},
		{"SRS", txn{auth: "x", from: "SRS0=abcd=TT=example.org=bob@example.com", rcpts: []string{"c@example.org"}}, false},
		{"list VERP", txn{auth: "x", from: "list+bob=example.org@example.com", rcpts: []string{"bob@example.org"}}, false},
	} {
		tc.tx.headers = [][2]string{{"Message-ID", " <m-" + strings.ReplaceAll(tc.name, " ", "-") + "@example.com>"}, {"Subject", " hi"}}
		res := h.run(tc.tx)
		got := res.changeFrom()
		if res.final.Type != gomilter.ActionAccept {
			t.Errorf("%s: final %v", tc.name, res.final)
		}
		if tc.signed {
			// The tag is made for the lower-case sender (Engine.Sign).
			want := h.sign(strings.ToLower(tc.tx.from), testNow)
			if got != "<"+want+">" && got != want {
				t.Errorf("%s: sender %q, want %q", tc.name, got, want)
			}
		} else if got != "" {
			t.Errorf("%s: sender changed to %q", tc.name, got)
		}
	}
	if !h.store.sent("<m-authenticated@example.com>") {
		t.Fatal("sent record missing")
	}
	if h.store.sent("<m-foreign-domain@example.com>") {
		t.Fatal("a message that was not signed was recorded")
	}
}

func TestInboundTags(t *testing.T) {
	h := newHarness(t, baseConfig)
	valid := h.sign("user@example.com", testNow)
	old := h.sign("user@example.com", testNow.AddDate(0, 0, -20))
	forged := strings.Replace(valid, "=user@", "=other@", 1)
	unknownKey := "prvs=5" + valid[6:]
	for _, tc := range []struct {
		name string
		rcpt string
		code uint16
	}{
		{"forged", forged, 550},
		{"expired", old, 550},
		{"unknown key", unknownKey, 550},
		{"forged, domain in upper case", strings.Replace(forged, "example.com", "EXAMPLE.COM", 1), 550},
	} {
		res := h.run(txn{from: "", rcpts: []string{tc.rcpt}, headers: [][2]string{{"Subject", " failure"}}, body: "x\r\n"})
		if res.rcptCodes[0] != tc.code {
			t.Errorf("%s: RCPT %s got %d, want %d", tc.name, tc.rcpt, res.rcptCodes[0], tc.code)
		}
	}
	// A valid tag: accepted, stripped, pass header; a forged verdict header removed.
	res := h.run(txn{from: "", rcpts: []string{valid}, headers: [][2]string{{"X-Bounce-Check", " pass (forged)"}, {"Subject", " failure"}}, body: "x\r\n"})
	if res.rcptCodes[0] >= 400 || res.final.Type != gomilter.ActionAccept {
		t.Fatalf("valid tag: rcpt %v final %v", res.rcptCodes, res.final)
	}
	var deleted, added, removedHeader bool
	for _, m := range res.mods {
		switch {
		case m.Type == gomilter.ActionDelRcpt && strings.Trim(m.Rcpt, "<>") == valid:
			deleted = true
		case m.Type == gomilter.ActionAddRcpt && strings.Trim(m.Rcpt, "<>") == "user@example.com":
			added = true
		case m.Type == gomilter.ActionChangeHeader && m.HeaderValue == "" && m.HeaderIndex == 1:
			removedHeader = true
		}
	}
	if v, _ := res.header("X-Bounce-Check"); !deleted || !added || !removedHeader || !strings.HasPrefix(v, "pass (valid prvs tag, key 2") {
		t.Fatalf("valid tag: deleted %v added %v removedHeader %v header %q; mods %v", deleted, added, removedHeader, v, res.mods)
	}
}

func TestUntaggedBounces(t *testing.T) {
	h := newHarness(t, baseConfig)
	bounceBody := "This is the mail system at host mx.example.org.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n<bob@example.org>: host mx.example.org said: 550 5.1.1 unknown user\r\n\r\n" +
		"--- Original message headers ---\r\nMessage-ID: <orig-1@example.com>\r\nFrom: user@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n"
	// Reject mode: RCPT passes (callout probes), rejected at end of data.
	res := h.run(txn{from: "", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Message-ID", " <dsn-1@mx.example.org>"}}, body: bounceBody})
	if res.rcptCodes[0] >= 400 || res.final.SMTPCode != 550 || !strings.Contains(res.final.SMTPReply, "no-evidence") {
		t.Fatalf("untagged bounce: rcpt %v final %+v", res.rcptCodes, res.final)
	}
	// Tag mode: accepted with a fail header.
	res = h.run(txn{from: "MAILER-DAEMON@mx.example.org", rcpts: []string{"user@tagmode.example"}, headers: [][2]string{{"Message-ID", " <dsn-2@mx.example.org>"}, {"Subject", " Undelivered Mail Returned to Sender"}}, body: bounceBody})
	if v, _ := res.header("X-Bounce-Check"); res.final.Type != gomilter.ActionAccept || !strings.HasPrefix(v, "fail (") {
		t.Fatalf("tag mode: %+v header %q", res.final, v)
	}
	// postmaster and abuse are exempt.
	res = h.run(txn{from: "", rcpts: []string{"postmaster@example.com"}, body: bounceBody})
	if res.final.Type != gomilter.ActionAccept {
		t.Fatalf("postmaster: %+v", res.final)
	}
	// Evidence from the store: the original was sent and recorded.
	h.store.RecordSent(context.Background(), cache.SentMessage{MessageID: "<orig-1@example.com>", Tag: "prvs=x=user@example.com", Sender: "user@example.com", Recipients: []string{"a@example.org"}, Time: testNow})
	res = h.run(txn{from: "", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Message-ID", " <dsn-3@mx.example.org>"}}, body: bounceBody})
	if v, _ := res.header("X-Bounce-Check"); res.final.Type != gomilter.ActionAccept || !strings.Contains(v, "store:orig-1@example.com") {
		t.Fatalf("store evidence: %+v header %q", res.final, v)
	}
	// Mixed recipients: the backscatter recipient is dropped, the exempt one kept.
	res = h.run(txn{from: "", rcpts: []string{"other@example.com", "abuse@example.com"}, body: "no original here\r\n"})
	var dropped bool
	for _, m := range res.mods {
		if m.Type == gomilter.ActionDelRcpt && strings.Trim(m.Rcpt, "<>") == "other@example.com" {
			dropped = true
		}
	}
	if res.final.Type != gomilter.ActionAccept || !dropped {
		t.Fatalf("mixed: %+v mods %v", res.final, res.mods)
	}
	// Local submission is never rejected.
	res = h.run(txn{port: 1, from: "", rcpts: []string{"user@example.com"}, body: "x\r\n"})
	if res.final.Type != gomilter.ActionAccept {
		t.Fatalf("local: %+v", res.final)
	}
	// Store down: untagged bounces are tempfailed, tagged ones still pass.
	h.store.fail(context.DeadlineExceeded)
	res = h.run(txn{from: "", rcpts: []string{"user@example.com"}, body: bounceBody})
	if res.final.SMTPCode != 451 {
		t.Fatalf("store down: %+v", res.final)
	}
	res = h.run(txn{from: "", rcpts: []string{h.sign("user@example.com", testNow)}, body: bounceBody})
	if res.final.Type != gomilter.ActionAccept {
		t.Fatalf("store down, valid tag: %+v", res.final)
	}
	// An auto-reply from a normal sender, untagged, no evidence: refused.
	h.store.fail(nil)
	res = h.run(txn{from: "someone@example.org", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Auto-Submitted", " auto-replied"}}, body: "I am away\r\n"})
	if res.final.SMTPCode != 550 {
		t.Fatalf("auto-reply: %+v", res.final)
	}
	// Mail from another domain's postmaster that is no bounce is delivered
	// untouched (a bounce-like sender alone proves nothing).
	res = h.run(txn{from: "postmaster@example.org", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Subject", " your server's TLS certificate expires soon"}}, body: "Hello, please renew it.\r\n"})
	if res.final.Type != gomilter.ActionAccept || len(res.mods) != 0 {
		t.Fatalf("postmaster of another domain: %+v %v", res.final, res.mods)
	}
	// An auto-reply marked only by a rarer header is decided (the
	// pre-check and the analysis read the same signals).
	res = h.run(txn{from: "bob@example.org", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Subject", " Re: hi"}, {"X-Autoresponder", " yes"}, {"In-Reply-To", " <spam@bot.example>"}}, body: "I am away until Monday.\r\n"})
	if res.final.SMTPCode != 550 {
		t.Fatalf("auto-reply marked by X-Autoresponder: %+v", res.final)
	}
	// Ordinary mail is untouched.
	res = h.run(txn{from: "someone@example.org", rcpts: []string{"user@example.com"}, headers: [][2]string{{"Subject", " hello"}}, body: "hi\r\n"})
	if res.final.Type != gomilter.ActionAccept || len(res.mods) != 0 {
		t.Fatalf("ordinary: %+v %v", res.final, res.mods)
	}
}

// Recipients that are no address are passed over; an address of our
// domain that cannot be read is refused, never waved through: never a
// crash either way.
func TestMalformedRecipients(t *testing.T) {
	h := newHarness(t, baseConfig)
	for _, c := range []struct {
		rcpt string
		code uint16
	}{
		{"not-an-address", 0}, {"user@", 0}, {"prvs=2zzz000000=user@example.org", 0},
		{"@example.com", 550}, {strings.Repeat("a", 5000) + "@example.com", 550},
		{"\"quoted user\"@example.com", 550}, {"user\x01x@example.com", 550},
	} {
		res := h.run(txn{from: "", rcpts: []string{c.rcpt}, body: "x\r\n"})
		if len(res.rcptCodes) != 1 || res.final == nil {
			t.Errorf("%.40q: rcpt %v final %v", c.rcpt, res.rcptCodes, res.final)
			continue
		}
		if got := res.rcptCodes[0]; (c.code == 0 && got >= 400) || (c.code != 0 && got != c.code) {
			t.Errorf("%.40q: RCPT %d, want %d", c.rcpt, got, c.code)
		}
	}
	// The session still works afterwards.
	res := h.run(txn{auth: "alice", from: "alice@example.com", rcpts: []string{"bob@example.org"}})
	if !strings.HasPrefix(strings.Trim(res.changeFrom(), "<>"), "prvs=2") {
		t.Fatalf("signing after malformed recipients: %+v", res.mods)
	}
}

// The sign-only milter (the submission service's) signs and records our
// users' mail, removes a forged verdict header, and judges nothing.
func TestSignOnly(t *testing.T) {
	_, eng := newEngineFor(t, baseConfig, "test-secret")
	st := newTestStore()
	srv := New(Options{Settings: Settings{Engine: eng}, Store: st, SignOnly: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := &harness{t: t, srv: srv, sock: serveUnix(t, srv), store: st, secret: []byte("test-secret")}
	res := h.run(txn{daemon: "ORIGINATING", from: "alice@example.com", rcpts: []string{"bob@example.org"},
		headers: [][2]string{{"Message-ID", " <so-1@example.com>"}, {"X-Bounce-Check", " pass (forged)"}}})
	if want := h.sign("alice@example.com", testNow); strings.Trim(res.changeFrom(), "<>") != want {
		t.Fatalf("sender %q, want %q", res.changeFrom(), want)
	}
	removed := false
	for _, m := range res.mods {
		if m.Type == gomilter.ActionChangeHeader && m.HeaderValue == "" {
			removed = true
		}
	}
	if !removed {
		t.Fatalf("forged verdict header kept: %v", res.mods)
	}
	// A bounce to a forged tag is not its business (the MX milter's).
	forged := strings.Replace(h.sign("alice@example.com", testNow), "=alice@", "=mallory@", 1)
	res = h.run(txn{from: "", rcpts: []string{forged}, body: "x\r\n"})
	if res.rcptCodes[0] >= 400 || res.final.Type != gomilter.ActionAccept {
		t.Fatalf("sign-only judged a bounce: %v %+v", res.rcptCodes, res.final)
	}
	if !st.sent("<so-1@example.com>") {
		t.Fatal("not recorded")
	}
}

type eventSink struct {
	mu sync.Mutex
	es []events.Event
}

func (s *eventSink) Record(es ...events.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.es = append(s.es, es...)
}

// A genuine bounce delivered becomes one event per bounced recipient, with
// its reason and hard/soft; backscatter becomes none.
func TestBounceEvents(t *testing.T) {
	_, eng := newEngineFor(t, baseConfig, "test-secret")
	sink := &eventSink{}
	srv := New(Options{Settings: Settings{Engine: eng, StripInMilter: true}, Store: newTestStore(), Events: sink, Host: "mx1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := &harness{t: t, srv: srv, sock: serveUnix(t, srv), secret: []byte("test-secret")}
	dsn := "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\n\r\n" +
		"Final-Recipient: rfc822; gone@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n" +
		"Final-Recipient: rfc822; full@remote.example\r\nAction: delayed\r\nStatus: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: user@example.com\r\nMessage-ID: <ev-1@example.com>\r\n\r\n--B--\r\n"
	hdrs := [][2]string{{"Content-Type", ` multipart/report; report-type=delivery-status; boundary="B"`}, {"Subject", " Delivery Status Notification"}}
	res := h.run(txn{from: "", rcpts: []string{h.sign("user@example.com", testNow)}, headers: hdrs, body: dsn})
	if res.final.Type != gomilter.ActionAccept {
		t.Fatalf("%+v", res.final)
	}
	res = h.run(txn{from: "", rcpts: []string{"user@example.com"}, headers: hdrs, body: dsn}) // backscatter: refused
	if res.final.SMTPCode != 550 {
		t.Fatalf("backscatter: %+v", res.final)
	}
	// A person replying to a signed VERP return path: accepted (valid
	// tag), but no bounce, so no event.
	verp, err := backscatter.SignVERP("news@example.com", "reader@example.org", h.secret, 2, testNow, 7)
	if err != nil {
		t.Fatal(err)
	}
	res = h.run(txn{from: "reader@example.org", rcpts: []string{verp},
		headers: [][2]string{{"From", "reader@example.org"}, {"Subject", "Re: our newsletter"}}, body: "Thanks!\r\n"})
	if res.final == nil || res.final.Type != gomilter.ActionAccept {
		t.Fatalf("reply to a VERP address: %+v", res.final)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.es) != 2 {
		t.Fatalf("%d events: %+v", len(sink.es), sink.es)
	}
	a, b := sink.es[0], sink.es[1]
	if a.Kind != events.KindBounce || a.Recipient != "gone@remote.example" || a.Reason != "userunknown" || !a.Hard ||
		a.Sender != "user@example.com" || a.MessageID != "ev-1@example.com" || a.Evidence != "valid-tag" || a.Host != "mx1" || a.ReportingMTA != "mx.remote.example" {
		t.Errorf("first event %+v", a)
	}
	if b.Kind != events.KindDelay || b.Hard || b.Recipient != "full@remote.example" {
		t.Errorf("second event %+v", b)
	}
}

// What a message keeps per recipient is bounded: past MaxRecipients an SMTP
// client's RCPT gets 452 (send the rest later); local submission is never
// refused, and its sent record still counts every recipient.
func TestRecipientCap(t *testing.T) {
	h := newHarness(t, baseConfig)
	rcpts := make([]string, MaxRecipients+2)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%d@example.org", i)
	}
	res := h.run(txn{auth: "alice", from: "alice@example.com", rcpts: rcpts, headers: [][2]string{{"Message-Id", "<cap-1@example.com>"}}})
	if n := len(res.rcptCodes); n != len(rcpts) || res.rcptCodes[MaxRecipients-1] >= 400 ||
		res.rcptCodes[MaxRecipients] != 452 || res.rcptCodes[MaxRecipients+1] != 452 {
		t.Fatalf("RCPT codes around the cap: %v", res.rcptCodes[MaxRecipients-2:])
	}
	res = h.run(txn{port: 1, from: "alice@example.com", rcpts: rcpts, headers: [][2]string{{"Message-Id", "<cap-2@example.com>"}}})
	for i, c := range res.rcptCodes {
		if c >= 400 {
			t.Fatalf("local submission: RCPT %d refused (%d)", i, c)
		}
	}
	if got := recordRecipients([]string{"a"}, 5); len(got) != 5 || got[0] != "a" {
		t.Fatalf("record recipients: %q", got)
	}
}

// The milter decides on the address Postfix resolved ({rcpt_addr}) as well
// as on its own reading: a bare local part that Postfix qualifies with one
// of our domains ($myorigin) is judged like the full address.
func TestResolvedRecipient(t *testing.T) {
	h := newHarness(t, baseConfig)
	body := "This is the mail system at host mx.remote.example.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n"
	hdrs := [][2]string{{"Subject", "Undelivered Mail Returned to Sender"}, {"From", "MAILER-DAEMON@remote.example"}}
	res := h.run(txn{from: "", rcpts: []string{"victim"}, rcptAddrs: []string{"victim@example.com"}, headers: hdrs, body: body})
	if res.final == nil || res.final.Type != gomilter.ActionRejectWithCode || res.final.SMTPCode != 550 {
		t.Fatalf("bare local part resolved to ours: %+v", res.final)
	}
	res = h.run(txn{from: "", rcpts: []string{"victim"}, headers: hdrs, body: body})
	if res.final == nil || res.final.Type == gomilter.ActionRejectWithCode {
		t.Fatalf("bare local part, no macro: %+v (nothing says it is ours)", res.final)
	}
}

// Mail that needs nothing more from the milter is accepted at the end of
// its header (Postfix then sends neither body nor end of message); every
// other kind goes on to the end.
func TestAcceptAtEndOfHeader(t *testing.T) {
	h := newHarness(t, baseConfig)
	valid := h.sign("alice@example.com", testNow)
	for _, c := range []struct {
		name string
		tx   txn
		done bool
	}{
		{"ordinary inbound mail", txn{from: "bob@example.org", rcpts: []string{"alice@example.com"},
			headers: [][2]string{{"From", "bob@example.org"}, {"Subject", "lunch?"}}}, true},
		{"mail for other domains", txn{from: "bob@example.org", rcpts: []string{"carol@example.net"}}, true},
		{"a null sender", txn{from: "", rcpts: []string{"alice@example.com"}}, false},
		{"a MAILER-DAEMON sender", txn{from: "MAILER-DAEMON@example.org", rcpts: []string{"alice@example.com"}}, false},
		{"an auto-reply", txn{from: "bob@example.org", rcpts: []string{"alice@example.com"},
			headers: [][2]string{{"Auto-Submitted", "auto-replied"}, {"Subject", "Out of office"}}}, false},
		{"a tagged recipient", txn{from: "bob@example.org", rcpts: []string{valid}}, false},
		{"a copy of our verdict header", txn{from: "bob@example.org", rcpts: []string{"alice@example.com"},
			headers: [][2]string{{"X-Bounce-Check", "pass"}}}, false},
		{"our users' mail (signed)", txn{daemon: "ORIGINATING", from: "alice@example.com", rcpts: []string{"bob@example.org"}}, false},
	} {
		r := h.run(c.tx)
		if r.eoh == nil {
			t.Fatalf("%s: no answer at the end of the header", c.name)
		}
		if got := r.eoh.Type == gomilter.ActionAccept; got != c.done {
			t.Errorf("%s: accepted at the end of the header %v, want %v (%+v, rcpt %v)", c.name, got, c.done, r.eoh, r.rcptCodes)
		}
	}
	// The verdict header copy is still removed at the end.
	r := h.run(txn{from: "bob@example.org", rcpts: []string{"alice@example.com"}, headers: [][2]string{{"X-Bounce-Check", "pass"}}})
	removed := false
	for _, m := range r.mods {
		removed = removed || m.Type == gomilter.ActionChangeHeader && strings.EqualFold(m.HeaderName, "X-Bounce-Check") && m.HeaderValue == ""
	}
	if !removed {
		t.Errorf("the copy of our verdict header was not removed: %+v", r.mods)
	}
}
