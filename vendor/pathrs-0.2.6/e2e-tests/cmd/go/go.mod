module pathrs-cmd

go 1.24.0

require (
	cyphar.com/go-pathrs v0.2.0
	github.com/urfave/cli/v3 v3.11.0
	golang.org/x/sys v0.41.0
)

replace cyphar.com/go-pathrs => ../../../go-pathrs
