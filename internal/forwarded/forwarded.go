package forwarded

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/valyala/fasthttp"
)

// Package forwarded is what the gateway tells the upstream about the
// client, and what it believes of what others told it: the forwarding
// headers (X-Forwarded-For, X-Forwarded-Proto, Forwarded, X-Real-IP) and
// the client address behind trusted proxies.
//
// Forwarding headers: what the gateway tells the upstream about the client.
// A peer that is not a trusted proxy (Config.TrustedProxies) cannot say
// anything there: the upstream gets X-Forwarded-For with the peer's
// address and X-Forwarded-Proto with the scheme the gateway saw, and none
// of the peer's Forwarded or X-Real-Ip. A trusted proxy's headers are
// kept, and extended with the hop from it to the gateway.

// Header names, in the form fasthttp's normalizing gives them
// (TestHeaderNamesCanonical).
var (
	strXForwardedFor   = []byte("X-Forwarded-For")
	strXForwardedProto = []byte("X-Forwarded-Proto")
	strForwarded       = []byte("Forwarded")
	strXRealIP         = []byte("X-Real-Ip")
	strHTTP            = []byte("http")
	strHTTPS           = []byte("https")
)

// Indexes of the forwarding headers in forwardingHeaders and in
// countForwarding's result.
const (
	fwdFor = iota
	fwdProto
	fwdForwarded
	fwdRealIP
	numFwd
)

var forwardingHeaders = [numFwd][]byte{
	fwdFor:       strXForwardedFor,
	fwdProto:     strXForwardedProto,
	fwdForwarded: strForwarded,
	fwdRealIP:    strXRealIP,
}

// Trusted is a list of trusted proxies (server.Config.TrustedProxies),
// once Normalize has made every prefix masked and IPv4 ones IPv4 (not
// mapped). The zero value trusts no peer.
type Trusted []netip.Prefix

// Contains reports whether ip, unmapped and without its zone, is in one
// of t's prefixes. The invalid Addr is in none.
func (t Trusted) Contains(ip netip.Addr) bool {
	if len(t) == 0 || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Normalize returns a copy of ps with each prefix masked, and an
// IPv4-mapped one of /96 or longer made the IPv4 prefix it stands for
// (::ffff:10.0.0.0/104 is 10.0.0.0/8), since peers are matched unmapped.
// An invalid prefix is kept as it is, for Config.validate to refuse.
func Normalize(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		if p.IsValid() {
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			p = p.Masked()
		}
		out[i] = p
	}
	return out
}

// Parse parses a TRUSTED_PROXIES value: comma-separated CIDR
// prefixes (10.0.0.0/8, 2001:db8::/32) or bare IP addresses (a bare
// address is its /32 or /128). An empty or blank s is no proxy. An
// IPv4-mapped IPv6 item is taken as the IPv4 one it maps. The error names
// the item at fault: one that is empty, not an address or prefix, has a
// zone, or sets address bits beyond its prefix length (10.1.2.3/8, most
// likely a typo that would trust far more than meant).
func Parse(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]netip.Prefix, 0, len(parts))
	for i, item := range parts {
		item = strings.TrimSpace(item)
		p, err := parseItem(item)
		if err != nil {
			return nil, fmt.Errorf("item %d of %d, %q: %w", i+1, len(parts), item, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseItem parses one item of Parse.
func parseItem(item string) (netip.Prefix, error) {
	if item == "" {
		return netip.Prefix{}, errors.New("empty")
	}
	if strings.Contains(item, "%") {
		return netip.Prefix{}, errors.New("an address zone is not allowed")
	}
	if !strings.Contains(item, "/") {
		ip, err := netip.ParseAddr(item)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
		}
		ip = ip.Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix must be /96 or longer")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("address bits set beyond the /%d prefix (meant %s, or %s/%d?)",
			p.Bits(), m, p.Addr(), p.Addr().BitLen())
	}
	return p, nil
}

// peerAddr returns the address of ctx's peer, the far end of its TCP
// connection, unmapped; the invalid Addr on a connection of another kind.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	a, ok := ctx.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	return ip.Unmap()
}

