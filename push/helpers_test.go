package push_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/secrets"
)

// clock is a settable clock; it starts at the real time so that the
// service's real timers and its clock agree until a test moves it.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.off += d; c.mu.Unlock() }

// auditLog records audit events.
type auditLog struct {
	mu     sync.Mutex
	events []auditEvent
}

type auditEvent struct {
	Type    string
	Success bool
	Account string
	Detail  map[string]any
}

func (l *auditLog) Audit(_ context.Context, typ string, success bool, accountID string, detail map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, auditEvent{typ, success, accountID, detail})
}

func (l *auditLog) has(typ string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func (l *auditLog) find(typ string) (auditEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Type == typ {
			return e, true
		}
	}
	return auditEvent{}, false
}

// verifier stands in for fido: an "assertion" is the hex of the challenge
// it was made over, so the test checks that the service derives the
// challenge from the request and the number, and calls it once per answer.
type verifier struct {
	mu    sync.Mutex
	calls int
	want  []fido.Expected
}

func (v *verifier) VerifyAssertion(_ context.Context, want fido.Expected, body []byte) (fido.Credential, error) {
	v.mu.Lock()
	v.calls++
	v.want = append(v.want, want)
	v.mu.Unlock()
	got, err := hex.DecodeString(string(body))
	if err != nil || !bytes.Equal(got, want.Challenge) {
		return fido.Credential{}, fmt.Errorf("%w: challenge differs", fido.ErrChallengeMismatch)
	}
	return fido.Credential{}, nil
}

func (v *verifier) Calls() int { v.mu.Lock(); defer v.mu.Unlock(); return v.calls }

// assertion is what the stand-in verifier accepts for view and number.
func assertion(v push.View, number int) []byte {
	return []byte(hex.EncodeToString(push.Challenge(v.ID, v.Nonce, number)))
}

// alerts records PushReported calls.
type alerts struct {
	mu  sync.Mutex
	got []string
}

func (a *alerts) PushReported(_ context.Context, ap push.Approval) error {
	a.mu.Lock()
	a.got = append(a.got, ap.ID)
	a.mu.Unlock()
	return nil
}

// sender records wake-ups; tokens in dead answer ErrUnregistered.
type sender struct {
	mu    sync.Mutex
	wakes []string
	dead  map[string]bool
	fail  bool
}

func (s *sender) Wake(_ context.Context, token string, w push.Wake) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("provider down")
	}
	if s.dead[token] {
		return push.ErrUnregistered
	}
	s.wakes = append(s.wakes, token+":"+w.ApprovalID)
	return nil
}

func (s *sender) Wakes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.wakes...)
}

// env is one replica's push service over a test database.
type env struct {
	svc     *push.Service
	devices *device.Store
	audit   *auditLog
	verify  *verifier
	alerts  *alerts
	sender  *sender
	clock   *clock
}

type envOptions struct {
	bus      push.Bus
	noSender bool
	keys     *secrets.Keyring
	devices  *device.Store
	clock    *clock
	cfg      push.Config
}

func newEnv(t *testing.T, db *sqlx.DB, o envOptions) *env {
	t.Helper()
	if o.keys == nil {
		k, err := secrets.NewKeyring(secrets.NewKey())
		require.NoError(t, err)
		o.keys = k
	}
	if o.clock == nil {
		o.clock = &clock{}
	}
	if o.devices == nil {
		o.devices = device.New(db, o.keys, device.Config{}, o.clock.Now)
	}
	if o.bus == nil {
		o.bus = push.NewMemBus()
	}
	if o.cfg.PresenceWait == 0 {
		o.cfg.PresenceWait = 100 * time.Millisecond
	}
	if o.cfg.AckTimeout == 0 {
		o.cfg.AckTimeout = 500 * time.Millisecond
	}
	e := &env{devices: o.devices, audit: &auditLog{}, verify: &verifier{}, alerts: &alerts{}, sender: &sender{dead: map[string]bool{}}, clock: o.clock}
	var snd push.Sender = e.sender
	if o.noSender {
		snd = nil
	}
	svc, err := push.New(o.cfg, push.Deps{DB: db, Devices: e.devices, Verifier: e.verify, Bus: o.bus, Sender: snd,
		Audit: e.audit, Alerter: e.alerts, Now: o.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); svc.Close(); <-done })
	e.svc = svc
	return e
}

// addDevice registers a companion-app device for account.
func (e *env) addDevice(t *testing.T, account, pushToken string) device.Device {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	d, err := e.devices.Register(context.Background(), device.Device{AccountID: account, Name: "Phone", Platform: device.PlatformAndroid,
		PublicKey: der, PushToken: pushToken, FIDOCredentialID: []byte("cred-" + secrets.NewID())})
	require.NoError(t, err)
	return d
}

// socket is an in-memory Socket: the test plays the phone.
type socket struct {
	in       chan []byte
	out      chan push.Message
	closed   chan struct{}
	once     sync.Mutex
	isClosed bool
	closeMu  sync.Mutex
	codes    []int
}

func newSocket() *socket {
	return &socket{in: make(chan []byte, 16), out: make(chan push.Message, 64), closed: make(chan struct{})}
}

func (s *socket) ReadMessage() (int, []byte, error) {
	select {
	case b := <-s.in:
		return 1, b, nil
	case <-s.closed:
		return 0, nil, io.EOF
	}
}

func (s *socket) WriteMessage(_ int, data []byte) error {
	select {
	case <-s.closed:
		return io.ErrClosedPipe
	default:
	}
	var m push.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	s.out <- m
	return nil
}

func (s *socket) WriteControl(typ int, data []byte, _ time.Time) error {
	if typ == 8 && len(data) >= 2 {
		s.closeMu.Lock()
		s.codes = append(s.codes, int(data[0])<<8|int(data[1]))
		s.closeMu.Unlock()
	}
	return nil
}

func (s *socket) closeCodes() []int {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return append([]int(nil), s.codes...)
}

func (s *socket) SetReadDeadline(time.Time) error   { return nil }
func (s *socket) SetWriteDeadline(time.Time) error  { return nil }
func (s *socket) SetReadLimit(int64)                {}
func (s *socket) SetPongHandler(func(string) error) {}

func (s *socket) Close() error {
	s.once.Lock()
	defer s.once.Unlock()
	if !s.isClosed {
		s.isClosed = true
		close(s.closed)
	}
	return nil
}

// next returns the next message of type typ the phone receives.
func (s *socket) next(t *testing.T, typ string) push.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.out:
			if m.Type == typ {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s message", typ)
		}
	}
}

func (s *socket) ack(id string) {
	b, _ := json.Marshal(push.Message{Type: push.MsgAck, ID: id})
	s.in <- b
}

// connect holds a socket for d on e's hub and waits for its hello.
func (e *env) connect(t *testing.T, d device.Device) *socket {
	t.Helper()
	s := newSocket()
	go func() { _ = e.svc.Hub().Serve(d, s) }()
	s.next(t, push.MsgHello)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eventually waits for cond.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 10*time.Millisecond, msg)
}
