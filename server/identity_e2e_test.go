package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media/mediatest"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/servertest"
)

// The end-to-end tests of identity proofing: a relying party registered
// for the proofed scopes, and people raising their level through the
// pages (P5 by PDS match, P9 by GP details or by photo ID), with what the
// tokens release checked at every step.

// Scope requests of the relying party (profile and basic_demographics
// cannot be asked together).
const (
	idScopeProfile = "openid profile gp_registration_details gp_integration_credentials"
	idScopeBasic   = "openid basic_demographics gp_registration_details gp_integration_credentials"
	idVTRP0        = `["P0.Cp.Cd"]`
	idVTRP5        = `["P5.Cp.Cd", "P9.Cp.Cd"]`
	idUpliftH1     = "You need to prove who you are"
	idConsentH1    = "Share your details with Test Health Service"
)

// idPerson is a person of the PDS sandbox.
type idPerson struct {
	email                               string
	nhs, given, family, birth, postcode string
	ods                                 string // GP practice in PDS
}

var (
	idJane   = idPerson{"jane.smith@example.org", "9000000009", "Jane", "Smith", "2010-10-22", "LS1 6AE", "Y12345"}
	idOlivia = idPerson{"olivia.taylor@example.org", "9990000344", "Olivia", "Taylor", "1970-07-07", "LS1 6AE", "Y90003"}
	idGeorge = idPerson{"george.walker@example.org", "9990000026", "George", "Walker", "1941-02-04", "M1 1AE", "Y90002"}
)

// idProofedClaims are the claims of the proofed scopes.
// idTokenClaims are the scope claims NHS login's ID token carries.
var idTokenClaims = []string{"nhs_number", "family_name", "birthdate", "identity_proofing_level"}

var idProofedClaims = []string{"nhs_number", "family_name", "given_name", "birthdate", "identity_proofing_level",
	"gp_registration_details", "gp_integration_credentials"}

// idRP registers a relying party approved for the proofed scopes.
func idRP(t *testing.T, s *servertest.Server) *servertest.RP {
	return servertest.NewRP(t, s, false, "profile", "basic_demographics", "gp_registration_details", "gp_integration_credentials")
}

// idRequest is an authorization request for scope; vtr "" leaves the
// default list (["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]).
func idRequest(r *servertest.RP, scope, vtr string) servertest.AuthRequest {
	extra := map[string]string{"scope": scope}
	if vtr != "" {
		extra["vtr"] = vtr
	}
	return r.Request(extra)
}

// idAllow agrees to share when the consent page is shown.
func idAllow(t *testing.T, b *servertest.Browser, p *servertest.Page) *servertest.Page {
	t.Helper()
	if p.H1() != idConsentH1 {
		return p
	}
	return b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
}

// idResult is what the relying party got from one authorization: the ID
// token's claims, the granted scope and the access token's claims.
type idResult struct {
	claims, access map[string]any
	scope          string
	tok            *oauth2.Token
}

// idTokens exchanges the code the relying party received, checks that
// userinfo says the same as the ID token about the proofed claims, and
// verifies the access token.
func idTokens(t *testing.T, s *servertest.Server, r *servertest.RP, p *servertest.Page, a servertest.AuthRequest) idResult {
	t.Helper()
	ctx := context.Background()
	q := r.Returned(p, a)
	require.Empty(t, q.Get("error"), q.Get("error_description"))
	tok, idt, claims := r.Exchange(q.Get("code"), a)
	info, err := r.Provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	require.NoError(t, err)
	require.Equal(t, idt.Subject, info.Subject)
	ui := map[string]any{}
	require.NoError(t, info.Claims(&ui))
	for _, c := range idProofedClaims {
		if slices.Contains(idTokenClaims, c) {
			require.Equal(t, claims[c], ui[c], "userinfo and ID token differ on %s", c)
			continue
		}
		// NHS login's ID token leaves the other scope claims to /userinfo.
		require.Nil(t, claims[c], "%s in the ID token", c)
		if v, ok := ui[c]; ok {
			claims[c] = v
		}
	}
	payload, err := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json").VerifySignature(ctx, tok.AccessToken)
	require.NoError(t, err)
	access := map[string]any{}
	require.NoError(t, json.Unmarshal(payload, &access))
	scope, _ := tok.Extra("scope").(string)
	return idResult{claims: claims, access: access, scope: scope, tok: tok}
}

