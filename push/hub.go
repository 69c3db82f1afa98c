package push

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idlink/idlink/device"
)

// Socket is what the hub needs of a WebSocket connection;
// github.com/fasthttp/websocket's *Conn (and the Fiber add-on's, which
// embeds it) implements it. WriteControl and Close may be called from any
// goroutine; the hub serialises WriteMessage and SetWriteDeadline.
type Socket interface {
	ReadMessage() (messageType int, p []byte, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetReadLimit(limit int64)
	SetPongHandler(h func(appData string) error)
	Close() error
}

// WebSocket message types and close codes (RFC 6455), as the Socket
// implementations number them.
const (
	textMessage  = 1
	closeMessage = 8
	pingMessage  = 9

	CloseGoingAway      = 1001 // the server is shutting down
	ClosePolicy         = 1008 // the device was removed
	CloseInvalidPayload = 1007 // the app sent something that is not a message
	CloseReplaced       = 4000 // the device connected again elsewhere
)

// Limits and timings of the hub's sockets.
const (
	// MaxMessageSize bounds what a device may send in one message (it
	// sends acknowledgements only).
	MaxMessageSize = 1024
	// PingInterval is how often the hub pings each socket.
	PingInterval = 30 * time.Second
	// PongWait is how long a socket may stay silent before it is dropped.
	PongWait = 75 * time.Second
	// WriteWait bounds every write to a socket.
	WriteWait = 5 * time.Second
)

// Message types on the stream, in the "type" member of every message.
const (
	MsgHello           = "hello"
	MsgApprovalRequest = "approval_request"
	MsgApprovalClosed  = "approval_closed"
	MsgAck             = "ack"
)

// Message is a message on a device's stream.
type Message struct {
	Type string `json:"type"`
	// DeviceID (hello) names the authenticated device.
	DeviceID string `json:"device_id,omitempty"`
	// PingInterval (hello) is how often the server pings, in seconds.
	PingInterval int `json:"ping_interval,omitempty"`
	// Approval (approval_request) is the request to show.
	Approval *View `json:"approval,omitempty"`
	// ID (approval_closed, ack) names a request.
	ID string `json:"id,omitempty"`
	// Status (approval_closed) is how the request ended.
	Status Status `json:"status,omitempty"`
}

// Hub holds the live sockets of the devices connected to this replica and
// writes requests to them. Sockets are pinged every PingInterval by one
// shared ticker (no goroutine per socket besides its reader).
type Hub struct {
	s *Service

	mu        sync.RWMutex
	byDevice  map[string]*conn
	byAccount map[string][]*conn
	closed    bool

	count atomic.Int64
}

// conn is one live socket. Its fields are fixed at connect except through
// wmu (writes).
type conn struct {
	deviceID, accountID string
	sock                Socket
	wmu                 sync.Mutex
}

func newHub(s *Service) *Hub {
	return &Hub{s: s, byDevice: map[string]*conn{}, byAccount: map[string][]*conn{}}
}

// Connections returns the number of live sockets.
func (h *Hub) Connections() int { return int(h.count.Load()) }

// ErrHubClosed is returned by Serve once the hub has shut down.
var ErrHubClosed = errors.New("push: hub is shutting down")

// Serve holds the socket of an authenticated device until it closes: it
// registers the socket (closing an older one of the same device), sends a
// hello and the account's pending requests, then reads acknowledgements.
// It closes sock before returning.
func (h *Hub) Serve(dev device.Device, sock Socket) error {
	defer sock.Close()
	sock.SetReadLimit(MaxMessageSize)
	_ = sock.SetReadDeadline(time.Now().Add(PongWait))
	sock.SetPongHandler(func(string) error { return sock.SetReadDeadline(time.Now().Add(PongWait)) })

	c := &conn{deviceID: dev.ID, accountID: dev.AccountID, sock: sock}
	if err := h.add(c); err != nil {
		_ = sock.WriteControl(closeMessage, closePayload(CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		return err
	}
	defer h.remove(c)

	// The greeting reads the database: it runs on a goroutine of its own
	// so that this one, which lives as long as the socket, keeps the
	// small stack a read loop needs.
	go h.greet(c)
	for {
		_, data, err := sock.ReadMessage()
		if err != nil {
			return nil
		}
		_ = sock.SetReadDeadline(time.Now().Add(PongWait))
		var m Message
		if json.Unmarshal(data, &m) != nil || m.Type != MsgAck || m.ID == "" || len(m.ID) > 64 {
			_ = sock.WriteControl(closeMessage, closePayload(CloseInvalidPayload, "only ack messages are accepted"), time.Now().Add(time.Second))
			return nil
		}
		go h.s.publish(context.Background(), Event{Kind: EventAcked, ApprovalID: m.ID, DeviceID: dev.ID, AccountID: dev.AccountID})
	}
}

// greet sends a new socket its hello and the account's pending requests.
func (h *Hub) greet(c *conn) {
	// Read what is pending before saying hello: a request made after the
	// hello reaches the socket by its own delivery, not twice.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	pending, err := h.s.Pending(ctx, c.accountID)
	cancel()
	if err != nil {
		h.s.log.Error("push: pending requests for a new socket", "device_id", c.deviceID, "err", err)
	}
	hello, _ := json.Marshal(Message{Type: MsgHello, DeviceID: c.deviceID, PingInterval: int(PingInterval / time.Second)})
	if err := c.write(hello); err != nil {
		return
	}
	for _, a := range pending {
		h.sendRequest(c, a.View())
	}
}

func (h *Hub) add(c *conn) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	old := h.byDevice[c.deviceID]
	h.byDevice[c.deviceID] = c
	h.byAccount[c.accountID] = append(h.byAccount[c.accountID], c)
	h.mu.Unlock()
	h.count.Add(1)
	if old != nil {
		old.closeWith(CloseReplaced, "connected again")
	}
	return nil
}

func (h *Hub) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byDevice[c.deviceID] == c {
		delete(h.byDevice, c.deviceID)
	}
	list := h.byAccount[c.accountID]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			h.count.Add(-1)
			break
		}
	}
	if len(list) == 0 {
		delete(h.byAccount, c.accountID)
	} else {
		h.byAccount[c.accountID] = list
	}
}

