// Package phase writes a timeline of a long computation's phases: for each phase its wall
// time, the process's CPU time (user + system) over it, and their ratio, the cores it kept
// busy on average. A phase whose ratio stays near 1 on a machine with many cores is serial.
// The oracle, the properties and the CLI use it when asked (MOECHECK_TRACE); a nil *Timeline
// writes nothing and costs one comparison per phase.
package phase