// idExpect checks what was released with vot (a P0, P5 or P9 vector) to
// p, who has reached level reached; basic is a basic_demographics request
// (no NHS number). link is the GP linkage expected at P9.
func idExpect(t *testing.T, res idResult, vot string, basic bool, reached string, p idPerson, link *gp.Linkage) {
	t.Helper()
	claims := res.claims
	require.Equal(t, vot, claims["vot"])
	require.Equal(t, vot, res.access["vot"])
	require.Nil(t, claims["given_name"], "profile_extended was not asked")
	demographics := "profile"
	if basic {
		demographics = "basic_demographics"
	}
	level := vot[:2]
	if level == "P0" {
		require.Equal(t, "openid", res.scope)
		for _, c := range idProofedClaims {
			require.Nil(t, claims[c], "%s released at P0", c)
		}
		require.Nil(t, res.access["nhs_number"])
		return
	}
	if basic {
		require.Nil(t, claims["nhs_number"], "basic_demographics has no NHS number")
		require.Nil(t, res.access["nhs_number"])
	} else {
		require.Equal(t, p.nhs, claims["nhs_number"])
		require.Equal(t, p.nhs, res.access["nhs_number"], "the access token carries the NHS number with profile")
	}
	require.Equal(t, p.family, claims["family_name"])
	require.Equal(t, p.birth, claims["birthdate"])
	require.Equal(t, reached, claims["identity_proofing_level"])
	require.Equal(t, map[string]any{"gp_ods_code": p.ods}, claims["gp_registration_details"])
	if level == "P5" {
		require.Equal(t, "openid "+demographics+" gp_registration_details", res.scope)
		require.Nil(t, claims["gp_integration_credentials"], "gp_integration_credentials needs P9")
		return
	}
	require.Equal(t, "openid "+demographics+" gp_registration_details gp_integration_credentials", res.scope)
	require.NotNil(t, link)
	require.Equal(t, map[string]any{"gp_user_id": link.AccountID, "gp_linkage_key": link.LinkageKey, "gp_ods_code": link.ODSCode},
		claims["gp_integration_credentials"])
}

// ---- pages ----

func idParse(t *testing.T, p *servertest.Page) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.Body))
	require.NoError(t, err)
	return doc
}

func idWalk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		idWalk(c, fn)
	}
}

func idAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// idLink returns the href of the page's link whose text contains text.
func idLink(t *testing.T, p *servertest.Page, text string) string {
	t.Helper()
	var href string
	idWalk(idParse(t, p), func(n *html.Node) {
		if href != "" || n.Type != html.ElementNode || n.Data != "a" {
			return
		}
		var sb strings.Builder
		idWalk(n, func(c *html.Node) {
			if c.Type == html.TextNode {
				sb.WriteString(c.Data + " ")
			}
		})
		if strings.Contains(strings.Join(strings.Fields(sb.String()), " "), text) {
			href = idAttr(n, "href")
		}
	})
	require.NotEmpty(t, href, "no link %q on %s (%s)", text, p.URL, p.H1())
	return href
}

// idHidden returns the hidden inputs of the form posting to action.
func idHidden(t *testing.T, p *servertest.Page, action string) map[string]string {
	t.Helper()
	out := map[string]string{}
	found := false
	idWalk(idParse(t, p), func(n *html.Node) {
		if found || n.Type != html.ElementNode || n.Data != "form" || idAttr(n, "action") != action {
			return
		}
		found = true
		idWalk(n, func(c *html.Node) {
			if c.Type == html.ElementNode && c.Data == "input" && idAttr(c, "type") == "hidden" {
				out[idAttr(c, "name")] = idAttr(c, "value")
			}
		})
	})
	require.True(t, found, "no form posting to %s on %s (%s)", action, p.URL, p.H1())
	return out
}

