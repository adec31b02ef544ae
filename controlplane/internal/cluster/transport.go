package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Raft traffic is TLS 1.3 with a certificate every member derives from the cluster's
// shared secret: one Ed25519 key (HKDF-SHA256 of the secret), one self-signed
// certificate. Each side requires the other to present exactly that certificate, so a
// connection proves both ends know the secret, and everything after the handshake is
// encrypted and integrity-protected — which a challenge-response on a plaintext
// stream would not give. Go's TLS has no pre-shared-key mode; this is its equivalent.

// handshakeTimeout bounds the TLS handshake and the exchange of member info.
const handshakeTimeout = 5 * time.Second

// memberInfo is what two members tell each other once connected: who they are and
// where their gRPC API listens, so that followers can forward writes to the leader
// and status can name every member's address.
type memberInfo struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	GRPC string `json:"grpc"`
}

// maxInfo bounds a member info message.
const maxInfo = 4 << 10

// book holds what members told this one, by id.
type book struct {
	mu      sync.Mutex
	members map[string]memberInfo
}

func (b *book) learn(m memberInfo) {
	if m.ID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.members == nil {
		b.members = map[string]memberInfo{}
	}
	b.members[m.ID] = m
}

func (b *book) get(id string) memberInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.members[id]
}

// secretTLS returns the TLS config every member uses, as client and as server.
func secretTLS(secret []byte) (*tls.Config, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, "berry raft transport ed25519 v1", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Unix(0, 0), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		DNSNames:    []string{"berry-raft"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 || !bytes.Equal(raw[0], der) {
			return errors.New("peer does not hold the cluster's secret")
		}
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAnyClientCert,
		// The chain is checked by VerifyPeerCertificate: the one certificate the
		// secret gives, on both sides, instead of a CA.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verify,
		ServerName:            "berry-raft",
	}, nil
}

// streamLayer is Raft's network layer: a TCP listener whose connections are accepted
// only once their TLS handshake and member info exchange have succeeded, so a
// connection without the secret never reaches Raft.
type streamLayer struct {
	ln      net.Listener
	tls     *tls.Config
	self    memberInfo
	book    *book
	log     *slog.Logger
	conns   chan net.Conn
	done    chan struct{}
	closeMu sync.Once
	wg      sync.WaitGroup
	// refused counts connections refused at the handshake (for tests and logs).
	refusedMu sync.Mutex
	refused   int
}

func newStreamLayer(ln net.Listener, secret []byte, self memberInfo, b *book, log *slog.Logger) (*streamLayer, error) {
	cfg, err := secretTLS(secret)
	if err != nil {
		return nil, err
	}
	s := &streamLayer{ln: ln, tls: cfg, self: self, book: b, log: log, conns: make(chan net.Conn), done: make(chan struct{})}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

func (s *streamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("raft listener failed", "err", err)
			return
		}
		s.wg.Go(func() {
			tc, err := s.handshake(c, false)
			if err != nil {
				s.refusedMu.Lock()
				s.refused++
				s.refusedMu.Unlock()
				s.log.Warn("raft connection refused", "peer", c.RemoteAddr().String(), "err", err)
				_ = c.Close()
				return
			}
			select {
			case s.conns <- tc:
			case <-s.done:
				_ = tc.Close()
			}
		})
	}
}

// handshake runs TLS and the member info exchange on c, within handshakeTimeout.
func (s *streamLayer) handshake(c net.Conn, client bool) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var tc *tls.Conn
	if client {
		tc = tls.Client(c, s.tls)
	} else {
		tc = tls.Server(c, s.tls)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	self, _ := json.Marshal(s.self)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(self)))
	if _, err := tc.Write(append(n[:], self...)); err != nil {
		return nil, fmt.Errorf("member info: %w", err)
	}
	if _, err := io.ReadFull(tc, n[:]); err != nil {
		return nil, fmt.Errorf("member info: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxInfo {
		return nil, fmt.Errorf("member info of %d bytes", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return nil, fmt.Errorf("member info: %w", err)
	}
	var peer memberInfo
	if err := json.Unmarshal(buf, &peer); err != nil {
		return nil, fmt.Errorf("member info: %w", err)
	}
	s.book.learn(peer)
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

// Addr implements net.Listener.
func (s *streamLayer) Addr() net.Addr { return advertisedAddr(s.self.Raft) }

// advertisedAddr is the member's Raft address as the others dial it, which Raft
// takes for its own (a wildcard listen address would not do).
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	tc, err := s.handshake(c, true)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// Refused returns how many incoming connections failed the handshake.
func (s *streamLayer) Refused() int {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	return s.refused
}
