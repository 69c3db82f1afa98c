package pds

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// FHIR systems and codes used by PDS.
const (
	// SystemNHSNumber is the identifier system of NHS numbers.
	SystemNHSNumber = "https://fhir.nhs.uk/Id/nhs-number"
	// SystemODSCode is the identifier system of ODS organisation codes.
	SystemODSCode = "https://fhir.nhs.uk/Id/ods-organization-code"
	// SystemConfidentiality is the code system of meta.security.
	SystemConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SystemSpineErrorCode is the code system of PDS OperationOutcome codes.
	SystemSpineErrorCode = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
)

// maxFHIRBody bounds what the parsers accept (and what the client reads).
const maxFHIRBody = 1 << 20

// FHIR R4 structures, only the fields this package reads or writes.
type (
	fhirPatient struct {
		ResourceType        string             `json:"resourceType"`
		ID                  string             `json:"id,omitempty"`
		Meta                *fhirMeta          `json:"meta,omitempty"`
		Identifier          []fhirIdentifier   `json:"identifier,omitempty"`
		Name                []fhirName         `json:"name,omitempty"`
		Gender              string             `json:"gender,omitempty"`
		BirthDate           string             `json:"birthDate,omitempty"`
		DeceasedDateTime    string             `json:"deceasedDateTime,omitempty"`
		DeceasedBoolean     *bool              `json:"deceasedBoolean,omitempty"`
		Address             []fhirAddress      `json:"address,omitempty"`
		Telecom             []fhirContactPoint `json:"telecom,omitempty"`
		GeneralPractitioner []fhirReference    `json:"generalPractitioner,omitempty"`
		Extension           []fhirExtension    `json:"extension,omitempty"`
	}
	fhirMeta struct {
		VersionID string       `json:"versionId,omitempty"`
		Security  []fhirCoding `json:"security,omitempty"`
	}
	fhirCoding struct {
		System  string `json:"system,omitempty"`
		Version string `json:"version,omitempty"`
		Code    string `json:"code,omitempty"`
		Display string `json:"display,omitempty"`
	}
	fhirIdentifier struct {
		System string `json:"system,omitempty"`
		Value  string `json:"value,omitempty"`
	}
	fhirPeriod struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}
	fhirName struct {
		ID     string      `json:"id,omitempty"`
		Use    string      `json:"use,omitempty"`
		Period *fhirPeriod `json:"period,omitempty"`
		Prefix []string    `json:"prefix,omitempty"`
		Given  []string    `json:"given,omitempty"`
		Family string      `json:"family,omitempty"`
	}
	fhirAddress struct {
		ID         string      `json:"id,omitempty"`
		Use        string      `json:"use,omitempty"`
		Period     *fhirPeriod `json:"period,omitempty"`
		Line       []string    `json:"line,omitempty"`
		PostalCode string      `json:"postalCode,omitempty"`
	}
	fhirContactPoint struct {
		ID     string      `json:"id,omitempty"`
		Period *fhirPeriod `json:"period,omitempty"`
		System string      `json:"system,omitempty"`
		Value  string      `json:"value,omitempty"`
		Use    string      `json:"use,omitempty"`
	}
	fhirReference struct {
		ID         string          `json:"id,omitempty"`
		Type       string          `json:"type,omitempty"`
		Identifier *fhirIdentifier `json:"identifier,omitempty"`
	}
	fhirExtension struct {
		URL         string `json:"url"`
		ValueString string `json:"valueString,omitempty"`
	}
	fhirBundle struct {
		ResourceType string      `json:"resourceType"`
		Type         string      `json:"type,omitempty"`
		Total        *int        `json:"total,omitempty"`
		Entry        []fhirEntry `json:"entry,omitempty"`
	}
	fhirEntry struct {
		FullURL  string          `json:"fullUrl,omitempty"`
		Search   *fhirSearch     `json:"search,omitempty"`
		Resource json.RawMessage `json:"resource"`
	}
	fhirSearch struct {
		Score *float64 `json:"score,omitempty"`
	}
	fhirOutcome struct {
		ResourceType string      `json:"resourceType"`
		Issue        []fhirIssue `json:"issue"`
	}
	fhirIssue struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  *struct {
			Coding []fhirCoding `json:"coding,omitempty"`
		} `json:"details,omitempty"`
		Diagnostics string `json:"diagnostics,omitempty"`
	}
)

// ParsePatient parses a FHIR R4 Patient resource as PDS serves it. The NHS
// number comes from the identifier with system SystemNHSNumber, else from
// the resource id. Errors wrap ErrBadResponse.
func ParsePatient(data []byte) (Patient, error) {
	if len(data) > maxFHIRBody {
		return Patient{}, fmt.Errorf("%w: patient resource larger than %d bytes", ErrBadResponse, maxFHIRBody)
	}
	var fp fhirPatient
	if err := json.Unmarshal(data, &fp); err != nil {
		return Patient{}, fmt.Errorf("%w: decode patient: %w", ErrBadResponse, err)
	}
	return fp.toPatient()
}

