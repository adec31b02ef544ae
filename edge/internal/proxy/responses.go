package proxy

// The Responses API (POST /v1/responses and the calls on one stored response) is
// served like chat: routed by model, failed over, metered. Backends that speak it
// (OpenAI, Azure's v1 surface) get the body with only the model rewritten; others get
// it translated to a chat request and their answer translated back (stateless).
//
// A stored response lives in one provider account, so everything that names it —
// previous_response_id, GET/DELETE/cancel/input_items — must reach that account. The
// edge keeps no table of ids: the id a client sees encodes the model, the provider and
// the upstream's own id, with a MAC (responseID), and is decoded on the way in. Any
// edge, after any restart, routes it the same way.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
)

// responseIDPrefix starts every response id the gateway hands out, as OpenAI's do:
// clients and SDKs that check the prefix keep working.
const responseIDPrefix = "resp_"

// responseIDVersion is the first byte of an encoded id, so the format can change.
const responseIDVersion = 1

// responseIDMACSize is the length of the truncated HMAC-SHA256 in an id.
const responseIDMACSize = 12

// responseID is what a gateway response id carries.
type responseID struct {
	model    string // the model's config id
	provider string // the provider's config id
	upstream string // the upstream's own id
	// translated: made by a backend without the Responses API; nothing was stored.
	translated bool
}

var (
	errResponseIDFormat = errors.New("is not a response id made by this gateway")
	errResponseIDMAC    = errors.New("does not verify: it was altered, or its provider's credentials changed since it was made")
)

// responseKey is the MAC key of a provider's ids: derived from the provider's id and
// credential, which every edge of the fleet has and no client does.
func responseKey(p *routing.Provider) []byte {
	h := sha256.New()
	h.Write([]byte("berry response id\x00"))
	h.Write([]byte(p.ID))
	h.Write([]byte{0})
	h.Write([]byte(p.Account.APIKey))
	return h.Sum(nil)
}

// appendResponseID appends the client-facing form of id, made with p's key.
func appendResponseID(dst []byte, id responseID, p *routing.Provider) []byte {
	raw := make([]byte, 0, 8+len(id.model)+len(id.provider)+len(id.upstream)+responseIDMACSize)
	raw = append(raw, responseIDVersion, 0)
	if id.translated {
		raw[1] = 1
	}
	raw = binary.AppendUvarint(raw, uint64(len(id.model)))
	raw = append(raw, id.model...)
	raw = binary.AppendUvarint(raw, uint64(len(id.provider)))
	raw = append(raw, id.provider...)
	raw = append(raw, id.upstream...)
	m := hmac.New(sha256.New, responseKey(p))
	m.Write(raw)
	raw = m.Sum(raw)[:len(raw)+responseIDMACSize]
	dst = append(dst, responseIDPrefix...)
	return base64.RawURLEncoding.AppendEncode(dst, raw)
}

// parseResponseID decodes a client-facing id without verifying it: the key to verify
// with is its provider's, which the id names.
func parseResponseID(s string) (id responseID, mac, signed []byte, err error) {
	if len(s) <= len(responseIDPrefix) || s[:len(responseIDPrefix)] != responseIDPrefix {
		return id, nil, nil, errResponseIDFormat
	}
	raw, derr := base64.RawURLEncoding.DecodeString(s[len(responseIDPrefix):])
	if derr != nil || len(raw) < 2+2+responseIDMACSize || raw[0] != responseIDVersion || raw[1] > 1 {
		return id, nil, nil, errResponseIDFormat
	}
	signed, mac = raw[:len(raw)-responseIDMACSize], raw[len(raw)-responseIDMACSize:]
	id.translated = raw[1] == 1
	rest := signed[2:]
	field := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", false
		}
		v := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return v, true
	}
	var ok1, ok2 bool
	id.model, ok1 = field()
	id.provider, ok2 = field()
	if !ok1 || !ok2 || id.model == "" || id.provider == "" || len(rest) == 0 {
		return responseID{}, nil, nil, errResponseIDFormat
	}
	id.upstream = string(rest)
	return id, mac, signed, nil
}

// verify checks an id's MAC with its provider's key.
func verifyResponseID(mac, signed []byte, p *routing.Provider) bool {
	m := hmac.New(sha256.New, responseKey(p))
	m.Write(signed)
	return hmac.Equal(m.Sum(nil)[:responseIDMACSize], mac)
}

// pinned is the backend a request must use: the one that made the response it
// continues or names.
type pinned struct {
	id      responseID
	raw     string // as the client sent it, for messages
	backend *routing.Backend
}

