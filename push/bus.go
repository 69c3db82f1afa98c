package push

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// EventKind says what a bus event announces.
type EventKind string

// Kinds of bus events.
const (
	// EventDeliver: deliver request ApprovalID (View) to DeviceID.
	EventDeliver EventKind = "deliver"
	// EventSent: a replica wrote request ApprovalID to DeviceID's socket.
	EventSent EventKind = "sent"
	// EventAcked: DeviceID acknowledged request ApprovalID on its socket.
	EventAcked EventKind = "acked"
	// EventClosed: request ApprovalID of AccountID reached Status.
	EventClosed EventKind = "closed"
	// EventDeviceRemoved: DeviceID was removed; close its sockets.
	EventDeviceRemoved EventKind = "device_removed"
)

// Event is one message on the bus. It carries ids, never secrets beyond
// what the device is sent anyway, and stays far below PostgreSQL's 8000
// byte NOTIFY limit.
type Event struct {
	Kind       EventKind `json:"k"`
	ApprovalID string    `json:"a,omitempty"`
	AccountID  string    `json:"acc,omitempty"`
	DeviceID   string    `json:"d,omitempty"`
	Status     Status    `json:"s,omitempty"`
	// View is the request as the device is sent it (EventDeliver only).
	View *View `json:"v,omitempty"`
}

// Listener receives bus events. Resync is called when events may have
// been lost (the bus reconnected): the listener re-reads what it needs
// from the database.
type Listener interface {
	HandleEvent(ev Event)
	Resync()
}

// Bus carries events between the replicas of the server. Every replica,
// the publisher included, receives every event.
type Bus interface {
	// Publish sends ev to every subscriber of every replica.
	Publish(ctx context.Context, ev Event) error
	// Subscribe adds a listener; call it before Run.
	Subscribe(l Listener)
	// Run delivers events until ctx ends.
	Run(ctx context.Context) error
}

// MemBus is the bus of a single replica: Publish hands the event to the
// listeners at once, in the publisher's goroutine.
type MemBus struct {
	mu        sync.RWMutex
	listeners []Listener
}

// NewMemBus returns an in-process bus.
func NewMemBus() *MemBus { return &MemBus{} }

// Publish calls every listener with ev.
func (b *MemBus) Publish(_ context.Context, ev Event) error {
	b.mu.RLock()
	ls := b.listeners
	b.mu.RUnlock()
	for _, l := range ls {
		l.HandleEvent(ev)
	}
	return nil
}

// Subscribe adds a listener.
func (b *MemBus) Subscribe(l Listener) {
	b.mu.Lock()
	b.listeners = append(b.listeners, l)
	b.mu.Unlock()
}

// Run waits for ctx: the in-process bus loses nothing, so it never
// resyncs.
func (b *MemBus) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// View is a request as a device is shown it: who is signing in, where, to
// what, until when, and the nonce of the challenge. It never carries the
// number.
type View struct {
	ID         string    `json:"id"`
	ClientName string    `json:"client_name"`
	Browser    string    `json:"browser"`
	OS         string    `json:"os"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Nonce is the server's half of the challenge, base64url without
	// padding in JSON.
	Nonce []byte `json:"nonce"`
}

// MarshalJSON writes the nonce as base64url without padding.
func (v View) MarshalJSON() ([]byte, error) {
	type plain View
	return json.Marshal(struct {
		plain
		Nonce string `json:"nonce"`
	}{plain(v), b64(v.Nonce)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (v *View) UnmarshalJSON(b []byte) error {
	type plain View
	var w struct {
		plain
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	n, err := unb64(w.Nonce)
	if err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	*v = View(w.plain)
	v.Nonce = n
	return nil
}

// View returns what a device is shown of a.
func (a Approval) View() View {
	return View{ID: a.ID, ClientName: a.ClientName, Browser: a.Browser, OS: a.OS, IP: a.IP,
		CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, Nonce: a.Nonce}
}
