package push

import (
	"context"
	"errors"
	"time"

	"github.com/idlink/idlink/device"
)

// Run takes bus events and pings sockets until ctx ends. Call it once.
func (s *Service) Run(ctx context.Context) error {
	go func() {
		t := time.NewTicker(PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.hub.pingAll()
			}
		}
	}()
	return s.d.Bus.Run(ctx)
}

// HandleEvent implements Listener: the hub writes to the sockets it holds,
// and whoever waits on the request hears of it.
func (s *Service) HandleEvent(ev Event) {
	s.hub.handle(ev)
	if ev.ApprovalID != "" {
		s.notifyWaiters(ev)
	}
}

// Resync implements Listener: after a bus outage the hub re-sends the
// pending requests of the devices it holds.
func (s *Service) Resync() { go s.hub.resync() }

// deliver gets request a to the account's devices: over a socket if a
// replica holds one and the device acknowledges within AckTimeout, else by
// waking the devices through FCM. When nothing reached any device the
// request is closed as undeliverable, so the browser falls back to a code.
func (s *Service) deliver(a Approval, devices []device.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TTL)
	defer cancel()
	ch := s.wait(a.ID)
	defer s.unwait(a.ID, ch)

	view := a.View()
	ours := make(map[string]bool, len(devices))
	for _, d := range devices {
		ours[d.ID] = true
	}
	for _, d := range devices {
		s.publish(ctx, Event{Kind: EventDeliver, ApprovalID: a.ID, AccountID: a.AccountID, DeviceID: d.ID, View: &view})
	}
	sent := map[string]bool{}
	presence := time.NewTimer(s.cfg.PresenceWait)
	defer presence.Stop()
	ackTimer := time.NewTimer(s.cfg.AckTimeout)
	defer ackTimer.Stop()
wait:
	for {
		select {
		case <-s.done:
			return
		case ev := <-ch:
			if (ev.Kind == EventSent || ev.Kind == EventAcked) && !ours[ev.DeviceID] {
				continue // only the account's own devices count
			}
			switch ev.Kind {
			case EventSent:
				sent[ev.DeviceID] = true
			case EventAcked:
				s.d.Audit.Audit(ctx, "push.delivered", true, a.AccountID, map[string]any{
					"approval_id": a.ID, "device_id": ev.DeviceID, "via": "websocket"})
				return
			case EventClosed:
				return
			}
		case <-presence.C:
			// No replica reported a socket: wake the phone now. Without
			// FCM there is nothing better to do, so a busy replica gets
			// until the ack timeout before the login falls back.
			if len(sent) == 0 && s.d.Sender != nil {
				break wait
			}
		case <-ackTimer.C:
			break wait
		}
	}
	woken := s.wake(ctx, a, devices)
	if woken || len(sent) > 0 {
		return
	}
	if _, err := s.close(ctx, a, StatusUndeliverable, ""); err != nil {
		if !errors.Is(err, ErrNotPending) {
			s.log.Error("push: close undeliverable request", "approval_id", a.ID, "err", err)
		}
		return
	}
	s.d.Audit.Audit(ctx, "push.fallback", false, a.AccountID, map[string]any{"approval_id": a.ID, "reason": "undeliverable"})
}

// wake sends an FCM data message to every device with a push token and
// reports whether any was accepted. A token FCM reports as unregistered is
// cleared.
func (s *Service) wake(ctx context.Context, a Approval, devices []device.Device) bool {
	if s.d.Sender == nil {
		return false
	}
	woken := false
	for _, d := range devices {
		if d.PushToken == "" {
			continue
		}
		detail := map[string]any{"approval_id": a.ID, "device_id": d.ID, "via": "fcm"}
		err := s.d.Sender.Wake(ctx, d.PushToken, Wake{ApprovalID: a.ID, ExpiresAt: a.ExpiresAt})
		switch {
		case err == nil:
			woken = true
			s.d.Audit.Audit(ctx, "push.delivered", true, a.AccountID, detail)
		case errors.Is(err, ErrUnregistered):
			if cerr := s.d.Devices.ClearPushToken(ctx, d.ID, d.PushToken); cerr != nil {
				s.log.Error("push: clear dead push token", "device_id", d.ID, "err", cerr)
			}
			s.d.Audit.Audit(ctx, "push.delivery_failed", false, a.AccountID, with(detail, "reason", "unregistered"))
		default:
			s.log.Warn("push: fcm send failed", "device_id", d.ID, "err", err)
			s.d.Audit.Audit(ctx, "push.delivery_failed", false, a.AccountID, with(detail, "reason", "provider_error"))
		}
	}
	return woken
}
