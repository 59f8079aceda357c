// Package manifest reads ClusterImagePolicy manifests outside a cluster
// exactly as the API server would admit them: the CRD's defaults, OpenAPI
// schema and CEL rules are applied in-process from the embedded CRD, so
// `signet verify --policy` rejects what `kubectl apply` would, with the
// same field paths and messages.
package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/config"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// Schema validates and defaults ClusterImagePolicies.
type Schema struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator
}

// NewSchema builds the validator from the embedded CRD.
func NewSchema() (*Schema, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(config.CRD, crd); err != nil {
		return nil, fmt.Errorf("embedded CRD: %w", err)
	}
	var v1schema *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == v1alpha1.GroupVersion.Version && v.Schema != nil {
			v1schema = v.Schema.OpenAPIV3Schema
		}
	}
	if v1schema == nil {
		return nil, errors.New("embedded CRD has no v1alpha1 schema")
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1schema, internal, nil); err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, err
	}
	validator, _, err := validation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &Schema{structural: structural, validator: validator, cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// InvalidError is a policy the API server would refuse.
type InvalidError struct {
	Source string // file name, or "-" for standard input
	Name   string
	Errs   field.ErrorList
	// Detail replaces Errs for errors that have no field path (unknown fields).
	Detail string
}

func (e *InvalidError) Error() string {
	detail := e.Detail
	if detail == "" {
		detail = e.Errs.ToAggregate().Error()
	}
	return fmt.Sprintf("%s: ClusterImagePolicy %q is invalid: %s", e.Source, e.Name, detail)
}

// Decode reads every ClusterImagePolicy in a YAML or JSON stream (several
// documents allowed), defaults and validates each, and returns them.
// Documents of other kinds are an error: a policy file should hold policies.
func (s *Schema) Decode(ctx context.Context, source string, r io.Reader) ([]*v1alpha1.ClusterImagePolicy, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*v1alpha1.ClusterImagePolicy
	for i := 0; ; i++ {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if obj == nil {
			continue // an empty document between ---
		}
		if obj["apiVersion"] != v1alpha1.GroupVersion.String() || obj["kind"] != "ClusterImagePolicy" {
			return nil, fmt.Errorf("%s: document %d is %v %v, want a %s ClusterImagePolicy", source, i+1, obj["apiVersion"], obj["kind"], v1alpha1.GroupVersion)
		}
		p, err := s.admit(ctx, obj)
		if err != nil {
			var inv *InvalidError
			if errors.As(err, &inv) {
				inv.Source = source
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// admit applies what the API server applies on create: defaults, then the
// OpenAPI schema, then (when the schema passed) the CEL rules.
func (s *Schema) admit(ctx context.Context, obj map[string]any) (*v1alpha1.ClusterImagePolicy, error) {
	name := ""
	if md, ok := obj["metadata"].(map[string]any); ok {
		name, _ = md["name"].(string)
	}
	structuraldefaulting.Default(obj, s.structural)
	errs := validation.ValidateCustomResource(nil, obj, s.validator)
	if len(errs) == 0 {
		celErrs, _ := s.cel.Validate(ctx, nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	if name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "a policy needs a name"))
	}
	if len(errs) > 0 {
		return nil, &InvalidError{Name: name, Errs: errs}
	}
	p := &v1alpha1.ClusterImagePolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, p, true); err != nil {
		// Unknown fields: kubectl's default strict validation refuses them too.
		return nil, &InvalidError{Name: name, Detail: err.Error()}
	}
	return p, nil
}

// DecodeBytes is Decode over a byte slice.
func (s *Schema) DecodeBytes(ctx context.Context, source string, b []byte) ([]*v1alpha1.ClusterImagePolicy, error) {
	return s.Decode(ctx, source, bytes.NewReader(b))
}
