package backoffice

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/web"
)

// This file is the audit search (role admin): events by person, type, time
// range, address and staff member, newest first, a page at a time, and the
// whole filtered set as CSV. Searching and exporting are audited too.

// AuditSearch reads the audit trail; *audit.Log implements it.
type AuditSearch interface {
	Search(ctx context.Context, f audit.Filter, after *audit.Cursor, limit int) ([]audit.Event, error)
	CountMatching(ctx context.Context, f audit.Filter) (int, error)
}

// Audit search paths and limits.
const (
	// AuditPath is the search page; AuditPath+".csv" the export.
	AuditPath = "/admin/audit"
	// AuditPageSize is how many events a page shows.
	AuditPageSize = 50
	// AuditExportMax is the most events one CSV export holds; a larger
	// set is cut there (the last line says so): narrow the search.
	AuditExportMax = 100000
)

// auditRow is one event as the page shows it.
type auditRow struct {
	At                                  time.Time
	Type, Outcome, Account, IP, Request string
	Detail                              string
}

// auditData is what backoffice_audit.html shows.
type auditData struct {
	Searched bool
	Rows     []auditRow
	Next     string // the next page's URL, "" on the last
	CSV      string // the export's URL
}

// auditQuery reads the search form into a filter; it adds an error to v
// for each field it cannot use.
func (b *BackOffice) auditQuery(c fiber.Ctx, v *web.View) (audit.Filter, error) {
	var f audit.Filter
	get := func(name string) string {
		s := strings.TrimSpace(c.Query(name))
		v.Values[name] = s
		return s
	}
	person, staff := get("person"), get("staff")
	f.Type, f.IP = get("type"), get("ip")
	from, to := get("from"), get("to")
	resolve := func(field, s string) (string, error) {
		if s == "" {
			return "", nil
		}
		if !strings.Contains(s, "@") {
			return s, nil // an account id
		}
		a, err := b.d.Accounts.AccountByEmail(c.Context(), s)
		if errors.Is(err, account.ErrNotFound) {
			v.Errors.Add(field, "No account has this email address. For a deleted account, enter its account id")
			return "", nil
		}
		return a.ID, err
	}
	var err error
	if f.AccountID, err = resolve("person", person); err != nil {
		return f, err
	}
	if f.Staff, err = resolve("staff", staff); err != nil {
		return f, err
	}
	day := func(field, s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			v.Errors.Add(field, "Enter the date as year-month-day, for example 2026-03-31")
		}
		return t
	}
	f.From = day("from", from)
	if t := day("to", to); !t.IsZero() {
		f.To = t.AddDate(0, 0, 1) // the whole day
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		v.Errors.Add("to", "The end date must be the same as or after the start date")
	}
	return f, nil
}

// auditParams is the search as a query string, for the next page and the
// export.
func auditParams(v web.View) url.Values {
	q := url.Values{"search": {"1"}}
	for _, k := range []string{"person", "type", "from", "to", "ip", "staff"} {
		if v.Values[k] != "" {
			q.Set(k, v.Values[k])
		}
	}
	return q
}

func (b *BackOffice) auditPage(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, AuditPath, identity.RoleAdmin)
	if !ok {
		return err
	}
	v := web.View{Title: "Audit trail", Values: map[string]string{}, Data: auditData{}}
	if c.Query("search") == "" {
		return b.d.Renderer.Render(c, http.StatusOK, "backoffice_audit", v)
	}
	f, err := b.auditQuery(c, &v)
	if err != nil {
		return err
	}
	if len(v.Errors) > 0 {
		return b.d.Renderer.Render(c, http.StatusUnprocessableEntity, "backoffice_audit", v)
	}
	var after *audit.Cursor
	if at, id := c.Query("after_at"), c.Query("after_id"); at != "" && id != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err == nil {
			after = &audit.Cursor{At: t, ID: id}
		}
	}
	evs, err := b.d.Audit.Search(c.Context(), f, after, AuditPageSize)
	if err != nil {
		return err
	}
	params := auditParams(v)
	data := auditData{Searched: true, CSV: AuditPath + ".csv?" + params.Encode()}
	for _, ev := range evs {
		data.Rows = append(data.Rows, auditRowOf(ev))
	}
	if len(evs) == AuditPageSize {
		last := evs[len(evs)-1]
		params.Set("after_at", last.At.UTC().Format(time.RFC3339Nano))
		params.Set("after_id", last.ID)
		data.Next = AuditPath + "?" + params.Encode()
	}
	if after == nil {
		if err := b.s.Activity.Record(c.Context(), web.Actor(c), "audit.searched", audit.Success, "",
			map[string]any{"staff": m.AccountID, "filter": auditParams(v).Encode()}); err != nil {
			return err
		}
	}
	v.Data = data
	return b.d.Renderer.Render(c, http.StatusOK, "backoffice_audit", v)
}

func auditRowOf(ev audit.Event) auditRow {
	r := auditRow{At: ev.At.UTC(), Type: ev.Type, Outcome: string(ev.Outcome), IP: ev.IP, Request: ev.RequestID, Detail: ev.Detail}
	if ev.AccountID != nil {
		r.Account = *ev.AccountID
	}
	return r
}

// csvCell keeps a spreadsheet from reading a cell as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (b *BackOffice) auditCSV(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, AuditPath, identity.RoleAdmin)
	if !ok {
		return err
	}
	v := web.View{Title: "Audit trail", Values: map[string]string{}, Data: auditData{}}
	f, err := b.auditQuery(c, &v)
	if err != nil {
		return err
	}
	if len(v.Errors) > 0 {
		return b.d.Renderer.Render(c, http.StatusUnprocessableEntity, "backoffice_audit", v)
	}
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	_ = w.Write([]string{"at", "type", "outcome", "account_id", "ip", "user_agent", "request_id", "detail"})
	var after *audit.Cursor
	n := 0
	for n < AuditExportMax {
		evs, err := b.d.Audit.Search(c.Context(), f, after, min(1000, AuditExportMax-n))
		if err != nil {
			return err
		}
		for _, ev := range evs {
			r := auditRowOf(ev)
			_ = w.Write([]string{r.At.Format(time.RFC3339Nano), csvCell(r.Type), r.Outcome, csvCell(r.Account), csvCell(r.IP),
				csvCell(ev.UserAgent), csvCell(r.Request), csvCell(r.Detail)})
		}
		n += len(evs)
		if len(evs) < 1000 {
			break
		}
		last := evs[len(evs)-1]
		after = &audit.Cursor{At: last.At, ID: last.ID}
	}
	if n >= AuditExportMax {
		_ = w.Write([]string{fmt.Sprintf("# cut at %d events: narrow the search", AuditExportMax)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := b.s.Activity.Record(c.Context(), web.Actor(c), "audit.exported", audit.Success, "",
		map[string]any{"staff": m.AccountID, "filter": auditParams(v).Encode(), "events": n}); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="idlink-audit.csv"`)
	return c.Status(http.StatusOK).SendString(sb.String())
}