// continuation reads a create request's previous_response_id: it pins the request to
// the backend that made that response and puts the upstream's own id in the body, or
// answers the request and returns false.
func (r *request) continuation() bool {
	ctx := r.ctx
	raw := jsonscan.String(ctx.PostBody(), r.fields.PreviousResponse)
	id, ok := r.resolveResponse(raw, "previous_response_id")
	if !ok {
		return false
	}
	if id.id.model != r.model.ID {
		// The response's backend serves it under its model; another model may route
		// the same provider to another upstream model, which is fine, as long as it
		// has that provider.
		b := backendOf(r.backends, id.id.provider)
		if b == nil {
			r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "previous_response_wrong_model",
				"previous_response_id "+strconv.Quote(raw)+" was made by provider "+strconv.Quote(id.id.provider)+
					", which is not a backend of model "+strconv.Quote(r.model.Name)+"; continue it with a model that provider serves")
			return false
		}
		id.backend = b
	}
	if id.id.translated {
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "previous_response_not_stored",
			"previous_response_id "+strconv.Quote(raw)+" was answered by backend "+strconv.Quote(id.id.provider)+
				" through translation (it has no Responses API), and the gateway stores no responses: send the whole conversation as input instead")
		return false
	}
	body := spliceString(nil, ctx.PostBody(), r.fields.PreviousResponse, id.id.upstream)
	ctx.Request.SetBodyRaw(body)
	if err := jsonscan.Scan(body, &r.fields); err != nil {
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "invalid_json", err.Error())
		return false
	}
	r.pin = id
	return true
}

// resolveResponse decodes and verifies a response id a client sent, finds the
// backend that made it and checks the key may use it, or answers the request. what
// names the id in messages ("previous_response_id", "response").
func (r *request) resolveResponse(raw, what string) (pinned, bool) {
	ctx, t := r.ctx, r.table
	id, mac, signed, err := parseResponseID(raw)
	bad := func(status int, code, msg string) (pinned, bool) {
		typ := typeInvalidRequest
		if status == fasthttp.StatusNotFound {
			typ = typeNotFound
		}
		r.in.writeError(ctx, status, typ, code, what+" "+strconv.Quote(raw)+" "+msg)
		return pinned{}, false
	}
	notFound := fasthttp.StatusNotFound
	if what == "previous_response_id" {
		notFound = fasthttp.StatusBadRequest
	}
	if err != nil {
		return bad(notFound, "invalid_response_id", err.Error())
	}
	m := t.ModelByID(id.model)
	var b *routing.Backend
	if m != nil {
		if b = backendOf(m.Backends, id.provider); b == nil {
			b = backendOf(m.Wildcard, id.provider)
		}
	}
	if b == nil {
		return bad(notFound, "response_backend_gone", "was made by provider "+strconv.Quote(id.provider)+
			" for model "+strconv.Quote(id.model)+", which the gateway's configuration no longer has")
	}
	if !verifyResponseID(mac, signed, b.Provider) {
		return bad(notFound, "invalid_response_id", errResponseIDMAC.Error())
	}
	if !r.user.Allowed(m) || !r.user.SeesBackend(b) {
		r.in.writeError(ctx, fasthttp.StatusForbidden, typePermission, "response_not_allowed",
			"this API key may not use the backend that made "+what+" "+strconv.Quote(raw))
		return pinned{}, false
	}
	return pinned{id: id, raw: raw, backend: b}, true
}

// backendOf is the first of bs on provider id.
func backendOf(bs []*routing.Backend, id string) *routing.Backend {
	for _, b := range bs {
		if b.Provider.ID == id {
			return b
		}
	}
	return nil
}

// spliceString appends body with the JSON string at s replaced by v.
func spliceString(dst, body []byte, s jsonscan.Span, v string) []byte {
	dst = append(dst, body[:s.Start]...)
	dst = jsonscan.AppendString(dst, v)
	return append(dst, body[s.End:]...)
}

