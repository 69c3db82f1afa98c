package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/idlink/idlink/push"
)

// maxSocketsPerProc keeps one load process under a 20,000 open-files
// limit with room for HTTP connections.
const maxSocketsPerProc = 6000

// seeded is one element of "idlink dev seed-devices" output: a phone's
// state and its account.
type seeded struct {
	st        *state
	accountID string
}

// loadSeeded reads the JSON array written by "idlink dev seed-devices"
// (states in the state file's format, plus account_id), elements from
// index from, at most count of them (count <= 0: all).
func loadSeeded(path string, from, count int) ([]seeded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("devices %s: not a JSON array: %w", path, err)
	}
	if from < 0 || from > len(raw) {
		return nil, fmt.Errorf("devices %s: -from %d is outside 0..%d", path, from, len(raw))
	}
	raw = raw[from:]
	if count > 0 && count < len(raw) {
		raw = raw[:count]
	}
	out := make([]seeded, 0, len(raw))
	for i, r := range raw {
		var extra struct {
			AccountID string `json:"account_id"`
		}
		st := &state{}
		if err := json.Unmarshal(r, st); err != nil {
			return nil, fmt.Errorf("devices %s[%d]: %w", path, from+i, err)
		}
		if err := json.Unmarshal(r, &extra); err != nil {
			return nil, fmt.Errorf("devices %s[%d]: %w", path, from+i, err)
		}
		if err := st.parseKey(); err != nil {
			return nil, fmt.Errorf("devices %s[%d]: %w", path, from+i, err)
		}
		out = append(out, seeded{st: st, accountID: extra.AccountID})
	}
	return out, nil
}