// idStartProving follows the uplift page's "Prove who you are" link and
// then the route's link on /prove.
func idStartProving(t *testing.T, b *servertest.Browser, uplift *servertest.Page, route string) *servertest.Page {
	t.Helper()
	require.Equal(t, idUpliftH1, uplift.H1(), uplift.Errors())
	href := idLink(t, uplift, "Prove who you are")
	u, err := url.Parse(href)
	require.NoError(t, err)
	require.Equal(t, identity.ProvePath, u.Path)
	require.True(t, strings.HasPrefix(u.Query().Get("return_to"), "/authorize/continue?id="), href)
	p := b.Get(href)
	require.Equal(t, "Prove who you are", p.H1())
	return b.Get(idLink(t, p, route))
}

// idProveDetails proves P5 through /prove/details from the uplift page and
// returns where the person was sent back to.
func idProveDetails(t *testing.T, b *servertest.Browser, uplift *servertest.Page, who idPerson) *servertest.Page {
	t.Helper()
	p := idStartProving(t, b, uplift, "Match your details with NHS records")
	require.Equal(t, "Enter your details", p.H1())
	require.Equal(t, identity.ProveDetailsPath, p.URL.Path)
	d := strings.Split(who.birth, "-")
	return b.Submit(p, identity.ProveDetailsPath, map[string]string{
		"dob-day": d[2], "dob-month": d[1], "dob-year": d[0],
		"given_name": who.given, "family_name": who.family, "postcode": who.postcode,
	})
}

// idProveGP proves P9 through /prove/gp with link from the uplift page.
func idProveGP(t *testing.T, b *servertest.Browser, uplift *servertest.Page, link gp.Linkage) *servertest.Page {
	t.Helper()
	p := idStartProving(t, b, uplift, "Use your GP online services details")
	require.Equal(t, "Enter your GP online services details", p.H1())
	return b.Submit(p, identity.ProveGPPath, map[string]string{
		"linkage_key": link.LinkageKey, "ods_code": link.ODSCode, "account_id": link.AccountID,
	})
}

// idUploadPhoto sends photo ID and a video with the form of the photo
// page p (multipart, as a browser would) and returns the page it ends on.
func idUploadPhoto(t *testing.T, b *servertest.Browser, p *servertest.Page) *servertest.Page {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range idHidden(t, p, identity.ProvePhotoPath) {
		require.NoError(t, w.WriteField(k, v))
	}
	require.NoError(t, w.WriteField("document_type", identity.DocPassport))
	for name, data := range map[string][]byte{"photo": idJPEG(t), "video": idMP4(5)} {
		fw, err := w.CreateFormFile(name, name+".bin")
		require.NoError(t, err)
		_, err = fw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	resp, err := b.Client.Post(p.URL.ResolveReference(&url.URL{Path: identity.ProvePhotoPath}).String(), w.FormDataContentType(), &buf)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, identity.ProvePhotoPath, resp.Request.URL.Path, "redirected back to the photo page")
	return b.Get(resp.Request.URL.String())
}

// idLinkage returns the GP linkage of p at their practice.
func idLinkage(t *testing.T, s *servertest.Server, p idPerson) gp.Linkage {
	t.Helper()
	l, err := s.GP.LinkageFor(context.Background(), nhsnumber.MustParse(p.nhs), p.ods)
	require.NoError(t, err)
	return l
}

