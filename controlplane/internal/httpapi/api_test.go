package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

const (
	adminTok = "admin-token-for-the-api-test"
	readTok  = "read-token-for-the-api-test"
	edgeTok  = "edge-token-for-the-api-test"

	providerKey  = "sk-provider-secret-4242"
	headerSecret = "header-secret-value-4242"
	userToken    = "user-clear-token-4242"
)

const seedTOML = `
[providers.openai]
name = "OpenAI"
base_url = "https://api.openai.com/v1"
api_key = "` + providerKey + `"
models = ["gpt-4o"]
headers = { "X-Api-Key" = "` + headerSecret + `" }

[models.gpt]
name = "gpt"
[[models.gpt.backends]]
provider = "openai"
model = "gpt-4o"
weight = 1

[users.alice]
name = "Alice"
token = "` + userToken + `"
[users.alice.rate_limit]
requests_per_day = 100
`

// secrets are what no read answer may carry: the provider's key and header secret,
// the user's token and its hash in every form an answer could show it.
func secrets() []string {
	sum := sha256.Sum256([]byte(userToken))
	return []string{providerKey, headerSecret, userToken, hex.EncodeToString(sum[:]),
		base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:])}
}

// controlPlane serves a real control plane's gRPC server through MountAPI on a
// loopback listener, with the three role tokens (none when open), and returns the
// base URL.
func controlPlane(t *testing.T, withTokens bool, mod func(*APIOptions)) string {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "berry.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := server.New(st, server.Options{Log: log})
	ctx := context.Background()
	if err := srv.Bootstrap(ctx, []byte(seedTOML), "seed"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Start(ctx)
	var creds []auth.Credential
	if withTokens {
		creds = []auth.Credential{
			{Name: "admin", Role: auth.RoleAdmin, Token: adminTok},
			{Name: "read", Role: auth.RoleRead, Token: readTok},
			{Name: "edge", Role: auth.RoleEdge, Token: edgeTok},
		}
	}
	policy := auth.NewPolicy(creds, server.ReadMethods)
	gs := srv.NewGRPCServer(policy)
	opts := APIOptions{GRPC: gs, Services: []string{berryv1.AdminService_ServiceDesc.ServiceName, berryv1.ClusterService_ServiceDesc.ServiceName}, Auth: policy,
		MaxBodyBytes: server.MaxConfigMessageSize}
	if mod != nil {
		mod(&opts)
	}
	hs := New(Options{Metrics: srv.Registry(), Log: log})
	if err := hs.MountAPI(opts); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-done
		srv.Shutdown()
		gs.Stop()
		st.Close()
	})
	return "http://" + l.Addr().String()
}

// answer is one HTTP answer of the API.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// connectError is the body of a Connect error.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (a answer) err(t *testing.T) connectError {
	t.Helper()
	var e connectError
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error body %q: %v", a.body, err)
	}
	return e
}

// call posts body to base/berry.v1.AdminService/method with contentType and, unless
// empty, the bearer token.
func call(t *testing.T, base, method, contentType, token string, body []byte) answer {
	t.Helper()
	return callPath(t, base+"/berry.v1.AdminService/"+method, contentType, token, body)
}

// callPath posts body to url.
func callPath(t *testing.T, url, contentType, token string, body []byte) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// envelope frames msg as one Connect streaming message with flags.
func envelope(flags byte, msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// unenvelope splits a Connect stream's body into its messages; the last one (flag 2)
// is the end of the stream.
func unenvelope(t *testing.T, body []byte) (msgs [][]byte, end []byte) {
	t.Helper()
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("truncated envelope %q", body)
		}
		flags, n := body[0], binary.BigEndian.Uint32(body[1:5])
		if uint32(len(body)-5) < n {
			t.Fatalf("truncated message: %d of %d bytes", len(body)-5, n)
		}
		msg := body[5 : 5+n]
		body = body[5+n:]
		if flags&2 != 0 {
			return msgs, msg
		}
		msgs = append(msgs, msg)
	}
	t.Fatal("stream without an end message")
	return nil, nil
}

