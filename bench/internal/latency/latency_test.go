package latency

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

func TestProxyAddsDelayEachWay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	const delay = 40 * time.Millisecond
	px, err := Start(context.Background(), []string{ln.Addr().String()}, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Stop()
	addr, ok := px.Addr(ln.Addr().String())
	if !ok {
		t.Fatal("no proxy for the upstream")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("round trip %v, want at least %v (the delay each way)", rtt, 2*delay)
	}
	if string(buf) != "ping" {
		t.Fatalf("echo %q", buf)
	}
}
