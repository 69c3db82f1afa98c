package web

import "github.com/gofiber/fiber/v3"

// Notice is a one-time message for the next page a person sees ("The
// passkey has been renamed."), kept in the session under the Notice's own
// key, so that each capability's notices stay apart. Set leaves it; Take
// returns it once and forgets it.
type Notice string

// Set leaves msg for the next page that takes this notice.
func (n Notice) Set(c fiber.Ctx, msg string) { Sess(c).Put(string(n), msg) }

// Take returns the message left by Set and forgets it, or "" when there is
// none.
func (n Notice) Take(c fiber.Ctx) string {
	var msg string
	if s := Sess(c); s.Get(string(n), &msg) {
		s.Delete(string(n))
	}
	return msg
}
