package cache

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RedisConfig
	}{
		{"redis://localhost", RedisConfig{Addrs: []string{"localhost:6379"}}},
		{"redis://u:p%40ss@10.0.0.1:7000/2", RedisConfig{Addrs: []string{"10.0.0.1:7000"}, Username: "u", Password: "p@ss", DB: 2}},
		{"redis://:pw@h:1", RedisConfig{Addrs: []string{"h:1"}, Password: "pw"}},
		{"rediss://h:6380/0", RedisConfig{Addrs: []string{"h:6380"}, TLS: true}},
		{"redis://[::1]:6379", RedisConfig{Addrs: []string{"[::1]:6379"}}},
		{"redis://[::1]", RedisConfig{Addrs: []string{"[::1]:6379"}}},
		{"redis-sentinel://s1,s2:26380/mymaster?db=3", RedisConfig{Addrs: []string{"s1:26379", "s2:26380"}, MasterName: "mymaster", DB: 3}},
		{"rediss-sentinel://u:p@s1/m?sentinel_password=x", RedisConfig{Addrs: []string{"s1:26379"}, MasterName: "m", Username: "u", Password: "p", SentinelPassword: "x", TLS: true}},
		{"redis-cluster://a:7000,b:7001,c:7002", RedisConfig{Addrs: []string{"a:7000", "b:7001", "c:7002"}, Cluster: true}},
		{"REDISS-CLUSTER://a/", RedisConfig{Addrs: []string{"a:6379"}, Cluster: true, TLS: true}},
	} {
		got, err := ParseRedisURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:6379":             "missing scheme",
		"http://h":                   "unknown scheme",
		"redis://":                   "no host",
		"redis://a,b":                "redis-sentinel:// or redis-cluster://",
		"redis://h:0":                "bad port",
		"redis://h:99999":            "bad port",
		"redis://h:x":                "bad port",
		"redis://h/x":                "bad database",
		"redis://h?foo=1":            "unknown query parameter",
		"redis-sentinel://s":         "master name",
		"redis-sentinel://s/a/b":     "master name",
		"redis-sentinel://s/m?db=-1": "bad database",
		"redis-cluster://a/1":        "no path",
		"redis-cluster://a,,b":       "empty host",
		"redis://::1":                "brackets",
		"redis://u:secret@h/x":       "xxxxx",
		"redis-sentinel://s/m?sentinel_password=secret&y=1": "unknown query parameter",
		"redis://h#f":                    "fragment",
		"redis://u:%zz@h":                "password encoding",
		"redis-sentinel://s/m?db=1&x=%g": "bad query",
	} {
		_, err := ParseRedisURL(in)
		if err == nil {
			t.Errorf("%s: accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not mention %q", in, err, want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error leaks the password: %v", in, err)
		}
	}
}

func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{"redis://h", "rediss://u:p@h:1/2", "redis-sentinel://a,b:1/m?db=2", "redis-cluster://a,b", "redis://[::1]:5", "redis://u:p@:1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rc, err := ParseRedisURL(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "redis URL ") {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		if len(rc.Addrs) == 0 {
			t.Fatalf("%q: accepted without addresses", in)
		}
		if rc.MasterName != "" && rc.Cluster {
			t.Fatalf("%q: both sentinel and cluster", in)
		}
		// A parsed config is one Validate accepts.
		c := Config{Backend: BackendRedis, Redis: RedisConfig{URL: in}}.WithDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("%q parsed but does not validate: %v", in, err)
		}
	})
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Backend != BackendEmbedded || c.Timeout != DefaultTimeout || c.Flood.RecipientLimit != 30 || c.Flood.ClientLimit != 100 ||
		c.Flood.Window != 10*time.Minute || c.Flood.StrictFor != time.Hour || c.ReplaySlack != 5 {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := (Config{Redis: RedisConfig{URL: "redis://h"}}).WithDefaults(); c.Backend != BackendRedis {
		t.Fatalf("a redis URL does not select redis: %q", c.Backend)
	}
	for name, c := range map[string]Config{
		"backend":  {Backend: "etcd"},
		"timeout":  {Timeout: time.Minute},
		"cluster":  {Backend: "redis", Redis: RedisConfig{Addrs: []string{"a:1"}, Cluster: true, MasterName: "m"}},
		"url":      {Backend: "redis", Redis: RedisConfig{URL: "redis://"}},
		"noaddr":   {Backend: "redis"},
		"slack":    {ReplaySlack: -1},
		"retain":   {Retention: time.Hour},
		"read":     {Backend: "redis", Redis: RedisConfig{Addrs: []string{"a:1"}, ReadTimeout: time.Minute}},
		"clusterd": {Backend: "redis", Redis: RedisConfig{Addrs: []string{"a:1"}, Cluster: true, DB: 1}},
	} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%s: invalid config accepted: %+v", name, c)
		}
	}
}

