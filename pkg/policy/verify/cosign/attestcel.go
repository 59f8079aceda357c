package cosign

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
)

// StaticCostLimit is the most a condition's estimated worst-case cost may
// be: Kubernetes' limit for one CRD validation rule
// (apiextensions-apiserver's StaticEstimatedCostLimit). At run time a
// condition gets Kubernetes' per-call limit, celconfig.PerCallLimit, which
// the base environment sets.
const StaticCostLimit = 10_000_000

// Variables a condition sees.
const (
	varPredicate = "predicate"
	varStatement = "statement"
)

// condition is one compiled CEL condition.
type condition struct {
	expr string
	prg  cel.Program
}

// conditionEnv is Kubernetes' base CEL environment (its libraries, cost
// tracking and per-call limit) with the two variables.
func conditionEnv() (*cel.Env, error) {
	envs, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions: []cel.EnvOption{
			cel.Variable(varPredicate, cel.DynType),
			cel.Variable(varStatement, cel.MapType(cel.StringType, cel.DynType)),
		},
	})
	if err != nil {
		return nil, err
	}
	return envs.Env(environment.NewExpressions)
}

// compileCondition compiles expr and bounds its cost. maxBytes is the
// largest statement Signet reads (the envelope limit): the worst-case
// estimate assumes every list, map and string reachable from the
// variables is as large as that many bytes of JSON allows.
func compileCondition(expr string, maxBytes int64) (*condition, error) {
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if t := ast.OutputType(); !t.IsAssignableType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to a bool, not %s", t)
	}
	est, err := env.EstimateCost(ast, &library.CostEstimator{SizeEstimator: sizeEstimator{maxBytes: uint64(maxBytes)}})
	if err != nil {
		return nil, err
	}
	if est.Max > StaticCostLimit {
		return nil, fmt.Errorf("estimated cost %d exceeds Kubernetes' per-expression limit %d (worst case over a %d-byte statement): avoid nesting loops over lists of the predicate that are not each other's elements",
			est.Max, StaticCostLimit, maxBytes)
	}
	prg, err := env.Program(ast, cel.CostLimit(celconfig.PerCallLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, err
	}
	return &condition{expr: expr, prg: prg}, nil
}

// eval runs the condition over one statement.
func (c *condition) eval(ctx context.Context, predicate any, statement map[string]any) (bool, error) {
	out, _, err := c.prg.ContextEval(ctx, map[string]any{varPredicate: predicate, varStatement: statement})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("evaluated to %v (%s), not a bool", out.Value(), out.Type().TypeName())
	}
	return b, nil
}

// sizeEstimator bounds the sizes the cost estimate assumes. JSON of n
// bytes holds at most n/2 list items or map entries and n characters.
// What is reached through a comprehension's items (a path through
// "@items", "@keys" or "@values") is one element's part of the same n
// bytes: summed over the elements it is bounded as a whole, so the estimator
// sizes it 1 per element, and the outer list carries the total. A loop
// over the predicate's lists nested in another loop over them (a cross
// product) is estimated at its real worst case, and refused.
type sizeEstimator struct{ maxBytes uint64 }

func (s sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 || (path[0] != varPredicate && path[0] != varStatement) {
		return nil
	}
	for _, p := range path[1:] {
		if strings.HasPrefix(p, "@") {
			return &checker.SizeEstimate{Min: 0, Max: 1}
		}
	}
	return &checker.SizeEstimate{Min: 0, Max: s.maxBytes / 2}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
