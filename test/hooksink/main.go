// Command hooksink is the end-to-end tests' webhook receiver: it checks
// each request's signature and timestamp, answers 500 to the first try of
// every event (so that the sender's retry is tested) and 200 afterwards,
// and appends each event it accepted to a JSONL file, with the number of
// tries it took. Alerts (X-Bounce-Milter-Type: alert) are accepted at
// once and appended as {"alert": BODY}. It is a test tool, not part of
// bounce-milter.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/events"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	out := flag.String("out", "hooks.jsonl", "file to append accepted events to")
	secretFile := flag.String("secret-file", "", "the webhook's key")
	flag.Parse()
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		log.Fatal(err)
	}
	key := []byte(strings.TrimSpace(string(secret)))
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	tries := map[string]int{}
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := events.VerifySignature(key, r.Header.Get("X-Bounce-Milter-Timestamp"), r.Header.Get("X-Bounce-Milter-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			log.Printf("refused: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-Bounce-Milter-Type") == "alert" {
			var a map[string]any
			if err := json.Unmarshal(body, &a); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			line, _ := json.Marshal(map[string]any{"alert": a})
			mu.Lock()
			f.Write(append(line, '\n'))
			mu.Unlock()
			return
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		tries[e.ID]++
		if tries[e.ID] == 1 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		line, _ := json.Marshal(map[string]any{"tries": tries[e.ID], "event": e})
		f.Write(append(line, '\n'))
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
