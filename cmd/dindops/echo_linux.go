package main

import "golang.org/x/sys/unix"

// echoOff turns the terminal's echo off before the prompt is printed, as
// sudo and OpenSSH's readpassphrase(3) do, so that a password typed as soon
// as the prompt shows (or typed ahead) is never echoed. term.ReadPassword
// turns echo off too, but only once the prompt is already on the screen.
// restore puts the terminal back as it was.
func echoOff(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
