package provider

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/berry-gateway/berry/pkg/jsonscan"
)

// chatToResponsesStream translates OpenAI chunks into the Responses API's events.
type chatToResponsesStream struct {
	id   string
	ids  rsIDs
	echo rsEcho
	seq  int64 // sequence_number of the next event

	started, finished bool
	created           int64
	model             string
	// items are the output items in output_index order; all stay open until the chat
	// stream ends, because chat may interleave text and the arguments of several tool
	// calls.
	items []*rsStreamItem
	msg   *rsStreamItem         // the message item, once text or a refusal came
	calls map[int]*rsStreamItem // function call items by chat tool call index
	nCall int
	reply rsChatReply // reused between events
	stop  string      // the chat finish_reason
	usage *rsUsage
}

// rsStreamItem is an output item being streamed: a message or a function call.
type rsStreamItem struct {
	index int
	id    string
	call  bool
	// A message's content parts, in content_index order: output text and refusal.
	parts         []*rsStreamPart
	text, refusal *rsStreamPart
	// A function call's.
	callID, name string
	args         strings.Builder
}

type rsStreamPart struct {
	index   int
	refusal bool
	b       strings.Builder
}

// NewChatToResponsesStream returns a translator from OpenAI chat.completion.chunk
// events (data payloads, "[DONE]" included) to the Responses API's stream. id is the
// response id the client sees; req is the client's Responses request, whose settings
// the response objects echo.
//
// Every event is "event: <type>\ndata: <JSON with type and sequence_number>\n\n",
// numbered from 0. The first chunk brings response.created and response.in_progress.
// Text opens the message item (response.output_item.added,
// response.content_part.added) and streams as response.output_text.delta; a refusal
// is a content part of its own (response.refusal.delta). Each tool call opens a
// function_call item (response.output_item.added) and streams its arguments as
// response.function_call_arguments.delta. Items are numbered in arrival order. At
// [DONE] every item is closed (…done events, then response.output_item.done) and
// response.completed carries the whole response with its usage, from the usage chunk
// that stream_options.include_usage asks for; response.incomplete replaces it when
// the chat stream finished for length or content_filter. No [DONE] is sent.
//
// As for every StreamTranslator, an error event in the chat stream makes Event return
// an *Error, and End returns ErrTruncated if the chat stream never sent [DONE].
func NewChatToResponsesStream(id string, req []byte) StreamTranslator {
	return &chatToResponsesStream{id: id, ids: itemIDs(id), echo: readEcho(req)}
}

func (s *chatToResponsesStream) Event(_, data, dst []byte) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || s.finished {
		return dst, nil
	}
	if string(data) == "[DONE]" {
		return s.finish(dst), nil
	}
	ch := &s.reply
	*ch = rsChatReply{}
	if err := json.Unmarshal(data, ch); err != nil {
		return dst, &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "bad_stream",
			Message: "the upstream sent a malformed stream event"}
	}
	if ch.Error != nil {
		st := http.StatusBadGateway
		return dst, &Error{Status: st, Type: OpenAIErrorType(st), Code: "upstream_stream_error", Message: ch.Error.Message}
	}
	if !s.started {
		s.created, s.model = ch.Created, ch.Model
		dst = s.start(dst)
	}
	if c := ch.choice(); c != nil {
		if text := rawText(c.Delta.Content); text != "" {
			dst = s.appendText(dst, false, text)
		}
		if c.Delta.Refusal != "" {
			dst = s.appendText(dst, true, c.Delta.Refusal)
		}
		for _, tc := range c.Delta.ToolCalls {
			dst = s.toolCall(dst, tc)
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.stop = *c.FinishReason
		}
	}
	if ch.Usage != nil {
		s.usage = ch.Usage.responses()
	}
	return dst, nil
}

// start emits response.created and response.in_progress, once.
func (s *chatToResponsesStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	r := s.response()
	dst = s.event(dst, "response.created", &rsLifecycleEvent{Response: r})
	return s.event(dst, "response.in_progress", &rsLifecycleEvent{Response: r})
}

// response is the response object as it stands: in progress, output so far.
func (s *chatToResponsesStream) response() *rsResponse {
	r := newResponse(s.id, &s.echo, s.created, s.model)
	// The first chunk's time and model stand for the whole stream.
	s.created, s.model = r.CreatedAt, r.Model
	return r
}

