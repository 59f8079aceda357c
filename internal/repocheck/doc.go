// Package repocheck holds tests of the repository itself: what git tracks.
package repocheck
