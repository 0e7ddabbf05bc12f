// Package par splits a loop over goroutines in ranges large enough to pay for them, with
// dynamic scheduling and no allocation when it stays serial. The CPU model of the path
// (gpu/sim) and the float64 reference share it; both keep each output element's operations
// and their order independent of the split, so their results are bitwise the same on one
// goroutine or many.
package par
