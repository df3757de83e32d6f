// Package latency puts a TCP proxy that adds a fixed delay in each direction
// in front of every host, so that the tools can be measured as on a real
// network instead of loopback. It uses toxiproxy as a library
// (github.com/Shopify/toxiproxy/v2): one proxy per host, listening on
// 127.0.0.1, with a "latency" toxic on both the upstream (client to server)
// and the downstream stream. Data is delayed, not serialised: chunks keep
// flowing while earlier ones wait.
package latency

import (
	"context"
	"fmt"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxies are running delay proxies, one per upstream address.
type Proxies struct {
	list  []*toxiproxy.Proxy
	addrs map[string]string // upstream → 127.0.0.1:port
}

// Start starts one proxy per upstream address ("host:port"), each adding
// delay to every byte in each direction (so 2×delay to a round trip).
func Start(ctx context.Context, upstreams []string, delay time.Duration) (*Proxies, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := &Proxies{addrs: map[string]string{}}
	for i, up := range upstreams {
		if ctx.Err() != nil {
			p.Stop()
			return nil, ctx.Err()
		}
		px := toxiproxy.NewProxy(server, fmt.Sprintf("host%d", i), "127.0.0.1:0", up)
		if err := px.Start(); err != nil {
			p.Stop()
			return nil, fmt.Errorf("delay proxy for %s: %w", up, err)
		}
		p.list = append(p.list, px)
		for _, stream := range []string{"upstream", "downstream"} {
			toxic := fmt.Sprintf(`{"name":"delay_%s","type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":0}}`,
				stream, stream, delay.Milliseconds())
			if _, err := px.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
				p.Stop()
				return nil, fmt.Errorf("delay proxy for %s: %s toxic: %w", up, stream, err)
			}
		}
		p.addrs[up] = px.Listen
	}
	return p, nil
}

// Addr is the proxy's listening address for an upstream ("127.0.0.1:port").
func (p *Proxies) Addr(upstream string) (string, bool) {
	a, ok := p.addrs[upstream]
	return a, ok
}

// Stop closes every proxy and its connections.
func (p *Proxies) Stop() {
	for _, px := range p.list {
		px.Stop()
	}
	p.list = nil
}
