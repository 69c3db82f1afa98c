package companion

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/v3/websocket"
	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/push"
)

// Paths of the approval API.
const (
	PathStream    = "/app/v1/stream"
	PathApprovals = "/app/v1/approvals"
)

// Error codes of the approval API.
const (
	CodeUpgradeRequired  = "upgrade_required"
	CodeOriginForbidden  = "origin_forbidden"
	CodeApprovalNotFound = "approval_not_found"
	CodeApprovalClosed   = "approval_closed"
	CodeApprovalExpired  = "approval_expired"
	CodeNumberMismatch   = "number_mismatch"
	CodeAssertionInvalid = "assertion_invalid"
)

// Approvals is what the API needs of the push service; *push.Service
// implements it.
type Approvals interface {
	Pending(ctx context.Context, accountID string) ([]push.Approval, error)
	Result(ctx context.Context, accountID, id string) (push.Approval, error)
	Answer(ctx context.Context, dev device.Device, id string, ans push.Answer) (push.Approval, error)
	DeviceRemoved(ctx context.Context, deviceID string)
}

// Stream holds device sockets; *push.Hub implements it.
type Stream interface {
	Serve(dev device.Device, sock push.Socket) error
}

// Socket buffer sizes: requests are a few hundred bytes and the app sends
// only acknowledgements, so small buffers keep an idle socket cheap; the
// write buffer is pooled (held only while writing).
const (
	socketReadBuffer  = 512
	socketWriteBuffer = 1024
)

func (a *API) registerApprovals(r fiber.Router) {
	if a.d.Approvals == nil || a.d.Stream == nil {
		return
	}
	a.RegisterStream(r)
	r.Get(PathApprovals, a.noStore, a.deviceAuth, a.handlePendingApprovals)
	r.Get(PathApprovals+"/:id", a.noStore, a.deviceAuth, a.handleApproval)
	r.Post(PathApprovals+"/:id/answer", a.noStore, a.deviceAuth, a.handleAnswer)
}

// approvalView is a request as the API shows it: the request itself and
// where it stands.
type approvalView struct {
	push.View
	Status push.Status `json:"status"`
}

func (v approvalView) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(v.View)
	if err != nil {
		return nil, err
	}
	st, _ := json.Marshal(v.Status)
	return append(append(b[:len(b)-1], `,"status":`...), append(st, '}')...), nil
}

func (a *API) handlePendingApprovals(c fiber.Ctx) error {
	d := authenticated(c)
	list, err := a.d.Approvals.Pending(c.Context(), d.AccountID)
	if err != nil {
		return a.reply(c, err)
	}
	out := make([]approvalView, 0, len(list))
	for _, ap := range list {
		out = append(out, approvalView{View: ap.View(), Status: ap.Status})
	}
	return c.JSON(fiber.Map{"approvals": out})
}

func (a *API) handleApproval(c fiber.Ctx) error {
	d := authenticated(c)
	ap, err := a.d.Approvals.Result(c.Context(), d.AccountID, c.Params("id"))
	if errors.Is(err, push.ErrNotFound) {
		return a.reply(c, fail(http.StatusNotFound, CodeApprovalNotFound, "no such approval request for this account"))
	}
	if err != nil {
		return a.reply(c, err)
	}
	return c.JSON(approvalView{View: ap.View(), Status: ap.Status})
}

// answerRequest is the body of POST /app/v1/approvals/{id}/answer.
type answerRequest struct {
	Decision  string          `json:"decision"`
	Number    int             `json:"number,omitempty"`
	Assertion json.RawMessage `json:"assertion,omitempty"`
}

