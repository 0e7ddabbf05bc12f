// Command hostile is a misbehaving moecheck worker for internal/worker's tests: its one argument
// names the misbehaviour (see the switch in main.go; lanes-* modes in lanes.go serve lanes of
// gpu/sim and misbehave on one case only). It is built by the tests, never installed.
package main
