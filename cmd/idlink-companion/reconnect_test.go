package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// cutProxy forwards TCP connections to target and can cut every open one
// at once, as a replica dying or a load balancer dropping them would.
type cutProxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	open     map[net.Conn]net.Conn
	accepted int
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, open: map[net.Conn]net.Conn{}}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.open[c] = up
			p.accepted++
			p.mu.Unlock()
			go func() {
				_, _ = io.Copy(up, c)
				_ = up.Close()
			}()
			go func() {
				_, _ = io.Copy(c, up)
				_ = c.Close()
				p.mu.Lock()
				delete(p.open, c)
				p.mu.Unlock()
			}()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, up := range p.open {
		_ = c.Close()
		_ = up.Close()
	}
}

func (p *cutProxy) counts() (open, accepted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open), p.accepted
}

// progress keeps the last progress line load printed.
type progress struct {
	mu   sync.Mutex
	last string
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if line := strings.TrimSpace(string(b)); line != "" {
		p.last = line
	}
	return len(b), nil
}

func (p *progress) has(parts ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		if !strings.Contains(p.last, part) {
			return false
		}
	}
	return true
}

// Sockets cut in the middle of a run come back: load reconnects each with
// back-off and reports the disconnections and the reconnections.
func TestLoadReconnects(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	const n = 4
	devices := seedForTest(t, s, n)
	proxy := newCutProxy(t, strings.TrimPrefix(s.URL, "http://"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	prog := &progress{}
	done := make(chan error, 1)
	go func() {
		done <- runLoad(ctx, loadOptions{Devices: devices, URLs: []string{"http://" + proxy.ln.Addr().String()},
			Hold: 10 * time.Minute, Concurrency: n, Answer: "none", Reconnect: true,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			Every: 10 * time.Millisecond, Progress: prog}, &out)
	}()
	require.Eventually(t, func() bool { return prog.has(" connected=4 open=4 ") }, time.Minute, 10*time.Millisecond)
	proxy.cut()
	require.Eventually(t, func() bool { return prog.has(" open=4 ", " reconnected=4 ") }, time.Minute, 10*time.Millisecond,
		"every socket reconnected")
	cancel()
	require.NoError(t, <-done)

	var rep loadReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.Equal(t, n, rep.Connected)
	require.Equal(t, n, rep.Reconnects)
	require.Equal(t, n, rep.Open, "every socket open again at the end")
	total := 0
	for _, v := range rep.Disconnects {
		total += v
	}
	require.Equal(t, n, total, rep.Disconnects)
	_, accepted := proxy.counts()
	require.Equal(t, 2*n, accepted)
}
