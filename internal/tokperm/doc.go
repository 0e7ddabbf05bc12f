// Package tokperm permutes a case's tokens: the one construction of the token-permuted case
// that props' token-permutation property checks and that the oracle's derived verdict
// (oracle.Options.Derive, docs/oracle.md §11) is tested against. Module internal: not part
// of the public API.
package tokperm
