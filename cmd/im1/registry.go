package main

import (
	"github.com/im1dev/im1/providers"
	reg "github.com/im1dev/im1/providers/registry"
)

// registry wires every block type to its provider, fresh for each run.
func registry() providers.Registry { return reg.New() }