// rpc is one admin RPC as the test calls it: a request that succeeds for a caller
// allowed to make it (in the order of the table), and whether the read role is.
type rpc struct {
	method string
	body   string
	read   bool
	// check inspects the admin's successful answer; nil: any 200 answer.
	check func(t *testing.T, body []byte)
}

// rpcs covers every AdminService method; TestEveryRPCOverHTTP fails when the service
// has one this table lacks.
var rpcs = []rpc{
	{method: "GetConfig", body: `{}`, read: true, check: wantJSON(`"config"`, `"id":"openai"`, `"apiKeySet":true`)},
	{method: "GetCurrentVersion", body: `{}`, read: true, check: wantJSON(`"author":"bootstrap"`)},
	{method: "ExportConfig", body: `{}`, read: true, check: wantJSON(`"toml"`, `[providers.openai]`)},
	{method: "ValidateConfig", body: `{"toml":` + quote(seedTOML+"\n[models.more]\nname = \"more\"\n[[models.more.backends]]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\n") + `}`, read: true,
		check: wantJSON(`"valid":true`, `"path":"models.more`)},
	{method: "ListProviders", body: `{}`, read: true, check: wantJSON(`"id":"openai"`)},
	{method: "GetProvider", body: `{"id":"openai"}`, read: true, check: wantJSON(`"baseUrl":"https://api.openai.com/v1"`)},
	{method: "ListModels", body: `{}`, read: true, check: wantJSON(`"id":"gpt"`)},
	{method: "GetModel", body: `{"id":"gpt"}`, read: true, check: wantJSON(`"provider":"openai"`)},
	{method: "ListUsers", body: `{}`, read: true, check: wantJSON(`"id":"alice"`)},
	{method: "GetUser", body: `{"id":"alice"}`, read: true, check: wantJSON(`"requestsPerDay":100`)},
	{method: "GetSettings", body: `{}`, read: true, check: wantJSON(`"settings"`)},
	{method: "ListVersions", body: `{}`, read: true, check: wantJSON(`"version":"1"`)},
	{method: "GetVersion", body: `{"version":"1"}`, read: true, check: wantJSON(`"version":"1"`, `"author":"bootstrap"`)},
	{method: "FleetStatus", body: `{}`, read: true, check: wantJSON(`"rolledOut":true`)},
	{method: "GetScores", body: `{}`, read: true},
	{method: "GetScoreHistory", body: `{"model":"gpt"}`, read: true, check: wantJSON(`"interval":"30s"`, `"span":"3600s"`)},
	{method: "GetServerInfo", body: `{}`, read: true, check: wantJSON(`"lineage"`, `"goVersion"`)},
	{method: "GetUsage", body: `{"groupBy":["hour","key","model"]}`, read: true, check: wantJSON(`"rows"`)},
	{method: "GetQuotas", body: `{"minUsedFraction":0}`, read: true, check: wantJSON(`"key":"alice"`, `"maxUsedFraction":0`)},

	// The writes, in an order in which each succeeds.
	{method: "ImportConfig", body: `{"toml":` + quote(seedTOML) + `,"message":"over HTTP"}`, check: wantJSON(`"version":"2"`)},
	{method: "ApplyConfig", body: `{"toml":` + quote(seedTOML) + `,"options":{"message":"again","expectedVersion":"2"}}`, check: wantJSON(`"version":"3"`)},
	{method: "PutProvider", body: `{"provider":{"id":"p2","name":"P2","baseUrl":"https://example.com/v1","apiKey":"k2","models":["m"]}}`, check: wantJSON(`"version":"4"`)},
	{method: "PutModel", body: `{"model":{"id":"m2","name":"m2","backends":[{"provider":"p2","model":"m","weight":1}]}}`, check: wantJSON(`"version":"5"`)},
	{method: "DeleteModel", body: `{"id":"m2"}`, check: wantJSON(`"version":"6"`)},
	{method: "DeleteProvider", body: `{"id":"p2"}`, check: wantJSON(`"version":"7"`)},
	{method: "PutUser", body: `{"user":{"id":"u2","name":"U2","token":"u2-token","enabled":true}}`, check: wantJSON(`"version":"8"`)},
	{method: "DeleteUser", body: `{"id":"u2"}`, check: wantJSON(`"version":"9"`)},
	{method: "UpdateSettings", body: `{"settings":{"requestTimeoutSeconds":45}}`, check: wantJSON(`"version":"10"`)},
	{method: "DiffVersions", body: `{"from":"9","to":"10"}`, read: true, check: wantJSON(`"path":"settings.request_timeout_seconds"`)},
	{method: "Rollback", body: `{"toVersion":"9","options":{"message":"undo"}}`, check: wantJSON(`"version":"11"`)},
	{method: "CreateKey", body: `{"userId":"k1","name":"ci","allowedModels":["gpt"]}`, check: wantJSON(`"userId":"k1"`, `"key":"sk-berry-`)},
	{method: "SetKeyEnabled", body: `{"userId":"k1","enabled":false}`, check: wantJSON(`"version":"13"`)},
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func wantJSON(parts ...string) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		for _, p := range parts {
			if !bytes.Contains(body, []byte(p)) {
				t.Errorf("answer lacks %s: %s", p, body)
			}
		}
	}
}

