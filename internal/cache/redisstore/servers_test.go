package redisstore

// Helpers that run real redis-server and redis-sentinel processes (Debian
// packages redis-server and redis-sentinel) on loopback ports inside the
// test's temporary directory. Only the PIDs started here are signalled.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// needBin returns the path of a server binary, or skips the test; with
// BM_REQUIRE_SERVERS=1 (CI) a missing binary fails it.
func needBin(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("BM_REQUIRE_SERVERS") == "1" {
			tb.Fatalf("%s not found and BM_REQUIRE_SERVERS=1 (apt-get install redis-server redis-sentinel): %v", name, err)
		}
		tb.Skipf("%s not installed (apt-get install redis-server redis-sentinel); set BM_REQUIRE_SERVERS=1 to fail instead", name)
	}
	return p
}

// freePort finds a loopback port that is free, and whose cluster bus port
// (+10000) is free too. Both stay below Linux's ephemeral range (32768
// and up), so that no outgoing connection of another process can take
// the port between this check and redis-server's bind.
func freePort(tb testing.TB) int {
	tb.Helper()
	for i := 0; i < 200; i++ {
		p := 10000 + rand.IntN(12768)
		l1, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	tb.Fatal("no free loopback port")
	return 0
}

type server struct {
	tb   testing.TB
	cmd  *exec.Cmd
	Port int
	Addr string
	Dir  string
	done chan struct{}
}

// PID returns the process id.
func (s *server) PID() int { return s.cmd.Process.Pid }

// Stop kills the server (SIGKILL) and waits for it.
func (s *server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(s.PID(), syscall.SIGCONT)
	_ = syscall.Kill(s.PID(), syscall.SIGKILL)
	<-s.done
}

// Hang stops the process (SIGSTOP): its sockets stay open, nothing answers.
func (s *server) Hang() { _ = syscall.Kill(s.PID(), syscall.SIGSTOP) }

// Resume undoes Hang.
func (s *server) Resume() { _ = syscall.Kill(s.PID(), syscall.SIGCONT) }

func startProc(tb testing.TB, bin string, port int, args ...string) *server {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", bin, err)
	}
	s := &server{tb: tb, cmd: cmd, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	tb.Cleanup(s.Stop)
	// Wait until it answers PING.
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-s.done:
			tb.Fatalf("%s exited: %s", bin, readLog(dir))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s on %s not answering: %v\n%s", bin, s.Addr, err, readLog(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// startRedis starts a redis-server without persistence.
func startRedis(tb testing.TB, extra ...string) *server {
	tb.Helper()
	bin := needBin(tb, "redis-server")
	port := freePort(tb)
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"}, extra...)
	return startProc(tb, bin, port, args...)
}

// startSentinel starts a redis-sentinel monitoring master as "mymaster"
// with quorum 1.
func startSentinel(tb testing.TB, master string) *server {
	tb.Helper()
	bin := needBin(tb, "redis-sentinel")
	port := freePort(tb)
	host, mport, _ := net.SplitHostPort(master)
	conf := filepath.Join(tb.TempDir(), "sentinel.conf")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
loglevel warning
dir %s
sentinel monitor mymaster %s %s 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
`, port, filepath.Dir(conf), host, mport)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return startProc(tb, bin, port, conf)
}

// waitFor polls cond every 50 ms until it returns "" or the timeout ends.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %s", timeout, what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func infoField(info, field string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func directClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, ReadTimeout: 5 * time.Second, MaxRetries: -1, DisableIdentity: true})
}

// startCluster starts three masters and joins them with
// `redis-cli --cluster create`.
func startCluster(tb testing.TB) []*server {
	tb.Helper()
	cli := needBin(tb, "redis-cli")
	var nodes []*server
	var addrs []string
	for i := 0; i < 3; i++ {
		s := startRedis(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		nodes = append(nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		c := directClient(n.Addr)
		waitFor(tb, 15*time.Second, "cluster_state:ok on "+n.Addr, func() string {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err.Error()
			}
			if st := infoField(info, "cluster_state"); st != "ok" {
				return "cluster_state " + st
			}
			return ""
		})
		c.Close()
	}
	return nodes
}
