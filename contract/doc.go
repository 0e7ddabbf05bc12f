// Package contract describes what a path under test may legitimately do and what it
// promises: a Contract. The path of docs/path.md fixes every rounding point; real
// implementations (PyTorch eager ops, other kernels) make other legal choices — a silu
// rounded to the dtype before the product, a K-slot combine by atomic adds in the dtype — and
// the oracle must judge them fairly. A Contract lists, per stage, which choices are allowed
// (its rounding freedoms) and which results are promised bitwise (its promises); the oracle
// (package oracle) derives its enclosures from it. docs/oracle.md §9 derives the bounds.
//
// This package holds data only (no bound logic), so that backends (package gpu and below)
// can name the contract they conform to without importing the oracle.
//
// Built in: Exact (docs/path.md as written: the default, gpu/sim and gpu/cuda), Torch (the
// choices of PyTorch eager ops and torch._grouped_mm as transformers' grouped_mm experts path
// uses them) and Any (every stage may round either way, every reduction runs in any order).
package contract
