//go:build !linux

package main

// echoOff does nothing here: term.ReadPassword turns echo off once the
// prompt is shown.
func echoOff(int) (func(), error) { return func() {}, nil }
