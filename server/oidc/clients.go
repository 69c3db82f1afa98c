package oidc

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// Registration limits.
const (
	MaxRedirectURIs     = 10
	maxRedirectURILen   = 2000
	maxClientNameLen    = 200
	maxPublicKeyPEMLen  = 16 << 10
	minClientKeyBits    = 2048
	maxClientKeyBits    = 8192
	defaultClientAuthAl = "RS512"
)

// clientIDPattern is what a client_id chosen by an operator must look like;
// generated ones are 26 lowercase base32 characters.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$`)

// uriSchemePattern is RFC 3986's scheme syntax.
var uriSchemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// clientAuthAlgs are the JWS algorithms a client may sign its assertions
// with: RSA only (never none, never HMAC).
func clientAuthAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
}

// NHSProfileVectors returns the vector profiles of the NHS login
// specification that idlink offers: all twelve but the three that need
// Ck (a shared key in a registered device), which NHS login lists as not
// yet implemented and idlink does not offer either. Clients cannot
// register Ck vectors (they would strand people); requests may still list
// them beside others (see Client.RequestedVectors).
func NHSProfileVectors() []string {
	return []string{
		"P0.Cp", "P0.Cp.Cd", "P0.Cm",
		"P5.Cp", "P5.Cp.Cd", "P5.Cm",
		"P9.Cp", "P9.Cp.Cd", "P9.Cm",
	}
}

// Client is a registered relying party. The JSON form is the admin API's.
type Client struct {
	// ID is the client_id: random unless chosen at creation.
	ID   string `json:"client_id"`
	Name string `json:"name"`
	// RedirectURIs are matched exactly (at most MaxRedirectURIs).
	RedirectURIs []string `json:"redirect_uris"`
	// Scopes the client is approved for; openid is always among them.
	Scopes []string `json:"scopes"`
	// VTR lists the vectors of trust the client may request.
	VTR []string `json:"vtr"`
	// DefaultVTR is used when an authorization request has no vtr; a
	// subset of VTR.
	DefaultVTR []string `json:"default_vtr"`
	// PublicKeyPEM is the client's RSA public key (PKIX PEM, ≥ 2048 bits)
	// that verifies its client assertions; empty for public clients.
	PublicKeyPEM string `json:"public_key_pem,omitempty"`
	// AuthAlgs are the algorithms its client assertions may use.
	AuthAlgs []string `json:"token_endpoint_auth_signing_algs"`
	// RefreshTokens enables refresh tokens for the client.
	RefreshTokens bool `json:"refresh_tokens"`
	// Public marks a client that cannot keep a key (a native app): it
	// authenticates with client_id and PKCE only.
	Public bool `json:"public"`
	// IDTokenClaims says which claims the ID token carries: IDTokenClaimsNHS
	// (the default: NHS login's ID token claims only; the other scope
	// claims come from /userinfo) or IDTokenClaimsAll (every scope claim).
	IDTokenClaims string `json:"id_token_claims"`
	// MetadataOAEPHash is the hash of the RSA-OAEP encryption of the
	// generated client_user_metadata: OAEPSHA1 (the default, what NHS
	// login's examples decrypt) or OAEPSHA256.
	MetadataOAEPHash string    `json:"client_metadata_oaep_hash"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`

	publicKey   *rsa.PublicKey
	vtr         []trust.Vector
	defaultVTR  []trust.Vector
	development bool
}

// Values of Client.IDTokenClaims.
const (
	IDTokenClaimsNHS = "nhs"
	IDTokenClaimsAll = "all"
)

// Values of Client.MetadataOAEPHash.
const (
	OAEPSHA1   = "sha1"
	OAEPSHA256 = "sha256"
)

// ClientFieldError is a client-registration validation error naming the
// offending field. It wraps ErrInvalidClient.
type ClientFieldError struct {
	Field  string // JSON name, e.g. "redirect_uris"
	Reason string
}

