package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/backscatter"
	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/config"
	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/stats"
)

const testConfig = `
mode = "reject"
lifetime = 7
[domains."example.com"]
since = 2020-01-01
[domains."new.example"]
mode = "tag"
`

type fixture struct {
	h      http.Handler
	agg    *stats.Aggregator
	ev     *events.MemoryStore
	now    time.Time
	engine *backscatter.Engine
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Key 1 signs for both; key 0 is older and still listed.
	ks, err := backscatter.ParseKeys(strings.NewReader("0 old-secret\n1 new-secret\n"), "keys")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	since := map[string]time.Time{"example.com": now.AddDate(-1, 0, 0), "new.example": now.Add(-24 * time.Hour)}
	eng := backscatter.New(cfg.Engine(since), backscatter.NewKeyRing(ks))
	st := cache.NewMemoryStats()
	agg := stats.New(stats.Options{Store: st})
	agg.SetDomains(eng.DomainNames())
	ev := &events.MemoryStore{}
	o := Options{
		Stats: &stats.Reader{Store: st, Agg: agg}, Events: ev, Engine: func() *backscatter.Engine { return eng },
		Store: func(context.Context) StoreStatus {
			return StoreStatus{Backend: "embedded", Breaker: "closed", PingMillis: 0.2, Stats: agg.Status()}
		},
		StrictFor: time.Hour, Mask: config.MaskOff, Version: "test",
	}
	if mod != nil {
		mod(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{h: h, agg: agg, ev: ev, now: now, engine: eng}
}

func (f *fixture) get(t *testing.T, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://localhost:9433"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func (f *fixture) mix() {
	for i := 0; i < 3; i++ {
		f.agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
			Recipient: "alice@example.com", Client: "192.0.2.8", ReportingMTA: "mx.remote.example"})
	}
	f.agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "accept", Reason: "valid-tag", Domain: "example.com", Recipient: "bob@example.com"})
	f.agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "reject", Reason: "replayed", Domain: "example.com", Recipient: "bob@example.com", Client: "2001:db8::1"})
	f.agg.Decided(stats.Decision{Direction: stats.Outbound, Verdict: stats.Signed, Reason: "signed", Domain: "example.com"})
	f.agg.Signed("example.com", 1)
	f.agg.FloodChanged(stats.FloodChange{Entered: true, Recipient: "alice@example.com", Client: "192.0.2.8", RecipientStrict: true})
	_ = f.ev.AppendEvents(context.Background(), []events.Event{
		{ID: "1", Time: f.now.Add(-time.Hour), Kind: events.KindBounce, Sender: "bob@example.com", Domain: "example.com",
			Recipient: "gone@remote.example", Reason: "userunknown", Hard: true, Status: "5.1.1", Diagnostic: "550 5.1.1 <gone@remote.example>: no such user"},
		{ID: "2", Time: f.now.Add(-time.Minute), Kind: events.KindBounce, Sender: "bob@example.com", Domain: "example.com",
			Recipient: "gone@remote.example", Reason: "userunknown", Hard: true, Status: "5.1.1"},
		{ID: "3", Time: f.now.Add(-time.Minute), Kind: events.KindDelay, Sender: "carol@example.com", Domain: "example.com",
			Recipient: "slow@remote.example", Reason: "mailboxfull", Hard: false, Status: "4.2.2"},
	})
}

