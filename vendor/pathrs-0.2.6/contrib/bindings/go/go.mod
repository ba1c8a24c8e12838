// Hosted at <https://github.com/cyphar/libpathrs>.
module cyphar.com/go-pathrs

go 1.18

require golang.org/x/sys v0.26.0
