// Package depcheck holds only a test: it keeps Signet's dependencies
// flowing one way (see the layout in README.md), so that the policy domain
// stays testable without a cluster or AWS, and admission never talks to AWS.
package depcheck