func (e *ClientFieldError) Error() string {
	return ErrInvalidClient.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidClient.
func (e *ClientFieldError) Unwrap() error { return ErrInvalidClient }

func fieldErr(field, format string, args ...any) error {
	return &ClientFieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// HasRedirectURI reports whether uri exactly matches a registered redirect
// URI that the server's current mode allows (http loopback URIs only in
// development).
func (c *Client) HasRedirectURI(uri string) bool {
	return slices.Contains(c.RedirectURIs, uri) && validateRedirectURI(uri, c.Public, c.development) == nil
}

// AllowsScope reports whether the client is approved for scope.
func (c *Client) AllowsScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// AllowedVectors returns the vectors of trust the client may request.
func (c *Client) AllowedVectors() []trust.Vector { return slices.Clone(c.vtr) }

// DefaultVectors returns the vectors used when a request has no vtr.
func (c *Client) DefaultVectors() []trust.Vector { return slices.Clone(c.defaultVTR) }

// offeredVectors parses a vtr known to be valid, leaving out the vectors
// that need a credential idlink does not offer (Ck).
func offeredVectors(vtr string) []trust.Vector {
	vs, _ := trust.ParseVTR(vtr)
	out := vs[:0]
	for _, v := range vs {
		if !v.Credentials.Has(trust.Ck) {
			out = append(out, v)
		}
	}
	return out
}

// RequestedVectors applies the vtr rules of /authorize: vtrParam is the
// raw vtr parameter (a JSON array; empty means absent). Absent gives the
// client's default list; a malformed value gives an error wrapping one of
// trust's parse errors; a vector not registered for the client gives
// ErrVectorNotAllowed. The vectors come back as requested, in order.
func (c *Client) RequestedVectors(vtrParam string) ([]trust.Vector, error) {
	vs := c.DefaultVectors() // a client registered before Ck was refused may list Ck here
	if vtrParam != "" {
		var err error
		if vs, err = trust.ParseVTR(vtrParam); err != nil {
			return nil, fmt.Errorf("vtr: %w", err)
		}
	}
	out := vs[:0]
	for _, v := range vs {
		if v.Credentials.Has(trust.Ck) {
			// NHS login's own default lists P9.Cp.Ck and the NHS App sends
			// P5.Cp.Ck: no one can meet such a vector here, so it is passed
			// over, as long as another vector remains.
			continue
		}
		if !c.allowsVector(v) {
			return nil, fmt.Errorf("%w: %s", ErrVectorNotAllowed, v)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: every requested vector needs Ck, which idlink does not offer", ErrVectorNotAllowed)
	}
	return out, nil
}

func (c *Client) allowsVector(v trust.Vector) bool {
	k := vectorKey(v)
	for _, a := range c.vtr {
		if vectorKey(a) == k {
			return true
		}
	}
	if len(v.Credentials) == 0 {
		// A vector naming only a level (["P9"]) asks for NHS login's usual
		// authentication at that level: allowed when the client registered
		// one of those vectors at that level.
		for _, set := range trust.DefaultCredentialSets() {
			if c.allowsVector(trust.Vector{Level: v.Level, HasLevel: true, Credentials: set}) {
				return true
			}
		}
	}
	return false
}

// vectorKey identifies a vector regardless of how it was written: an
// omitted proofing level is P0 and credential order does not matter.
func vectorKey(v trust.Vector) string {
	return v.Level.String() + "." + strings.Join(credStrings(trust.Credentials(nil).With(v.Credentials...)), ".")
}

func credStrings(cs trust.Credentials) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// Clients is the client registry, stored in oidc_clients. It is safe for
// concurrent use.
type Clients struct {
	store       *store
	now         func() time.Time
	development bool

	// parsed caches decoded clients by id with the row they came from: a
	// row read again that is unchanged skips JSON and key parsing. Every
	// Get still reads the row, so changes made by another replica apply at
	// once.
	mu     sync.Mutex
	parsed map[string]parsedClient
}

type parsedClient struct {
	row    clientRow
	client *Client
}

func (r *clientRow) equal(o *clientRow) bool {
	return r.ID == o.ID && r.Name == o.Name && r.RedirectURIs == o.RedirectURIs && r.Scopes == o.Scopes &&
		r.Vectors == o.Vectors && r.DefaultVectors == o.DefaultVectors && r.PublicKeyPEM == o.PublicKeyPEM &&
		r.AuthAlgs == o.AuthAlgs && r.RefreshEnabled == o.RefreshEnabled && r.IsPublic == o.IsPublic &&
		r.IDTokenClaims == o.IDTokenClaims && r.MetadataOAEPHash == o.MetadataOAEPHash &&
		r.CreatedAt.Equal(o.CreatedAt) && r.UpdatedAt.Equal(o.UpdatedAt)
}

// clone returns a copy of c that shares nothing mutable with it.
func (c *Client) clone() *Client {
	out := *c
	out.RedirectURIs = slices.Clone(c.RedirectURIs)
	out.Scopes = slices.Clone(c.Scopes)
	out.VTR = slices.Clone(c.VTR)
	out.DefaultVTR = slices.Clone(c.DefaultVTR)
	out.AuthAlgs = slices.Clone(c.AuthAlgs)
	out.vtr = slices.Clone(c.vtr)
	out.defaultVTR = slices.Clone(c.defaultVTR)
	return &out
}

type clientRow struct {
	ID             string `db:"id"`
	Name           string `db:"name"`
	RedirectURIs   string `db:"redirect_uris"`
	Scopes         string `db:"scopes"`
	Vectors        string `db:"vectors"`
	DefaultVectors string `db:"default_vectors"`
	PublicKeyPEM   string `db:"public_key_pem"`
	AuthAlgs       string `db:"auth_algs"`
	RefreshEnabled bool   `db:"refresh_enabled"`
	IsPublic       bool   `db:"is_public"`
	IDTokenClaims  string `db:"id_token_claims"`
	// MetadataOAEPHash is the hash of client_user_metadata's RSA-OAEP.
	MetadataOAEPHash string    `db:"metadata_oaep_hash"`
	CreatedAt        time.Time `db:"created_at"`
	UpdatedAt        time.Time `db:"updated_at"`
}

// Create validates c, fills in defaults (a random client_id when ID is
// empty, the NHS default vectors, RS512) and stores it. A taken client_id
// gives an error wrapping ErrClientExists.
func (cs *Clients) Create(ctx context.Context, c Client) (*Client, error) {
	if c.ID == "" {
		c.ID = secrets.NewID()
	}
	if err := cs.normalize(&c); err != nil {
		return nil, err
	}
	now := cs.now()
	c.CreatedAt, c.UpdatedAt = now, now
	row, err := toRow(&c)
	if err != nil {
		return nil, err
	}
	err = cs.store.insertClient(ctx, row)
	if migrations.IsUniqueViolation(err) {
		return nil, fmt.Errorf("%w: %q", ErrClientExists, c.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return &c, nil
}

// Get returns the client with this client_id, or an error wrapping
// ErrClientNotFound.
func (cs *Clients) Get(ctx context.Context, id string) (*Client, error) {
	row, err := cs.store.clientRow(ctx, id)
	if migrations.IsNoRows(err) {
		return nil, fmt.Errorf("%w: %q", ErrClientNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get client: %w", err)
	}
	cs.mu.Lock()
	cached, ok := cs.parsed[id]
	cs.mu.Unlock()
	if ok && cached.row.equal(&row) {
		return cached.client.clone(), nil
	}
	c, err := cs.fromRow(&row)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	if cs.parsed == nil {
		cs.parsed = map[string]parsedClient{}
	}
	cs.parsed[id] = parsedClient{row: row, client: c.clone()}
	cs.mu.Unlock()
	return c, nil
}

// List returns every client, oldest first.
func (cs *Clients) List(ctx context.Context) ([]*Client, error) {
	rows, err := cs.store.clientRows(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := make([]*Client, 0, len(rows))
	for i := range rows {
		c, err := cs.fromRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Update validates c and replaces the stored client with the same ID
// (everything but the creation time). Concurrent updates: the last wins.
func (cs *Clients) Update(ctx context.Context, c Client) (*Client, error) {
	if err := cs.normalize(&c); err != nil {
		return nil, err
	}
	c.UpdatedAt = cs.now()
	row, err := toRow(&c)
	if err != nil {
		return nil, err
	}
	created, err := cs.store.updateClient(ctx, row)
	if migrations.IsNoRows(err) {
		return nil, fmt.Errorf("%w: %q", ErrClientNotFound, c.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("update client: %w", err)
	}
	c.CreatedAt = created.UTC()
	return &c, nil
}

// Delete removes a client with its grants, refresh tokens and client
// metadata; its access tokens stop working at /userinfo.
func (cs *Clients) Delete(ctx context.Context, id string) error {
	found, err := cs.store.deleteClient(ctx, id)
	if err != nil {
		return fmt.Errorf("delete client: %w", err)
	}
	cs.mu.Lock()
	delete(cs.parsed, id)
	cs.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %q", ErrClientNotFound, id)
	}
	return nil
}

func toRow(c *Client) (*clientRow, error) {
	enc := func(v []string) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	row := &clientRow{
		ID: c.ID, Name: c.Name, PublicKeyPEM: c.PublicKeyPEM,
		RefreshEnabled: c.RefreshTokens, IsPublic: c.Public, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		IDTokenClaims: c.IDTokenClaims, MetadataOAEPHash: c.MetadataOAEPHash,
	}
	for _, f := range []struct {
		dst *string
		src []string
	}{
		{&row.RedirectURIs, c.RedirectURIs}, {&row.Scopes, c.Scopes}, {&row.Vectors, c.VTR},
		{&row.DefaultVectors, c.DefaultVTR}, {&row.AuthAlgs, c.AuthAlgs},
	} {
		s, err := enc(f.src)
		if err != nil {
			return nil, fmt.Errorf("encode client: %w", err)
		}
		*f.dst = s
	}
	return row, nil
}

func (cs *Clients) fromRow(row *clientRow) (*Client, error) {
	c := &Client{
		ID: row.ID, Name: row.Name, PublicKeyPEM: row.PublicKeyPEM,
		RefreshTokens: row.RefreshEnabled, Public: row.IsPublic,
		IDTokenClaims: row.IDTokenClaims, MetadataOAEPHash: row.MetadataOAEPHash,
		CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC(),
		development: cs.development,
	}
	for _, f := range []struct {
		src string
		dst *[]string
	}{
		{row.RedirectURIs, &c.RedirectURIs}, {row.Scopes, &c.Scopes}, {row.Vectors, &c.VTR},
		{row.DefaultVectors, &c.DefaultVTR}, {row.AuthAlgs, &c.AuthAlgs},
	} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("decode client %s: %w", row.ID, err)
		}
	}
	var err error
	if c.vtr, err = parseVectors(c.VTR); err != nil {
		return nil, fmt.Errorf("decode client %s: %w", row.ID, err)
	}
	if c.defaultVTR, err = parseVectors(c.DefaultVTR); err != nil {
		return nil, fmt.Errorf("decode client %s: %w", row.ID, err)
	}
	if c.PublicKeyPEM != "" {
		if c.publicKey, err = parseRSAPublicKeyPEM(c.PublicKeyPEM); err != nil {
			return nil, fmt.Errorf("decode client %s: %w", row.ID, err)
		}
	}
	return c, nil
}

func parseVectors(strs []string) ([]trust.Vector, error) {
	out := make([]trust.Vector, 0, len(strs))
	for _, s := range strs {
		v, err := trust.ParseVector(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// normalize validates c and fills in defaults, in place.
func (cs *Clients) normalize(c *Client) error {
	c.development = cs.development
	for _, step := range []func(*Client) error{
		normalizeName, cs.normalizeRedirectURIs, normalizeScopes, normalizeOptions, normalizeClientVectors, normalizeKey,
	} {
		if err := step(c); err != nil {
			return err
		}
	}
	return nil
}

// normalizeName checks the client id and the name people see.
func normalizeName(c *Client) error {
	if !clientIDPattern.MatchString(c.ID) {
		return fieldErr("client_id", "must be 3–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	c.Name = strings.TrimSpace(c.Name)
	switch {
	case c.Name == "":
		return fieldErr("name", "is required")
	case len(c.Name) > maxClientNameLen:
		return fieldErr("name", "is longer than %d bytes", maxClientNameLen)
	case strings.IndexFunc(c.Name, unicode.IsControl) >= 0:
		return fieldErr("name", "contains control characters")
	}
	return nil
}

// normalizeRedirectURIs checks each redirect URI, once each.
func (cs *Clients) normalizeRedirectURIs(c *Client) error {
	if len(c.RedirectURIs) == 0 {
		return fieldErr("redirect_uris", "at least one redirect URI is required")
	}
	if len(c.RedirectURIs) > MaxRedirectURIs {
		return fieldErr("redirect_uris", "at most %d redirect URIs", MaxRedirectURIs)
	}
	for i, u := range c.RedirectURIs {
		if err := validateRedirectURI(u, c.Public, cs.development); err != nil {
			return fieldErr("redirect_uris", "%q: %v", u, err)
		}
		if slices.Contains(c.RedirectURIs[:i], u) {
			return fieldErr("redirect_uris", "%q is listed twice", u)
		}
	}
	return nil
}

// normalizeScopes keeps known scopes once each; openid is required.
func normalizeScopes(c *Client) error {
	if len(c.Scopes) == 0 {
		c.Scopes = []string{ScopeOpenID}
	}
	var scopes []string
	for _, s := range c.Scopes {
		if _, ok := scopeMinLevel(s); !ok {
			return fieldErr("scopes", "unknown scope %q", s)
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if !slices.Contains(scopes, ScopeOpenID) {
		return fieldErr("scopes", "must include openid")
	}
	c.Scopes = scopes
	return nil
}

// normalizeOptions checks the ID token's claims and the metadata's OAEP
// hash, defaulting to NHS login's.
func normalizeOptions(c *Client) error {
	switch c.IDTokenClaims {
	case "":
		c.IDTokenClaims = IDTokenClaimsNHS
	case IDTokenClaimsNHS, IDTokenClaimsAll:
	default:
		return fieldErr("id_token_claims", "must be %q or %q", IDTokenClaimsNHS, IDTokenClaimsAll)
	}
	switch c.MetadataOAEPHash {
	case "":
		c.MetadataOAEPHash = OAEPSHA1
	case OAEPSHA1, OAEPSHA256:
	default:
		return fieldErr("client_metadata_oaep_hash", "must be %q or %q", OAEPSHA1, OAEPSHA256)
	}
	return nil
}

// normalizeClientVectors checks the allowed and default vectors of trust;
// the defaults must be allowed.
func normalizeClientVectors(c *Client) error {
	var err error
	if c.VTR, c.vtr, err = normalizeVectors(c.VTR, "vtr"); err != nil {
		return err
	}
	if c.DefaultVTR, c.defaultVTR, err = normalizeVectors(c.DefaultVTR, "default_vtr"); err != nil {
		return err
	}
	nhsDefault := offeredVectors(trust.DefaultVTR)
	switch {
	case len(c.vtr) == 0 && len(c.defaultVTR) == 0:
		c.vtr, c.defaultVTR = nhsDefault, nhsDefault
	case len(c.vtr) == 0:
		c.vtr = c.defaultVTR
	case len(c.defaultVTR) == 0:
		c.defaultVTR = nhsDefault
		for _, v := range nhsDefault {
			if !c.allowsVector(v) {
				return fieldErr("default_vtr", "required: the NHS default %s is not among the allowed vectors", trust.DefaultVTR)
			}
		}
	}
	for _, v := range c.defaultVTR {
		if !c.allowsVector(v) {
			return fieldErr("default_vtr", "%s is not among the allowed vectors (vtr)", v)
		}
	}
	c.VTR, c.DefaultVTR = vectorStrings(c.vtr), vectorStrings(c.defaultVTR)
	return nil
}

// normalizeKey checks the public key and signing algorithms of a
// confidential client, and that a public client has neither.
func normalizeKey(c *Client) error {
	if c.Public {
		if c.PublicKeyPEM != "" {
			return fieldErr("public_key_pem", "a public client has no key")
		}
		if len(c.AuthAlgs) > 0 {
			return fieldErr("token_endpoint_auth_signing_algs", "a public client does not sign client assertions")
		}
		if slices.Contains(c.Scopes, ScopeClientMetadata) {
			return fieldErr("scopes", "client_metadata needs the client's public key, and a public client has none")
		}
		c.publicKey, c.AuthAlgs = nil, []string{}
		return nil
	}
	if c.PublicKeyPEM == "" {
		return fieldErr("public_key_pem", "is required unless the client is public")
	}
	if len(c.PublicKeyPEM) > maxPublicKeyPEMLen {
		return fieldErr("public_key_pem", "is longer than %d bytes", maxPublicKeyPEMLen)
	}
	pub, err := parseRSAPublicKeyPEM(c.PublicKeyPEM)
	if err != nil {
		return fieldErr("public_key_pem", "%v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fieldErr("public_key_pem", "%v", err)
	}
	c.publicKey = pub
	c.PublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if len(c.AuthAlgs) == 0 {
		c.AuthAlgs = []string{defaultClientAuthAl}
	}
	var algs []string
	for _, a := range c.AuthAlgs {
		if !slices.Contains(clientAuthAlgs(), a) {
			return fieldErr("token_endpoint_auth_signing_algs", "%q is not one of %s", a, strings.Join(clientAuthAlgs(), ", "))
		}
		if !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	c.AuthAlgs = algs
	return nil
}

func normalizeVectors(strs []string, field string) ([]string, []trust.Vector, error) {
	if len(strs) > 24 {
		return nil, nil, fieldErr(field, "too many vectors")
	}
	var out []trust.Vector
	seen := map[string]bool{}
	for _, s := range strs {
		v, err := trust.ParseVector(s)
		if err != nil {
			return nil, nil, fieldErr(field, "%v", err)
		}
		if v.Credentials.Has(trust.Ck) {
			// Nobody can prove Ck here: a client whose requests need it
			// would strand every person it sends.
			return nil, nil, fieldErr(field, "%s needs Ck (a shared key in a registered device), which idlink does not offer", v)
		}
		if k := vectorKey(v); !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return vectorStrings(out), out, nil
}

func vectorStrings(vs []trust.Vector) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// deniedSchemes can never be redirect targets, even for native apps.
func deniedScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "javascript", "data", "vbscript", "file", "about", "blob", "filesystem", "ftp", "ws", "wss", "mailto", "tel", "sms":
		return true
	}
	return false
}

// validateRedirectURI applies the registration rules: absolute, no
// fragment, no query string, no wildcard, no user information; https,
// http on a loopback host in development, or (public clients only, as
// RFC 8252 allows native apps) a private-use URI scheme.
func validateRedirectURI(raw string, public, development bool) error {
	switch {
	case raw == "":
		return fmt.Errorf("empty")
	case len(raw) > maxRedirectURILen:
		return fmt.Errorf("longer than %d bytes", maxRedirectURILen)
	case strings.Contains(raw, "#"):
		return fmt.Errorf("must not have a fragment")
	case strings.Contains(raw, "*"):
		return fmt.Errorf("wildcards are not allowed")
	case strings.IndexFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("contains white space or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URI")
	}
	switch {
	case !u.IsAbs() || !uriSchemePattern.MatchString(u.Scheme):
		return fmt.Errorf("must be an absolute URI")
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("must not have a query string")
	case u.User != nil:
		return fmt.Errorf("must not contain user information")
	}
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" {
			return fmt.Errorf("https URI without a host")
		}
	case "http":
		if !development {
			return fmt.Errorf("must use https (http is allowed only for loopback addresses in development mode)")
		}
		switch u.Hostname() {
		case "127.0.0.1", "::1", "localhost":
		default:
			return fmt.Errorf("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost)")
		}
	default:
		if !public {
			return fmt.Errorf("must use https (private-use URI schemes are for public native clients)")
		}
		if deniedScheme(u.Scheme) {
			return fmt.Errorf("scheme %q cannot be a redirect target", u.Scheme)
		}
		if u.Opaque != "" {
			return fmt.Errorf("must have a path, as in %s:/callback or %s://callback", u.Scheme, u.Scheme)
		}
	}
	return nil
}

// parseRSAPublicKeyPEM reads one PEM block holding an RSA public key
// (PKIX "PUBLIC KEY" or PKCS #1 "RSA PUBLIC KEY") of 2048 to 8192 bits.
func parseRSAPublicKeyPEM(s string) (*rsa.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("not a PEM block")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("must hold exactly one PEM block")
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cannot parse public key: %v", err)
		}
		var ok bool
		if pub, ok = k.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("the key is %T, not RSA", k)
		}
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cannot parse public key: %v", err)
		}
		pub = k
	case "PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("this is a private key: register the public key only")
	default:
		return nil, fmt.Errorf("PEM type %q is not a public key", block.Type)
	}
	if n := pub.N.BitLen(); n < minClientKeyBits || n > maxClientKeyBits {
		return nil, fmt.Errorf("RSA key of %d bits: must be %d to %d bits", n, minClientKeyBits, maxClientKeyBits)
	}
	return pub, nil
}
