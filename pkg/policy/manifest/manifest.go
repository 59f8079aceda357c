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
	"sync"

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
	// cel is the validator of the CRD's CEL rules. Compiling them is most
	// of a Schema's cost (tens of milliseconds): NewSchema starts it on
	// another goroutine, so it runs while the caller reads its files (and,
	// with DecodeDeferred, while it verifies); the first use waits for it.
	cel func() *cel.Validator
}

// NewSchema builds the validator from the embedded CRD; the CEL rules
// compile in the background.
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
	s := &Schema{structural: structural, validator: validator, cel: sync.OnceValue(func() *cel.Validator {
		return cel.NewValidator(structural, true, celconfig.PerCallLimit)
	})}
	go s.cel()
	return s, nil
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
	ps, pending, err := s.decode(ctx, source, r, nil)
	if err == nil {
		err = pending.Check(ctx)
	}
	if err != nil {
		return nil, err
	}
	return ps, nil
}

// DecodeDeferred is Decode with the CEL rules checked later: the policies
// it returns have their defaults and passed the OpenAPI schema, and
// pending.Check (for these and, before them, the policies pending already
// held) applies the CEL rules. A caller may start work with the policies
// meanwhile, but must act on nothing until Check has passed. When
// DecodeDeferred fails, a policy pending held may be invalid too: the
// first error in reading order is Check's, if any, then DecodeDeferred's.
func (s *Schema) DecodeDeferred(ctx context.Context, source string, r io.Reader, pending *Pending) ([]*v1alpha1.ClusterImagePolicy, error) {
	ps, _, err := s.decode(ctx, source, r, pending)
	return ps, err
}

// Pending are decoded policies whose CEL rules are still to be checked.
// The zero value holds none.
type Pending struct {
	schema *Schema
	docs   []pendingDoc
	once   sync.Once
	err    error
}

type pendingDoc struct {
	source, name string
	obj          map[string]any
}

// Check applies the CEL rules to every pending policy, in the order they
// were read, and returns the first policy's *InvalidError. It waits for the
// rules to compile; later calls return the first call's answer.
func (p *Pending) Check(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		for _, d := range p.docs {
			if errs := p.schema.celErrors(ctx, d.obj); len(errs) > 0 {
				p.err = &InvalidError{Source: d.source, Name: d.name, Errs: errs}
				return
			}
		}
	})
	return p.err
}

func (s *Schema) decode(ctx context.Context, source string, r io.Reader, pending *Pending) ([]*v1alpha1.ClusterImagePolicy, *Pending, error) {
	if pending == nil {
		pending = &Pending{}
	}
	pending.schema = s
	fail := func(err error) ([]*v1alpha1.ClusterImagePolicy, *Pending, error) {
		if perr := pending.Check(ctx); perr != nil {
			return nil, pending, perr
		}
		return nil, pending, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*v1alpha1.ClusterImagePolicy
	for i := 0; ; i++ {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fail(fmt.Errorf("%s: document %d: %w", source, i+1, err))
		}
		if obj == nil {
			continue // an empty document between ---
		}
		if obj["apiVersion"] != v1alpha1.GroupVersion.String() || obj["kind"] != "ClusterImagePolicy" {
			return fail(fmt.Errorf("%s: document %d is %v %v, want a %s ClusterImagePolicy", source, i+1, obj["apiVersion"], obj["kind"], v1alpha1.GroupVersion))
		}
		p, deferred, err := s.admit(ctx, obj)
		if err != nil {
			var inv *InvalidError
			if errors.As(err, &inv) {
				inv.Source = source
			}
			return fail(err)
		}
		if deferred {
			pending.docs = append(pending.docs, pendingDoc{source: source, name: p.Name, obj: obj})
		}
		out = append(out, p)
	}
	return out, pending, nil
}

// admit applies what the API server applies on create: defaults, then the
// OpenAPI schema, then (when the schema passed) the CEL rules. A policy
// that passed everything but its CEL rules is returned with deferred set:
// the caller checks those. (One that failed otherwise gets its CEL errors
// now, beside the others, as the API server would list them.)
func (s *Schema) admit(ctx context.Context, obj map[string]any) (p *v1alpha1.ClusterImagePolicy, deferred bool, err error) {
	name := ""
	if md, ok := obj["metadata"].(map[string]any); ok {
		name, _ = md["name"].(string)
	}
	structuraldefaulting.Default(obj, s.structural)
	errs := validation.ValidateCustomResource(nil, obj, s.validator)
	schemaValid := len(errs) == 0
	if name == "" {
		if schemaValid {
			errs = append(errs, s.celErrors(ctx, obj)...)
		}
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "a policy needs a name"))
	}
	if len(errs) > 0 {
		return nil, false, &InvalidError{Name: name, Errs: errs}
	}
	p = &v1alpha1.ClusterImagePolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, p, true); err != nil {
		// Unknown fields: kubectl's default strict validation refuses them
		// too, after the CEL rules.
		if celErrs := s.celErrors(ctx, obj); len(celErrs) > 0 {
			return nil, false, &InvalidError{Name: name, Errs: celErrs}
		}
		return nil, false, &InvalidError{Name: name, Detail: err.Error()}
	}
	return p, true, nil
}

// celErrors are obj's violations of the CRD's CEL rules.
func (s *Schema) celErrors(ctx context.Context, obj map[string]any) field.ErrorList {
	errs, _ := s.cel().Validate(ctx, nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return errs
}

// DecodeBytes is Decode over a byte slice.
func (s *Schema) DecodeBytes(ctx context.Context, source string, b []byte) ([]*v1alpha1.ClusterImagePolicy, error) {
	return s.Decode(ctx, source, bytes.NewReader(b))
}
