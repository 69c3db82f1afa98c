// Package notify sends the text messages (SMS) and emails that carry links
// and security codes to people, through one Sender interface with two
// providers: Sandbox, which stores every message in the database's outbox
// table for development and tests, and Notify, a client for the GOV.UK
// Notify REST API v2.
//
// Every error a Sender returns wraps ErrSendFailed or ErrInvalidRecipient
// (and, when the context ended, the context's error), so that callers can
// tell a person either "we could not send, try again" or "check the number
// or address you gave" with errors.Is.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Channel names the medium a message travels by.
type Channel string

// The supported channels.
const (
	SMS   Channel = "sms"
	Email Channel = "email"
)

// Kind names a message template, for example "signup_verify_email",
// "signup_code", "login_code", "reset_email", "reset_code",
// "signup_existing_account" or "password_changed". Providers that render
// templates (Notify) choose the template by Kind.
type Kind string

// Message is one notification to one person.
type Message struct {
	// Channel is SMS or Email.
	Channel Channel
	// To is an E.164 phone number (SMS) or an email address (Email).
	To string
	// Kind selects the template.
	Kind Kind
	// Text is the full human-readable text. The sandbox shows it; Notify
	// templates may use it as ((body)).
	Text string
	// Link is an optional URL carried by the message (((link)) in Notify).
	Link string
	// Code is an optional security code carried by the message (((code))
	// in Notify).
	Code string
	// Reference is an optional client reference passed to the provider; it
	// is not secret and must not contain personal data.
	Reference string
}

// Sender sends notifications. Implementations are safe for concurrent use.
type Sender interface {
	// Send delivers m to the provider. Every error it returns wraps
	// ErrSendFailed or ErrInvalidRecipient (or is a context error).
	Send(ctx context.Context, m Message) error
}

// ErrSendFailed means the message could not be sent (provider error,
// network failure, misconfiguration): the caller tells the person that we
// could not send the message and that they can try again.
var ErrSendFailed = errors.New("could not send the notification")

// ErrInvalidRecipient means the phone number or email address was missing or
// was rejected as invalid: the person can correct it.
var ErrInvalidRecipient = errors.New("invalid recipient")

// Limits on message fields; they are far above anything the server sends
// and keep a runaway caller from storing or posting megabytes.
const (
	maxRecipientLen = 320 // the longest valid email address
	maxKindLen      = 100
	maxTextLen      = 10_000
	maxFieldLen     = 2_000 // link, code and reference
)

// Validate checks that m can be sent: a known channel, a non-empty kind and
// a recipient that looks like an E.164 phone number (SMS) or an email
// address (Email). A bad recipient yields an error wrapping
// ErrInvalidRecipient; any other defect, which is the caller's mistake
// rather than the person's, wraps ErrSendFailed.
func (m Message) Validate() error {
	switch m.Channel {
	case SMS, Email:
	default:
		return fmt.Errorf("%w: invalid message: unknown channel %q", ErrSendFailed, truncate(string(m.Channel), 40))
	}
	if m.Kind == "" {
		return fmt.Errorf("%w: invalid message: empty kind", ErrSendFailed)
	}
	if len(m.Kind) > maxKindLen || hasControl(string(m.Kind)) {
		return fmt.Errorf("%w: invalid message: malformed kind", ErrSendFailed)
	}
	if len(m.Text) > maxTextLen {
		return fmt.Errorf("%w: invalid message %s: text longer than %d bytes", ErrSendFailed, m.Kind, maxTextLen)
	}
	if len(m.Link) > maxFieldLen || len(m.Code) > maxFieldLen || len(m.Reference) > maxFieldLen {
		return fmt.Errorf("%w: invalid message %s: link, code or reference longer than %d bytes", ErrSendFailed, m.Kind, maxFieldLen)
	}
	if m.To == "" {
		return fmt.Errorf("%w: no %s recipient given", ErrInvalidRecipient, m.Channel)
	}
	switch m.Channel {
	case SMS:
		if !isE164(m.To) {
			return fmt.Errorf("%w: phone number is not in E.164 form (+ and 8 to 15 digits)", ErrInvalidRecipient)
		}
	case Email:
		if !looksLikeEmail(m.To) {
			return fmt.Errorf("%w: not an email address", ErrInvalidRecipient)
		}
	}
	return nil
}

// isE164 reports whether s is '+' followed by 8 to 15 digits, the first
// not zero.
func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// looksLikeEmail is a syntax sanity check, not full RFC 5322 validation
// (the provider has the last word): one '@' with text on both sides, a dot
// in the domain, and no spaces or control characters.
func looksLikeEmail(s string) bool {
	if len(s) > maxRecipientLen || hasControl(s) || strings.ContainsAny(s, " \t") {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return false
	}
	domain := s[at+1:]
	dot := strings.IndexByte(domain, '.')
	return dot > 0 && dot < len(domain)-1
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