// ParseSearchset parses the answer to a PDS search (HTTP 200): a searchset
// Bundle with at most one entry, or an OperationOutcome. No entry gives
// ErrNotFound; more than one entry, or an outcome coded TOO_MANY_MATCHES,
// gives ErrTooManyMatches; anything else unreadable wraps ErrBadResponse.
// The match's Score is its entry's search.score.
func ParseSearchset(data []byte) (Patient, error) {
	if len(data) > maxFHIRBody {
		return Patient{}, fmt.Errorf("%w: search result larger than %d bytes", ErrBadResponse, maxFHIRBody)
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Patient{}, fmt.Errorf("%w: decode search result: %w", ErrBadResponse, err)
	}
	switch head.ResourceType {
	case "OperationOutcome":
		code, err := outcomeCode(data)
		if err != nil {
			return Patient{}, err
		}
		if code == "TOO_MANY_MATCHES" {
			return Patient{}, fmt.Errorf("search: %w", ErrTooManyMatches)
		}
		return Patient{}, fmt.Errorf("%w: search answered with outcome %q", ErrBadResponse, code)
	case "Bundle":
	default:
		return Patient{}, fmt.Errorf("%w: search answered with resource type %q", ErrBadResponse, head.ResourceType)
	}
	var b fhirBundle
	if err := json.Unmarshal(data, &b); err != nil {
		return Patient{}, fmt.Errorf("%w: decode bundle: %w", ErrBadResponse, err)
	}
	if b.Type != "" && b.Type != "searchset" {
		return Patient{}, fmt.Errorf("%w: bundle type %q", ErrBadResponse, b.Type)
	}
	switch {
	case len(b.Entry) == 0:
		if b.Total != nil && *b.Total > 0 {
			return Patient{}, fmt.Errorf("%w: bundle total %d without entries", ErrBadResponse, *b.Total)
		}
		return Patient{}, fmt.Errorf("search: %w", ErrNotFound)
	case len(b.Entry) > 1 || (b.Total != nil && *b.Total > 1):
		return Patient{}, fmt.Errorf("search: %w", ErrTooManyMatches)
	}
	p, err := ParsePatient(b.Entry[0].Resource)
	if err != nil {
		return Patient{}, err
	}
	if s := b.Entry[0].Search; s != nil && s.Score != nil {
		p.Score = *s.Score
	}
	return p, nil
}

// outcomeCode returns the first Spine error code of an OperationOutcome (or
// its first issue code when it has none).
func outcomeCode(data []byte) (string, error) {
	var o fhirOutcome
	if err := json.Unmarshal(data, &o); err != nil {
		return "", fmt.Errorf("%w: decode operation outcome: %w", ErrBadResponse, err)
	}
	for _, is := range o.Issue {
		if is.Details != nil {
			for _, c := range is.Details.Coding {
				if c.Code != "" {
					return c.Code, nil
				}
			}
		}
	}
	for _, is := range o.Issue {
		if is.Code != "" {
			return is.Code, nil
		}
	}
	return "", nil
}

var partialDate = regexp.MustCompile(`^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$`)

func (fp *fhirPatient) toPatient() (Patient, error) {
	if fp.ResourceType != "Patient" {
		return Patient{}, fmt.Errorf("%w: resource type %q, want Patient", ErrBadResponse, fp.ResourceType)
	}
	raw := fp.ID
	for _, id := range fp.Identifier {
		if id.System == SystemNHSNumber {
			raw = id.Value
			break
		}
	}
	nhs, err := nhsnumber.Parse(raw)
	if err != nil || len(raw) != 10 {
		return Patient{}, fmt.Errorf("%w: patient without a valid NHS number", ErrBadResponse)
	}
	p := Patient{NHSNumber: nhs}
	if fp.Meta != nil {
		p.Version = fp.Meta.VersionID
		for _, s := range fp.Meta.Security {
			switch s.Code {
			case "R", "V", "REDACTED":
				p.Restricted = true
			}
		}
	}
	if n := pickName(fp.Name); n != nil {
		p.Family = n.Family
		for _, g := range n.Given {
			if g != "" {
				p.Given = append(p.Given, g)
			}
		}
	}
	switch fp.Gender {
	case "":
	case GenderMale, GenderFemale, GenderOther, GenderUnknown:
		p.Gender = fp.Gender
	default:
		return Patient{}, fmt.Errorf("%w: gender %q", ErrBadResponse, fp.Gender)
	}
	if fp.BirthDate != "" {
		if !partialDate.MatchString(fp.BirthDate) {
			return Patient{}, fmt.Errorf("%w: malformed birthDate", ErrBadResponse)
		}
		p.BirthDate = fp.BirthDate
	}
	if fp.DeceasedDateTime != "" {
		t, err := parseDateTime(fp.DeceasedDateTime)
		if err != nil {
			return Patient{}, fmt.Errorf("%w: malformed deceasedDateTime", ErrBadResponse)
		}
		p.Deceased, p.DeceasedAt = true, t
	} else if fp.DeceasedBoolean != nil && *fp.DeceasedBoolean {
		p.Deceased = true
	}
	if a := pickAddress(fp.Address); a != nil {
		p.Postcode = a.PostalCode
	}
	for _, gp := range fp.GeneralPractitioner {
		if gp.Identifier != nil && gp.Identifier.System == SystemODSCode && gp.Identifier.Value != "" {
			p.GPODSCode = gp.Identifier.Value
			break
		}
	}
	for _, t := range fp.Telecom {
		if ended(t.Period) || t.Value == "" {
			continue
		}
		switch t.System {
		case "phone", "sms":
			p.Phones = append(p.Phones, t.Value)
		case "email":
			p.Emails = append(p.Emails, t.Value)
		}
	}
	return p, nil
}

