// Command idlink-loadlogin measures how many complete password logins per
// second a development-mode idlink server sustains: it creates accounts
// through the signup pages, then runs concurrent logins (login page, email
// and password, the texted code read from the development outbox, the
// account page) for a fixed time and reports the rate and latencies.
//
// Run the server and this tool on separate cores to measure the server
// alone, e.g.:
//
//	GOMAXPROCS=1 taskset -c 0 idlink serve &
//	taskset -c 1 idlink-loadlogin -url http://127.0.0.1:8080 -accounts 200 -concurrency 4 -duration 30s
//
// It only talks to the URL it is given and stops by itself.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "base URL of a development-mode idlink server")
	accounts := flag.Int("accounts", 100, "accounts to create (each may log in 5 times per 15 minutes: the code limit)")
	concurrency := flag.Int("concurrency", 4, "logins in flight at once")
	duration := flag.Duration("duration", 20*time.Second, "how long to run logins")
	password := flag.String("password", "load test passphrase 42", "password of the created accounts")
	flag.Parse()
	if *accounts < 1 || *accounts > 1000 || *concurrency < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "idlink-loadlogin: -accounts 1..1000, -concurrency ≥ 1, -duration > 0")
		os.Exit(2)
	}
	if err := run(*base, *accounts, *concurrency, *duration, *password); err != nil {
		fmt.Fprintln(os.Stderr, "idlink-loadlogin:", err)
		os.Exit(1)
	}
}

type account struct{ email, phone string }

func run(base string, n, concurrency int, duration time.Duration, pw string) error {
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	accts := make([]account, n)
	for i := range accts {
		accts[i] = account{email: fmt.Sprintf("load-%s-%d@example.org", run, i), phone: fmt.Sprintf("+447700900%03d", i)}
	}
	start := time.Now()
	if err := parallel(concurrency, len(accts), func(i int) error { return signup(base, accts[i], pw) }); err != nil {
		return fmt.Errorf("creating accounts: %w", err)
	}
	fmt.Printf("created %d accounts in %s\n", n, time.Since(start).Round(time.Millisecond))

	var (
		next      atomic.Int64
		failures  atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
	)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start = time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)-1) % len(accts)
				t0 := time.Now()
				if err := login(base, accts[i], pw); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	fmt.Printf("%d logins in %s: %.1f logins/s with %d in flight; latency p50 %s p90 %s p99 %s; %d failed\n",
		len(latencies), elapsed.Round(time.Millisecond), float64(len(latencies))/elapsed.Seconds(), concurrency,
		pct(.5).Round(time.Millisecond), pct(.9).Round(time.Millisecond), pct(.99).Round(time.Millisecond), failures.Load())
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("first failure: %w", e.(error))
	}
	return nil
}

func parallel(workers, n int, fn func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// browser is a cookie-keeping client that posts forms with their CSRF token.
type browser struct {
	base string
	c    *http.Client
	last string
}

func newBrowser(base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second}}
}

var (
	csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	h1RE   = regexp.MustCompile(`<h1[^>]*>([^<]*)</h1>|<label class="nhsuk-label nhsuk-label--l" for="[^"]*">([^<]*)</label>`)
)

func (b *browser) page(resp *http.Response, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	b.last = string(body)
	if resp.StatusCode >= 400 {
		return "", fmt.Errorf("%s: HTTP %d (%s)", resp.Request.URL.Path, resp.StatusCode, heading(b.last))
	}
	return heading(b.last), nil
}

func heading(body string) string {
	m := h1RE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1] + m[2])
}

func (b *browser) get(path string) (string, error) { return b.page(b.c.Get(b.base + path)) }

func (b *browser) submit(path string, fields url.Values) (string, error) {
	m := csrfRE.FindStringSubmatch(b.last)
	if m == nil {
		return "", errors.New("no form on the page before " + path)
	}
	fields.Set("csrf_token", m[1])
	return b.page(b.c.PostForm(b.base+path, fields))
}

func (b *browser) expect(h string, err error, want string) error {
	if err != nil {
		return err
	}
	if h != want {
		return fmt.Errorf("expected page %q, got %q", want, h)
	}
	return nil
}

type outboxEntry struct {
	Link string `json:"link"`
	Code string `json:"code"`
}

func (b *browser) outbox(to, kind string) (outboxEntry, error) {
	resp, err := b.c.Get(b.base + "/dev/outbox.json?" + url.Values{"to": {to}, "kind": {kind}}.Encode())
	if err != nil {
		return outboxEntry{}, err
	}
	defer resp.Body.Close()
	var out struct {
		Messages []outboxEntry `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Messages) == 0 {
		return outboxEntry{}, fmt.Errorf("no %s message for %s in the development outbox (is the server in development mode?)", kind, to)
	}
	return out.Messages[0], nil
}

func signup(base string, a account, pw string) error {
	b := newBrowser(base)
	h, err := b.get("/create-account/email")
	steps := []struct {
		path   string
		fields url.Values
		want   string
	}{
		{"/create-account/email", url.Values{"email": {a.email}}, "Create a password"},
		{"/create-account/password", url.Values{"password": {pw}}, "Accept the terms of use"},
		{"/create-account/terms", url.Values{"terms": {"accept"}}, "Check your email"},
	}
	if err := b.expect(h, err, "What is your email address?"); err != nil {
		return err
	}
	for _, s := range steps {
		h, err := b.submit(s.path, s.fields)
		if err := b.expect(h, err, s.want); err != nil {
			return err
		}
	}
	link, err := b.outbox(a.email, "signup_verify_email")
	if err != nil {
		return err
	}
	if h, err := b.page(b.c.Get(link.Link)); b.expect(h, err, "Confirm your email address") != nil {
		return b.expect(h, err, "Confirm your email address")
	}
	u, _ := url.Parse(link.Link)
	if h, err := b.submit("/create-account/verify", url.Values{"token": {u.Query().Get("token")}}); b.expect(h, err, "Enter your mobile phone number") != nil {
		return b.expect(h, err, "Enter your mobile phone number")
	}
	if h, err := b.submit("/create-account/phone", url.Values{"phone": {a.phone}}); b.expect(h, err, "Enter the security code") != nil {
		return b.expect(h, err, "Enter the security code")
	}
	code, err := b.outbox(a.phone, "signup_code")
	if err != nil {
		return err
	}
	h, err = b.submit("/create-account/code", url.Values{"code": {code.Code}})
	return b.expect(h, err, "Your account")
}

func login(base string, a account, pw string) error {
	b := newBrowser(base)
	h, err := b.get("/login")
	if err := b.expect(h, err, "Log in"); err != nil {
		return err
	}
	h, err = b.submit("/login", url.Values{"email": {a.email}, "password": {pw}})
	if err := b.expect(h, err, "Enter the security code"); err != nil {
		return err
	}
	code, err := b.outbox(a.phone, "login_code")
	if err != nil {
		return err
	}
	h, err = b.submit("/login/code", url.Values{"code": {code.Code}})
	return b.expect(h, err, "Your account")
}