// Every admin RPC answers Connect JSON over HTTP to the role allowed to call it, is
// refused (401) without a valid token and (403) to a role that may not, and no read
// answer carries a secret.
func TestEveryRPCOverHTTP(t *testing.T) {
	base := controlPlane(t, true, nil)

	covered := map[string]bool{"Backup": true} // a stream: TestBackupStreamOverHTTP
	for _, r := range rpcs {
		covered[r.method] = true
	}
	desc := berryv1.AdminService_ServiceDesc
	for _, m := range desc.Methods {
		if !covered[m.MethodName] {
			t.Errorf("AdminService.%s is not in the test's table", m.MethodName)
		}
	}
	for _, s := range desc.Streams {
		if !covered[s.StreamName] {
			t.Errorf("AdminService.%s (a stream) is not tested", s.StreamName)
		}
	}
	readMethods := map[string]bool{}
	for _, m := range server.ReadMethods {
		readMethods[strings.TrimPrefix(m, "/"+desc.ServiceName+"/")] = true
	}

	// Refusals first, so that nothing has been written when the read role's writes
	// are refused.
	for _, r := range rpcs {
		t.Run("refused/"+r.method, func(t *testing.T) {
			if readMethods[r.method] != r.read {
				t.Fatalf("the table says read %v, server.ReadMethods %v", r.read, readMethods[r.method])
			}
			for _, tc := range []struct {
				who, token string
				status     int
				code       string
			}{
				{"no token", "", http.StatusUnauthorized, "unauthenticated"},
				{"a wrong token", "not-a-token", http.StatusUnauthorized, "unauthenticated"},
				{"the edge role", edgeTok, http.StatusForbidden, "permission_denied"},
			} {
				a := call(t, base, r.method, "application/json", tc.token, []byte(r.body))
				if a.status != tc.status || a.err(t).Code != tc.code {
					t.Errorf("%s: %d %s, want %d %s", tc.who, a.status, a.body, tc.status, tc.code)
				}
				if tc.status == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", tc.who)
				}
			}
			if !r.read {
				a := call(t, base, r.method, "application/json", readTok, []byte(r.body))
				if e := a.err(t); a.status != http.StatusForbidden || e.Code != "permission_denied" ||
					!strings.Contains(e.Message, "the read role may not call /berry.v1.AdminService/"+r.method) {
					t.Errorf("read role: %d %s, want 403 permission_denied", a.status, a.body)
				}
			}
		})
	}
	if a := call(t, base, "GetCurrentVersion", "application/json", readTok, []byte(`{}`)); !bytes.Contains(a.body, []byte(`"version":"1"`)) {
		t.Fatalf("a refused write wrote: %s", a.body)
	}

	for _, r := range rpcs {
		t.Run("allowed/"+r.method, func(t *testing.T) {
			tokens := []string{adminTok}
			if r.read {
				tokens = append(tokens, readTok)
			}
			for _, tok := range tokens {
				a := call(t, base, r.method, "application/json", tok, []byte(r.body))
				if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
					t.Fatalf("%d %s %s", a.status, a.header.Get("Content-Type"), a.body)
				}
				if a.header.Get("Cache-Control") != "no-store" || a.header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("headers %v", a.header)
				}
				if r.check != nil && tok == adminTok {
					r.check(t, a.body)
				}
				if r.read {
					for _, s := range secrets() {
						if bytes.Contains(a.body, []byte(s)) {
							t.Errorf("a secret (%s…) in the answer: %s", s[:6], a.body)
						}
					}
				}
			}
		})
	}
}

