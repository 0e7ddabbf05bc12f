// Package casetest is test support for the setup most of moecheck's tests share: a random case
// (moe.RandomRouting, then moe.Generate), its run on a fresh gpu/sim backend, and an unsplit
// layer with its expert-parallel rank cases (Split), each step failing the test with a message
// that names the step, the config and the seeds.
//
// It imports moe, gpu, gpu/sim and internal/epsplit, so the internal tests of those packages (and of what
// gpu/sim imports) cannot use it; everything above them can. Only tests import it.
package casetest
