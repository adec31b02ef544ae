package provider

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

func init() { Register("azure", azure{}) }

// DefaultAzureAPIVersion is the api_version a seed file's azure provider gets when it
// names none (the latest GA data-plane version when this was written).
const DefaultAzureAPIVersion = "2024-10-21"

// azureDeploymentsAPIVersion lists deployments: the data-plane listing was retired in
// later API versions, and this is the last GA version that documents it.
const azureDeploymentsAPIVersion = "2022-12-01"

// azure is Azure OpenAI. The backend's model is the deployment name and is part of the
// URL; the body is OpenAI's with only the model rewritten (Azure ignores it), and the
// answers are OpenAI's plus Azure's content-filter annotations, which pass through.
//
// A base_url ending in /openai/v1 selects Azure's newer v1 API, which has OpenAI's
// paths (model in the body, no api-version); it is served like OpenAI with the api-key
// header.
type azure struct{}

func (azure) DefaultAPIVersion() string { return DefaultAzureAPIVersion }

func (azure) Prepare(a *Account) error {
	u, err := parseBaseURL(a.BaseURL)
	if err != nil {
		return err
	}
	if a.APIKey != "" {
		a.Auth = [2]string{"api-key", a.APIKey}
	}
	path := strings.TrimRight(u.Path, "/")
	if strings.HasSuffix(path, "/openai/v1") {
		for op := range numOps {
			if a.URLs[op], err = OpenAIEndpoint(a.BaseURL, op.String()); err != nil {
				return err
			}
		}
		a.azureV1 = true
		return nil
	}
	if a.APIVersion == "" {
		return &ConfigError{Field: "api_version", Msg: `required for backend_type "azure"`}
	}
	if i := strings.Index(path, "/openai"); i >= 0 {
		path = path[:i] // a pasted endpoint: keep the resource part
	}
	u.Path, u.RawQuery, u.Fragment = path+"/openai/deployments/", "", ""
	a.deploymentPrefix = u.String()
	a.deploymentQuery = "?api-version=" + url.QueryEscape(a.APIVersion)
	u.Path = path + "/openai/deployments"
	u.RawQuery = "api-version=" + azureDeploymentsAPIVersion
	a.URLs[OpModels] = u.String()
	// Azure serves the Responses API only on its v1 surface (model = deployment in
	// the body, no api-version), whatever form the account's other calls use.
	u.Path, u.RawQuery = path+"/openai/v1/responses", ""
	a.URLs[OpResponses] = u.String()
	return nil
}

func (azure) Supports(Op) bool { return true }

var uriPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (azure) WriteRequest(req *fasthttp.Request, a *Account, op Op, model string, body []byte, f *jsonscan.Fields) error {
	switch {
	case op == OpModels || op == OpResponses || a.azureV1:
		req.SetRequestURI(a.URLs[op])
	default:
		bp := uriPool.Get().(*[]byte)
		b := append((*bp)[:0], a.deploymentPrefix...)
		b = appendPathSegment(b, model)
		b = append(b, '/')
		b = append(b, op.String()...)
		b = append(b, a.deploymentQuery...)
		req.SetRequestURIBytes(b) // copies
		// An escaped deployment name must reach Azure as one segment, not be decoded
		// and resolved as a path.
		req.URI().DisablePathNormalizing = true
		*bp = b
		uriPool.Put(bp)
	}
	if op == OpModels {
		req.Header.SetMethod(fasthttp.MethodGet)
	} else {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		setOpenAIBody(req, op, model, body, f)
	}
	setHeaders(req, a)
	return nil
}

// TranslateResponse passes successes through (Azure's content_filter_results and
// prompt_filter_results are extra fields OpenAI clients ignore or can read) and gives
// errors OpenAI's shape: Azure often omits "type" and may send a numeric "code".
// Other fields of Azure's error (param, innererror with content_filter_result) are
// kept, so a client can still see which filter fired.
func (azure) TranslateResponse(_ Op, status int, body, dst []byte) ([]byte, bool, error) {
	if status < 300 {
		return dst, false, nil
	}
	return AzureErrorToOpenAI(dst, status, body), true, nil
}

func (azure) NewStream(Op, string) StreamTranslator { return nil }

// AzureErrorToOpenAI rewrites an Azure OpenAI error body into OpenAI's error shape,
// appending it to dst: "type" is filled from the status when missing, "code" becomes a
// string, and everything else in the error object is kept.
func AzureErrorToOpenAI(dst []byte, status int, body []byte) []byte {
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		e := &Error{Status: status, Type: OpenAIErrorType(status), Message: "upstream answered " + fmt.Sprint(status) + ": " + snippet(body)}
		return e.AppendJSON(dst)
	}
	fields := env.Error
	var typ string
	if json.Unmarshal(fields["type"], &typ) != nil || typ == "" {
		fields["type"], _ = json.Marshal(OpenAIErrorType(status))
	}
	var msg string
	if json.Unmarshal(fields["message"], &msg) != nil {
		fields["message"], _ = json.Marshal("upstream answered " + fmt.Sprint(status))
	}
	if code, ok := fields["code"]; ok && len(code) > 0 && code[0] != '"' && string(code) != "null" {
		fields["code"], _ = json.Marshal(string(code)) // Azure sends "code": 429 at times
	} else if !ok {
		fields["code"] = json.RawMessage("null")
	}
	return appendJSON(dst, struct {
		Error map[string]json.RawMessage `json:"error"`
	}{fields})
}

// appendPathSegment appends s escaped as one URL path segment. Deployment names are
// letters, digits, '-', '_' and '.', which need no escaping; anything else is escaped
// so a name cannot change the path.
func appendPathSegment(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	if s == "." || s == ".." {
		for range s {
			dst = append(dst, "%2E"...)
		}
		return dst
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return dst
}