// parseKey reads the device key from its PEM and checks the state is an
// enrolled phone.
func (st *state) parseKey() error {
	block, _ := pem.Decode([]byte(st.DeviceKeyPEM))
	if block == nil {
		return errors.New("no device key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("device key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || st.DeviceID == "" || st.Credential.Key == nil {
		return errors.New("not an enrolled phone")
	}
	st.deviceKey = ec
	return nil
}

// loadOptions are the flags of load.
type loadOptions struct {
	Devices     string
	From, Count int
	URLs        []string
	// APIURLs, when set, are where answers go for sockets connected to
	// URLs[i] (a replica whose stream has a listener of its own).
	APIURLs     []string
	SourceIPs   []string
	Concurrency int
	Answer      string
	ServerPID   int
	BenchRate   int
	BenchURL    string
	ClientName  string
	Hold        time.Duration
	Procs       int
	// Reconnect: a socket that closes is opened again with back-off
	// (MinBackoff doubling up to MaxBackoff, with jitter), as the app does.
	Reconnect              bool
	MinBackoff, MaxBackoff time.Duration
	// Child: a process started by -procs; it reports with raw samples,
	// says when it is connected and waits for "go" on stdin before the
	// benchmark.
	Child bool
	// Every is how often a progress line is printed (to Progress).
	Every    time.Duration
	Progress io.Writer
	Stdin    io.Reader
}

// latency summarises latencies in milliseconds.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func summarise(ms []float64) latency {
	if len(ms) == 0 {
		return latency{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	at := func(q float64) float64 { return round3(s[int(math.Ceil(q*float64(len(s))))-1]) }
	return latency{Count: len(s), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: round3(s[len(s)-1])}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// loadReport is what load prints as JSON.
type loadReport struct {
	Procs             int            `json:"procs"`
	Devices           int            `json:"devices"`
	Connected         int            `json:"sockets_connected"`
	Open              int            `json:"sockets_open"`
	ConnectSeconds    float64        `json:"connect_seconds"`
	ConnectsPerSecond float64        `json:"connects_per_second"`
	Failures          map[string]int `json:"connect_failures"`
	Disconnects       map[string]int `json:"disconnects"`
	Reconnects        int            `json:"reconnects"`
	ReconnectFailures map[string]int `json:"reconnect_failures"`
	ServerRSSBeforeKB int64          `json:"server_rss_before_kb,omitempty"`
	ServerRSSAfterKB  int64          `json:"server_rss_after_kb,omitempty"`
	RSSPerSocketKB    float64        `json:"server_rss_per_socket_kb,omitempty"`
	BenchCreated      int            `json:"bench_created"`
	BenchErrors       map[string]int `json:"bench_errors"`
	Received          int            `json:"requests_received"`
	Delivery          latency        `json:"delivery_latency_ms"`
	Answers           map[string]int `json:"answers"`
	AnswerLatency     latency        `json:"answer_latency_ms"`
	// Raw samples, exchanged between a -procs parent and its children.
	DeliverySamples []float64 `json:"delivery_samples_ms,omitempty"`
	AnswerSamples   []float64 `json:"answer_samples_ms,omitempty"`
}

// loadRun is one load process's counters.
type loadRun struct {
	o       loadOptions
	dialer  *websocket.Dialer
	client  *http.Client
	numbers *numbers

	connected, open, received atomic.Int64
	created, reconnects       atomic.Int64
	mu                        sync.Mutex
	failures, disconnects     map[string]int
	reconnectFailures         map[string]int
	benchErrors, answers      map[string]int
	delivery, answerLat       []float64
	wg                        sync.WaitGroup
	conns                     []*websocket.Conn
}

func (r *loadRun) count(m map[string]int, key string) {
	r.mu.Lock()
	m[key]++
	r.mu.Unlock()
}

// numbers are the numbers the "browsers" show, by request id, as the
// benchmark endpoint reports them; a device that gets its request first
// waits for its number.
type numbers struct {
	mu sync.Mutex
	m  map[string]*numberSlot
}

type numberSlot struct {
	n     int
	ready chan struct{}
}

func (ns *numbers) slot(id string) *numberSlot {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	s := ns.m[id]
	if s == nil {
		s = &numberSlot{ready: make(chan struct{})}
		ns.m[id] = s
	}
	return s
}

func (ns *numbers) set(id string, n int) {
	s := ns.slot(id)
	s.n = n
	close(s.ready)
}

func (ns *numbers) wait(ctx context.Context, id string, d time.Duration) (int, bool) {
	s := ns.slot(id)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ready:
		ns.mu.Lock()
		delete(ns.m, id)
		ns.mu.Unlock()
		return s.n, true
	case <-t.C:
	case <-ctx.Done():
	}
	return 0, false
}

// roundRobinDial dials from the source addresses in turn (nil: the
// system's choice).
func roundRobinDial(ips []string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	var local []net.Addr
	for _, ip := range ips {
		a := net.ParseIP(strings.TrimSpace(ip))
		if a == nil {
			return nil, fmt.Errorf("-source-ips: %q is not an IP address", ip)
		}
		local = append(local, &net.TCPAddr{IP: a})
	}
	var next atomic.Uint64
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 15 * time.Second}
		if len(local) > 0 {
			d.LocalAddr = local[int(next.Add(1)-1)%len(local)]
		}
		return d.DialContext(ctx, network, addr)
	}, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

// serverRSS returns the resident set of process pid in kB (Linux).
func serverRSS(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// failureReason names a connection failure for the report.
func failureReason(err error) string {
	var ue *upgradeError
	var ne net.Error
	switch {
	case errors.Is(err, errDeviceGone):
		return "device_gone"
	case errors.As(err, &ue):
		return fmt.Sprintf("http_%d_%s", ue.status, ue.code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address_not_available"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return "other: " + msg
}

// runLoad runs load: directly, or as the parent of -procs children.
func runLoad(ctx context.Context, o loadOptions, stdout io.Writer) error {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	switch o.Answer {
	case "none", push.DecisionDeny, push.DecisionApprove:
	default:
		return fmt.Errorf("%w: -answer must be none, deny or approve", errUsage)
	}
	if o.Answer == push.DecisionApprove && o.BenchRate <= 0 {
		return fmt.Errorf("%w: -answer approve needs -bench-rate: the numbers come from the benchmark endpoint", errUsage)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintf(o.Progress, "could not raise the open-files limit: %v\n", err)
	}
	devs, err := loadSeeded(o.Devices, o.From, o.Count)
	if err != nil {
		return err
	}
	if len(devs) == 0 {
		return errors.New("no devices to load")
	}
	if o.BenchURL == "" {
		o.BenchURL = devs[0].st.URL
	}
	if o.Procs > 1 && !o.Child {
		return loadParent(ctx, o, len(devs), stdout)
	}
	if len(devs) > maxSocketsPerProc {
		fmt.Fprintf(o.Progress, "warning: %d sockets in one process; use -procs to keep each under %d\n", len(devs), maxSocketsPerProc)
	}
	rep, err := loadOne(ctx, o, devs, stdout)
	if err != nil {
		return err
	}
	if o.Child {
		b, _ := json.Marshal(map[string]any{"event": "report", "report": rep})
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	rep.DeliverySamples, rep.AnswerSamples = nil, nil
	return printJSON(stdout, rep)
}

// loadOne holds the sockets of devs and runs the benchmark in this
// process. A child says on stdout when it is connected.
func loadOne(ctx context.Context, o loadOptions, devs []seeded, stdout io.Writer) (*loadReport, error) {
	r, err := newLoadRun(o, len(devs))
	if err != nil {
		return nil, err
	}
	// Readers waiting for a number stop when the run ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rep := &loadReport{Procs: 1, Devices: len(devs)}
	rep.ServerRSSBeforeKB = serverRSS(o.ServerPID)

	stopProgress := r.progress(ctx)
	defer stopProgress()

	began := time.Now()
	r.connectAll(ctx, devs)
	rep.ConnectSeconds = round3(time.Since(began).Seconds())
	rep.Connected = int(r.connected.Load())
	if rep.ConnectSeconds > 0 {
		rep.ConnectsPerSecond = round3(float64(rep.Connected) / rep.ConnectSeconds)
	}

	if err := r.afterConnect(rep, stdout); err != nil {
		return nil, err
	}
	if o.BenchRate > 0 && ctx.Err() == nil {
		if err := r.bench(ctx, r.connectedAccounts(devs)); err != nil {
			r.count(r.benchErrors, failureReason(err))
		}
	}
	r.hold(ctx)
	rep.Open = int(r.open.Load())
	cancel()
	r.closeAll()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fillReport(rep)
	return rep, nil
}

// newLoadRun prepares the dialer, HTTP client and counters of a run
// holding n sockets.
func newLoadRun(o loadOptions, n int) (*loadRun, error) {
	dial, err := roundRobinDial(o.SourceIPs)
	if err != nil {
		return nil, err
	}
	return &loadRun{
		o: o, numbers: &numbers{m: map[string]*numberSlot{}},
		dialer:   &websocket.Dialer{NetDialContext: dial, HandshakeTimeout: 20 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 512},
		client:   &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512}},
		failures: map[string]int{}, disconnects: map[string]int{}, benchErrors: map[string]int{}, answers: map[string]int{},
		reconnectFailures: map[string]int{}, conns: make([]*websocket.Conn, n),
	}, nil
}

// connectAll opens the sockets of devs, -concurrency at a time, until
// all are tried or ctx ends.
func (r *loadRun) connectAll(ctx context.Context, devs []seeded) {
	idx := make(chan int)
	var cw sync.WaitGroup
	for range r.o.Concurrency {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := range idx {
				r.connect(ctx, i, devs[i].st)
			}
		}()
	}
	for i := range devs {
		if ctx.Err() != nil {
			break
		}
		idx <- i
	}
	close(idx)
	cw.Wait()
}

// connect opens device i's socket, counting a failure, and starts
// reading it if the run keeps it.
func (r *loadRun) connect(ctx context.Context, i int, st *state) {
	base := st.URL
	if len(r.o.URLs) > 0 {
		base = r.o.URLs[i%len(r.o.URLs)]
	}
	conn, err := dialStream(ctx, r.dialer, st, base)
	if err != nil {
		r.count(r.failures, failureReason(err))
		return
	}
	if !r.keep(ctx, i, conn) {
		return
	}
	r.connected.Add(1)
	r.open.Add(1)
	r.wg.Add(1)
	api := base
	if len(r.o.APIURLs) > 0 {
		api = r.o.APIURLs[i%len(r.o.APIURLs)]
	}
	go r.read(ctx, i, conn, st, base, api)
}

// afterConnect, in a child, tells the parent the sockets are connected
// and waits for its "go"; otherwise it measures the server's RSS.
func (r *loadRun) afterConnect(rep *loadReport, stdout io.Writer) error {
	if r.o.Child {
		// Tell the parent, and wait until every child is connected.
		fmt.Fprintln(stdout, `{"event":"connected"}`)
		line, _ := bufio.NewReader(r.o.Stdin).ReadString('\n')
		if strings.TrimSpace(line) != "go" {
			return errors.New("the parent process went away")
		}
		return nil
	}
	time.Sleep(200 * time.Millisecond) // let the server settle
	rep.ServerRSSAfterKB = serverRSS(r.o.ServerPID)
	if rep.ServerRSSAfterKB > 0 && rep.Connected > 0 {
		rep.RSSPerSocketKB = round3(float64(rep.ServerRSSAfterKB-rep.ServerRSSBeforeKB) / float64(rep.Connected))
	}
	return nil
}

// connectedAccounts are the accounts of the devices of devs whose
// sockets are open, for the benchmark to send requests to.
func (r *loadRun) connectedAccounts(devs []seeded) []string {
	ids := make([]string, 0, len(devs))
	r.mu.Lock()
	for i, d := range devs {
		if r.conns[i] != nil && d.accountID != "" {
			ids = append(ids, d.accountID)
		}
	}
	r.mu.Unlock()
	return ids
}

// hold keeps the sockets until every request created has been received
// (and answered), or -hold has passed, or ctx ends.
func (r *loadRun) hold(ctx context.Context) {
	deadline := time.Now().Add(r.o.Hold)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		r.mu.Lock()
		answered := 0
		for _, n := range r.answers {
			answered += n
		}
		r.mu.Unlock()
		created := r.created.Load()
		if created > 0 && r.received.Load() >= created && (r.o.Answer == "none" || int64(answered) >= created) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closeAll closes every socket still kept, saying the load test is over.
func (r *loadRun) closeAll() {
	r.mu.Lock()
	for _, c := range r.conns {
		if c != nil {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "load test over"), time.Now().Add(time.Second))
			_ = c.Close()
		}
	}
	r.mu.Unlock()
}

// fillReport copies the run's counters and samples into rep; the caller
// holds r.mu.
func (r *loadRun) fillReport(rep *loadReport) {
	rep.Failures, rep.Disconnects, rep.BenchErrors, rep.Answers = r.failures, r.disconnects, r.benchErrors, r.answers
	rep.Reconnects, rep.ReconnectFailures = int(r.reconnects.Load()), r.reconnectFailures
	rep.BenchCreated = int(r.created.Load())
	rep.Received = int(r.received.Load())
	rep.Delivery, rep.AnswerLatency = summarise(r.delivery), summarise(r.answerLat)
	rep.DeliverySamples, rep.AnswerSamples = r.delivery, r.answerLat
}

// progress prints a line every o.Every until the returned function is
// called.
func (r *loadRun) progress(ctx context.Context) func() {
	done := make(chan struct{})
	began := time.Now()
	go func() {
		t := time.NewTicker(r.o.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.mu.Lock()
				failed := 0
				for _, n := range r.failures {
					failed += n
				}
				r.mu.Unlock()
				fmt.Fprintf(r.o.Progress, "%5.0fs connected=%d open=%d failed=%d reconnected=%d created=%d received=%d\n",
					time.Since(began).Seconds(), r.connected.Load(), r.open.Load(), failed, r.reconnects.Load(), r.created.Load(), r.received.Load())
			}
		}
	}()
	return func() { close(done) }
}

// keep records device i's socket for closing at the end of the run; it
// refuses (and closes) a socket that opened after the run ended.
func (r *loadRun) keep(ctx context.Context, i int, conn *websocket.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		_ = conn.Close()
		return false
	}
	r.conns[i] = conn
	return true
}