// appendText streams text or refusal text into the message item, opening the item
// and the content part first if they are not open yet.
func (s *chatToResponsesStream) appendText(dst []byte, refusal bool, text string) []byte {
	if s.msg == nil {
		s.msg = &rsStreamItem{index: len(s.items), id: s.ids.message()}
		s.items = append(s.items, s.msg)
		dst = s.event(dst, "response.output_item.added", &rsItemEvent{OutputIndex: s.msg.index,
			Item: rsMessageItem{ID: s.msg.id, Type: "message", Status: "in_progress", Role: "assistant", Content: []any{}}})
	}
	m := s.msg
	p := m.text
	if refusal {
		p = m.refusal
	}
	if p == nil {
		p = &rsStreamPart{index: len(m.parts), refusal: refusal}
		m.parts = append(m.parts, p)
		if refusal {
			m.refusal = p
		} else {
			m.text = p
		}
		dst = s.event(dst, "response.content_part.added", &rsPartEvent{ItemID: m.id, OutputIndex: m.index,
			ContentIndex: p.index, Part: p.content()})
	}
	p.b.WriteString(text)
	// The hot path of a stream, written without reflection.
	typ := "response.output_text.delta"
	if refusal {
		typ = "response.refusal.delta"
	}
	dst = s.eventHead(dst, typ)
	dst = append(dst, `,"item_id":`...)
	dst = jsonscan.AppendString(dst, m.id)
	dst = append(dst, `,"output_index":`...)
	dst = strconv.AppendInt(dst, int64(m.index), 10)
	dst = append(dst, `,"content_index":`...)
	dst = strconv.AppendInt(dst, int64(p.index), 10)
	dst = append(dst, `,"delta":`...)
	dst = jsonscan.AppendString(dst, text)
	if !refusal {
		dst = append(dst, `,"logprobs":[]`...)
	}
	return append(dst, "}\n\n"...)
}

// content is the part as it stands, for the content_part events and the response.
func (p *rsStreamPart) content() any {
	if p.refusal {
		return rsRefusal{Type: "refusal", Refusal: p.b.String()}
	}
	return rsOutputText{Type: "output_text", Text: p.b.String(), Annotations: []struct{}{}}
}

// toolCall streams one tool call delta: the first one of a call (with its id and
// name) opens a function_call item, later ones carry argument fragments.
func (s *chatToResponsesStream) toolCall(dst []byte, tc oaToolCall) []byte {
	k := 0
	if tc.Index != nil {
		k = *tc.Index
	}
	it, known := s.calls[k]
	if !known || tc.ID != "" && tc.ID != it.callID {
		// A new call; a new id at a known index is a server that does not number
		// its calls.
		if s.calls == nil {
			s.calls = make(map[int]*rsStreamItem)
		}
		n := s.nCall
		s.nCall++
		it = &rsStreamItem{index: len(s.items), id: s.ids.call(n), call: true, callID: s.ids.callID(tc.ID, n), name: tc.Function.Name}
		s.items = append(s.items, it)
		s.calls[k] = it
		dst = s.event(dst, "response.output_item.added", &rsItemEvent{OutputIndex: it.index, Item: it.functionCall("in_progress")})
	} else if tc.Function.Name != "" && !strings.HasSuffix(it.name, tc.Function.Name) {
		// Servers that split the name across deltas; OpenAI sends it whole, once.
		it.name += tc.Function.Name
	}
	args := tc.Function.Arguments
	if args == "" {
		return dst
	}
	it.args.WriteString(args)
	dst = s.eventHead(dst, "response.function_call_arguments.delta")
	dst = append(dst, `,"item_id":`...)
	dst = jsonscan.AppendString(dst, it.id)
	dst = append(dst, `,"output_index":`...)
	dst = strconv.AppendInt(dst, int64(it.index), 10)
	dst = append(dst, `,"delta":`...)
	dst = jsonscan.AppendString(dst, args)
	return append(dst, "}\n\n"...)
}

func (it *rsStreamItem) functionCall(status string) rsFunctionCallItem {
	return rsFunctionCallItem{ID: it.id, Type: "function_call", Status: status, Arguments: it.args.String(),
		CallID: it.callID, Name: it.name}
}

func (it *rsStreamItem) message(status string) rsMessageItem {
	content := make([]any, len(it.parts))
	for i, p := range it.parts {
		content[i] = p.content()
	}
	return rsMessageItem{ID: it.id, Type: "message", Status: status, Role: "assistant", Content: content}
}

