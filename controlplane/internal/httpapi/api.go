package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Authorizer refuses a call before the API reads its request: the same check, with
// the same credentials and roles, as the gRPC server's own (auth.Policy).
type Authorizer interface {
	// Authorize returns nil when the caller whose headers are md may call method
	// (/pkg.Service/Method), else a gRPC status error saying why not.
	Authorize(ctx context.Context, md metadata.MD, method string) error
	// Enabled reports whether any credential is configured.
	Enabled() bool
}

// APIOptions configure MountAPI.
type APIOptions struct {
	// GRPC serves the transcoded calls: the control plane's *grpc.Server, whose
	// interceptors, codecs and limits apply to them as to any gRPC call.
	GRPC http.Handler
	// Services are the full names of the gRPC services served (berry.v1.AdminService).
	Services []string
	// Auth refuses a call before any of its body is read.
	Auth Authorizer
	// MaxBodyBytes bounds a request body; the gRPC server's per-message limits
	// apply after transcoding as well. (Answers are not bounded here: they come from
	// the control plane itself, and a whole config may be large.)
	MaxBodyBytes int64
	// Open serves every client when Auth has no credentials (--insecure). Without
	// credentials and not open, only loopback clients that name a loopback host are
	// served, so that a web page cannot reach an unauthenticated control plane
	// through DNS rebinding.
	Open bool
}

// connectTypes are the request content types of the Connect protocol, the one
// protocol the API speaks over HTTP (gRPC clients use the gRPC port).
var connectTypes = map[string]bool{
	"application/json":          true,
	"application/proto":         true,
	"application/connect+json":  true,
	"application/connect+proto": true,
}

// acceptPost lists connectTypes for a 415 answer's Accept-Post header.
const acceptPost = "application/json, application/proto, application/connect+json, application/connect+proto"

// MountAPI serves opts.Services at /<service>/<Method> in the Connect protocol
// (https://connectrpc.com/docs/protocol): unary calls as POST with a JSON or binary
// protobuf body, server streams in Connect's enveloped form. connectrpc.com/vanguard
// transcodes each call to gRPC and hands it to opts.GRPC, so there is one API, one
// set of handlers and one authorization for berryctl and browsers alike.
func (s *Server) MountAPI(opts APIOptions) error {
	if opts.GRPC == nil || opts.Auth == nil || len(opts.Services) == 0 || opts.MaxBodyBytes <= 0 {
		return errors.New("httpapi: MountAPI needs a gRPC handler, an authorizer, services and a body limit")
	}
	api := &api{opts: opts, methods: map[string]bool{}, errs: connect.NewErrorWriter()}
	services := make([]*vanguard.Service, 0, len(opts.Services))
	for _, name := range opts.Services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return fmt.Errorf("httpapi: service %s: %w", name, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return fmt.Errorf("httpapi: %s is not a service", name)
		}
		for i := range sd.Methods().Len() {
			api.methods["/"+name+"/"+string(sd.Methods().Get(i).Name())] = true
		}
		// The gRPC server forces its own proto codec, so every call is transcoded to
		// gRPC with binary protobuf, whatever codecs are registered in the process.
		services = append(services, vanguard.NewServiceWithSchema(sd, opts.GRPC,
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
		))
	}
	tc, err := vanguard.NewTranscoder(services, vanguard.WithCodec(jsonCodec))
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	api.transcoder = tc
	for _, name := range opts.Services {
		s.mux.Handle("/"+name+"/", api)
	}
	return nil
}

// jsonCodec is the API's JSON: every field present (zero values too, so a page needs
// no defaults of its own), and a field the message does not have refused rather than
// ignored, so that a misspelt field is an error and not a silent default.
func jsonCodec(res vanguard.TypeResolver) vanguard.Codec {
	return strictJSON{&vanguard.JSONCodec{
		MarshalOptions:   protojson.MarshalOptions{Resolver: res, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{Resolver: res},
	}}
}

// strictJSON is the JSON codec whose decoding errors are the caller's
// (invalid_argument), not the server's.
type strictJSON struct{ *vanguard.JSONCodec }

// Unmarshal implements vanguard.Codec.
func (c strictJSON) Unmarshal(data []byte, msg proto.Message) error {
	if err := c.JSONCodec.Unmarshal(data, msg); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request body: %w", err))
	}
	return nil
}

type api struct {
	opts       APIOptions
	methods    map[string]bool // full method names served
	transcoder http.Handler
	errs       *connect.ErrorWriter
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Answers carry config and usage: never cached, never sniffed into something else.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !a.admit(w, r) {
		return
	}
	// The path speaks only Connect, so a unary call is one whether or not it says so;
	// vanguard would take a call without the header for REST, which is not served.
	if r.Header.Get("Connect-Protocol-Version") == "" {
		r.Header.Set("Connect-Protocol-Version", "1")
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
	a.transcoder.ServeHTTP(w, r)
}

// admit answers a call that is refused before its body is read, and reports whether
// the call goes on. A refusal closes the connection: otherwise the HTTP server would
// read what is left of the body, up to 256 KiB, before it answers.
func (a *api) admit(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Connection", "close")
	if r.Method != http.MethodPost {
		h.Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, connect.CodeUnimplemented,
			fmt.Sprintf("%s %s: the API takes POST requests (Connect protocol)", r.Method, r.URL.Path))
		return false
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !connectTypes[mt] {
		h.Set("Accept-Post", acceptPost)
		writeJSONError(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument,
			fmt.Sprintf("Content-Type %q is not served: send Content-Type: application/json (or application/proto; application/connect+json for streams)", ct))
		return false
	}
	if !a.methods[r.URL.Path] {
		a.write(w, r, status.Errorf(codes.Unimplemented, "no method %s", r.URL.Path))
		return false
	}
	if !a.opts.Auth.Enabled() && !a.opts.Open && !(loopback(r.RemoteAddr) && loopbackHost(r.Host)) {
		a.write(w, r, status.Error(codes.PermissionDenied, "the control plane has no tokens: its API answers only loopback clients that address it by a loopback host"))
		return false
	}
	md := metadata.MD{"authorization": r.Header.Values("Authorization")}
	if err := a.opts.Auth.Authorize(r.Context(), md, r.URL.Path); err != nil {
		if status.Code(err) == codes.Unauthenticated {
			h.Set("WWW-Authenticate", `Bearer realm="berry-controlplane"`)
		}
		a.write(w, r, err)
		return false
	}
	// A body without a length is cut by MaxBytesReader as it is read.
	if r.ContentLength > a.opts.MaxBodyBytes {
		a.write(w, r, status.Errorf(codes.ResourceExhausted, "request body of %d bytes is over the limit of %d bytes", r.ContentLength, a.opts.MaxBodyBytes))
		return false
	}
	h.Del("Connection")
	return true
}

// write answers err, a gRPC status, as a Connect error in the request's form.
func (a *api) write(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	_ = a.errs.Write(w, r, connect.NewError(connect.Code(st.Code()), errors.New(st.Message())))
}

// writeJSONError answers a request that is not a Connect call at all with a
// Connect-shaped JSON error, so that a client gets the same shape whatever it got
// wrong.
func writeJSONError(w http.ResponseWriter, httpStatus int, code connect.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code.String(), msg})
}

// loopbackHost reports whether a request's Host names this host: a loopback address
// or localhost, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