// ended reports whether a period has an end: PDS closes names, addresses
// and contact points that no longer apply by giving them one. (Without a
// clock here, a future end counts as ended too; PDS does not record those.)
func ended(p *fhirPeriod) bool { return p != nil && p.End != "" }

// pickName chooses the current "usual" name, else the first current name.
func pickName(names []fhirName) *fhirName {
	var first *fhirName
	for i := range names {
		n := &names[i]
		if ended(n.Period) {
			continue
		}
		if n.Use == "usual" {
			return n
		}
		if first == nil {
			first = n
		}
	}
	return first
}

// pickAddress chooses the current "home" address, else the first current one.
func pickAddress(addrs []fhirAddress) *fhirAddress {
	var first *fhirAddress
	for i := range addrs {
		a := &addrs[i]
		if ended(a.Period) {
			continue
		}
		if a.Use == "home" {
			return a
		}
		if first == nil {
			first = a
		}
	}
	return first
}

// parseDateTime parses a FHIR dateTime: a full timestamp with zone, or a
// (partial) date, taken as midnight UTC.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01", "2006"} {
		if len(s) == len(layout) {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("malformed dateTime")
}

// MarshalFHIR returns p as a FHIR R4 Patient resource in the shape PDS
// serves (one usual name, one home address, the GP as an ODS identifier,
// meta.security U or R). Search scores are not part of a resource. Package
// pdsfake uses it to serve sandbox records; ParsePatient reads it back to p.
func (p Patient) MarshalFHIR() ([]byte, error) {
	if p.NHSNumber.IsZero() {
		return nil, fmt.Errorf("marshal patient: no NHS number")
	}
	fp := fhirPatient{
		ResourceType: "Patient",
		ID:           p.NHSNumber.String(),
		Identifier:   []fhirIdentifier{{System: SystemNHSNumber, Value: p.NHSNumber.String()}},
		Gender:       p.Gender,
		BirthDate:    p.BirthDate,
		Meta:         &fhirMeta{VersionID: p.Version},
	}
	sec := fhirCoding{System: SystemConfidentiality, Code: "U", Display: "unrestricted"}
	if p.Restricted {
		sec = fhirCoding{System: SystemConfidentiality, Code: "R", Display: "restricted"}
	}
	fp.Meta.Security = []fhirCoding{sec}
	if p.Family != "" || len(p.Given) > 0 {
		fp.Name = []fhirName{{Use: "usual", Given: p.Given, Family: p.Family}}
	}
	if p.Deceased {
		if p.DeceasedAt.IsZero() {
			t := true
			fp.DeceasedBoolean = &t
		} else {
			fp.DeceasedDateTime = p.DeceasedAt.UTC().Format(time.RFC3339Nano)
		}
	}
	if p.Postcode != "" {
		fp.Address = []fhirAddress{{Use: "home", PostalCode: p.Postcode}}
	}
	if p.GPODSCode != "" {
		fp.GeneralPractitioner = []fhirReference{{
			Type:       "Organization",
			Identifier: &fhirIdentifier{System: SystemODSCode, Value: p.GPODSCode},
		}}
	}
	for _, ph := range p.Phones {
		fp.Telecom = append(fp.Telecom, fhirContactPoint{System: "phone", Value: ph, Use: "mobile"})
	}
	for _, e := range p.Emails {
		fp.Telecom = append(fp.Telecom, fhirContactPoint{System: "email", Value: e, Use: "home"})
	}
	b, err := json.Marshal(fp)
	if err != nil {
		return nil, fmt.Errorf("marshal patient: %w", err)
	}
	return b, nil
}

// versionFromETag returns n from an ETag W/"n" (or "n"), "" when malformed.
func versionFromETag(etag string) string {
	v := strings.TrimPrefix(etag, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return ""
}
