// Package grpccreds sets up the credentials of Berry's gRPC connections: TLS (and
// mTLS) from PEM files, and the bearer token clients send as
// "authorization: Bearer <token>" metadata. berry-edge, berryctl and
// berry-controlplane (its server and its backup client) all use it, so the flags
// --tls-ca, --tls-cert, --tls-key and --token mean the same everywhere.
package grpccreds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Client is how a client connects: any of the PEM files enables TLS.
type Client struct {
	// Token, when set, is sent as a bearer token on every call.
	Token string
	// CA verifies the server (default: the system's roots); Cert and Key are the
	// client certificate for mTLS; ServerName overrides the name expected in the
	// server's certificate (default: the host dialed).
	CA, Cert, Key, ServerName string
}

// Secure reports whether the connection uses TLS.
func (c Client) Secure() bool { return c.CA != "" || c.Cert != "" || c.Key != "" }

// DialOptions returns the transport credentials and, with a token, the per-call
// bearer credentials. Errors name the flag whose file is wrong.
func (c Client) DialOptions() ([]grpc.DialOption, error) {
	transport := insecure.NewCredentials()
	if c.Secure() {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
		if c.CA != "" {
			pool, err := loadPool("--tls-ca", c.CA)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool
		}
		if c.Cert != "" || c.Key != "" {
			cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
			if err != nil {
				return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		transport = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if c.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(Bearer{Token: c.Token, AllowPlaintext: !c.Secure()}))
	}
	return opts, nil
}

// Bearer sends a token as "authorization: Bearer <token>" metadata.
type Bearer struct {
	Token string
	// AllowPlaintext lets the token go over a connection without TLS: loopback, or a
	// network the operator chose to trust by not configuring TLS.
	AllowPlaintext bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b Bearer) RequireTransportSecurity() bool { return !b.AllowPlaintext }

// Server returns the server's TLS credentials from PEM files; with clientCA, clients
// must present a certificate it signed (mTLS).
func Server(certFile, keyFile, clientCA string) (credentials.TransportCredentials, error) {
	if certFile == "" || keyFile == "" {
		if clientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := loadPool("--tls-client-ca", clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

func loadPool(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificates", flag, path)
	}
	return pool, nil
}
