package server

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/web"
)

// registerDev mounts the development outbox: what the sandbox provider
// "sent", as a page and as JSON. It is never mounted in production.
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
}