func TestOverview(t *testing.T) {
	f := newFixture(t, nil)
	f.mix()
	code, body, hdr := f.get(t, "/api/overview")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", code, body)
	}
	var o Overview
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatal(err)
	}
	if o.Inbound24h.Total != 5 || o.Inbound24h.Backscat != 4 || o.Inbound30d.Total != 5 || o.Outbound24h.Total != 1 {
		t.Fatalf("totals: in %d (%d) 30d %d out %d", o.Inbound24h.Total, o.Inbound24h.Backscat, o.Inbound30d.Total, o.Outbound24h.Total)
	}
	if len(o.Domains) != 2 || o.Domains[0].Name != "example.com" || o.Domains[0].Effect != "reject in force" || o.Domains[0].Syntax != "prvs" ||
		!o.Domains[1].InGrace || !strings.HasPrefix(o.Domains[1].Effect, "grace period: accepted until ") || o.Domains[1].SigningKey != 1 {
		t.Fatalf("domains %+v", o.Domains)
	}
	if len(o.Flood) != 1 || o.Flood[0].Name != "alice@example.com" {
		t.Fatalf("flood state %+v", o.Flood)
	}
	code, body, hdr = f.get(t, "/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", code, body)
	}
	// The counts are in the chart (segments) and the legend and tables.
	if sum := sumCounts(body, "in24", "reject/no-evidence"); sum != 3 {
		t.Errorf("chart in24 reject/no-evidence segments sum to %d", sum)
	}
	for _, want := range []string{`<li data-line="reject/no-evidence" data-total="3">`, `<tr data-line="accept/valid-tag"><td>accept</td><td>valid-tag</td><td class="n">1</td>`,
		`href="/?domain=example.com"`, "mode-reject", "alice@example.com", "embedded"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	// No script, no inline style: the CSP allows neither.
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Error("the page has a script or an inline style")
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// One domain.
	_, body, _ = f.get(t, "/api/overview?domain=new.example")
	_ = json.Unmarshal([]byte(body), &o)
	if o.Inbound24h.Total != 0 || o.Domain != "new.example" {
		t.Errorf("one domain: %d", o.Inbound24h.Total)
	}
}

// sumCounts adds the data-count of the chart's segments of one line.
func sumCounts(body, chart, line string) int {
	i := strings.Index(body, `id="`+chart+`"`)
	if i < 0 {
		return -1
	}
	end := strings.Index(body[i:], "</figure>")
	re := regexp.MustCompile(`data-line="` + regexp.QuoteMeta(line) + `" data-count="(\d+)"`)
	sum := 0
	for _, m := range re.FindAllStringSubmatch(body[i:i+end], -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	return sum
}

func TestFloods(t *testing.T) {
	f := newFixture(t, nil)
	f.mix()
	code, body, _ := f.get(t, "/api/floods?window=1h&top=5")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var fl FloodsData
	if err := json.Unmarshal([]byte(body), &fl); err != nil {
		t.Fatal(err)
	}
	if fl.Window != "1h" || len(fl.Recipients) != 2 || fl.Recipients[0].Name != "alice@example.com" || fl.Recipients[0].Count != 3 ||
		len(fl.Networks) != 2 || fl.Reporters[0].Name != "mx.remote.example" || len(fl.Replayed) != 1 || fl.Replayed[0].Name != "bob@example.com" ||
		len(fl.Marks) != 1 || !fl.Marks[0].Entered || fl.Series.Total != 4 {
		t.Fatalf("floods %+v", fl)
	}
	code, body, _ = f.get(t, "/floods?window=30d")
	if code != 200 || !strings.Contains(body, `<a href="/bounces?sender=alice%40example.com">alice@example.com</a></td><td class="n">3</td>`) ||
		!strings.Contains(body, `href="/floods?window=30d" aria-current="page"`) {
		t.Fatalf("floods page: %d %s", code, body)
	}
	if code, _, _ := f.get(t, "/api/floods?window=2y"); code != 400 {
		t.Errorf("a bad window: %d", code)
	}
	if code, _, _ := f.get(t, "/floods?top=-1"); code != 400 {
		t.Errorf("a bad top: %d", code)
	}
}

func TestBounces(t *testing.T) {
	f := newFixture(t, nil)
	f.mix()
	code, body, _ := f.get(t, "/bounces?hard=true")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if n := strings.Count(body, `<tr data-reason="userunknown">`); n != 2 || strings.Contains(body, "slow@remote.example</a>") {
		t.Errorf("hard bounces: %d rows", n)
	}
	if !strings.Contains(body, `<td>gone@remote.example</td><td class="n">2</td><td>userunknown</td>`) {
		t.Errorf("suppression candidate missing:\n%s", body)
	}
	_, body, _ = f.get(t, "/bounces?sender=carol@example.com")
	if n := strings.Count(body, "<tr data-reason="); n != 1 || !strings.Contains(body, "mailboxfull") {
		t.Errorf("by sender: %d rows", n)
	}
	// The API behind the page.
	code, body, _ = f.get(t, "/api/events?recipient=gone@remote.example")
	var es []events.Event
	if code != 200 || json.Unmarshal([]byte(body), &es) != nil || len(es) != 2 {
		t.Fatalf("api/events: %d %s", code, body)
	}
	if code, _, _ := f.get(t, "/bounces?hard=maybe"); code != 400 {
		t.Errorf("bad filter: %d", code)
	}
}

func TestMasking(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Mask = config.MaskRemote })
	f.mix()
	code, body, _ := f.get(t, "/bounces")
	if code != 200 || strings.Contains(body, "gone@remote.example") || !strings.Contains(body, "g***@remote.example") || !strings.Contains(body, "bob@example.com") {
		t.Errorf("remote masking: %d\n%s", code, body)
	}
	code, body, _ = f.get(t, "/api/events")
	if code != 200 || strings.Contains(body, "gone@") || !strings.Contains(body, "g***@remote.example") {
		t.Errorf("remote masking in the API: %d\n%s", code, body)
	}
	f = newFixture(t, func(o *Options) { o.Mask = config.MaskAll })
	f.mix()
	// Each answer is the page or the data (200), with the addresses it
	// shows masked: an error page would show none and prove nothing.
	for p, shows := range map[string]bool{"/": false, "/floods": false, "/bounces": true, "/api/floods": false, "/api/overview": false,
		"/api/events": true, "/api/suppressions": true} {
		code, body, _ := f.get(t, p)
		if code != 200 {
			t.Errorf("%s with mask all: %d", p, code)
		}
		if shows && !strings.Contains(body, "***@") {
			t.Errorf("%s with mask all shows no masked address:\n%s", p, body)
		}
		for _, a := range []string{"alice@", "bob@", "gone@"} {
			if strings.Contains(body, a) {
				t.Errorf("%s shows %s with mask all", p, a)
			}
		}
	}
}

