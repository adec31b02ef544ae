package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir}
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
	return ca
}

// issue writes name.crt and name.key, signed by the CA, and returns their paths.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An edge with a certificate from the client CA connects over mTLS; one without a
// certificate, or with one from another CA, never does, and berryctl needs TLS too.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA := newCA(t, dir, "server-ca")
	clientCA := newCA(t, dir, "client-ca")
	otherCA := newCA(t, dir, "other-ca")
	cpCert, cpKey := serverCA.issue(t, "cp", true)
	edgeCert, edgeKey := clientCA.issue(t, "edge-1", false)
	rogueCert, rogueKey := otherCA.issue(t, "rogue", false)
	serverCAFile := filepath.Join(dir, "server-ca.crt")

	addr := freeAddr(t)
	startProc(t, "controlplane", "berry-controlplane", "--data", filepath.Join(dir, "berry.db"), "--grpc-listen", addr,
		"--admin-token", adminToken, "--edge-token", edgeToken,
		"--tls-cert", cpCert, "--tls-key", cpKey, "--tls-client-ca", filepath.Join(dir, "client-ca.crt"))
	admin := []string{"BERRY_SERVER=" + addr, "BERRY_TOKEN=" + adminToken}
	seed := writeFile(t, filepath.Join(dir, "seed.toml"), configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a"))
	adminCert, adminKey := clientCA.issue(t, "admin", false)
	eventually(t, "berryctl import over mTLS", func() error {
		code, out, errOut := berryctl(t, admin, "--tls-ca", serverCAFile, "--tls-cert", adminCert, "--tls-key", adminKey, "import", seed)
		if code != 0 {
			return &exitError{out + errOut}
		}
		return nil
	})
	// Without a client certificate, or without TLS, berryctl cannot get in.
	for _, args := range [][]string{{"--tls-ca", serverCAFile, "versions"}, {"versions"}} {
		if code, _, errOut := berryctl(t, admin, args...); code == 0 || !strings.HasPrefix(errOut, "berryctl: ") {
			t.Fatalf("berryctl %v without a client certificate: exit %d %q", args, code, errOut)
		}
	}

	startTLSEdge := func(id, cert, key string) *edge {
		la := freeAddr(t)
		ep := startProc(t, "edge "+id, "berry-edge", "--listen", la, "--control-plane", addr, "--edge-id", id,
			"--token", edgeToken, "--cache-dir", t.TempDir(), "--tls-ca", serverCAFile, "--tls-cert", cert, "--tls-key", key)
		e := &edge{proc: ep, url: "http://" + la}
		eventually(t, id+" listens", func() error {
			resp, err := http.Get(e.url + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		return e
	}
	good := startTLSEdge("edge-1", edgeCert, edgeKey)
	good.waitReady(t, 1, true)
	rogue := startTLSEdge("rogue", rogueCert, rogueKey)
	// The good edge connected and got version 1 meanwhile; the rogue one, started
	// after, has had time to try and must still have nothing.
	eventually(t, "rogue edge tried", func() error {
		if !strings.Contains(rogue.output(), "reconnecting") {
			return &exitError{"no attempt yet"}
		}
		return nil
	})
	if code, r := rogue.readyz(t); code == http.StatusOK || (r.Connected != nil && *r.Connected) {
		t.Fatalf("edge with a certificate from another CA: readyz %d %+v", code, r)
	}
}

type exitError struct{ s string }

func (e *exitError) Error() string { return e.s }
