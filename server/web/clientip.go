package web

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v3"
)

// Proxy headers that ClientAddresses can read (IDLINK_PROXY_HEADER).
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// maxForwardedHops bounds how many entries of a proxy header are read.
const maxForwardedHops = 32

// ClientAddresses decides which address each request comes from. With no
// header configured (the default) it is the peer of the TCP connection;
// with one, the header is believed only when the peer is a trusted proxy,
// and then only as far as ClientAddr allows.
type ClientAddresses struct {
	header  string
	trusted []netip.Prefix
}

// NewClientAddresses checks the proxy configuration: header is "" (read no
// header), HeaderXForwardedFor or HeaderForwarded (any case); trusted
// lists the proxies' addresses or CIDR prefixes, and must be given with a
// header.
func NewClientAddresses(header string, trusted []string) (*ClientAddresses, error) {
	ca := &ClientAddresses{}
	switch {
	case header == "":
	case strings.EqualFold(header, HeaderXForwardedFor):
		ca.header = HeaderXForwardedFor
	case strings.EqualFold(header, HeaderForwarded):
		ca.header = HeaderForwarded
	default:
		return nil, fmt.Errorf("proxy header must be %s or %s, not %q", HeaderXForwardedFor, HeaderForwarded, header)
	}
	for _, t := range trusted {
		p, err := ParsePrefix(t)
		if err != nil {
			return nil, err
		}
		ca.trusted = append(ca.trusted, p)
	}
	if ca.header != "" && len(ca.trusted) == 0 {
		return nil, fmt.Errorf("a proxy header needs the trusted proxies' addresses")
	}
	return ca, nil
}

// ParsePrefix reads an address ("10.0.0.1", "::1") or a CIDR prefix
// ("10.0.0.0/8") as a prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

const localsClientIP = "idlink.client_ip"

// Middleware decides the request's client address once and keeps it for
// ClientIP.
func (ca *ClientAddresses) Middleware() fiber.Handler {
	return func(c fiber.Ctx) error {
		c.Locals(localsClientIP, ca.For(c))
		return c.Next()
	}
}

// For decides the client address of the request in c.
func (ca *ClientAddresses) For(c fiber.Ctx) netip.Addr {
	peer := peerAddr(c)
	if ca == nil || ca.header == "" {
		return peer
	}
	var values []string
	for _, v := range c.Request().Header.PeekAll(ca.header) {
		values = append(values, string(v))
	}
	return ClientAddr(peer, ca.header, values, ca.trusted)
}

// ClientIP returns the request's client address as text: the one the
// middleware decided, or the connection's peer on a route without it.
// Audit events, rate limits and what a phone shows about a login all use
// it.
func ClientIP(c fiber.Ctx) string {
	if a, ok := c.Locals(localsClientIP).(netip.Addr); ok && a.IsValid() {
		return a.String()
	}
	return peerAddr(c).String()
}

// ClientAddrOf is ClientIP as a netip.Addr (the zero Addr when unknown).
func ClientAddrOf(c fiber.Ctx) netip.Addr {
	if a, ok := c.Locals(localsClientIP).(netip.Addr); ok && a.IsValid() {
		return a
	}
	return peerAddr(c)
}

func peerAddr(c fiber.Ctx) netip.Addr {
	if tcp, ok := c.RequestCtx().RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(tcp.IP); ok {
			return a.Unmap().WithZone("")
		}
	}
	a, err := netip.ParseAddr(c.RequestCtx().RemoteIP().String())
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return a.Unmap().WithZone("")
}

// ClientAddr is the one rule for a request's client address. peer is the
// connection's peer; header names the proxy header whose values (every
// line of it, in order) are given; trusted are the proxies.
//
// When peer is not a trusted proxy, or there is no header, the answer is
// peer. Otherwise the header's entries are read from right to left (the
// nearest proxy wrote the last one), skipping trusted proxies: the first
// valid untrusted address is the client. Anything that is not a valid
// address (garbage, "unknown", an obfuscated identifier, too many hops)
// makes the answer peer: an attacker who can write the header cannot
// choose what is recorded, limited or shown. When every entry is trusted,
// the leftmost is the client.
func ClientAddr(peer netip.Addr, header string, values []string, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap().WithZone("")
	if len(values) == 0 || !isTrusted(peer, trusted) {
		return peer
	}
	var entries []string
	for _, v := range values {
		entries = append(entries, strings.Split(v, ",")...)
	}
	if len(entries) > maxForwardedHops {
		return peer
	}
	var last netip.Addr
	for i := len(entries) - 1; i >= 0; i-- {
		var (
			a  netip.Addr
			ok bool
		)
		if strings.EqualFold(header, HeaderForwarded) {
			a, ok = forwardedFor(entries[i])
		} else {
			a, ok = parseHop(entries[i])
		}
		if !ok {
			return peer
		}
		if !isTrusted(a, trusted) {
			return a
		}
		last = a
	}
	if last.IsValid() {
		return last
	}
	return peer
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, optionally with a
// port ("203.0.113.7:4711", "[2001:db8::1]:4711") or in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return clean(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return clean(ap.Addr())
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return clean(a)
		}
	}
	return netip.Addr{}, false
}

// forwardedFor reads the for= parameter of one Forwarded element (RFC
// 7239): for=192.0.2.60;proto=https, for="[2001:db8::1]:4711".
func forwardedFor(element string) (netip.Addr, bool) {
	for _, pair := range strings.Split(element, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return parseHop(v)
	}
	return netip.Addr{}, false
}

// clean refuses addresses that cannot be a client's (unspecified,
// zoned link-local text) and unmaps IPv4-in-IPv6.
func clean(a netip.Addr) (netip.Addr, bool) {
	if a.Zone() != "" || a.IsUnspecified() || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