// idRefresh posts a refresh_token grant with the client's assertion and
// returns the status and JSON answer.
func idRefresh(t *testing.T, r *servertest.RP, refresh string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(r.Config.Endpoint.TokenURL, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {r.Client.ID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {r.Assertion()},
	})
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func idJPEG(t *testing.T) []byte { return mediatest.Photo(t) }

func idMP4(seconds uint32) []byte { return mediatest.MP4(float64(seconds)) }

// ---- tests ----

// TestProofingReleasesClaimsAtTheirLevels: one person goes from P0 to P5
// (PDS match) to P9 (GP online-services details) through the uplift
// journey of a relying party, and the tokens release profile,
// basic_demographics, gp_registration_details and
// gp_integration_credentials exactly at their levels.
func TestProofingReleasesClaimsAtTheirLevels(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := idRP(t, s)
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, idJane.email, pw, phone)

		// P0: the default vector list (P9) gets the uplift page; going
		// back gives the relying party access_denied.
		a := idRequest(r, idScopeProfile, "")
		p := b.Get(a.URL)
		require.Equal(t, idUpliftH1, p.H1())
		require.Contains(t, p.Body, "Your account is at level P0")
		require.Contains(t, p.Body, "needs level P9")
		q := r.Returned(b.Submit(p, "/authorize/cancel", nil), a)
		require.Equal(t, "access_denied", q.Get("error"))

		// P0 asked with a P0 vector: a code, and none of the proofed claims.
		for _, scope := range []string{idScopeProfile, idScopeBasic} {
			a = idRequest(r, scope, idVTRP0)
			res := idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
			idExpect(t, res, "P0.Cp.Cd", scope == idScopeBasic, "P0", idJane, nil)
		}

		// P5 by PDS match from the uplift page, back to the relying party.
		a = idRequest(r, idScopeProfile, idVTRP5)
		p = b.Get(a.URL)
		require.Contains(t, p.Body, "needs level P5")
		p = idProveDetails(t, b, p, idJane)
		require.Equal(t, idConsentH1, p.H1(), p.Errors())
		require.Contains(t, p.Body, "NHS number")
		res := idTokens(t, s, r, idAllow(t, b, p), a)
		idExpect(t, res, "P5.Cp.Cd", false, "P5", idJane, nil)

		a = idRequest(r, idScopeBasic, idVTRP5)
		res = idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
		idExpect(t, res, "P5.Cp.Cd", true, "P5", idJane, nil)

		// Still P0 vectors when asked: nothing proofed is released.
		a = idRequest(r, idScopeProfile, idVTRP0)
		res = idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
		idExpect(t, res, "P0.Cp.Cd", false, "P5", idJane, nil)

		// P9 by GP online-services details, from the uplift page of a
		// default (P9) request.
		link := idLinkage(t, s, idJane)
		a = idRequest(r, idScopeProfile, "")
		p = b.Get(a.URL)
		require.Contains(t, p.Body, "Your account is at level P5")
		p = idProveGP(t, b, p, link)
		require.Equal(t, idConsentH1, p.H1(), p.Errors())
		res = idTokens(t, s, r, idAllow(t, b, p), a)
		idExpect(t, res, "P9.Cp.Cd", false, "P9", idJane, &link)

		a = idRequest(r, idScopeBasic, "")
		res = idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
		idExpect(t, res, "P9.Cp.Cd", true, "P9", idJane, &link)

		// A P5 vector of a P9 person: P5 claims only, the level reached is P9.
		a = idRequest(r, idScopeProfile, `["P5.Cp.Cd"]`)
		res = idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
		idExpect(t, res, "P5.Cp.Cd", false, "P9", idJane, nil)
	})
}

// TestPhotoIDReviewReleasesP9Claims: a person proven by photo ID (the
// evidence reviewed and approved in the back office) gets P9 and GP
// integration credentials at their practice.
func TestPhotoIDReviewReleasesP9Claims(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		ctx, actor := context.Background(), audit.Actor{RequestID: "identity-e2e"}
		r := idRP(t, s)
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, idOlivia.email, pw, phone)
		person, err := s.Accounts.AccountByEmail(ctx, idOlivia.email)
		require.NoError(t, err)

		check, err := s.Identity.SubmitPhotoCheck(ctx, actor, person.ID, identity.Evidence{
			DocumentType: identity.DocPassport, Photo: bytes.NewReader(idJPEG(t)), Video: bytes.NewReader(idMP4(5)),
		})
		require.NoError(t, err)

		// While the check waits, the person is still P0.
		a := idRequest(r, idScopeProfile, "")
		p := b.Get(a.URL)
		require.Equal(t, idUpliftH1, p.H1())
		r.Returned(b.Submit(p, "/authorize/cancel", nil), a)

		// A member of the ID checking team reviews and approves.
		s.CreateAccount(t, s.NewBrowser(t), "checker@example.org", pw, phone)
		checker, err := s.Accounts.AccountByEmail(ctx, "checker@example.org")
		require.NoError(t, err)
		require.NoError(t, s.Identity.SetStaff(ctx, actor, checker.ID, identity.RoleIDChecker))
		staff, ok, err := s.Identity.StaffMember(ctx, checker.ID)
		require.NoError(t, err)
		require.True(t, ok)
		_, err = s.Identity.Claim(ctx, actor, staff, check.ID)
		require.NoError(t, err)
		decided, err := s.Identity.Decide(ctx, actor, staff, check.ID, identity.Decision{
			IDValid: true, FaceMatch: true, Approve: true, NHSNumber: idOlivia.nhs,
		})
		require.NoError(t, err)
		require.Equal(t, identity.CheckApproved, decided.Status)

		// The relying party's default (P9) request is met in the session.
		link := idLinkage(t, s, idOlivia)
		require.Equal(t, idOlivia.ods, link.ODSCode)
		a = idRequest(r, idScopeProfile, "")
		p = b.Get(a.URL)
		require.Equal(t, idConsentH1, p.H1())
		res := idTokens(t, s, r, idAllow(t, b, p), a)
		idExpect(t, res, "P9.Cp.Cd", false, "P9", idOlivia, &link)

		a = idRequest(r, idScopeBasic, `["P5.Cp.Cd"]`)
		res = idTokens(t, s, r, idAllow(t, b, b.Get(a.URL)), a)
		idExpect(t, res, "P5.Cp.Cd", true, "P9", idOlivia, nil)
	})
}