// redial opens device i's socket again after it closed, with back-off,
// until it succeeds, the device is gone or the run ends.
func (r *loadRun) redial(ctx context.Context, i int, st *state, streamURL string) (*websocket.Conn, bool) {
	bo := &backoff{min: r.o.MinBackoff, max: r.o.MaxBackoff}
	for {
		t := time.NewTimer(bo.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		conn, err := dialStream(ctx, r.dialer, st, streamURL)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false
			}
			r.count(r.reconnectFailures, failureReason(err))
			if errors.Is(err, errDeviceGone) {
				return nil, false
			}
			continue
		}
		if !r.keep(ctx, i, conn) {
			return nil, false
		}
		r.reconnects.Add(1)
		return conn, true
	}
}

// read is a socket's only goroutine: it reads (which answers pings),
// acknowledges requests, records their delivery latency and answers them.
// When the socket closes under it (a replica going away, a proxy cutting
// it) it reconnects with back-off, unless told not to (-reconnect=false)
// or the device was removed (1008).
func (r *loadRun) read(ctx context.Context, i int, conn *websocket.Conn, st *state, streamURL, base string) {
	defer r.wg.Done()
	var last string
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			r.open.Add(-1)
			if ctx.Err() != nil {
				return
			}
			var ce *websocket.CloseError
			reason := "read_error"
			if errors.As(err, &ce) {
				reason = fmt.Sprintf("close_%d", ce.Code)
			}
			if !(errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure) && !errors.Is(err, net.ErrClosed) {
				r.count(r.disconnects, reason)
			}
			if !r.o.Reconnect || (errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation) || errors.Is(err, net.ErrClosed) {
				return
			}
			next, ok := r.redial(ctx, i, st, streamURL)
			if !ok {
				return
			}
			conn = next
			r.open.Add(1)
			continue
		}
		got := time.Now()
		var m push.Message
		if json.Unmarshal(data, &m) != nil || m.Type != push.MsgApprovalRequest || m.Approval == nil {
			continue
		}
		v := *m.Approval
		ack, _ := json.Marshal(push.Message{Type: push.MsgAck, ID: v.ID})
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = conn.WriteMessage(websocket.TextMessage, ack)
		if v.ID == last {
			continue // sent again (resync)
		}
		last = v.ID
		r.received.Add(1)
		r.mu.Lock()
		r.delivery = append(r.delivery, float64(got.Sub(v.CreatedAt).Microseconds())/1000)
		r.mu.Unlock()
		if r.o.Answer == "none" {
			continue
		}
		number := 0
		if r.o.Answer == push.DecisionApprove {
			n, ok := r.numbers.wait(ctx, v.ID, 30*time.Second)
			if !ok {
				r.count(r.answers, "number_unknown")
				continue
			}
			number = n
		}
		sent := time.Now()
		status, err := answerApproval(ctx, r.client, st, base, v, r.o.Answer, number)
		took := float64(time.Since(sent).Microseconds()) / 1000
		if err != nil {
			r.count(r.answers, "error: "+shortError(err))
			continue
		}
		r.mu.Lock()
		r.answers[status]++
		r.answerLat = append(r.answerLat, took)
		r.mu.Unlock()
	}
}

