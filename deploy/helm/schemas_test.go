package helm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The Kubernetes OpenAPI spec becomes one JSON schema file per kind, named as
// kubeconform's -schema-location template asks ({{ .ResourceKind }}_{{ .Group }}_
// {{ .ResourceAPIVersion }}.json), the way kubeconform's published schemas are made
// (openapi2jsonschema, "standalone strict"): every object that lists its properties
// refuses others, int-or-string accepts both, and each file carries the definitions
// it refers to.

const (
	intOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantity    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

// schemaFile is the file name kubeconform looks for, from an object's apiVersion
// parts: group ("" for the core group) and version.
func schemaFile(kind, group, version string) string {
	g := group
	if g == "" {
		g = version // kubeconform's Group is the apiVersion's first part: "v1" for core
	}
	return strings.ToLower(kind) + "_" + g + "_" + version + ".json"
}

func writeKubernetesSchemas(swaggerPath, dir string) error {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return fmt.Errorf("the Kubernetes OpenAPI spec: %w", err)
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if len(spec.Definitions) == 0 {
		return fmt.Errorf("%s has no definitions", swaggerPath)
	}
	defs := map[string]any{}
	for name, d := range spec.Definitions {
		switch name {
		case intOrString:
			defs[name] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		case quantity:
			defs[name] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
		default:
			defs[name] = strict(d)
		}
	}
	for name, d := range spec.Definitions {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			kind, _ := gvk["kind"].(string)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			if kind == "" || version == "" {
				continue
			}
			schema := map[string]any{"$ref": "#/definitions/" + name, "definitions": closure(defs, name)}
			if err := writeJSON(filepath.Join(dir, schemaFile(kind, group, version)), schema); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCRDSchemas writes the schema of every version of the CRDs in a YAML file.
func writeCRDSchemas(crdPath, dir string) error {
	f, err := os.Open(crdPath)
	if err != nil {
		return fmt.Errorf("the CRD: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	n := 0
	for {
		var crd struct {
			Kind string
			Spec struct {
				Group string
				Names struct{ Kind string }
				// The schema is decoded as YAML, then handled as the JSON it stands for.
				Versions []struct {
					Name   string
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					}
				}
			}
		}
		err := dec.Decode(&crd)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", crdPath, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			if err := writeJSON(filepath.Join(dir, schemaFile(crd.Spec.Names.Kind, crd.Spec.Group, v.Name)), strict(v.Schema.OpenAPIV3Schema)); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s holds no CRD schema", crdPath)
	}
	return nil
}

// strict returns a copy of a schema in which every object that lists its properties
// refuses others (unless it says it keeps unknown fields), and "int-or-string" formats
// accept both.
func strict(v any) any {
	switch s := v.(type) {
	case map[string]any:
		if s["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		out := make(map[string]any, len(s)+1)
		for k, x := range s {
			if k == "properties" {
				// Property names are not keywords: keep the names, convert the schemas.
				props := map[string]any{}
				for pk, px := range x.(map[string]any) {
					props[pk] = strict(px)
				}
				out[k] = props
				continue
			}
			out[k] = strict(x)
		}
		if _, ok := s["properties"]; ok && s["additionalProperties"] == nil && s["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(s))
		for i, x := range s {
			out[i] = strict(x)
		}
		return out
	}
	return v
}

// closure is the definitions name refers to, itself included, directly or not.
func closure(defs map[string]any, name string) map[string]any {
	out := map[string]any{}
	var visit func(string)
	visit = func(n string) {
		if _, done := out[n]; done {
			return
		}
		d, ok := defs[n]
		if !ok {
			return
		}
		out[n] = d
		for _, r := range refs(d, nil) {
			visit(r)
		}
	}
	visit(name)
	return out
}

func refs(v any, acc []string) []string {
	switch s := v.(type) {
	case map[string]any:
		for k, x := range s {
			if r, ok := x.(string); ok && k == "$ref" {
				acc = append(acc, strings.TrimPrefix(r, "#/definitions/"))
				continue
			}
			acc = refs(x, acc)
		}
	case []any:
		for _, x := range s {
			acc = refs(x, acc)
		}
	}
	return acc
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o600)
}
