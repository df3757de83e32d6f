package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// askOnTerminal asks for a password on the controlling terminal (not on
// stdin or stdout, which may be redirected), with echo off. Without a
// terminal it fails at once: it never waits on a pipe or on nothing.
func askOnTerminal(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("no terminal to ask for the password on")
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return "", errors.New("no terminal to ask for the password on")
	}
	restore, err := echoOff(int(tty.Fd()))
	if err != nil {
		return "", fmt.Errorf("turning the terminal's echo off: %w", err)
	}
	defer restore()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimSuffix(string(b), "\r"), nil
}
