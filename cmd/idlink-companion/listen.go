package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fasthttp/websocket"

	"github.com/idlink/idlink/push"
)

// Paths of the approval API (server/companion).
const (
	pathStream    = "/app/v1/stream"
	pathApprovals = "/app/v1/approvals"
)

// errDeviceGone ends listen: the server no longer knows the device, or it
// was removed in the person's settings.
var errDeviceGone = errors.New("the device has been removed or is unknown to the server: enrol again")

// upgradeError is a refused WebSocket upgrade.
type upgradeError struct {
	status int
	code   string
}

func (e *upgradeError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("stream upgrade refused: HTTP %d", e.status)
	}
	return fmt.Sprintf("stream upgrade refused: HTTP %d (%s)", e.status, e.code)
}

var wwwAuthErrorRE = regexp.MustCompile(`error="([^"]*)"`)

// wsURL turns an http(s) base URL and a path into a ws(s) URL.
func wsURL(base, path string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + path)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("%q is not an http(s) URL", base)
	}
	return u.String(), nil
}

// dialStream opens the device's stream on the server at base (st.URL, or
// a replica of it) with a fresh device JWT whose audience is the issuer's
// stream URL. A 401 naming a removed or unknown device gives an error
// wrapping errDeviceGone; other refusals give an *upgradeError.
func dialStream(ctx context.Context, d *websocket.Dialer, st *state, base string) (*websocket.Conn, error) {
	target, err := wsURL(base, pathStream)
	if err != nil {
		return nil, err
	}
	tok, err := st.deviceJWT(strings.TrimSuffix(st.URL, "/") + pathStream)
	if err != nil {
		return nil, err
	}
	conn, resp, err := d.DialContext(ctx, target, http.Header{"Authorization": {"DeviceJWT " + tok}})
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			ue := &upgradeError{status: resp.StatusCode}
			if m := wwwAuthErrorRE.FindStringSubmatch(resp.Header.Get("WWW-Authenticate")); m != nil {
				ue.code = m[1]
			}
			if ue.status == http.StatusUnauthorized && (ue.code == "device_removed" || ue.code == "device_unknown") {
				return nil, fmt.Errorf("%w (%s)", errDeviceGone, ue.code)
			}
			return nil, ue
		}
		return nil, err
	}
	return conn, nil
}

// approvalAssertion is the platform authenticator's answer to an approval:
// a WebAuthn get() assertion with user verification over
// push.Challenge(id, nonce, number). The signature counter moves on; it
// never falls below the current Unix time so that copies of a seeded
// state used in turn (load runs) keep it increasing.
func (st *state) approvalAssertion(id string, nonce []byte, number int) []byte {
	c := st.Credential.Counter + 1
	if now := uint32(time.Now().Unix()); now > c {
		c = now
	}
	st.Credential.Counter = c
	if len(st.Authenticator.Credentials) > 0 {
		st.Authenticator.Credentials[0].Counter = c
	}
	opts := virtualwebauthn.AssertionOptions{Challenge: push.Challenge(id, nonce, number), RelyingPartyID: st.RPID}
	return []byte(virtualwebauthn.CreateAssertionResponse(st.rp(), st.Authenticator, st.Credential, opts))
}

// answerApproval sends the phone's answer to request v to the server at
// base and returns the request's status. number and the assertion are
// sent for an approval only.
func answerApproval(ctx context.Context, c *http.Client, st *state, base string, v push.View, decision string, number int) (string, error) {
	path := pathApprovals + "/" + url.PathEscape(v.ID) + "/answer"
	tok, err := st.deviceJWT(strings.TrimSuffix(st.URL, "/") + path)
	if err != nil {
		return "", err
	}
	body := map[string]any{"decision": decision}
	if decision == push.DecisionApprove {
		body["number"] = number
		body["assertion"] = json.RawMessage(st.approvalAssertion(v.ID, v.Nonce, number))
	}
	var out struct {
		Status string `json:"status"`
	}
	if err := callJSON(ctx, c, http.MethodPost, strings.TrimSuffix(base, "/")+path, "DeviceJWT "+tok, body, &out); err != nil {
		return "", err
	}
	return out.Status, nil
}

// listenOptions are the flags of listen.
type listenOptions struct {
	// Auto is "" (ask on standard input), "deny", "report" or "approve".
	Auto string
	// After is how long an automatic answer waits.
	After time.Duration
	// Number is what an automatic approval types (read from the browser).
	Number int
	// Once ends listen after one answered request.
	Once bool
	// StateFile is where the state is saved after an approval ("": not
	// saved).
	StateFile string
	// MinBackoff and MaxBackoff bound the wait before reconnecting.
	MinBackoff, MaxBackoff time.Duration
	// In gives the person's answers (interactive); Out is where requests
	// and outcomes are printed.
	In  io.Reader
	Out io.Writer
}