func TestKeys(t *testing.T) {
	f := newFixture(t, nil)
	f.mix()
	code, body, _ := f.get(t, "/api/keys")
	var k KeysData
	if code != 200 || json.Unmarshal([]byte(body), &k) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if len(k.Keys) != 2 {
		t.Fatalf("keys %+v", k.Keys)
	}
	k0, k1 := k.Keys[0], k.Keys[1]
	if k0.Number != 0 || k0.Retire != "unknown" || len(k0.Domains) != 2 || len(k0.SigningFor) != 0 {
		t.Errorf("key 0 %+v", k0)
	}
	if k1.Number != 1 || k1.Retire != "no" || k1.Total != 1 || len(k1.SigningFor) != 2 || k1.Last.IsZero() {
		t.Errorf("key 1 %+v", k1)
	}
	code, body, _ = f.get(t, "/keys")
	if code != 200 || !strings.Contains(body, `<tr data-key="1"><td>1</td>`) || sumCounts(body, "key1", "signed/key 1") != 1 {
		t.Errorf("keys page %d %s", code, body)
	}
}

// Retiring: a key that signed last beyond a tag lifetime ago can go; one
// that signed nothing while statistics were kept for a tag lifetime too.
func TestKeysRetire(t *testing.T) {
	st := cache.NewMemoryStats()
	now := time.Now().UTC()
	_ = st.AddStats(context.Background(), cache.StatsWrite{Max: map[string]int64{"key:0": now.AddDate(0, 0, -8).Unix(), "key:5": now.Unix()},
		Min: map[string]int64{"since": now.AddDate(0, 0, -20).Unix()}})
	f := newFixture(t, func(o *Options) { o.Stats = &stats.Reader{Store: st} })
	_, body, _ := f.get(t, "/api/keys")
	var k KeysData
	if err := json.Unmarshal([]byte(body), &k); err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, r := range k.Keys {
		got[r.Number] = r.Retire
	}
	if got[0] != "yes" || got[1] != "no" || got[5] != "removed" || len(got) != 3 {
		t.Fatalf("retire %v (%+v)", got, k.Keys)
	}
}

