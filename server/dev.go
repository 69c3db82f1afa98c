package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/web"
)

// Limits of the development push benchmark (POST /dev/push/bench).
const (
	// BenchMaxRate is the highest rate of requests per second it creates.
	BenchMaxRate = 5000
	// BenchMaxAccounts is the longest list of accounts it takes. (The
	// request body is also bounded by the server's 1 MiB body limit, about
	// 30,000 account ids per call.)
	BenchMaxAccounts = 100_000
	// benchInFlight bounds the creations running at once.
	benchInFlight = 256
)

// benchRequest is the body of POST /dev/push/bench.
type benchRequest struct {
	AccountIDs []string `json:"account_ids"`
	Rate       int      `json:"rate"`
	ClientName string   `json:"client_name"`
}

// benchLine is one NDJSON line of its answer: a request created (its
// number is what the browser would show) or the error creating it.
type benchLine struct {
	ID        string    `json:"id,omitempty"`
	AccountID string    `json:"account_id"`
	Number    int       `json:"number,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// registerDev mounts the development outbox (what the sandbox provider
// "sent", as a page and as JSON) and the push benchmark harness. It is
// never mounted in production.
func (s *Server) registerDev(p web.Pages) {
	p.Get("/dev/outbox", func(c fiber.Ctx) error {
		entries, err := s.Outbox.List(c.Context(), notify.DefaultListLimit)
		if err != nil {
			return err
		}
		return s.Renderer.Render(c, http.StatusOK, "outbox", web.View{Title: "Development outbox", Data: entries})
	})
	s.App.Get("/dev/outbox.json", func(c fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		// ?to=RECIPIENT&kind=KIND returns only the newest such message, so
		// tools can read one code without listing the outbox.
		if to, kind := c.Query("to"), c.Query("kind"); to != "" && kind != "" {
			e, err := s.Outbox.Latest(c.Context(), to, notify.Kind(kind))
			if errors.Is(err, notify.ErrNotFound) {
				return c.JSON(fiber.Map{"messages": []notify.Entry{}})
			}
			if err != nil {
				return err
			}
			return c.JSON(fiber.Map{"messages": []notify.Entry{e}})
		}
		entries, err := s.Outbox.List(c.Context(), notify.DefaultListLimit)
		if err != nil {
			return err
		}
		if entries == nil {
			entries = []notify.Entry{}
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(fiber.Map{"messages": entries})
	})
	s.App.Post("/dev/push/bench", s.pushBench)
}

// pushBench is the push benchmark harness (development only): it creates
// an approval request for each account of the body with Push.Create, paced
// at the body's rate by a ticker, and streams back one NDJSON line per
// request as it is created ({"id","account_id","number","created_at"}, or
// "error"). A load tool plays the browsers that show the numbers, so its
// devices can approve with the right number.
func (s *Server) pushBench(c fiber.Ctx) error {
	if !s.cfg.Dev() {
		return c.SendStatus(http.StatusNotFound)
	}
	var req benchRequest
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return c.Status(http.StatusBadRequest).JSON(fiber.Map{"error": "invalid_request", "error_description": err.Error()})
	}
	if len(req.AccountIDs) == 0 || len(req.AccountIDs) > BenchMaxAccounts || req.Rate < 1 || req.Rate > BenchMaxRate {
		return c.Status(http.StatusBadRequest).JSON(fiber.Map{"error": "invalid_request",
			"error_description": "account_ids must hold 1 to 100000 ids and rate must be 1 to 5000 per second"})
	}
	ip := web.ClientIP(c)
	c.Set(fiber.HeaderContentType, "application/x-ndjson")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lines := make(chan benchLine, benchInFlight)
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			enc := json.NewEncoder(w)
			for l := range lines {
				if ctx.Err() != nil {
					continue // the client has gone: drain
				}
				if enc.Encode(l) != nil || w.Flush() != nil {
					cancel()
				}
			}
		}()
		sem := make(chan struct{}, benchInFlight)
		var wg sync.WaitGroup
		t := time.NewTicker(time.Second / time.Duration(req.Rate))
		defer t.Stop()
		for _, id := range req.AccountIDs {
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
				defer ccancel()
				a, err := s.Push.Create(cctx, push.Request{AccountID: id, ClientName: req.ClientName, Browser: "Load test", OS: "idlink", IP: ip})
				l := benchLine{AccountID: id}
				if err != nil {
					l.Error = err.Error()
				} else {
					l.ID, l.Number, l.CreatedAt = a.ID, a.Number, a.CreatedAt
				}
				lines <- l
			}()
		}
		wg.Wait()
		close(lines)
		<-writerDone
	})
}