// backoff is exponential back-off with jitter: each wait is drawn from
// [d/2, d], d doubling from min up to max.
type backoff struct {
	min, max, d time.Duration
}

func (b *backoff) next() time.Duration {
	if b.d < b.min {
		b.d = b.min
	}
	d := b.d
	b.d = min(2*b.d, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.d = b.min }

// streamEvent is what a socket's reader hands over: a message, or the
// error that ended the socket.
type streamEvent struct {
	msg push.Message
	err error
}

// readStream reads conn's messages into out until the socket fails; its
// last event carries the error. Reading also answers the server's pings.
func readStream(conn *websocket.Conn, out chan<- streamEvent) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			out <- streamEvent{err: err}
			return
		}
		var m push.Message
		if err := json.Unmarshal(data, &m); err != nil {
			out <- streamEvent{err: fmt.Errorf("unreadable message: %w", err)}
			return
		}
		out <- streamEvent{msg: m}
	}
}

var twoDigits = regexp.MustCompile(`^[0-9]{2}$`)

// listen holds the device's stream, shows each request, acknowledges it
// and answers it (from the keyboard or automatically), reconnecting with
// back-off until ctx ends, the device is removed, or (Once) one request
// has been answered.
func listen(ctx context.Context, st *state, o listenOptions) error {
	switch o.Auto {
	case "", push.DecisionDeny, push.DecisionReport:
	case push.DecisionApprove:
		if o.Number < 10 || o.Number > 99 {
			return fmt.Errorf("%w: -auto approve needs -number NN, the two digits the browser shows", errUsage)
		}
	default:
		return fmt.Errorf("%w: -auto must be deny, report or approve", errUsage)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	lines := make(chan string)
	if o.Auto == "" && o.In != nil {
		go func() {
			sc := bufio.NewScanner(o.In)
			for sc.Scan() {
				select {
				case lines <- strings.TrimSpace(sc.Text()):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	dialer := &websocket.Dialer{HandshakeTimeout: 15 * time.Second, NetDialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	client := &http.Client{Timeout: 30 * time.Second}
	bo := &backoff{min: o.MinBackoff, max: o.MaxBackoff}
	l := &listener{st: st, o: o, client: client, shown: map[string]push.View{}, auto: make(chan string, 64)}
	for {
		conn, err := dialStream(ctx, dialer, st, st.URL)
		if errors.Is(err, errDeviceGone) {
			return err
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait := bo.next()
			fmt.Fprintf(o.Out, "cannot connect (%v); trying again in %s\n", err, wait.Round(10*time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		done, err := l.serve(ctx, conn, lines, bo)
		if done || err != nil {
			return err
		}
		wait := bo.next()
		fmt.Fprintf(o.Out, "reconnecting in %s\n", wait.Round(10*time.Millisecond))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// listener is listen's state across connections.
type listener struct {
	st     *state
	o      listenOptions
	client *http.Client
	// shown are the requests shown and not yet answered or closed, and
	// order the order they came in.
	shown map[string]push.View
	order []string
	// auto receives the ids whose automatic answer is due.
	auto chan string
}

// serve runs one connection. It returns done when listen should end (ctx
// ended, or Once and a request was answered), with an error when it ends
// badly; otherwise the socket closed and listen reconnects.
func (l *listener) serve(ctx context.Context, conn *websocket.Conn, lines <-chan string, bo *backoff) (bool, error) {
	events := make(chan streamEvent, 16)
	go readStream(conn, events)
	readerDone := false
	defer func() {
		_ = conn.Close()
		for !readerDone { // let the reader end
			readerDone = (<-events).err != nil
		}
	}()
	auto := l.auto
	for {
		select {
		case <-ctx.Done():
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			return true, nil
		case ev := <-events:
			if ev.err != nil {
				readerDone = true
				return l.closed(ev.err)
			}
			if done, err := l.message(ctx, conn, ev.msg, auto, bo); done || err != nil {
				return done, err
			}
		case id := <-auto:
			v, ok := l.shown[id]
			if !ok {
				continue // closed elsewhere meanwhile
			}
			if done, err := l.answer(ctx, v, l.o.Auto, l.o.Number); done || err != nil {
				return done, err
			}
		case line := <-lines:
			if done, err := l.typed(ctx, line); done || err != nil {
				return done, err
			}
		}
	}
}

// closed explains why a socket ended and says whether listen ends.
func (l *listener) closed(err error) (bool, error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case push.ClosePolicy:
			return true, fmt.Errorf("%w (the server closed the stream: %s)", errDeviceGone, ce.Text)
		case push.CloseReplaced:
			return true, errors.New("the stream was replaced by another connection of this device")
		case push.CloseGoingAway:
			fmt.Fprintln(l.o.Out, "the server is going away (1001)")
			return false, nil
		}
		fmt.Fprintf(l.o.Out, "the server closed the stream (%d %s)\n", ce.Code, ce.Text)
		return false, nil
	}
	fmt.Fprintf(l.o.Out, "the stream failed: %v\n", err)
	return false, nil
}

// message handles one message from the server.
func (l *listener) message(ctx context.Context, conn *websocket.Conn, m push.Message, auto chan<- string, bo *backoff) (bool, error) {
	switch m.Type {
	case push.MsgHello:
		bo.reset()
		fmt.Fprintf(l.o.Out, "connected as device %s; waiting for login requests\n", m.DeviceID)
	case push.MsgApprovalRequest:
		if m.Approval == nil {
			return false, nil
		}
		v := *m.Approval
		ack, _ := json.Marshal(push.Message{Type: push.MsgAck, ID: v.ID})
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, ack); err != nil {
			fmt.Fprintf(l.o.Out, "could not acknowledge %s: %v\n", v.ID, err)
		}
		if _, seen := l.shown[v.ID]; seen {
			return false, nil // sent again after a reconnect
		}
		l.shown[v.ID] = v
		l.order = append(l.order, v.ID)
		l.show(v)
		if l.o.Auto != "" {
			id := v.ID
			time.AfterFunc(l.o.After, func() {
				select {
				case auto <- id:
				case <-ctx.Done():
				}
			})
		} else {
			fmt.Fprintln(l.o.Out, "type the number the browser shows to approve, n to deny, x if this wasn't you:")
		}
	case push.MsgApprovalClosed:
		if _, ok := l.shown[m.ID]; ok {
			l.forget(m.ID)
			fmt.Fprintf(l.o.Out, "request %s was closed elsewhere (%s)\n", m.ID, m.Status)
		}
	}
	return false, nil
}

// show prints who is logging in, to what, from where, until when.
func (l *listener) show(v push.View) {
	to := v.ClientName
	if to == "" {
		to = "idlink"
	}
	where := strings.TrimSpace(strings.Join([]string{v.Browser, v.OS}, " on "))
	if v.Browser == "" || v.OS == "" {
		where = strings.TrimSpace(v.Browser + v.OS)
	}
	if where == "" {
		where = "a browser"
	}
	fmt.Fprintf(l.o.Out, "login request %s: %s, from %s at %s; expires %s (in %s)\n", v.ID, to, where, v.IP,
		v.ExpiresAt.Local().Format("15:04:05"), time.Until(v.ExpiresAt).Round(time.Second))
}

func (l *listener) forget(id string) {
	delete(l.shown, id)
	for i, x := range l.order {
		if x == id {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
}

// typed applies a line of the person's input to the oldest request shown.
func (l *listener) typed(ctx context.Context, line string) (bool, error) {
	if len(l.order) == 0 {
		if line != "" {
			fmt.Fprintln(l.o.Out, "no login request is waiting")
		}
		return false, nil
	}
	v := l.shown[l.order[0]]
	switch {
	case strings.EqualFold(line, "n"):
		return l.answer(ctx, v, push.DecisionDeny, 0)
	case strings.EqualFold(line, "x"):
		return l.answer(ctx, v, push.DecisionReport, 0)
	case twoDigits.MatchString(line):
		n, _ := strconv.Atoi(line)
		if n >= 10 {
			return l.answer(ctx, v, push.DecisionApprove, n)
		}
	}
	fmt.Fprintln(l.o.Out, "type the two-digit number the browser shows, n to deny, or x if this wasn't you")
	return false, nil
}

// answer sends an answer to v and prints the outcome.
func (l *listener) answer(ctx context.Context, v push.View, decision string, number int) (bool, error) {
	l.forget(v.ID)
	status, err := answerApproval(ctx, l.client, l.st, l.st.URL, v, decision, number)
	if decision == push.DecisionApprove && l.o.StateFile != "" {
		// The counter moved even when the server refused the assertion.
		if serr := l.st.save(l.o.StateFile); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		fmt.Fprintf(l.o.Out, "answer to %s (%s) failed: %v\n", v.ID, decision, err)
		if l.o.Once {
			return true, err
		}
		return false, nil
	}
	fmt.Fprintf(l.o.Out, "answered %s: %s; the request is %s\n", v.ID, decision, status)
	return l.o.Once, nil
}