// The secrets are only for the admin role, when asked.
func TestSecretsOnlyForAdmins(t *testing.T) {
	base := controlPlane(t, true, nil)
	a := call(t, base, "ExportConfig", "application/json", readTok, []byte(`{"includeSecrets":true}`))
	if e := a.err(t); a.status != http.StatusForbidden || e.Code != "permission_denied" || !strings.Contains(e.Message, "include_secrets needs the admin role") {
		t.Fatalf("read role asking for secrets: %d %s", a.status, a.body)
	}
	a = call(t, base, "ExportConfig", "application/json", adminTok, []byte(`{"includeSecrets":true}`))
	if a.status != http.StatusOK || !bytes.Contains(a.body, []byte(providerKey)) {
		t.Fatalf("admin export with secrets: %d %s", a.status, a.body)
	}
}

// Bad requests get Connect errors naming what is wrong; validation errors are those
// berryctl prints.
func TestAPIErrors(t *testing.T) {
	base := controlPlane(t, true, nil)
	for _, tc := range []struct {
		name, method, contentType, body string
		status                          int
		code, message                   string
	}{
		{"invalid model", "PutModel", "application/json", `{"model":{"id":"x","name":"x","backends":[{"provider":"openai","model":"gpt-4o","weight":-1}]}}`,
			http.StatusBadRequest, "invalid_argument", "invalid config: models.x.backends[0].weight: must be > 0, got -1"},
		{"unknown provider", "PutModel", "application/json", `{"model":{"id":"x","name":"x","backends":[{"provider":"nope","model":"m"}]}}`,
			http.StatusBadRequest, "invalid_argument", `models.x.backends[0].provider: unknown provider "nope"`},
		{"bad TOML", "ImportConfig", "application/json", `{"toml":"[models.demo]\nstrategy = \"nope\"\n"}`,
			http.StatusBadRequest, "invalid_argument", `models.demo.strategy: unknown strategy "nope"`},
		{"stale write", "PutUser", "application/json", `{"user":{"id":"u3","token":"t"},"options":{"expectedVersion":"99"}}`,
			http.StatusBadRequest, "failed_precondition", "99"},
		{"not found", "GetModel", "application/json", `{"id":"nope"}`, http.StatusNotFound, "not_found", "nope"},
		{"unknown field", "GetConfig", "application/json", `{"bogus":1}`, http.StatusBadRequest, "invalid_argument", `unknown field "bogus"`},
		{"malformed JSON", "GetConfig", "application/json", `{`, http.StatusBadRequest, "invalid_argument", "request body"},
		{"wrong field type", "GetVersion", "application/json", `{"version":"one"}`, http.StatusBadRequest, "invalid_argument", "version"},
		{"unknown method", "Nope", "application/json", `{}`, http.StatusNotImplemented, "unimplemented", "no method /berry.v1.AdminService/Nope"},
		{"text/plain", "GetConfig", "text/plain", `{}`, http.StatusUnsupportedMediaType, "invalid_argument", `Content-Type "text/plain" is not served: send Content-Type: application/json`},
		{"form", "GetConfig", "application/x-www-form-urlencoded", `a=b`, http.StatusUnsupportedMediaType, "invalid_argument", "application/json"},
		{"no content type", "GetConfig", "", `{}`, http.StatusUnsupportedMediaType, "invalid_argument", `Content-Type "" is not served`},
		{"gRPC-Web", "GetConfig", "application/grpc-web+json", `{}`, http.StatusUnsupportedMediaType, "invalid_argument", "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, base, tc.method, tc.contentType, adminTok, []byte(tc.body))
			e := a.err(t)
			if a.status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("%d %s, want %d %s containing %q", a.status, a.body, tc.status, tc.code, tc.message)
			}
			if tc.status == http.StatusUnsupportedMediaType && !strings.Contains(a.header.Get("Accept-Post"), "application/json") {
				t.Errorf("415 without Accept-Post: %v", a.header)
			}
		})
	}

	// Only POST.
	req, err := http.NewRequest(http.MethodGet, base+"/berry.v1.AdminService/GetConfig", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost || !bytes.Contains(b, []byte("POST")) {
		t.Fatalf("GET: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// Other services of the gRPC server are not served over HTTP.
	for _, path := range []string{"/berry.v1.EdgeService/Sync", "/grpc.health.v1.Health/Check"} {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// A caller without a valid token is refused before any of its body is read: the
// answer comes while the body has not ended.
func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	base := controlPlane(t, true, nil)
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		token  string
		status int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {readTok, http.StatusForbidden}} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		auth := ""
		if tc.token != "" {
			auth = "Authorization: Bearer " + tc.token + "\r\n"
		}
		// A chunked body whose first chunk is sent and whose end never is.
		_, err = io.WriteString(conn, "POST /berry.v1.AdminService/ApplyConfig HTTP/1.1\r\nHost: "+addr+"\r\n"+auth+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{\"toml\":\"\r\n")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("token %q: %v", tc.token, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("token %q: %d, want %d", tc.token, resp.StatusCode, tc.status)
		}
	}
}

// Backup, a server stream, is served in Connect's streaming form, to the admin only.
func TestBackupStreamOverHTTP(t *testing.T) {
	base := controlPlane(t, true, nil)
	req := envelope(0, []byte(`{}`))
	a := call(t, base, "Backup", "application/connect+json", adminTok, req)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/connect+json" {
		t.Fatalf("%d %v", a.status, a.header)
	}
	msgs, end := unenvelope(t, a.body)
	var endMsg map[string]any
	if err := json.Unmarshal(end, &endMsg); err != nil || len(msgs) == 0 || endMsg["error"] != nil {
		t.Fatalf("%d messages, end %q (%v)", len(msgs), end, err)
	}
	var data []byte
	for _, m := range msgs {
		var chunk struct {
			Data []byte `json:"data"`
		}
		if err := json.Unmarshal(m, &chunk); err != nil {
			t.Fatal(err)
		}
		data = append(data, chunk.Data...)
	}
	// A bbolt file starts with its meta page: magic 0xED0CDAED at offset 16+4.
	if len(data) < 4096 || binary.LittleEndian.Uint32(data[16:20]) != 0xED0CDAED {
		t.Fatalf("backup of %d bytes is not a bbolt file", len(data))
	}

	a = call(t, base, "Backup", "application/connect+json", readTok, req)
	_, end = unenvelope(t, a.body)
	var e struct {
		Error connectError `json:"error"`
	}
	if err := json.Unmarshal(end, &e); err != nil || e.Error.Code != "permission_denied" {
		t.Fatalf("read role's backup: %d %s (%v)", a.status, end, err)
	}
}

// Without tokens the API serves only loopback clients that address it by a loopback
// name, so that a web page cannot reach it by DNS rebinding; --insecure opens it.
func TestNoTokensLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		open   bool
		host   string
		status int
	}{
		{"loopback address", false, "", http.StatusOK},
		{"localhost", false, "localhost:9091", http.StatusOK},
		{"IPv6 loopback", false, "[::1]:9091", http.StatusOK},
		{"rebound name", false, "attacker.example:9091", http.StatusForbidden},
		{"rebound name, insecure", true, "attacker.example:9091", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := controlPlane(t, false, func(o *APIOptions) { o.Open = tc.open })
			req, err := http.NewRequest(http.MethodPost, base+"/berry.v1.AdminService/GetCurrentVersion", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == http.StatusOK && !bytes.Contains(b, []byte(`"version":"1"`)) {
				t.Fatalf("answer %s", b)
			}
		})
	}
}

