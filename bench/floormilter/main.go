// Command floormilter is the cheapest milter that holds the same
// conversation with Postfix as bounce-milter does in each scenario of
// bench/milter-throughput.sh, with nothing behind it: the same events,
// no-reply flags, macro requests and answers (a refusal at RCPT for a
// tag-shaped recipient, acceptance at the end of the header for mail that
// is not a bounce, a refusal at the end of the message for a bounce, a
// sender rewritten when signing), decided by a string prefix and the null
// sender instead of a key, a store and an analysis. What bounce-milter
// costs beyond it is its own work; what floormilter costs beyond Postfix
// alone is the milter protocol's, which no milter can avoid.
//
//	floormilter -listen unix:/path/m.sock [-sign]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	gomilter "github.com/d--j/go-milter"

	"github.com/bounce-milter/bounce-milter/internal/milter"
)

func main() {
	listen := flag.String("listen", "", "unix:PATH or inet:HOST:PORT")
	sign := flag.Bool("sign", false, "converse as the sign-only milter (rewrite the sender at the end of the message)")
	flag.Parse()
	network, addr, ok := strings.Cut(*listen, ":")
	if !ok || (network != "unix" && network != "inet") {
		fmt.Fprintln(os.Stderr, "floormilter: -listen unix:PATH or inet:HOST:PORT")
		os.Exit(2)
	}
	if network == "inet" {
		network = "tcp"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floormilter:", err)
		os.Exit(1)
	}
	if network == "unix" {
		_ = os.Chmod(addr, 0o666)
	}
	// As bounce-milter's: without it, Postfix's back-to-back packets wait
	// for delayed ACKs on tcp and the floor would be no floor.
	ln = milter.QuickAck(ln)
	proto, actions := milter.Protocol, milter.Actions
	opts := []gomilter.Option{
		gomilter.WithoutDefaultMacros(),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroDaemonName, gomilter.MacroAuthAuthen}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
	}
	if *sign {
		proto, actions = milter.SignOnlyProtocol, milter.SignOnlyActions
		opts = append(opts, gomilter.WithMilter(func() gomilter.Milter { return &signer{} }))
	} else {
		opts = append(opts, gomilter.WithMilter(func() gomilter.Milter { return &checker{} }),
			gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{gomilter.MacroQueueId, gomilter.MacroRcptAddr}))
	}
	opts = append(opts, gomilter.WithProtocols(proto), gomilter.WithActions(actions))
	if err := gomilter.NewServer(opts...).Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "floormilter:", err)
		os.Exit(1)
	}
}

// checker converses as bounce-milter's MX milter.
type checker struct {
	gomilter.NoOpMilter
	bounce bool
}

func (c *checker) MailFrom(from, _ string, _ gomilter.Modifier) (*gomilter.Response, error) {
	c.bounce = from == ""
	return gomilter.RespContinue, nil
}

func (c *checker) RcptTo(rcpt, _ string, _ gomilter.Modifier) (*gomilter.Response, error) {
	if strings.HasPrefix(strings.ToLower(rcpt), "prvs=") {
		return gomilter.RejectWithCodeAndReason(550, "5.7.1 floor: a tag-shaped recipient")
	}
	return gomilter.RespContinue, nil
}

func (c *checker) Headers(_ gomilter.Modifier) (*gomilter.Response, error) {
	if !c.bounce {
		return gomilter.RespAccept, nil
	}
	return gomilter.RespContinue, nil
}

func (c *checker) EndOfMessage(_ gomilter.Modifier) (*gomilter.Response, error) {
	if c.bounce {
		return gomilter.RejectWithCodeAndReason(550, "5.7.1 floor: a bounce")
	}
	return gomilter.RespAccept, nil
}

// signer converses as bounce-milter's sign-only milter.
type signer struct {
	gomilter.NoOpMilter
	from string
}

func (s *signer) MailFrom(from, _ string, _ gomilter.Modifier) (*gomilter.Response, error) {
	s.from = from
	return gomilter.RespContinue, nil
}

func (s *signer) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	if err := m.ChangeFrom("prvs=1000abcdef="+s.from, ""); err != nil {
		return nil, err
	}
	return gomilter.RespAccept, nil
}