func (it *rsStreamItem) item(status string) any {
	if it.call {
		return it.functionCall(status)
	}
	return it.message(status)
}

// finish closes every item in output order and ends the stream with
// response.completed (or response.incomplete).
func (s *chatToResponsesStream) finish(dst []byte) []byte {
	dst = s.start(dst)
	s.finished = true
	r := s.response()
	r.finish(s.stop)
	status := r.itemStatus()
	for _, it := range s.items {
		if it.call {
			dst = s.event(dst, "response.function_call_arguments.done", &rsArgumentsDoneEvent{ItemID: it.id,
				OutputIndex: it.index, Arguments: it.args.String()})
		}
		for _, p := range it.parts {
			if p.refusal {
				dst = s.event(dst, "response.refusal.done", &rsRefusalDoneEvent{ItemID: it.id, OutputIndex: it.index,
					ContentIndex: p.index, Refusal: p.b.String()})
			} else {
				dst = s.event(dst, "response.output_text.done", &rsTextDoneEvent{ItemID: it.id, OutputIndex: it.index,
					ContentIndex: p.index, Text: p.b.String(), Logprobs: []struct{}{}})
			}
			dst = s.event(dst, "response.content_part.done", &rsPartEvent{ItemID: it.id, OutputIndex: it.index,
				ContentIndex: p.index, Part: p.content()})
		}
		item := it.item(status)
		dst = s.event(dst, "response.output_item.done", &rsItemEvent{OutputIndex: it.index, Item: item})
		r.Output = append(r.Output, item)
	}
	r.Usage = s.usage
	typ := "response.completed"
	if r.Status == "incomplete" {
		typ = "response.incomplete"
	}
	return s.event(dst, typ, &rsLifecycleEvent{Response: r})
}

// End reports a stream whose upstream ended without [DONE]: the response is completed
// only by the upstream's own end.
func (s *chatToResponsesStream) End(dst []byte) ([]byte, error) {
	if !s.finished {
		return dst, ErrTruncated
	}
	return dst, nil
}

// event appends one event named typ, with the next sequence number; v is the rest of
// its data.
func (s *chatToResponsesStream) event(dst []byte, typ string, v rsStreamEvent) []byte {
	v.head(typ, s.seq)
	s.seq++
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = appendJSON(dst, v)
	return append(dst, "\n\n"...)
}

// eventHead appends `event: <typ>\ndata: {"type":<typ>,"sequence_number":N` for the
// events written by hand; the caller adds the other members and closes the object.
func (s *chatToResponsesStream) eventHead(dst []byte, typ string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, `","sequence_number":`...)
	dst = strconv.AppendInt(dst, s.seq, 10)
	s.seq++
	return dst
}

// The stream events written through appendJSON.

// rsStreamEvent is an event's data with its rsEventHead embedded.
type rsStreamEvent interface{ head(typ string, seq int64) }

// rsEventHead starts every event's data.
type rsEventHead struct {
	Type           string `json:"type"`
	SequenceNumber int64  `json:"sequence_number"`
}

func (h *rsEventHead) head(typ string, seq int64) { h.Type, h.SequenceNumber = typ, seq }

// rsLifecycleEvent is response.created, .in_progress, .completed or .incomplete.
type rsLifecycleEvent struct {
	rsEventHead
	Response *rsResponse `json:"response"`
}

// rsItemEvent is response.output_item.added or .done.
type rsItemEvent struct {
	rsEventHead
	OutputIndex int `json:"output_index"`
	Item        any `json:"item"`
}

// rsPartEvent is response.content_part.added or .done.
type rsPartEvent struct {
	rsEventHead
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Part         any    `json:"part"`
}

type rsTextDoneEvent struct {
	rsEventHead
	ItemID       string     `json:"item_id"`
	OutputIndex  int        `json:"output_index"`
	ContentIndex int        `json:"content_index"`
	Text         string     `json:"text"`
	Logprobs     []struct{} `json:"logprobs"`
}

type rsRefusalDoneEvent struct {
	rsEventHead
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Refusal      string `json:"refusal"`
}

type rsArgumentsDoneEvent struct {
	rsEventHead
	ItemID      string `json:"item_id"`
	OutputIndex int    `json:"output_index"`
	Arguments   string `json:"arguments"`
}