func shortError(err error) string {
	msg := err.Error()
	// "POST http://…/answer: HTTP 409: approval_closed: …" → "HTTP 409: approval_closed"
	if i := strings.Index(msg, "HTTP "); i >= 0 {
		msg = msg[i:]
		if parts := strings.SplitN(msg, ": ", 3); len(parts) >= 2 {
			msg = parts[0] + ": " + parts[1]
		}
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return msg
}

// bench asks the benchmark endpoint to create a request for each account
// at -bench-rate, and records the numbers it reports.
func (r *loadRun) bench(ctx context.Context, accountIDs []string) error {
	if len(accountIDs) == 0 {
		return nil
	}
	body, _ := json.Marshal(map[string]any{"account_ids": accountIDs, "rate": r.o.BenchRate, "client_name": r.o.ClientName})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(r.o.BenchURL, "/")+"/dev/push/bench", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: r.client.Transport} // no timeout: it streams
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("benchmark endpoint: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l struct {
			ID     string `json:"id"`
			Number int    `json:"number"`
			Error  string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Error != "" {
			r.count(r.benchErrors, l.Error)
			continue
		}
		r.created.Add(1)
		r.numbers.set(l.ID, l.Number)
	}
	return sc.Err()
}

// childArgs are the flags of a child process holding count devices from
// from, creating requests at rate.
func (o loadOptions) childArgs(from, count, rate int) []string {
	args := []string{"load", "-child", "-devices", o.Devices, "-from", strconv.Itoa(from), "-count", strconv.Itoa(count),
		"-urls", strings.Join(o.URLs, ","), "-concurrency", strconv.Itoa(max(1, o.Concurrency/o.Procs)),
		"-answer", o.Answer, "-hold", o.Hold.String(), "-report-every", o.Every.String(), "-client-name", o.ClientName,
		"-reconnect=" + strconv.FormatBool(o.Reconnect), "-min-backoff", o.MinBackoff.String(), "-max-backoff", o.MaxBackoff.String()}
	if len(o.SourceIPs) > 0 {
		args = append(args, "-source-ips", strings.Join(o.SourceIPs, ","))
	}
	if len(o.APIURLs) > 0 {
		args = append(args, "-api-urls", strings.Join(o.APIURLs, ","))
	}
	if o.BenchRate > 0 {
		args = append(args, "-bench-rate", strconv.Itoa(rate), "-bench-url", o.BenchURL)
	}
	return args
}

