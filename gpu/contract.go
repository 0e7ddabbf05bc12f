package gpu

import "github.com/moecheck/moecheck/contract"

// ContractDeclarer is implemented by a backend that declares the path contract it conforms
// to (package contract): the rounding freedoms the oracle must allow it and the promises it
// makes. A backend that does not implement it conforms to the exact contract (docs/path.md as
// written).
type ContractDeclarer interface {
	Contract() contract.Contract
}

// ContractOf returns the contract b declares, or contract.Exact() when it declares none.
func ContractOf(b Backend) contract.Contract {
	if d, ok := b.(ContractDeclarer); ok {
		return d.Contract()
	}
	return contract.Exact()
}