func TestNormalizeMessageID(t *testing.T) {
	for in, want := range map[string]string{
		" <Abc.DEF@Example.COM> ": "Abc.DEF@example.com",
		"abc@x":                   "abc@x",
		"<>":                      "",
		"  ":                      "",
		"<a@b@C>":                 "a@b@c",
		"noat":                    "noat",
	} {
		if got := NormalizeMessageID(in); got != want {
			t.Errorf("NormalizeMessageID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasher(t *testing.T) {
	k1, k2, un := NewHasher([]byte("a")), NewHasher([]byte("b")), NewHasher(nil)
	id := "<X@Example.org>"
	if k1.MessageID(id) != k1.MessageID("X@example.ORG") {
		t.Fatal("normalisation not applied")
	}
	if k1.MessageID(id) == k2.MessageID(id) || k1.MessageID(id) == un.MessageID(id) {
		t.Fatal("secret does not change the hash")
	}
	if k1.MessageID("x@example.org") == k1.MessageID(id) {
		t.Fatal("local part case folded")
	}
	if k1.Recipient("a@b") == k1.ClientIP("a@b") || k1.Tag("a@b") == k1.Recipient("a@b") {
		t.Fatal("kinds not separated")
	}
	if len(k1.Tag("x")) != 32 || k1.MessageID("<>") != "" {
		t.Fatal("hash form")
	}
	h, g := k1.CleanMessageIDs([]string{"<a@b>", "a@B", "", "<c@d>"}, 16)
	if len(h) != 2 || g[0] != "<a@b>" || g[1] != "<c@d>" {
		t.Fatalf("CleanMessageIDs %v %v", h, g)
	}
}

func TestBreaker(t *testing.T) {
	now := time.Unix(0, 0)
	var states []string
	b := NewBreaker(2, time.Second, func(s string) { states = append(states, s) })
	b.now = func() time.Time { return now }
	if !b.Allow() {
		t.Fatal("closed breaker refused")
	}
	b.Done(false)
	if !b.Allow() || b.State() != BreakerClosed {
		t.Fatal("opened after one failure")
	}
	b.Done(false)
	if b.Allow() || b.State() != BreakerOpen {
		t.Fatal("not open after two failures")
	}
	now = now.Add(time.Second)
	if !b.Allow() || b.State() != BreakerHalfOpen {
		t.Fatal("no probe after the cooldown")
	}
	if b.Allow() {
		t.Fatal("second concurrent probe allowed")
	}
	b.Done(false)
	if b.Allow() || b.State() != BreakerOpen {
		t.Fatal("failed probe did not reopen")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no second probe")
	}
	b.Cancel()
	if !b.Allow() {
		t.Fatal("cancelled probe kept the slot")
	}
	b.Done(true)
	if b.State() != BreakerClosed || !b.Allow() {
		t.Fatal("good probe did not close")
	}
	if want := "open half-open open half-open closed"; strings.Join(states, " ") != want {
		t.Fatalf("states %v, want %s", states, want)
	}
}

func TestFloodCounterPrunes(t *testing.T) {
	f := NewFloodCounter(5, time.Minute, time.Hour, 0)
	t0 := time.Unix(1_800_000_000, 0)
	for i := 0; i < 100; i++ {
		f.Hit(FloodKeyOf(string(rune('a'+i%26))+string(rune(i))), true, t0)
	}
	if f.Len() != 100 {
		t.Fatalf("%d keys", f.Len())
	}
	f.Hit(FloodKeyOf("x"), false, t0.Add(5*time.Minute))
	if f.Len() != 0 {
		t.Fatalf("%d keys after idle windows", f.Len())
	}
	if (NewFloodCounter(-1, time.Minute, time.Hour, 0)).Hit(FloodKeyOf("k"), true, t0) != (FloodResult{}) {
		t.Fatal("disabled counter counted")
	}
}
