package provider

import "encoding/json"

// Wire types of the OpenAI Chat Completions API and the Anthropic Messages API, limited
// to the fields the translators read or write. Polymorphic fields (content that is a
// string or an array, tool_choice that is a string or an object) stay json.RawMessage
// and are decoded where they are used.

// OpenAI (prefix oa).

type oaChatRequest struct {
	Model               string           `json:"model"`
	Messages            []oaMessage      `json:"messages"`
	MaxTokens           *int             `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int             `json:"max_completion_tokens,omitempty"`
	Temperature         *float64         `json:"temperature,omitempty"`
	TopP                *float64         `json:"top_p,omitempty"`
	N                   *int             `json:"n,omitempty"`
	Stop                json.RawMessage  `json:"stop,omitempty"`
	Stream              bool             `json:"stream,omitempty"`
	StreamOptions       *oaStreamOptions `json:"stream_options,omitempty"`
	Tools               []oaTool         `json:"tools,omitempty"`
	ToolChoice          json.RawMessage  `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool            `json:"parallel_tool_calls,omitempty"`
	User                string           `json:"user,omitempty"`
}

type oaStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type oaMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"` // string, []oaPart or null
	Name       string          `json:"name,omitempty"`
	ToolCalls  []oaToolCall    `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type oaPart struct {
	Type     string      `json:"type"`
	Text     string      `json:"text,omitempty"`
	ImageURL *oaImageURL `json:"image_url,omitempty"`
}

type oaImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

type oaToolCall struct {
	// Index is set only in stream deltas.
	Index    *int           `json:"index,omitempty"`
	ID       string         `json:"id,omitempty"`
	Type     string         `json:"type,omitempty"`
	Function oaFunctionCall `json:"function"`
}

type oaFunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type oaTool struct {
	Type     string        `json:"type"`
	Function oaFunctionDef `json:"function"`
}

type oaFunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type oaNamedToolChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

type oaChatCompletion struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []oaChoice `json:"choices"`
	Usage   *oaUsage   `json:"usage,omitempty"`
}

type oaChoice struct {
	Index    int              `json:"index"`
	Message  *oaReplyMessage  `json:"message,omitempty"`
	Delta    *oaDelta         `json:"delta,omitempty"`
	Logprobs *json.RawMessage `json:"logprobs"`
	// A pointer so that it encodes as null while a stream is still going.
	FinishReason *string `json:"finish_reason"`
}

type oaReplyMessage struct {
	Role      string       `json:"role"`
	Content   *string      `json:"content"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type oaDelta struct {
	Role      string       `json:"role,omitempty"`
	Content   *string      `json:"content,omitempty"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type oaUsage struct {
	PromptTokens        int                  `json:"prompt_tokens"`
	CompletionTokens    int                  `json:"completion_tokens"`
	TotalTokens         int                  `json:"total_tokens"`
	PromptTokensDetails *oaPromptTokenDetail `json:"prompt_tokens_details,omitempty"`
}

type oaPromptTokenDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

// oaReply is an OpenAI chat.completion or chat.completion.chunk as read back from an
// upstream: content stays raw because OpenAI-compatible services differ in it.
type oaReply struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Content   json.RawMessage `json:"content"`
			Refusal   string          `json:"refusal"`
			ToolCalls []oaToolCall    `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Content   json.RawMessage `json:"content"`
			Refusal   string          `json:"refusal"`
			ToolCalls []oaToolCall    `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error *oaErrorIn `json:"error"`
}

// oaErrorIn reads an OpenAI-style error; code may be a string or a number.
type oaErrorIn struct {
	Message string          `json:"message"`
	Type    *string         `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// Anthropic (prefix an).

type anRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int             `json:"max_tokens"`
	System        json.RawMessage `json:"system,omitempty"` // string or []anBlock
	Messages      []anMessage     `json:"messages"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	TopK          *int            `json:"top_k,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Tools         []anTool        `json:"tools,omitempty"`
	ToolChoice    *anToolChoice   `json:"tool_choice,omitempty"`
	Metadata      *anMetadata     `json:"metadata,omitempty"`
}

type anMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content,omitempty"` // string or []anBlock, as read
	// Blocks is the content as written by ChatToAnthropic.
	Blocks []anBlock `json:"-"`
}

// MarshalJSON writes Blocks as the content when they are set.
func (m anMessage) MarshalJSON() ([]byte, error) {
	type plain anMessage
	if m.Blocks == nil {
		return json.Marshal(plain(m))
	}
	return json.Marshal(struct {
		Role    string    `json:"role"`
		Content []anBlock `json:"content"`
	}{m.Role, m.Blocks})
}

type anBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *anImageSource  `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"` // tool_result: string or []anBlock
	IsError   bool            `json:"is_error,omitempty"`
}

type anImageSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anTool struct {
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

type anToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse *bool  `json:"disable_parallel_tool_use,omitempty"`
}

type anMetadata struct {
	UserID string `json:"user_id,omitempty"`
}

type anResponse struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Role         string    `json:"role"`
	Model        string    `json:"model"`
	Content      []anBlock `json:"content"`
	StopReason   *string   `json:"stop_reason"`
	StopSequence *string   `json:"stop_sequence"`
	Usage        anUsage   `json:"usage"`
}

type anUsage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens,omitempty"`
}

// anEvent is any Anthropic stream event, as read.
type anEvent struct {
	Type         string       `json:"type"`
	Message      *anResponse  `json:"message"`
	Index        int          `json:"index"`
	ContentBlock *anBlock     `json:"content_block"`
	Delta        *anDelta     `json:"delta"`
	Usage        *anUsage     `json:"usage"`
	Error        *anErrorBody `json:"error"`
}

type anDelta struct {
	Type         string  `json:"type"`
	Text         string  `json:"text"`
	PartialJSON  string  `json:"partial_json"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
}

type anErrorEnvelope struct {
	Type  string      `json:"type"`
	Error anErrorBody `json:"error"`
}

type anErrorBody struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}