// loadParent re-executes this program o.Procs times with disjoint slices
// of the devices, starts their benchmarks together once every child is
// connected, and merges their reports.
func loadParent(ctx context.Context, o loadOptions, total int, stdout io.Writer) error {
	per := (total + o.Procs - 1) / o.Procs
	if per > maxSocketsPerProc {
		return fmt.Errorf("%w: %d devices in %d processes is %d sockets each; use -procs %d or more", errUsage,
			total, o.Procs, per, (total+maxSocketsPerProc-1)/maxSocketsPerProc)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	rssBefore := serverRSS(o.ServerPID)
	children, err := o.startChildren(ctx, exe, total, per)
	defer func() {
		for _, c := range children {
			_ = c.stdin.Close()
			_ = c.cmd.Wait()
		}
	}()
	if err != nil {
		return err
	}
	if err := waitConnected(children); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	rssAfter := serverRSS(o.ServerPID)
	for _, c := range children {
		if c.report == nil {
			_, _ = io.WriteString(c.stdin, "go\n")
		}
	}
	merged := &loadReport{Procs: len(children), Failures: map[string]int{}, Disconnects: map[string]int{}, ReconnectFailures: map[string]int{},
		BenchErrors: map[string]int{}, Answers: map[string]int{}, ServerRSSBeforeKB: rssBefore, ServerRSSAfterKB: rssAfter}
	for _, c := range children {
		rep, err := c.finalReport()
		if err != nil {
			return err
		}
		merged.add(rep)
	}
	merged.finishMerge(rssBefore, rssAfter)
	return printJSON(stdout, merged)
}

// loadChild is a load process started by loadParent.
type loadChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	report *loadReport
}

