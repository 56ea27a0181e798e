package config

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
)

// tomlKeys lists the dotted TOML keys of a struct type.
func tomlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) && ft != reflect.TypeOf(time.Time{}) {
			out = append(out, tomlKeys(ft, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	sort.Strings(out)
	return out
}

// The [store] mirror must cover every key the cache package knows.
func TestStoreMirrorsCacheConfig(t *testing.T) {
	want := strings.Join(tomlKeys(reflect.TypeOf(cache.Config{}), ""), " ")
	got := strings.Join(tomlKeys(reflect.TypeOf(Store{}), ""), " ")
	if got != want {
		t.Fatalf("config.Store keys\n  %s\ncache.Config keys\n  %s", got, want)
	}
}

func TestStoreSection(t *testing.T) {
	c, err := Parse([]byte(`
[store]
timeout = "300ms"
replay_slack = 5
[store.flood]
recipient_limit = 10
window = "5m"
[store.redis]
url = "redis-sentinel://10.0.0.1,10.0.0.2:26380/mymaster"
read_timeout = "200ms"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Store.Cache()
	if cc.Backend != cache.BackendRedis || cc.Timeout != 300*time.Millisecond || cc.ReplaySlack != 5 ||
		cc.Flood.RecipientLimit != 10 || cc.Flood.Window != 5*time.Minute || cc.Redis.MasterName != "mymaster" ||
		cc.Redis.ReadTimeout != 200*time.Millisecond || cc.Flood.ClientLimit != cache.DefaultClientLimit {
		t.Fatalf("%+v", cc)
	}
	if err := cc.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = Parse([]byte("[store]\ntimeout = \"soon\"\n"), "t.toml")
	if err == nil || !strings.Contains(err.Error(), "t.toml:2") {
		t.Fatalf("bad duration: %v", err)
	}
	_, err = Parse([]byte("[store.redis]\nurl = \"http://x\"\n"), "t.toml")
	if err == nil || !strings.Contains(err.Error(), "store.redis.url") {
		t.Fatalf("bad redis url: %v", err)
	}
}
