// Command alertseed writes a history of statistics into a store, so that
// the end-to-end test of the alerts (test/t-85-alerts) finds the baseline
// days a real site would have: one daily bucket per day for the last N
// days before today, each holding the counters and sets of a JSON file,
// and the kept values given (seconds before now). It is a test tool, not
// part of bounce-milter.
//
//	alertseed -redis URL -days 8 -day day.json -latest 'since=-864000,keyfirst-since=-864000'
//
// day.json: {"counts": {"d|inbound|reject|no-evidence|example.com": 2},
// "sets": {"sb": {"news@example.com": 10}}}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/backend"
)

func main() {
	url := flag.String("redis", "", "the store's Redis URL")
	days := flag.Int("days", 8, "days of history before today")
	dayFile := flag.String("day", "", "one day's counters and sets (JSON)")
	latest := flag.String("latest", "", "kept values: name=seconds relative to now, comma-separated (minimum kept)")
	flag.Parse()
	var day struct {
		Counts map[string]int64            `json:"counts"`
		Sets   map[string]map[string]int64 `json:"sets"`
	}
	data, err := os.ReadFile(*dayFile)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(data, &day); err != nil {
		log.Fatal(err)
	}
	cfg := cache.Config{Backend: cache.BackendRedis, Redis: cache.RedisConfig{URL: *url}}
	st, err := backend.Open(cfg, os.TempDir(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ss, ok := st.(cache.StatsStore)
	if !ok {
		log.Fatal("the store keeps no statistics")
	}
	now := time.Now().UTC()
	w := cache.StatsWrite{Min: map[string]int64{}}
	for d := 1; d <= *days; d++ {
		w.Buckets = append(w.Buckets, cache.StatsBucket{Width: cache.StatsDaily, Start: now.Truncate(cache.StatsDaily).Add(-time.Duration(d) * cache.StatsDaily),
			Counts: day.Counts, Sets: day.Sets})
	}
	for _, kv := range strings.Split(*latest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			log.Fatalf("%s: %v", kv, err)
		}
		w.Min[k] = now.Unix() + n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ss.AddStats(ctx, w); err != nil {
		log.Fatal(err)
	}
}