func TestAccess(t *testing.T) {
	// No login: a loopback listener, and only loopback host names.
	f := newFixture(t, nil)
	for host, want := range map[string]int{"localhost:9433": 200, "127.0.0.1:9433": 200, "[::1]:9433": 200, "localhost": 200,
		"attacker.example:9433": 403, "192.0.2.1:9433": 403, "": 403} {
		if code, _, _ := f.get(t, "/", "Host", host); code != want {
			t.Errorf("Host %q: %d, want %d", host, code, want)
		}
	}
	// A token: required on every page and API, as Bearer or as a basic-auth password.
	f = newFixture(t, func(o *Options) { o.Token = "s3cret-token" })
	for _, p := range []string{"/", "/floods", "/bounces", "/keys", "/api/overview", "/api/events", "/static/style.css"} {
		code, _, hdr := f.get(t, p, "Host", "mx.example.com:9433")
		if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s without the token: %d", p, code)
		}
		if code, _, _ := f.get(t, p, "Host", "mx.example.com:9433", "Authorization", "Bearer wrong"); code != 401 {
			t.Errorf("%s with a wrong token: %d", p, code)
		}
		if code, _, _ := f.get(t, p, "Host", "mx.example.com:9433", "Authorization", "Bearer s3cret-token"); code != 200 {
			t.Errorf("%s with the token: %d", p, code)
		}
	}
	req := httptest.NewRequest("GET", "http://mx.example.com/", nil)
	req.SetBasicAuth("anyone", "s3cret-token")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("token as basic-auth password: %d", rec.Code)
	}
	// User and password.
	f = newFixture(t, func(o *Options) { o.User, o.Password = "admin", "pw" })
	for _, tc := range []struct {
		u, p string
		want int
	}{{"admin", "pw", 200}, {"admin", "nope", 401}, {"root", "pw", 401}} {
		req := httptest.NewRequest("GET", "http://mx.example.com/keys", nil)
		req.SetBasicAuth(tc.u, tc.p)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("basic %s:%s: %d, want %d", tc.u, tc.p, rec.Code, tc.want)
		}
	}
	// Read-only.
	req = httptest.NewRequest("POST", "http://localhost/", nil)
	rec = httptest.NewRecorder()
	newFixture(t, nil).h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// Every answer is bounded, whatever the store holds.
func TestBounded(t *testing.T) {
	f := newFixture(t, nil)
	var es []events.Event
	for i := 0; i < 3*PageEvents; i++ {
		es = append(es, events.Event{ID: strconv.Itoa(i), Time: f.now.Add(-time.Duration(i) * time.Second), Kind: events.KindBounce,
			Sender: "s@example.com", Recipient: "r" + strconv.Itoa(i) + "@remote.example", Reason: "userunknown", Hard: true, Diagnostic: strings.Repeat("x", 5000)})
	}
	_ = f.ev.AppendEvents(context.Background(), es)
	for i := 0; i < 5000; i++ {
		f.agg.Decided(stats.Decision{Direction: stats.Inbound, Verdict: "reject", Reason: "no-evidence", Domain: "example.com",
			Recipient: "u" + strconv.Itoa(i) + "@example.com", Client: "10." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256) + ".1"})
	}
	_, body, _ := f.get(t, "/bounces?min_hard=1")
	if n := strings.Count(body, "<tr data-reason="); n != PageEvents {
		t.Errorf("%d events on the page, want %d", n, PageEvents)
	}
	if len(body) > 1<<20 {
		t.Errorf("bounces page is %d bytes", len(body))
	}
	_, body, _ = f.get(t, "/api/floods?window=24h&top=1000")
	var fl FloodsData
	if err := json.Unmarshal([]byte(body), &fl); err != nil || len(fl.Recipients) != stats.MaxTop {
		t.Errorf("floods: %d recipients, %v", len(fl.Recipients), err)
	}
}
