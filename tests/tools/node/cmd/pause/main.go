// pause: the sandbox (infra) container's process, as upstream's build/pause/linux/pause.c
// does it: sleep until SIGINT or SIGTERM, exit 0, and reap any child re-parented to it
// (it is PID 1 of the pod's PID namespace when the pod shares one).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
