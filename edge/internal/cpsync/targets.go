package cpsync

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strings"
)

// Target is one control-plane address the edge may open its stream to.
type Target struct {
	// Addr is what is dialled: host:port.
	Addr string
	// Authority, when set, is the name the control plane is known by (the DNS name the
	// address was resolved from): the :authority of calls and the name its TLS
	// certificate must carry.
	Authority string
}

// Targets lists the control-plane addresses to try. Resolve is called before every
// connection attempt, so a DNS name follows its records as they change.
type Targets interface {
	Resolve(ctx context.Context) ([]Target, error)
}

// ParseTargets reads --control-plane: a comma-separated list of host:port, or one
// host:port whose host is a DNS name, resolved on every reconnect to all of its A and
// AAAA records (a headless Kubernetes service, a DNS round robin). A single IP
// address, or a gRPC target with a scheme ("dns:///…"), is used as it is.
func ParseTargets(s string) (Targets, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no control-plane address")
	}
	if strings.Contains(s, "://") && !strings.Contains(s, ",") {
		return Static{{Addr: s}}, nil
	}
	parts := strings.Split(s, ",")
	list := make(Static, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("address %d of %q is empty", i+1, s)
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			return nil, fmt.Errorf("address %q: want host:port: %w", p, err)
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("address %q: want host:port", p)
		}
		if slices.ContainsFunc(list, func(t Target) bool { return t.Addr == p }) {
			return nil, fmt.Errorf("address %q is listed twice", p)
		}
		list = append(list, Target{Addr: p})
	}
	if len(list) == 1 && net.ParseIP(trimZone(list[0].Addr)) == nil && !isLocalhost(list[0].Addr) {
		host, port, _ := net.SplitHostPort(list[0].Addr)
		return &DNS{Host: host, Port: port}, nil
	}
	return list, nil
}

func trimZone(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	return host
}

// isLocalhost keeps "localhost:9090" a single target: resolving it would yield both
// 127.0.0.1 and ::1, one of which the control plane usually does not listen on.
func isLocalhost(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	return strings.EqualFold(host, "localhost")
}

// Static is a fixed list of addresses.
type Static []Target

// Resolve implements Targets.
func (s Static) Resolve(context.Context) ([]Target, error) { return s, nil }

// DNS is a name whose every A and AAAA record is a control plane on Port.
type DNS struct {
	Host, Port string
	// Resolver defaults to net.DefaultResolver.
	Resolver *net.Resolver
}

// Resolve implements Targets: one target per address the name has now.
func (d *DNS) Resolve(ctx context.Context) ([]Target, error) {
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupHost(ctx, d.Host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", d.Host, err)
	}
	authority := net.JoinHostPort(d.Host, d.Port)
	out := make([]Target, 0, len(ips))
	for _, ip := range ips {
		out = append(out, Target{Addr: net.JoinHostPort(ip, d.Port), Authority: authority})
	}
	return out, nil
}

// next picks the address to try after last (empty for the first attempt). Each edge
// walks the addresses in an order of its own, drawn from seed: edges spread over
// the control planes from the start, those of a node that fails spread over the
// rest instead of all moving to the same one, and one edge still tries every
// address in turn. The order of an address does not depend on the others, so it
// holds while DNS records come and go.
func next(targets []Target, last string, seed uint64) Target {
	ordered := slices.Clone(targets)
	rank := func(t Target) uint64 {
		h := fnv.New64a()
		var b [8]byte
		for i := range b {
			b[i] = byte(seed >> (8 * i))
		}
		h.Write(b[:])
		h.Write([]byte(t.Addr))
		return h.Sum64()
	}
	slices.SortFunc(ordered, func(a, b Target) int {
		ra, rb := rank(a), rank(b)
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	i := slices.IndexFunc(ordered, func(t Target) bool { return t.Addr == last })
	return ordered[(i+1)%len(ordered)]
}