// write sends one text message, bounded by WriteWait.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.sock.SetWriteDeadline(time.Now().Add(WriteWait))
	return c.sock.WriteMessage(textMessage, b)
}

func (c *conn) closeWith(code int, reason string) {
	_ = c.sock.WriteControl(closeMessage, closePayload(code, reason), time.Now().Add(time.Second))
	_ = c.sock.Close()
}

func closePayload(code int, reason string) []byte {
	b := make([]byte, 2+len(reason))
	b[0], b[1] = byte(code>>8), byte(code)
	copy(b[2:], reason)
	return b
}

// sendRequest writes a request to c and tells the creator it is on its
// way.
func (h *Hub) sendRequest(c *conn, v View) {
	b, err := json.Marshal(Message{Type: MsgApprovalRequest, Approval: &v})
	if err != nil {
		h.s.log.Error("push: encode request", "err", err)
		return
	}
	if err := c.write(b); err != nil {
		h.s.log.Info("push: socket write failed", "device_id", c.deviceID, "err", err)
		return
	}
	h.s.publish(context.Background(), Event{Kind: EventSent, ApprovalID: v.ID, DeviceID: c.deviceID, AccountID: c.accountID})
}

// handle applies a bus event to the sockets this replica holds.
func (h *Hub) handle(ev Event) {
	switch ev.Kind {
	case EventDeliver:
		if ev.View == nil {
			return
		}
		h.mu.RLock()
		c := h.byDevice[ev.DeviceID]
		h.mu.RUnlock()
		if c != nil {
			go h.sendRequest(c, *ev.View)
		}
	case EventClosed:
		h.mu.RLock()
		list := append([]*conn(nil), h.byAccount[ev.AccountID]...)
		h.mu.RUnlock()
		if len(list) == 0 {
			return
		}
		b, _ := json.Marshal(Message{Type: MsgApprovalClosed, ID: ev.ApprovalID, Status: ev.Status})
		for _, c := range list {
			go func() { _ = c.write(b) }()
		}
	case EventDeviceRemoved:
		h.mu.RLock()
		c := h.byDevice[ev.DeviceID]
		h.mu.RUnlock()
		if c != nil {
			c.closeWith(ClosePolicy, "device removed")
		}
	}
}

// resync sends every pending request of the accounts whose devices this
// replica holds, in case their delivery events were lost. Devices ignore
// requests they already show.
func (h *Hub) resync() {
	h.mu.RLock()
	accounts := make([]string, 0, len(h.byAccount))
	for a := range h.byAccount {
		accounts = append(accounts, a)
	}
	h.mu.RUnlock()
	if len(accounts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pending, err := h.s.pendingFor(ctx, accounts)
	if err != nil {
		h.s.log.Error("push: resync", "err", err)
		return
	}
	for _, a := range pending {
		h.mu.RLock()
		list := append([]*conn(nil), h.byAccount[a.AccountID]...)
		h.mu.RUnlock()
		for _, c := range list {
			go h.sendRequest(c, a.View())
		}
	}
	h.s.log.Info("push: resynced after a bus reconnect", "accounts", len(accounts), "pending", len(pending))
}

// pingAll pings every socket; a socket whose pong does not come within
// PongWait is dropped by its reader's deadline.
func (h *Hub) pingAll() {
	h.mu.RLock()
	list := make([]*conn, 0, len(h.byDevice))
	for _, c := range h.byDevice {
		list = append(list, c)
	}
	h.mu.RUnlock()
	deadline := time.Now().Add(WriteWait)
	for _, c := range list {
		_ = c.sock.WriteControl(pingMessage, nil, deadline)
	}
}

// closeAll closes every socket with 1001 and refuses new ones.
func (h *Hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	list := make([]*conn, 0, len(h.byDevice))
	for _, c := range h.byDevice {
		list = append(list, c)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.closeWith(CloseGoingAway, "server shutting down")
		}()
	}
	wg.Wait()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
