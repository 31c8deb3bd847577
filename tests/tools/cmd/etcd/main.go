// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3
// module pinned in ../../go.mod. It is equivalent to upstream's etcd binary
// (go.etcd.io/etcd/v3 main.go just calls etcdmain.Main as well).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