func (a *API) handleAnswer(c fiber.Ctx) error {
	d := authenticated(c)
	var req answerRequest
	if err := decodeJSON(c, MaxEnrolmentBody, &req); err != nil {
		return a.reply(c, err)
	}
	ap, err := a.d.Approvals.Answer(c.Context(), d, c.Params("id"), push.Answer{Decision: req.Decision, Number: req.Number, Assertion: req.Assertion})
	switch {
	case errors.Is(err, push.ErrInvalid):
		return a.reply(c, fail(http.StatusBadRequest, CodeInvalidRequest, "%s", err.Error()))
	case errors.Is(err, push.ErrNotFound):
		return a.reply(c, fail(http.StatusNotFound, CodeApprovalNotFound, "no such approval request for this account"))
	case errors.Is(err, push.ErrExpired):
		return a.reply(c, fail(http.StatusGone, CodeApprovalExpired, "the request has expired"))
	case errors.Is(err, push.ErrNotPending):
		return a.reply(c, fail(http.StatusConflict, CodeApprovalClosed, "the request has already been answered or closed"))
	case errors.Is(err, push.ErrNumberMismatch):
		return a.reply(c, fail(http.StatusUnprocessableEntity, CodeNumberMismatch, "the number does not match the one in the browser: the request is closed"))
	case errors.Is(err, push.ErrDeviceRemoved):
		return a.reply(c, fail(http.StatusUnauthorized, CodeDeviceRemoved, "the device has been removed"))
	case errors.Is(err, push.ErrAssertion):
		kind := fido.Classify(err)
		code := registrationCodes[kind]
		if code == "" || kind == fido.KindMalformed {
			code = CodeAssertionInvalid
		}
		return a.reply(c, fail(http.StatusUnprocessableEntity, code, "%s", err.Error()))
	case err != nil:
		return a.reply(c, err)
	}
	return c.JSON(fiber.Map{"id": ap.ID, "status": ap.Status})
}

var _ push.Socket = (*websocket.Conn)(nil)

// RegisterStream mounts only GET /app/v1/stream on r. The API's Register
// mounts it too; a server may also serve it from a listener of its own
// whose HTTP read buffer is small, because the buffer stays with every
// hijacked connection.
func (a *API) RegisterStream(r fiber.Router) {
	if a.d.Stream == nil {
		return
	}
	origin := a.issuer
	if u, err := url.Parse(a.issuer); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	upgrade := fws.New(func(conn *fws.Conn) {
		d, _ := conn.Locals(localDevice).(device.Device)
		// Serve the socket from a goroutine of its own and return: the
		// upgrade's goroutine (deep in the HTTP server, with its request
		// context and the add-on's copies of headers and locals) then
		// ends and frees all that; the add-on keeps hijacked connections
		// open, and the hub closes them.
		go func(ws *websocket.Conn) { _ = a.d.Stream.Serve(d, ws) }(conn.Conn)
	}, fws.Config{
		// The app sends no Origin; a browser page may only connect from
		// our own origin (and cannot send the device JWT anyway).
		Origins: []string{origin}, AllowEmptyOrigin: true,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   socketReadBuffer, WriteBufferSize: socketWriteBuffer,
		WriteBufferPool: &a.writePool,
		RecoverHandler: func(conn *fws.Conn) {
			if e := recover(); e != nil {
				a.d.Logger.Error("companion stream panic", "panic", e)
				_ = conn.Close()
			}
		},
	})
	r.Get(PathStream, a.noStore, func(c fiber.Ctx) error {
		// A browser page of another site is refused outright (403), before
		// the device JWT or the upgrade are looked at.
		if o := c.Get(fiber.HeaderOrigin); o != "" && o != origin {
			return a.reply(c, fail(http.StatusForbidden, CodeOriginForbidden, "a WebSocket from another origin is not allowed"))
		}
		return c.Next()
	}, a.deviceAuth, func(c fiber.Ctx) error {
		if !fws.IsWebSocketUpgrade(c) {
			c.Set(fiber.HeaderUpgrade, "websocket")
			return a.reply(c, fail(http.StatusUpgradeRequired, CodeUpgradeRequired, "this endpoint is a WebSocket: send Upgrade: websocket"))
		}
		return upgrade(c)
	})
}