// A body over the limit is refused, not read whole.
func TestBodyLimit(t *testing.T) {
	base := controlPlane(t, true, func(o *APIOptions) { o.MaxBodyBytes = 1024 })
	big := `{"toml":` + quote(strings.Repeat("# filler\n", 1000)) + `}`
	a := call(t, base, "ValidateConfig", "application/json", adminTok, []byte(big))
	if e := a.err(t); a.status != http.StatusTooManyRequests || e.Code != "resource_exhausted" || !strings.Contains(e.Message, "over the limit of 1024 bytes") {
		t.Fatalf("%d %s", a.status, a.body)
	}
	// A body of no announced length is cut as it is read.
	req, err := http.NewRequest(http.MethodPost, base+"/berry.v1.AdminService/ValidateConfig", io.MultiReader(strings.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode == http.StatusOK || !bytes.Contains(b, []byte("request body too large")) {
		t.Fatalf("chunked: %d %s", resp.StatusCode, b)
	}
	if a := call(t, base, "GetConfig", "application/json", adminTok, []byte(`{}`)); a.status != http.StatusOK {
		t.Fatalf("a small call after: %d %s", a.status, a.body)
	}
}

func TestMountAPIRefusesBadOptions(t *testing.T) {
	s := New(Options{Metrics: registry()})
	if err := s.MountAPI(APIOptions{}); err == nil {
		t.Fatal("MountAPI without options succeeded")
	}
	p := auth.NewPolicy(nil, nil)
	if err := s.MountAPI(APIOptions{GRPC: http.NotFoundHandler(), Auth: p, Services: []string{berryv1.AdminService_ServiceDesc.ServiceName}}); err == nil {
		t.Fatal("MountAPI without a body limit succeeded")
	}
	if err := s.MountAPI(APIOptions{GRPC: http.NotFoundHandler(), Auth: p, Services: []string{"berry.v1.NoSuchService"}, MaxBodyBytes: 1}); err == nil {
		t.Fatal("MountAPI of an unknown service succeeded")
	}
}

// The cluster API is served beside the admin API, with the same roles: on a
// control plane of one node its calls are admitted and then refused as the gRPC API
// refuses them.
func TestClusterServiceOverHTTP(t *testing.T) {
	base := controlPlane(t, true, nil)
	desc := berryv1.ClusterService_ServiceDesc
	read := map[string]bool{}
	for _, m := range server.ReadMethods {
		read[m] = true
	}
	bodies := map[string]string{
		"ClusterStatus": `{}`,
		"AddMember":     `{"id":"n2","raftAddress":"127.0.0.1:1"}`,
		"RemoveMember":  `{"id":"n2"}`,
		"ForwardUsage":  `{}`,
	}
	for _, m := range desc.Methods {
		t.Run(m.MethodName, func(t *testing.T) {
			body, ok := bodies[m.MethodName]
			if !ok {
				t.Fatalf("ClusterService.%s is not in the test's table", m.MethodName)
			}
			url := base + "/" + desc.ServiceName + "/" + m.MethodName
			if a := callPath(t, url, "application/json", "", []byte(body)); a.status != http.StatusUnauthorized || a.err(t).Code != "unauthenticated" {
				t.Errorf("no token: %d %s", a.status, a.body)
			}
			a := callPath(t, url, "application/json", readTok, []byte(body))
			if full := "/" + desc.ServiceName + "/" + m.MethodName; !read[full] {
				if a.status != http.StatusForbidden || a.err(t).Code != "permission_denied" {
					t.Errorf("read role: %d %s", a.status, a.body)
				}
			} else if a.status == http.StatusUnauthorized || a.status == http.StatusForbidden {
				t.Errorf("read role refused a read: %d %s", a.status, a.body)
			}
			a = callPath(t, url, "application/json", adminTok, []byte(body))
			if a.status == http.StatusUnauthorized || a.status == http.StatusForbidden || a.status == http.StatusNotImplemented {
				t.Errorf("admin: %d %s", a.status, a.body)
			}
		})
	}
}