// Set sets the forwarding headers of ctx's request for the
// upstream. From a peer that is not trusted: X-Forwarded-For is the
// peer's address (none on a connection that is not TCP), X-Forwarded-Proto
// the scheme the gateway served (http or https), and every line of the
// peer's own of these, Forwarded and X-Real-Ip is removed. From a trusted
// peer: X-Forwarded-For is its lines joined, then the peer's address;
// Forwarded likewise, then for=PEER;proto=SCHEME (RFC 7239); its
// X-Forwarded-Proto, else the scheme; X-Real-Ip as it is. It allocates
// nothing unless a joined header passes 512 bytes.
func Set(ctx *fasthttp.RequestCtx, trusted Trusted) {
	h := &ctx.Request.Header
	peer := peerAddr(ctx)
	proto := strHTTP
	if ctx.IsTLS() {
		proto = strHTTPS
	}
	n := countForwarding(h.All())
	var ebuf [64]byte
	if !trusted.Contains(peer) {
		if n[fwdFor] > 1 || (n[fwdFor] == 1 && !peer.IsValid()) {
			h.DelBytes(strXForwardedFor) // every line: DelBytes deletes all
		}
		if peer.IsValid() {
			h.SetCanonical(strXForwardedFor, peer.AppendTo(ebuf[:0]))
		}
		if n[fwdProto] > 1 {
			h.DelBytes(strXForwardedProto)
		}
		h.SetCanonical(strXForwardedProto, proto)
		if n[fwdForwarded] > 0 {
			h.DelBytes(strForwarded)
		}
		if n[fwdRealIP] > 0 {
			h.DelBytes(strXRealIP)
		}
		return
	}
	extendList(h, strXForwardedFor, n[fwdFor], peer.AppendTo(ebuf[:0]))
	extendList(h, strForwarded, n[fwdForwarded], appendForwardedElem(ebuf[:0], peer, proto))
	if n[fwdProto] == 0 {
		h.SetCanonical(strXForwardedProto, proto)
	}
}

// countForwarding counts the lines of each of forwardingHeaders among
// all, up to 2 (more than one).
func countForwarding(all iter.Seq2[[]byte, []byte]) (n [numFwd]uint8) {
	for k := range all {
		for i, name := range forwardingHeaders {
			if len(k) == len(name) && bytes.EqualFold(k, name) {
				if n[i] < 2 {
					n[i]++
				}
				break
			}
		}
	}
	return n
}

// extendList sets the list header name, of which h has count lines (2:
// more than one), to one line: the non-blank values of those lines joined
// with ", ", then elem.
func extendList(h *fasthttp.RequestHeader, name []byte, count uint8, elem []byte) {
	var buf [512]byte
	v := buf[:0]
	if count > 0 {
		lines := h.PeekAll(netconn.B2S(name))
		if count > 1 {
			var arr [8][]byte
			lines = linesInOrder(arr[:0], h, name, lines)
		}
		// Copied: SetCanonical and DelBytes reuse the lines' buffers.
		for _, line := range lines {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				v = append(v, line...)
				v = append(v, ", "...)
			}
		}
		if count > 1 {
			h.DelBytes(name)
		}
	}
	h.SetCanonical(name, append(v, elem...))
}

// linesInOrder appends to dst the lines of the header name in h, in the
// order they came in, and returns it: fasthttp's own order, peeked's
// (h.PeekAll), changes as other headers are deleted. It returns peeked
// for a header that was not read from the wire.
func linesInOrder(dst [][]byte, h *fasthttp.RequestHeader, name []byte, peeked [][]byte) [][]byte {
	for k, v := range h.AllInOrder() {
		if len(k) == len(name) && bytes.EqualFold(k, name) {
			dst = append(dst, v)
		}
	}
	if len(dst) == 0 {
		return peeked
	}
	return dst
}