// TestPhotoRouteInUpliftAndDeceasedAtLogin: a P5 person asked for P9 sends
// photo ID from the uplift journey and goes back to the service, which is
// told the review is in progress; later PDS marks them deceased: the next
// login is refused and the relying party's refresh token no longer works.
func TestPhotoRouteInUpliftAndDeceasedAtLogin(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := idRP(t, s)
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, idGeorge.email, pw, phone)

		a := idRequest(r, idScopeProfile, idVTRP5)
		p := idProveDetails(t, b, b.Get(a.URL), idGeorge)
		res := idTokens(t, s, r, idAllow(t, b, p), a)
		idExpect(t, res, "P5.Cp.Cd", false, "P5", idGeorge, nil)
		require.NotEmpty(t, res.tok.RefreshToken)

		// P9 asked: uplift → /prove → /prove/photo, keeping return_to.
		a = idRequest(r, idScopeProfile, "")
		p = b.Get(a.URL)
		require.Contains(t, p.Body, "Your account is at level P5")
		p = idStartProving(t, b, p, "Use photo ID and a short video")
		require.Equal(t, "Send a photo of your ID and a short video", p.H1())
		require.Equal(t, identity.ProvePhotoPath, p.URL.Path)
		require.True(t, strings.HasPrefix(p.URL.Query().Get("return_to"), "/authorize/continue?id="), p.URL.String())
		p = idUploadPhoto(t, b, p)
		require.Equal(t, "We are checking your ID", p.H1())
		form := idHidden(t, p, "/authorize/cancel")
		require.Equal(t, identity.PhotoReviewCancelReason, form["reason"])
		q := r.Returned(b.Submit(p, "/authorize/cancel", nil), a)
		require.Equal(t, "access_denied", q.Get("error"))
		require.Contains(t, q.Get("error_description"), "photo ID review")

		// The refresh token works while the person is alive in PDS.
		status, fresh := idRefresh(t, r, res.tok.RefreshToken)
		require.Equal(t, http.StatusOK, status, fresh)
		refresh, _ := fresh["refresh_token"].(string)
		require.NotEmpty(t, refresh)

		// PDS marks them deceased: the next login's PDS check refuses it.
		require.NoError(t, s.PDSSandbox.MarkDeceased(nhsnumber.MustParse(idGeorge.nhs), time.Now()))
		p = s.LogIn(t, s.NewBrowser(t), nil, idGeorge.email, pw, phone)
		require.Equal(t, http.StatusForbidden, p.Status)
		require.Equal(t, "You cannot log in with this account", p.H1())

		status, out := idRefresh(t, r, refresh)
		require.Equal(t, http.StatusBadRequest, status, out)
		require.Equal(t, "invalid_grant", out["error"])

		// Nor does an access token issued before.
		access, _ := fresh["access_token"].(string)
		_, err := r.Provider.UserInfo(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access, TokenType: "Bearer"}))
		require.ErrorContains(t, err, "401")

		// The old session gets no code either.
		a = idRequest(r, idScopeProfile, idVTRP5)
		p = b.Get(a.URL)
		require.Equal(t, "access_denied", r.Returned(p, a).Get("error"))
	})
}
