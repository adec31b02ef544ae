// Package configdiff lists the differences between two configs in seed-format terms
// ("providers.openai.base_url"), for operators comparing versions. Secret values are
// compared but never shown.
package configdiff

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Change kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Redacted stands for a secret value that is set.
const Redacted = config.Redacted

// secret fields are compared on the real values and shown as Redacted.
var secret = map[protoreflect.FullName]bool{
	"berry.v1.Provider.api_key":  true,
	"berry.v1.User.token":        true,
	"berry.v1.User.token_sha256": true,
}

// ignored fields carry nothing of their own.
var ignored = map[protoreflect.FullName]bool{
	"berry.v1.Provider.api_key_set": true,
	"berry.v1.Provider.id":          true,
	"berry.v1.Model.id":             true,
	"berry.v1.User.id":              true,
}

// Changes returns the differences from a to b, sorted by path. Either may be nil
// (an empty config).
func Changes(a, b *berryv1.Config) []*berryv1.Change {
	d := differ{}
	d.message("settings", a.GetSettings(), b.GetSettings(),
		config.Redact(&berryv1.Config{Settings: a.GetSettings()}).GetSettings(),
		config.Redact(&berryv1.Config{Settings: b.GetSettings()}).GetSettings())
	ra, rb := config.Redact(a), config.Redact(b)
	entries(&d, "providers", a.GetProviders(), b.GetProviders(), ra.GetProviders(), rb.GetProviders())
	entries(&d, "models", a.GetModels(), b.GetModels(), ra.GetModels(), rb.GetModels())
	entries(&d, "users", a.GetUsers(), b.GetUsers(), ra.GetUsers(), rb.GetUsers())
	sort.SliceStable(d.out, func(i, j int) bool { return d.out[i].Path < d.out[j].Path })
	return d.out
}

type entry interface {
	proto.Message
	GetId() string
}

// entries matches the entries of one section by id. shownA and shownB are the
// redacted copies, index for index.
func entries[E entry](d *differ, section string, a, b, shownA, shownB []E) {
	ia, ib := index(a), index(b)
	ids := make([]string, 0, len(ia)+len(ib))
	for id := range ia {
		ids = append(ids, id)
	}
	for id := range ib {
		if _, ok := ia[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		path := section + "." + key(id)
		i, inA := ia[id]
		j, inB := ib[id]
		switch {
		case !inA:
			d.add(path, Added, "", whole(shownB[j]))
		case !inB:
			d.add(path, Removed, whole(shownA[i]), "")
		default:
			d.message(path, a[i], b[j], shownA[i], shownB[j])
		}
	}
}

func index[E entry](es []E) map[string]int {
	m := make(map[string]int, len(es))
	for i, e := range es {
		m[e.GetId()] = i
	}
	return m
}

func key(id string) string {
	if strings.ContainsAny(id, ". \"") {
		return strconv.Quote(id)
	}
	return id
}

type differ struct {
	out []*berryv1.Change
}

func (d *differ) add(path, kind, before, after string) {
	d.out = append(d.out, &berryv1.Change{Path: path, Kind: kind, Before: before, After: after})
}

// message compares two messages of one type field by field; shownA/shownB are their
// redacted copies, used for display only.
func (d *differ) message(path string, a, b, shownA, shownB proto.Message) {
	ma, mb := reflectOf(a, b), reflectOf(b, a)
	if ma == nil {
		return
	}
	sa, sb := reflectOf(shownA, ma.Interface()), reflectOf(shownB, ma.Interface())
	fields := ma.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if ignored[fd.FullName()] {
			continue
		}
		va, vb := ma.Get(fd), mb.Get(fd)
		if equal(fd, ma, mb) {
			continue
		}
		fpath := path + "." + string(fd.Name())
		if fd.IsList() && fd.Message() != nil && va.List().Len() == vb.List().Len() {
			// Same-length lists of messages (a model's backends) differ per element.
			for k := 0; k < va.List().Len(); k++ {
				d.message(fmt.Sprintf("%s[%d]", fpath, k),
					va.List().Get(k).Message().Interface(), vb.List().Get(k).Message().Interface(),
					sa.Get(fd).List().Get(k).Message().Interface(), sb.Get(fd).List().Get(k).Message().Interface())
			}
			continue
		}
		kind := Changed
		composite := fd.IsList() || fd.IsMap() || fd.Message() != nil
		switch {
		case composite && !ma.Has(fd):
			kind = Added
		case composite && !mb.Has(fd):
			kind = Removed
		}
		if secret[fd.FullName()] {
			d.add(fpath, kind, shownSecret(ma, fd), shownSecret(mb, fd))
			continue
		}
		d.add(fpath, kind, format(sa, fd), format(sb, fd))
	}
}

// reflectOf returns m's reflection, or an empty message of other's type for a nil m.
func reflectOf(m, other proto.Message) protoreflect.Message {
	if m != nil && m.ProtoReflect().IsValid() {
		return m.ProtoReflect()
	}
	if other != nil {
		return other.ProtoReflect().Type().Zero()
	}
	return nil
}

// equal compares one field's values by wrapping each in an otherwise empty message,
// which gives proto.Equal's semantics (NaN, maps, nested messages) for free.
func equal(fd protoreflect.FieldDescriptor, a, b protoreflect.Message) bool {
	wrap := func(src protoreflect.Message) proto.Message {
		m := a.Type().New()
		if src.Has(fd) { // an unset composite is read-only and may not be Set
			m.Set(fd, src.Get(fd))
		}
		return m.Interface()
	}
	return proto.Equal(wrap(a), wrap(b))
}

func shownSecret(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if m.Has(fd) {
		return Redacted
	}
	return ""
}

// format renders one field of m for people.
func format(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if !m.Has(fd) && (fd.IsList() || fd.IsMap() || fd.Message() != nil) {
		return ""
	}
	v := m.Get(fd)
	switch {
	case fd.IsList():
		l := v.List()
		parts := make([]string, l.Len())
		for i := range parts {
			parts[i] = scalar(fd, l.Get(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case fd.IsMap():
		var parts []string
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			parts = append(parts, strconv.Quote(k.String())+" = "+scalar(fd.MapValue(), mv))
			return true
		})
		slices.Sort(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return scalar(fd, v)
}

func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return strconv.Quote(v.String())
	case protoreflect.MessageKind:
		if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
			return ts.AsTime().UTC().Format(time.RFC3339Nano)
		}
		return "{" + strings.TrimSpace(prototext.MarshalOptions{}.Format(v.Message().Interface())) + "}"
	case protoreflect.BytesKind:
		return fmt.Sprintf("%x", v.Bytes())
	}
	return fmt.Sprint(v.Interface())
}

// whole renders an added or removed entry from its redacted copy.
func whole(shown proto.Message) string {
	return "{" + strings.TrimSpace(prototext.MarshalOptions{}.Format(shown)) + "}"
}
