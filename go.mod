module github.com/moecheck/moecheck

go 1.26

require github.com/x448/float16 v0.8.4

require (
	github.com/leanovate/gopter v0.2.11 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
