// Command apicount counts the exported identifiers of a module's importable packages: packages not
// under internal/, not main, test files excluded. Counted: exported top-level consts, vars,
// funcs, types, methods with exported names on exported types, and exported fields of
// exported struct types.
//
// Usage: go run ./internal/tools/apicount DIR (docs/CONTRIBUTING.md, "Counting the public API").
package main
