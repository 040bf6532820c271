package main

import (
	"context"
	"errors"
	"io"
)

// Subcommands for profiling.
const (
	cmdServeSink = "serve-sink"
	cmdProfile   = "profile"
)

func serveSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}

func profile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
