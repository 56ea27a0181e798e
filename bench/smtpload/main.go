// Command smtpload sends mail over SMTP as fast as a server takes it, one
// message per connection from each of -s concurrent sessions, and counts
// what the server did with each: accepted, refused at RCPT, refused after
// DATA. It is the load driver of bench/milter-throughput.sh: Postfix's
// smtp-source gives up on the first refused recipient, and the benchmark
// measures refusals too.
//
//	smtpload -addr 127.0.0.1:25 -n 3000 -s 10 -from '' -to user@example.com [-body file]
//
// Prints one line: "sent N accepted A rcpt_refused R data_refused D
// errors E seconds S"; exits 1 when a message got neither a reply it
// counts nor went through.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:25", "SMTP server HOST:PORT")
	n := flag.Int("n", 1000, "messages")
	sessions := flag.Int("s", 10, "concurrent sessions")
	from := flag.String("from", "", "envelope sender ('' for the null sender)")
	to := flag.String("to", "", "envelope recipient")
	bodyFile := flag.String("body", "", "message (header and body) to send; default: a 512-byte message")
	helo := flag.String("helo", "load.example", "HELO name")
	flag.Parse()
	if *to == "" {
		fmt.Fprintln(os.Stderr, "smtpload: -to is required")
		os.Exit(2)
	}
	msg, err := message(*bodyFile, *from, *to)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smtpload:", err)
		os.Exit(2)
	}
	var (
		next                                   atomic.Int64
		accepted, rcptRefused, dataRefused, ne atomic.Int64
		firstErr                               atomic.Value
		wg                                     sync.WaitGroup
	)
	start := time.Now()
	for range *sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				switch r, err := send(*addr, *helo, *from, *to, msg); {
				case err != nil:
					ne.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case r == outcomeAccepted:
					accepted.Add(1)
				case r == outcomeRcptRefused:
					rcptRefused.Add(1)
				default:
					dataRefused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("sent %d accepted %d rcpt_refused %d data_refused %d errors %d seconds %.3f\n",
		*n, accepted.Load(), rcptRefused.Load(), dataRefused.Load(), ne.Load(), time.Since(start).Seconds())
	if ne.Load() > 0 {
		fmt.Fprintln(os.Stderr, "smtpload: first error:", firstErr.Load())
		os.Exit(1)
	}
}

// message is the DATA to send, dot-stuffed, CRLF line ends, with the
// final "." line.
func message(file, from, to string) ([]byte, error) {
	var text string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		text = string(b)
	} else {
		if from == "" {
			from = "MAILER-DAEMON@load.example"
		}
		text = fmt.Sprintf("From: <%s>\nTo: <%s>\nSubject: load\nMessage-ID: <%%ID%%@load.example>\n\n%s\n",
			from, to, strings.Repeat(strings.Repeat("x", 63)+"\n", 8))
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n"), "\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return []byte(b.String()), nil
}

type outcome int

const (
	outcomeAccepted outcome = iota
	outcomeRcptRefused
	outcomeDataRefused
)

var seq atomic.Int64

// send sends one message on its own connection.
func send(addr, helo, from, to string, msg []byte) (outcome, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	cmd := func(line string, want byte) (int, error) {
		if line != "" {
			w.WriteString(line)
			w.WriteString("\r\n")
			if err := w.Flush(); err != nil {
				return 0, err
			}
		}
		code, err := reply(r)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		if want != 0 && byte('0'+code/100) != want {
			return code, fmt.Errorf("%q: reply %d", line, code)
		}
		return code, nil
	}
	if _, err := cmd("", '2'); err != nil {
		return 0, err
	}
	if _, err := cmd("HELO "+helo, '2'); err != nil {
		return 0, err
	}
	if _, err := cmd("MAIL FROM:<"+from+">", '2'); err != nil {
		return 0, err
	}
	code, err := cmd("RCPT TO:<"+to+">", 0)
	if err != nil {
		return 0, err
	}
	if code/100 != 2 {
		_, _ = cmd("QUIT", 0)
		if code/100 == 5 {
			return outcomeRcptRefused, nil
		}
		return 0, fmt.Errorf("RCPT: reply %d", code)
	}
	if _, err := cmd("DATA", '3'); err != nil {
		return 0, err
	}
	id := fmt.Sprintf("%d.%d", time.Now().UnixNano(), seq.Add(1))
	w.WriteString(strings.Replace(string(msg), "%ID%", id, 1))
	if err := w.Flush(); err != nil {
		return 0, err
	}
	code, err = cmd("", 0)
	if err != nil {
		return 0, err
	}
	_, _ = cmd("QUIT", 0)
	switch code / 100 {
	case 2:
		return outcomeAccepted, nil
	case 5:
		return outcomeDataRefused, nil
	}
	return 0, fmt.Errorf("end of data: reply %d", code)
}

// reply reads one (possibly multi-line) reply and returns its code.
func reply(r *bufio.Reader) (int, error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if len(line) < 4 {
			return 0, fmt.Errorf("short reply %q", line)
		}
		var code int
		if _, err := fmt.Sscanf(line[:3], "%d", &code); err != nil {
			return 0, fmt.Errorf("reply %q", line)
		}
		if line[3] != '-' {
			return code, nil
		}
	}
}
