package web

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	proxy := netip.MustParseAddr("10.0.0.5")
	stranger := netip.MustParseAddr("203.0.113.7")
	xff := func(peer netip.Addr, values ...string) string {
		return ClientAddr(peer, HeaderXForwardedFor, values, proxies).String()
	}
	fwd := func(peer netip.Addr, values ...string) string {
		return ClientAddr(peer, HeaderForwarded, values, proxies).String()
	}
	for _, tc := range []struct{ name, got, want string }{
		{"no header", xff(proxy), "10.0.0.5"},
		{"one hop", xff(proxy, "198.51.100.1"), "198.51.100.1"},
		{"the client's own entries are not believed", xff(proxy, "1.2.3.4, 198.51.100.1"), "198.51.100.1"},
		{"trusted hops are skipped, right to left", xff(proxy, "1.2.3.4, 198.51.100.1, 10.1.1.1, 10.2.2.2"), "198.51.100.1"},
		{"several header lines read in order", xff(proxy, "1.2.3.4", "198.51.100.1, 10.9.9.9"), "198.51.100.1"},
		{"a forged script", xff(proxy, "not-an-ip<script>, 198.51.100.1"), "198.51.100.1"},
		{"garbage where the client should be", xff(proxy, "198.51.100.1, not-an-ip<script>"), "10.0.0.5"},
		{"garbage behind trusted hops", xff(proxy, "junk, 10.1.1.1"), "10.0.0.5"},
		{"empty entry", xff(proxy, "198.51.100.1, "), "10.0.0.5"},
		{"with a port", xff(proxy, "198.51.100.1:4711"), "198.51.100.1"},
		{"IPv6 with a port", xff(proxy, "[2001:db8::1]:4711"), "2001:db8::1"},
		{"IPv6 in brackets", xff(proxy, "[2001:db8::1]"), "2001:db8::1"},
		{"IPv4 in IPv6", xff(proxy, "::ffff:198.51.100.1"), "198.51.100.1"},
		{"a zone is not an address", xff(proxy, "fe80::1%eth0"), "10.0.0.5"},
		{"unspecified", xff(proxy, "0.0.0.0"), "10.0.0.5"},
		{"all trusted: the leftmost", xff(proxy, "10.1.1.1, 10.2.2.2"), "10.1.1.1"},
		{"an untrusted peer's header is ignored", xff(stranger, "198.51.100.1"), "203.0.113.7"},
		{"a trusted IPv6 proxy", ClientAddr(netip.MustParseAddr("2001:db8:ffff::9"), HeaderXForwardedFor, []string{"198.51.100.1"}, proxies).String(), "198.51.100.1"},
		{"Forwarded", fwd(proxy, "for=198.51.100.1;proto=https"), "198.51.100.1"},
		{"Forwarded, quoted IPv6", fwd(proxy, `for="[2001:db8::1]:4711";proto=https`), "2001:db8::1"},
		{"Forwarded, several", fwd(proxy, "for=1.2.3.4, for=198.51.100.1;by=10.0.0.5, for=10.3.3.3"), "198.51.100.1"},
		{"Forwarded, unknown", fwd(proxy, "for=unknown"), "10.0.0.5"},
		{"Forwarded, obfuscated", fwd(proxy, "for=_hidden"), "10.0.0.5"},
		{"Forwarded, no for", fwd(proxy, "proto=https"), "10.0.0.5"},
		{"Forwarded, case", fwd(proxy, "For=198.51.100.1"), "198.51.100.1"},
	} {
		require.Equal(t, tc.want, tc.got, tc.name)
	}
	many := ""
	for range 40 {
		many += "10.1.1.1, "
	}
	require.Equal(t, "10.0.0.5", xff(proxy, many+"198.51.100.1"), "too many hops")
}

func TestNewClientAddresses(t *testing.T) {
	_, err := NewClientAddresses("", nil)
	require.NoError(t, err)
	_, err = NewClientAddresses("x-forwarded-for", []string{"10.0.0.0/8", "192.0.2.1", "::1"})
	require.NoError(t, err)
	_, err = NewClientAddresses("X-Real-IP", []string{"10.0.0.1"})
	require.Error(t, err, "only the two standard headers")
	_, err = NewClientAddresses("Forwarded", nil)
	require.Error(t, err, "a header needs trusted proxies")
	_, err = NewClientAddresses("Forwarded", []string{"not-a-network"})
	require.Error(t, err)
}

// Whatever the header says, the answer is a valid address: the peer, a
// trusted proxy, or an address that appears in the header.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "not-an-ip<script>, 198.51.100.1", "for=\"[2001:db8::1]:4711\"", "10.1.1.1, 10.2.2.2", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.5")
	f.Fuzz(func(t *testing.T, header string, forwarded bool) {
		name := HeaderXForwardedFor
		if forwarded {
			name = HeaderForwarded
		}
		got := ClientAddr(peer, name, []string{header}, proxies)
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("%q gave %v", header, got)
		}
	})
}