// pinnedCandidate fills r.cands with the pinned backend, or answers why it cannot
// serve: a response can only be continued in the account that holds it.
func (r *request) pinnedCandidate() bool {
	ctx, b, now := r.ctx, r.pin.backend, r.now
	name := strconv.Quote(b.Key().String())
	switch {
	case !b.Enabled || !b.Provider.Enabled:
		r.in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "response_backend_disabled",
			"response "+strconv.Quote(r.pin.raw)+" is held by backend "+name+", which is disabled; it cannot be continued elsewhere")
		return false
	case !b.Provider.ResponsesNative:
		r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "previous_response_not_stored",
			"backend "+name+" is now configured without the Responses API, so response "+strconv.Quote(r.pin.raw)+" cannot be continued")
		return false
	case !b.State.Available(now):
		retry := 5
		if at := b.State.AvailableAt(now, r.table.Settings.BreakerTimeout); !at.IsZero() {
			retry = max(ceilSeconds(at.Sub(now)), 1)
		}
		r.in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "response_backend_unavailable",
			"response "+strconv.Quote(r.pin.raw)+" is held by backend "+name+
				", which is unavailable now (failing; its circuit breaker is open); it cannot be continued on another backend, retry later")
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retry))
		return false
	}
	for i, c := range r.backends {
		if c == b {
			r.cands = append(r.cands, candidateOf(i, b, now, r.stream))
			return true
		}
	}
	// The response's model is not the request's: index the pinned backend in it.
	r.in.writeError(ctx, fasthttp.StatusBadRequest, typeInvalidRequest, "previous_response_wrong_model",
		"response "+strconv.Quote(r.pin.raw)+" was made for another model; continue it with model "+strconv.Quote(r.pin.id.model))
	return false
}

// rewriteResponseIDs replaces every occurrence of the upstream's response id (as a
// JSON string) in an answer with the gateway's id for it.
func rewriteResponseIDs(body []byte, upstream string, gateway []byte) []byte {
	if upstream == "" {
		return body
	}
	old := jsonscan.AppendString(nil, upstream)
	if !bytes.Contains(body, old) {
		return body
	}
	return appendReplaced(nil, body, old, quoted(gateway))
}

// quoted is id as a JSON string (ids are base64url: nothing to escape).
func quoted(id []byte) []byte {
	return append(append(append(make([]byte, 0, len(id)+2), '"'), id...), '"')
}

// appendReplaced appends b to dst with every occurrence of old replaced by repl.
func appendReplaced(dst, b, old, repl []byte) []byte {
	for len(old) > 0 {
		i := bytes.Index(b, old)
		if i < 0 {
			break
		}
		dst = append(append(dst, b[:i]...), repl...)
		b = b[i+len(old):]
	}
	return append(dst, b...)
}