// startChildren starts one child per per devices of total; on an error
// it also returns the children already started, for the caller to wait
// for.
func (o loadOptions) startChildren(ctx context.Context, exe string, total, per int) ([]*loadChild, error) {
	var children []*loadChild
	for from := 0; from < total; from += per {
		n := min(per, total-from)
		rate := 0
		if o.BenchRate > 0 {
			rate = max(1, int(math.Round(float64(o.BenchRate)*float64(n)/float64(total))))
		}
		cmd := exec.CommandContext(ctx, exe, o.childArgs(o.From+from, n, rate)...)
		cmd.Stderr = o.Progress
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return children, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return children, err
		}
		if err := cmd.Start(); err != nil {
			return children, fmt.Errorf("start a load process: %w", err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		children = append(children, &loadChild{cmd: cmd, stdin: stdin, lines: sc})
	}
	return children, nil
}

// next reads the child's next event from its stdout, skipping lines
// that are not events.
func (c *loadChild) next() (string, *loadReport, error) {
	for c.lines.Scan() {
		var ev struct {
			Event  string      `json:"event"`
			Report *loadReport `json:"report"`
		}
		if json.Unmarshal(c.lines.Bytes(), &ev) == nil && ev.Event != "" {
			return ev.Event, ev.Report, nil
		}
	}
	return "", nil, fmt.Errorf("a load process ended early: %v", c.lines.Err())
}

// waitConnected waits for the first event of every child: connected, or
// a report from one that could not connect anything.
func waitConnected(children []*loadChild) error {
	for _, c := range children {
		ev, rep, err := c.next()
		if err != nil {
			return err
		}
		if ev == "report" { // it could not connect anything
			c.report = rep
		}
	}
	return nil
}

// finalReport is the child's report, read from its stdout unless it
// came already.
func (c *loadChild) finalReport() (*loadReport, error) {
	if c.report == nil {
		ev, rep, err := c.next()
		if err != nil {
			return nil, err
		}
		if ev != "report" || rep == nil {
			return nil, fmt.Errorf("a load process sent %q instead of its report", ev)
		}
		c.report = rep
	}
	return c.report, nil
}

// add merges a child's report into m's counts and samples.
func (m *loadReport) add(rep *loadReport) {
	m.Devices += rep.Devices
	m.Connected += rep.Connected
	m.Open += rep.Open
	m.ConnectSeconds = max(m.ConnectSeconds, rep.ConnectSeconds)
	m.BenchCreated += rep.BenchCreated
	m.Received += rep.Received
	m.Reconnects += rep.Reconnects
	for dst, src := range map[*map[string]int]map[string]int{&m.Failures: rep.Failures, &m.Disconnects: rep.Disconnects, &m.ReconnectFailures: rep.ReconnectFailures,
		&m.BenchErrors: rep.BenchErrors, &m.Answers: rep.Answers} {
		for k, v := range src {
			(*dst)[k] += v
		}
	}
	m.DeliverySamples = append(m.DeliverySamples, rep.DeliverySamples...)
	m.AnswerSamples = append(m.AnswerSamples, rep.AnswerSamples...)
}

// finishMerge derives m's rates and latency summaries from the merged
// counts and samples, and drops the raw samples.
func (m *loadReport) finishMerge(rssBefore, rssAfter int64) {
	if m.ConnectSeconds > 0 {
		m.ConnectsPerSecond = round3(float64(m.Connected) / m.ConnectSeconds)
	}
	if rssAfter > 0 && m.Connected > 0 {
		m.RSSPerSocketKB = round3(float64(rssAfter-rssBefore) / float64(m.Connected))
	}
	m.Delivery, m.AnswerLatency = summarise(m.DeliverySamples), summarise(m.AnswerSamples)
	m.DeliverySamples, m.AnswerSamples = nil, nil
}

// loadFlags declares load's flags on fs; call the function it returns
// after parsing.
func loadFlags(fs *flag.FlagSet, o *loadOptions) func() {
	fs.StringVar(&o.Devices, "devices", "devices.json", `the devices written by "idlink dev seed-devices"`)
	fs.IntVar(&o.From, "from", 0, "index of the first device to use")
	fs.IntVar(&o.Count, "count", 0, "number of devices to use (0: all from -from)")
	one := fs.String("url", "", "server to connect the sockets to (default: each device's own URL)")
	urls := fs.String("urls", "", "several servers (replicas), comma-separated: sockets go to them in turn")
	apiURLs := fs.String("api-urls", "", "where answers go, in the same order as -urls (when the streams have listeners of their own: IDLINK_STREAM_ADDR)")
	sourceIPs := fs.String("source-ips", "", "local addresses to connect from, in turn (127.0.0.2,127.0.0.3,…), so that no address runs out of ports")
	fs.IntVar(&o.Concurrency, "concurrency", 100, "connections being opened at once")
	fs.StringVar(&o.Answer, "answer", "none", "what the devices answer: none, deny, or approve (numbers from the benchmark endpoint)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process id, to report its RSS (/proc/PID/status) before and after connecting")
	fs.IntVar(&o.BenchRate, "bench-rate", 0, "after connecting, create this many approval requests per second in all (0: none) via POST /dev/push/bench")
	fs.StringVar(&o.BenchURL, "bench-url", "", "server whose /dev/push/bench creates the requests (default: the first of -url/-urls, else the devices' URL)")
	fs.StringVar(&o.ClientName, "client-name", "Load test", "service name shown in the requests")
	fs.DurationVar(&o.Hold, "hold", 10*time.Second, "how long to keep the sockets open after connecting and creating the requests (ends early once every request is received and answered)")
	fs.IntVar(&o.Procs, "procs", 1, fmt.Sprintf("processes to spread the sockets over (at most %d sockets each)", maxSocketsPerProc))
	fs.DurationVar(&o.Every, "report-every", 5*time.Second, "how often to print a progress line (standard error)")
	fs.BoolVar(&o.Child, "child", false, "internal: run as a child of -procs")
	fs.BoolVar(&o.Reconnect, "reconnect", true, "open a socket again, with back-off, when it closes during the run")
	fs.DurationVar(&o.MinBackoff, "min-backoff", 250*time.Millisecond, "first wait before reconnecting (doubling, with jitter)")
	fs.DurationVar(&o.MaxBackoff, "max-backoff", 10*time.Second, "longest wait before reconnecting")
	return func() {
		o.URLs = splitList(*urls)
		if len(o.URLs) == 0 && *one != "" {
			o.URLs = []string{*one}
		}
		o.APIURLs = splitList(*apiURLs)
		o.SourceIPs = splitList(*sourceIPs)
		if o.BenchURL == "" && len(o.URLs) > 0 {
			o.BenchURL = o.URLs[0]
		}
	}
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
