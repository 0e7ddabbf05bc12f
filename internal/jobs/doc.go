// Package jobs runs indexed work on several goroutines and hands the results back in index
// order, for the commands that check a list of fixed cases concurrently (moecheck replay).
// The random-case runner has its own scheduler (props.RunConfig.Jobs), which also handles
// shards, time budgets and shrinking.
package jobs
