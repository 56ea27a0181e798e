package config

import (
	"fmt"
	"net"
)

// Web is the [web] section: the monitoring pages and their JSON API,
// served on [listen] web (HOST:PORT). On a loopback address they need no
// login (reach them through an SSH tunnel); on any other address serve
// refuses to start unless an access token or a user and password are
// configured, and then every request must carry one.
type Web struct {
	// TokenFile holds the access token (its first line): requests carry
	// it as "Authorization: Bearer TOKEN" (or as the password of basic
	// auth, with any user name).
	TokenFile string `toml:"token_file"`
	// User and PasswordFile are an HTTP basic-auth login for browsers.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	// MaskAddresses masks addresses on the pages and in the JSON answers:
	// "off", "remote" (third parties' addresses: the recipients of our
	// users' mail) or "all" (our users' too).
	MaskAddresses string `toml:"mask_addresses"`
}

// Mask settings.
const (
	MaskOff    = "off"
	MaskRemote = "remote"
	MaskAll    = "all"
)

func (c *Config) applyWebDefaults() {
	if c.Web.MaskAddresses == "" {
		c.Web.MaskAddresses = MaskOff
	}
	if c.Listen.Web == "off" {
		c.Listen.Web = ""
	}
}

// WebLoopback reports whether a [listen] web address (HOST:PORT) only
// listens on loopback: a host that is "localhost" or a loopback IP. An
// empty host (all addresses) is not.
func WebLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("listen.web = %q: want HOST:PORT: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// HasLogin reports whether [web] names a token or a user and password.
func (w Web) HasLogin() bool { return w.TokenFile != "" || (w.User != "" && w.PasswordFile != "") }

func (c *Config) validateWeb() error {
	w := c.Web
	switch w.MaskAddresses {
	case MaskOff, MaskRemote, MaskAll:
	default:
		return fmt.Errorf("web.mask_addresses = %q: want off, remote or all", w.MaskAddresses)
	}
	if (w.User == "") != (w.PasswordFile == "") {
		return fmt.Errorf("web: user and password_file go together")
	}
	if c.Listen.Web == "" {
		return nil
	}
	loop, err := WebLoopback(c.Listen.Web)
	if err != nil {
		return err
	}
	if !loop && !w.HasLogin() {
		return fmt.Errorf("listen.web = %q is not a loopback address: the pages show our users' addresses and mail volumes; "+
			"set [web] token_file, or user and password_file, or listen on 127.0.0.1 and use an SSH tunnel", c.Listen.Web)
	}
	return nil
}