// responseObjectID reads the id of a Responses API object: a top-level "id", or the
// one of the "response" object stream events carry.
func responseObjectID(data []byte) string {
	var v struct {
		ID       string `json:"id"`
		Response *struct {
			ID string `json:"id"`
		} `json:"response"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	if v.Response != nil {
		return v.Response.ID
	}
	return v.ID
}

// responseIDStream relays a native Responses API stream, event by event, with the
// upstream's response id replaced by the gateway's; the first event (response.created)
// names it.
type responseIDStream struct {
	id       responseID
	provider *routing.Provider
	// old and repl are the upstream's id and the gateway's as JSON strings, made once
	// the first event names the id.
	old, repl []byte
	ended     bool // a terminal event (completed, incomplete, failed, error) was relayed
}

func (s *responseIDStream) Event(name, data, dst []byte) ([]byte, error) {
	if s.id.upstream == "" && len(data) > 0 && data[0] == '{' {
		if id := responseObjectID(data); id != "" {
			s.id.upstream = id
			s.old = jsonscan.AppendString(nil, id)
			s.repl = quoted(appendResponseID(nil, s.id, s.provider))
		}
	}
	if provider.ResponsesEventKind(name, data)&(provider.ResponsesDone|provider.ResponsesError) != 0 {
		s.ended = true
	}
	if len(name) > 0 {
		dst = append(append(append(dst, "event: "...), name...), '\n')
	}
	dst = append(dst, "data: "...)
	dst = appendReplaced(dst, data, s.old, s.repl)
	return append(dst, "\n\n"...), nil
}

func (s *responseIDStream) End(dst []byte) ([]byte, error) {
	if !s.ended {
		return dst, provider.ErrTruncated
	}
	return dst, nil
}

// classifyResponses classifies a Responses API stream event for failover
// (provider.ResponsesEventKind): deltas are content, and so is a final response,
// which carries the whole output even when no delta came before it; an error event or
// a failed response is an error.
func classifyResponses(name, data []byte) eventKind {
	k := provider.ResponsesEventKind(name, data)
	switch {
	case k&provider.ResponsesError != 0:
		return kindError
	case k&provider.ResponsesContent != 0:
		return kindContent
	}
	return kindOther
}

// responseCall serves GET/DELETE /v1/responses/{id}, POST …/{id}/cancel and GET
// …/{id}/input_items: decoded, checked against the key, and sent to the account that
// holds the response.
func (h *Handler) responseCall(r *request, rest []byte) {
	ctx, in := r.ctx, r.in
	if h.opts.Tracer != nil {
		h.startRequest(r)
	}
	idPart, suffix, method := rest, "", ""
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		idPart, suffix = rest[:i], string(rest[i:])
	}
	allow := ""
	switch suffix {
	case "":
		allow = "GET, DELETE"
		if ctx.IsGet() || ctx.IsDelete() {
			method = string(ctx.Method())
		}
	case "/cancel":
		allow = "POST"
		if ctx.IsPost() {
			method = fasthttp.MethodPost
		}
	case "/input_items":
		allow = "GET"
		if ctx.IsGet() {
			method = fasthttp.MethodGet
		}
	default:
		in.writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "not_found", "unknown endpoint "+strconv.Quote(string(ctx.Path())))
		return
	}
	if method == "" {
		in.writeError(ctx, fasthttp.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
			"use "+allow+" for /v1/responses/{id}"+suffix)
		ctx.Response.Header.Set("Allow", allow)
		return
	}
	if !h.identify(r) {
		return
	}
	pin, ok := r.resolveResponse(string(idPart), "response")
	if !ok {
		return
	}
	b := pin.backend
	r.rec.Model = pin.id.model
	if pin.id.translated {
		in.writeError(ctx, fasthttp.StatusNotFound, typeNotFound, "response_not_stored",
			"response "+strconv.Quote(pin.raw)+" was answered by backend "+strconv.Quote(b.Key().String())+
				" through translation (it has no Responses API), and the gateway stores no responses: it cannot be retrieved, deleted or cancelled")
		return
	}
	if !b.Provider.ResponsesNative || !b.Enabled || !b.Provider.Enabled {
		in.writeError(ctx, fasthttp.StatusServiceUnavailable, typeUnavailable, "response_backend_disabled",
			"response "+strconv.Quote(pin.raw)+" is held by backend "+strconv.Quote(b.Key().String())+", which is disabled or no longer configured for the Responses API")
		return
	}
	up := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(up)
	defer fasthttp.ReleaseResponse(resp)
	provider.WriteResponseCall(up, &b.Provider.Account, method, pin.id.upstream, suffix, ctx.QueryArgs().QueryString())
	up.SetTimeout(b.Provider.Timeout)
	up.Header.SetBytesV("X-Request-Id", r.id)
	r.rec.AddAttempt(b.State.Label, "")
	err := h.up.do(up, resp, false, false)
	r.rec.Backend = b.State.Label
	if err != nil {
		h.log.Warn("upstream request failed", "request_id", string(r.id), "provider", b.Provider.ID, "err", err)
		if errors.Is(err, fasthttp.ErrTimeout) {
			in.writeError(ctx, fasthttp.StatusGatewayTimeout, typeTimeout, "upstream_timeout",
				"backend "+strconv.Quote(b.Key().String())+", which holds this response, timed out")
			return
		}
		in.writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_unreachable",
			"backend "+strconv.Quote(b.Key().String())+", which holds this response, could not be reached")
		return
	}
	status := resp.StatusCode()
	if r.rec.NAttempts > 0 {
		r.rec.Attempts[r.rec.NAttempts-1].Outcome = backends.ClassOf(status).String()
	}
	body := resp.Body()
	if status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden {
		in.writeError(ctx, fasthttp.StatusBadGateway, typeUpstream, "upstream_auth_failed",
			"backend "+strconv.Quote(b.Key().String())+" refused the gateway's credentials for it (HTTP "+strconv.Itoa(status)+")")
		return
	}
	if status >= 300 {
		if out, translated, terr := b.Provider.Adapter.TranslateResponse(provider.OpResponses, status, body, nil); terr == nil && translated {
			body = out
		}
	}
	gw := appendResponseID(nil, pin.id, b.Provider)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	copyRequestIDs(&ctx.Response.Header, &resp.Header)
	ctx.Response.SetBody(rewriteResponseIDs(body, pin.id.upstream, gw))
}

// translatedResponseID is the id of a response a backend without the Responses API
// answered: nothing upstream has an id for it, so the request id stands in, and the
// id says it was translated (it cannot be retrieved or continued).
func (a *attempt) translatedResponseID() []byte {
	id := responseID{model: a.r.model.ID, provider: a.b.Provider.ID, upstream: string(a.r.id), translated: true}
	return appendResponseID(nil, id, a.b.Provider)
}
