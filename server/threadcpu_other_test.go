//go:build !linux

package server

import "time"

// threadCPU is not measured here: it returns 0.
func threadCPU() time.Duration { return 0 }
