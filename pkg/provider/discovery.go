package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNoModelList means a models-endpoint answer did not have a recognisable list, so
// it says nothing about which models exist (a prober should not mark models vanished
// because of it).
var ErrNoModelList = errors.New("not a model list")

// ModelSet is the set of model ids a provider's models endpoint lists.
type ModelSet map[string]struct{}

// Has reports whether id is listed.
func (s ModelSet) Has(id string) bool {
	_, ok := s[id]
	return ok
}

// ParseModelIDs reads a provider's answer to its OpModels request (see
// Adapter.WriteRequest) into the set of model ids it serves, for model discovery. It
// understands OpenAI's list ({"object":"list","data":[{"id":…}]}), Anthropic's
// ({"data":[{"type":"model","id":…}],"has_more":…}), Azure's deployments listing
// ({"data":[{"id":<deployment>,"model":…}]}, ids being deployment names, which is what
// an Azure backend's model is) and Gemini's OpenAI-compatible listing, whose ids carry a
// "models/" prefix that is also recorded without it. kind is the backend_type.
//
// An Anthropic listing with has_more true is incomplete: the set holds what was listed
// and complete is false, so a prober must not treat an absent model as vanished.
func ParseModelIDs(kind string, body []byte) (ids ModelSet, complete bool, err error) {
	var list struct {
		Data    *[]json.RawMessage `json:"data"`
		Models  *[]json.RawMessage `json:"models"` // some OpenAI-compatible servers
		HasMore bool               `json:"has_more"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrNoModelList, err)
	}
	entries := list.Data
	if entries == nil {
		entries = list.Models
	}
	if entries == nil {
		return nil, false, fmt.Errorf("%w: no \"data\" array", ErrNoModelList)
	}
	ids = make(ModelSet, len(*entries))
	for _, raw := range *entries {
		var m struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		id := m.ID
		if id == "" {
			id = m.Name
		}
		if id == "" {
			continue
		}
		ids[id] = struct{}{}
		if short, ok := strings.CutPrefix(id, "models/"); ok && short != "" {
			ids[short] = struct{}{}
		}
	}
	_ = kind // every supported kind shares the data[].id shape; kept for kinds that won't
	return ids, !list.HasMore, nil
}
