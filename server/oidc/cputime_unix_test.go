//go:build unix

package oidc

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system, every thread) the process has
// used: on a shared machine it measures work where wall time measures
// waiting too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