// appendForwardedElem appends the Forwarded element of a hop from ip
// over proto: for=192.0.2.1;proto=http, or for="[2001:db8::1]";proto=http
// (RFC 7239 sections 4 and 6: an IPv6 node is bracketed, hence quoted).
func appendForwardedElem(dst []byte, ip netip.Addr, proto []byte) []byte {
	dst = append(dst, "for="...)
	if ip.Is6() {
		dst = append(dst, `"[`...)
		dst = ip.AppendTo(dst)
		dst = append(dst, `]"`...)
	} else {
		dst = ip.AppendTo(dst)
	}
	dst = append(dst, ";proto="...)
	return append(dst, proto...)
}

// ClientAddr returns the address of the client ctx's request came from:
// its peer, unless the peer is a trusted proxy; then that of clientChain.
func ClientAddr(ctx *fasthttp.RequestCtx, trusted Trusted) netip.Addr {
	peer := peerAddr(ctx)
	if !trusted.Contains(peer) {
		return peer
	}
	c := clientChain{trusted: trusted, addr: peer}
	h := &ctx.Request.Header
	lines := h.PeekAll(netconn.B2S(strXForwardedFor))
	if len(lines) > 1 { // setForwarded has not made them one
		var arr [8][]byte
		lines = linesInOrder(arr[:0], h, strXForwardedFor, lines)
	}
	for i := len(lines) - 1; i >= 0 && c.walk(lines[i]); i-- {
	}
	return c.addr
}

// ClientAddrHTTP is ClientAddr for a net/http request.
func ClientAddrHTTP(r *http.Request, trusted Trusted) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap().WithZone("")
	if !trusted.Contains(peer) {
		return peer
	}
	c := clientChain{trusted: trusted, addr: peer}
	lines := r.Header["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0 && c.walk(netconn.S2B(lines[i])); i-- {
	}
	return c.addr
}

// clientChain finds the client behind a trusted peer, the usual way: the
// X-Forwarded-For addresses, all lines taken as one list, are walked from
// the right (the hop nearest the gateway) and the first one that is not a
// trusted proxy is the client. A walk that finds only trusted proxies ends
// on the leftmost, which sent the request itself; one that meets
// something not an address (unknown, a garbled item) stops on the last
// trusted proxy reached, the peer itself if it is the first item: that
// proxy's word about its own client cannot be read, and nothing to its
// left can be believed.
type clientChain struct {
	trusted Trusted
	addr    netip.Addr // the client so far: the last address walked
}

// walk walks one X-Forwarded-For line, right to left, and reports
// whether the walk goes on to the line before it.
func (c *clientChain) walk(line []byte) bool {
	for end := len(line); end > 0; {
		start := bytes.LastIndexByte(line[:end], ',') + 1
		item := bytes.TrimSpace(line[start:end])
		end = start - 1
		if len(item) == 0 {
			continue
		}
		ip, ok := parseForwardedFor(item)
		if !ok {
			return false
		}
		c.addr = ip
		if !c.trusted.Contains(ip) {
			return false
		}
	}
	return true
}

// parseForwardedFor parses an X-Forwarded-For item: an IP address, bare
// or bracketed, with or without a port (1.2.3.4, 1.2.3.4:80, 2001:db8::1,
// [2001:db8::1], [2001:db8::1]:80), and returns it unmapped. An item with
// a zone or a byte no address has is refused before it is parsed, so that
// the likes of "unknown" cost no error value.
func parseForwardedFor(item []byte) (netip.Addr, bool) {
	colons := 0
	for _, b := range item {
		switch {
		case b == ':':
			colons++
		case b >= '0' && b <= '9', b >= 'a' && b <= 'f', b >= 'A' && b <= 'F', b == '.', b == '[', b == ']':
		default:
			return netip.Addr{}, false
		}
	}
	s := netconn.B2S(item)
	var ip netip.Addr
	var err error
	switch {
	case s[0] == '[' && s[len(s)-1] == ']':
		ip, err = netip.ParseAddr(s[1 : len(s)-1])
	case s[0] == '[' || colons == 1:
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		ip = ap.Addr()
	default:
		ip, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
