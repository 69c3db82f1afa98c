// Package trust implements Vectors of Trust (RFC 8485) as NHS login uses
// them: proofing levels (P0, P5, P9), credential components (Cp, Cd, Ck, Cm),
// the vtr request parameter, and the choice of the vector of trust (vot) that
// a login met.
package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Level is an identity proofing level: how sure we are who the person is.
type Level int

// Proofing levels. The numbers are NHS login's and compare in order.
const (
	P0 Level = 0 // email and phone verified; nothing about who the person is
	P5 Level = 5 // details matched one PDS record
	P9 Level = 9 // photo ID checked, or GP online-services details
)

// String returns "P0", "P5" or "P9".
func (l Level) String() string { return fmt.Sprintf("P%d", int(l)) }

// ParseLevel reads "P0", "P5" or "P9".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "P0":
		return P0, nil
	case "P5":
		return P5, nil
	case "P9":
		return P9, nil
	}
	return 0, fmt.Errorf("%w: proofing level %q", ErrUnknownComponent, s)
}

// Credential is a credential component: a kind of proof the person gave in
// this login.
type Credential string

// Credential components.
const (
	Cp Credential = "Cp" // email address and password
	Cd Credential = "Cd" // registered device: security code, remembered browser, or phone approval
	Ck Credential = "Ck" // shared key in a registered device (not offered)
	Cm Credential = "Cm" // asymmetric key with user verification (FIDO)
)

// Credentials is a set of credential components, kept sorted and unique.
type Credentials []Credential

// Has reports whether c is in the set.
func (cs Credentials) Has(c Credential) bool { return slices.Contains(cs, c) }

// With returns the set with c added.
func (cs Credentials) With(c ...Credential) Credentials {
	out := append(Credentials(nil), cs...)
	for _, x := range c {
		if !out.Has(x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// Missing returns the components of want that cs lacks, in want's order.
func (cs Credentials) Missing(want Credentials) Credentials {
	var out Credentials
	for _, c := range want {
		if !cs.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

// Vector is one requested vector of trust: a proofing level (which may be
// omitted, meaning P0) and the credential components that must all be
// proven. Its String form is the NHS login syntax, e.g. "P9.Cp.Cd".
type Vector struct {
	Level       Level
	HasLevel    bool
	Credentials Credentials // in the order written
}

// String returns the vector as written in vtr, e.g. "P5.Cp.Cd".
func (v Vector) String() string {
	parts := make([]string, 0, len(v.Credentials)+1)
	if v.HasLevel {
		parts = append(parts, v.Level.String())
	}
	for _, c := range v.Credentials {
		parts = append(parts, string(c))
	}
	return strings.Join(parts, ".")
}

// Errors from parsing a vtr value.
var (
	ErrMalformed        = errors.New("vtr is not a JSON array of strings")
	ErrUnknownComponent = errors.New("unknown vector component")
	ErrEmpty            = errors.New("vtr lists no vector")
)

// MaxVectors bounds how many vectors one request may list.
const MaxVectors = 16

// ParseVector reads one vector such as "P9.Cp.Cd" or "Cp.Cd".
func ParseVector(s string) (Vector, error) {
	var v Vector
	if s == "" {
		return v, fmt.Errorf("%w: empty vector", ErrUnknownComponent)
	}
	seen := map[string]bool{}
	for i, part := range strings.Split(s, ".") {
		if seen[part] {
			return v, fmt.Errorf("%w: %q repeated in %q", ErrUnknownComponent, part, s)
		}
		seen[part] = true
		if strings.HasPrefix(part, "P") {
			if i != 0 {
				return v, fmt.Errorf("%w: proofing level must come first in %q", ErrUnknownComponent, s)
			}
			l, err := ParseLevel(part)
			if err != nil {
				return v, err
			}
			v.Level, v.HasLevel = l, true
			continue
		}
		switch c := Credential(part); c {
		case Cp, Cd, Ck, Cm:
			v.Credentials = append(v.Credentials, c)
		default:
			return v, fmt.Errorf("%w: %q", ErrUnknownComponent, part)
		}
	}
	if !v.HasLevel && len(v.Credentials) == 0 {
		return v, fmt.Errorf("%w: %q names no component", ErrUnknownComponent, s)
	}
	return v, nil
}

// DefaultCredentialSets are the credential components a vector that names
// none (such as "P9") asks for: NHS login's usual authentication, a
// password with a security code (Cp.Cd) or a device key (Cm).
func DefaultCredentialSets() []Credentials {
	return []Credentials{Credentials(nil).With(Cp, Cd), {Cm}}
}

// credentialSets returns the sets of components that meet v: its own, or
// DefaultCredentialSets when it names none.
func (v Vector) credentialSets() []Credentials {
	if len(v.Credentials) == 0 {
		return DefaultCredentialSets()
	}
	return []Credentials{Credentials(nil).With(v.Credentials...)}
}

// ParseVTR reads the vtr parameter: a JSON array of vector strings, with any
// whitespace JSON allows. Order is kept; duplicates are dropped.
func ParseVTR(raw string) ([]Vector, error) {
	var strs []string
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&strs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if strs == nil && strings.TrimSpace(raw) == "null" {
		return nil, ErrMalformed
	}
	if len(strs) == 0 {
		return nil, ErrEmpty
	}
	if len(strs) > MaxVectors {
		return nil, fmt.Errorf("%w: more than %d vectors", ErrMalformed, MaxVectors)
	}
	var out []Vector
	seen := map[string]bool{}
	for _, s := range strs {
		// NHS login's pages print vectors with stray spaces ("P9.Cp.Cd ").
		v, err := ParseVector(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		if seen[v.String()] {
			continue
		}
		seen[v.String()] = true
		out = append(out, v)
	}
	return out, nil
}

// FormatVTR writes vectors back as a compact JSON array.
func FormatVTR(vs []Vector) string {
	strs := make([]string, len(vs))
	for i, v := range vs {
		strs[i] = v.String()
	}
	b, _ := json.Marshal(strs)
	return string(b)
}

// DefaultVTR is NHS login's default when a request carries no vtr.
const DefaultVTR = `["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`

// MetBy reports whether a person at level, who proved creds in this
// session, meets v.
func (v Vector) MetBy(level Level, creds Credentials) bool {
	if level < v.Level {
		return false
	}
	for _, set := range v.credentialSets() {
		if len(creds.Missing(set)) == 0 {
			return true
		}
	}
	return false
}

// Choose returns the vector of trust (vot) for a login: among the requested
// vectors met by level and creds, the one with the highest proofing level,
// ties going to the one requested first. ok is false when none is met.
func Choose(requested []Vector, level Level, creds Credentials) (vot Vector, ok bool) {
	for _, v := range requested {
		if !v.MetBy(level, creds) {
			continue
		}
		if !ok || v.Level > vot.Level {
			vot, ok = v, true
		}
	}
	return vot, ok
}

// CredentialSets returns, for each requested vector that level allows, the
// credential components it needs: what a login journey can aim for. Vectors
// whose proofing level is above level are left out.
func CredentialSets(requested []Vector, level Level) []Credentials {
	var out []Credentials
	for _, v := range requested {
		if v.Level <= level {
			out = append(out, v.credentialSets()...)
		}
	}
	return out
}
