// Command gen writes the PDS sandbox dataset, sandbox_patients.json: a FHIR
// R4 Bundle (type collection) of Patient resources. Run it from the pds
// package directory with `go generate` (or `go run ./testdata/gen -o
// sandbox_patients.json`). The output is deterministic; the JSON file is
// what ships, and this program only documents how it was made.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

const (
	sysNHS  = "https://fhir.nhs.uk/Id/nhs-number"
	sysODS  = "https://fhir.nhs.uk/Id/ods-organization-code"
	sysConf = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	extBase = "https://idlink.example/fhir/StructureDefinition/"
)

type (
	coding     map[string]string
	identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	period struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}
	name struct {
		ID     string   `json:"id,omitempty"`
		Use    string   `json:"use"`
		Period *period  `json:"period,omitempty"`
		Prefix []string `json:"prefix,omitempty"`
		Given  []string `json:"given,omitempty"`
		Family string   `json:"family"`
	}
	address struct {
		ID         string   `json:"id,omitempty"`
		Use        string   `json:"use"`
		Period     *period  `json:"period,omitempty"`
		Line       []string `json:"line,omitempty"`
		PostalCode string   `json:"postalCode"`
	}
	contact struct {
		ID     string `json:"id,omitempty"`
		System string `json:"system"`
		Value  string `json:"value"`
		Use    string `json:"use"`
	}
	reference struct {
		Type       string     `json:"type"`
		Identifier identifier `json:"identifier"`
	}
	extension struct {
		URL         string `json:"url"`
		ValueString string `json:"valueString"`
	}
	meta struct {
		VersionID string   `json:"versionId"`
		Security  []coding `json:"security"`
	}
	patient struct {
		ResourceType        string       `json:"resourceType"`
		ID                  string       `json:"id"`
		Meta                meta         `json:"meta"`
		Identifier          []identifier `json:"identifier"`
		Name                []name       `json:"name,omitempty"`
		Gender              string       `json:"gender,omitempty"`
		BirthDate           string       `json:"birthDate,omitempty"`
		DeceasedDateTime    string       `json:"deceasedDateTime,omitempty"`
		Address             []address    `json:"address,omitempty"`
		Telecom             []contact    `json:"telecom,omitempty"`
		GeneralPractitioner []reference  `json:"generalPractitioner,omitempty"`
		Extension           []extension  `json:"extension,omitempty"`
	}
	entry struct {
		FullURL  string  `json:"fullUrl"`
		Resource patient `json:"resource"`
	}
	bundle struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}
)

// person is the generator's input for one record.
type person struct {
	nhs            string
	given          []string
	family         string
	gender         string
	birth          string
	postcode       string
	gp             string
	mobile         string // +447700900xxx
	landline       string
	email          string
	deceased       string
	restricted     bool
	nextGP         string
	previousFamily string
	version        int
}

func main() {
	out := flag.String("o", "sandbox_patients.json", "output file")
	flag.Parse()
	b := bundle{ResourceType: "Bundle", Type: "collection"}
	for _, p := range people() {
		b.Entry = append(b.Entry, entry{FullURL: "urn:nhs:" + p.nhs, Resource: p.resource()})
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

func (p person) resource() patient {
	r := patient{
		ResourceType:     "Patient",
		ID:               p.nhs,
		Meta:             meta{VersionID: strconv.Itoa(max(p.version, 1)), Security: []coding{{"system": sysConf, "code": "U", "display": "unrestricted"}}},
		Identifier:       []identifier{{System: sysNHS, Value: p.nhs}},
		Gender:           p.gender,
		BirthDate:        p.birth,
		DeceasedDateTime: p.deceased,
	}
	if p.family != "" {
		r.Name = []name{{ID: "n1", Use: "usual", Period: &period{Start: p.birth}, Given: p.given, Family: p.family}}
		if p.previousFamily != "" {
			r.Name = append(r.Name, name{ID: "n0", Use: "old", Period: &period{Start: p.birth, End: "2018-06-30"}, Given: p.given, Family: p.previousFamily})
		}
	}
	if p.restricted {
		r.Meta.Security = []coding{{"system": sysConf, "code": "R", "display": "restricted"}}
		if p.postcode != "" {
			r.Extension = append(r.Extension, extension{URL: extBase + "sandbox-hidden-postcode", ValueString: p.postcode})
		}
		return r
	}
	if p.postcode != "" {
		r.Address = []address{{ID: "a1", Use: "home", Period: &period{Start: "2020-01-01"}, Line: []string{"1 Example Street", "Leeds"}, PostalCode: p.postcode}}
	}
	if p.mobile != "" {
		r.Telecom = append(r.Telecom, contact{ID: "t1", System: "phone", Value: p.mobile, Use: "mobile"})
	}
	if p.landline != "" {
		r.Telecom = append(r.Telecom, contact{ID: "t2", System: "phone", Value: p.landline, Use: "home"})
	}
	if p.email != "" {
		r.Telecom = append(r.Telecom, contact{ID: "t3", System: "email", Value: p.email, Use: "home"})
	}
	if p.gp != "" {
		r.GeneralPractitioner = []reference{{Type: "Organization", Identifier: identifier{System: sysODS, Value: p.gp}}}
	}
	if p.nextGP != "" {
		r.Extension = append(r.Extension, extension{URL: extBase + "sandbox-next-gp", ValueString: p.nextGP})
	}
	return r
}

// numbers yields valid NHS numbers in the test range, in order.
func numbers() func() string {
	next := 999000000
	return func() string {
		for {
			prefix := strconv.Itoa(next)
			next++
			if c, ok := nhsnumber.CheckDigit(prefix); ok {
				n := nhsnumber.MustParse(prefix + string(c))
				return n.String()
			}
		}
	}
}

func people() []person {
	ps := []person{
		{nhs: "9000000009", given: []string{"Jane"}, family: "Smith", gender: "female", birth: "2010-10-22", postcode: "LS1 6AE", gp: "Y12345",
			mobile: "+447700900009", landline: "+441134960009", email: "jane.smith@example.com", version: 2},
		{nhs: "9000000025", given: []string{"Janet"}, family: "Smythe", gender: "female", birth: "2010-10-22", postcode: "LS1 6AE", restricted: true, version: 2},
		{nhs: "9000000033", given: []string{"Alex"}, family: "Minimal", birth: "2001-02-03"},
	}
	next := numbers()
	postcodes := []string{"LS1 6AE", "M1 1AE", "B1 1BB", "SW1A 1AA", "NE1 4ST", "BS1 5TR", "L1 8JQ", "S1 2HE", "NG1 5FW", "CB2 1TN"}
	gps := []string{"Y90001", "Y90002", "Y90003", "Y90004", "Y90005", "Y90006", "Y90007"}
	ps = append(ps, ordinaryPeople(next, postcodes, gps)...)
	// Deceased.
	for i, d := range []struct{ g, f, gender, birth, died string }{
		{"Edith", "Crawley", "female", "1932-04-11", "2024-11-02T09:30:00+00:00"},
		{"Albert", "Hughes", "male", "1928-12-25", "2023-01-15T00:00:00+00:00"},
		{"Margaret", "Lloyd", "female", "1945-06-30", "2025-07-04T14:10:00+00:00"},
		{"Samuel", "Okafor", "male", "1979-09-09", "2026-01-20T22:05:00+00:00"},
	} {
		ps = append(ps, person{nhs: next(), given: []string{d.g}, family: d.f, gender: d.gender, birth: d.birth, deceased: d.died,
			postcode: postcodes[i], gp: gps[i], email: fmt.Sprintf("deceased%d@example.com", i), mobile: fmt.Sprintf("+447700900%03d", 200+i), version: 3})
	}
	// Restricted.
	for i, r := range []struct{ g, f, gender, birth string }{
		{"Rosa", "Fielding", "female", "1990-03-14"},
		{"Daniel", "Marsh", "male", "1985-08-01"},
		{"Hana", "Sato", "female", "2002-12-12"},
		{"Ibrahim", "Yusuf", "male", "1970-05-05"},
	} {
		ps = append(ps, person{nhs: next(), given: []string{r.g}, family: r.f, gender: r.gender, birth: r.birth, postcode: postcodes[i+4], restricted: true, version: 2})
	}
	// GP changes: the sandbox moves them to nextGP after their first read.
	for i, c := range []struct{ g, f, gender, birth string }{
		{"Megan", "Price", "female", "1995-02-17"},
		{"Owen", "Griffiths", "male", "1988-11-23"},
		{"Sara", "Lindqvist", "female", "1976-07-07"},
	} {
		ps = append(ps, person{nhs: next(), given: []string{c.g}, family: c.f, gender: c.gender, birth: c.birth, postcode: postcodes[i+1],
			gp: gps[i], nextGP: gps[i+3], mobile: fmt.Sprintf("+447700900%03d", 300+i), email: fmt.Sprintf("mover%d@example.com", i)})
	}
	// Duplicate names: same given, family, gender and birth date, different
	// postcodes (and practices).
	for i, d := range []struct{ g, f, gender, birth, pc1, pc2 string }{
		{"John", "Smith", "male", "1980-01-01", "LS1 6AE", "M1 1AE"},
		{"Emily", "Jones", "female", "1992-05-20", "B1 1BB", "BS1 5TR"},
		{"Mohammed", "Ali", "male", "2000-07-15", "L1 8JQ", "S1 2HE"},
	} {
		for j, pc := range []string{d.pc1, d.pc2} {
			ps = append(ps, person{nhs: next(), given: []string{d.g}, family: d.f, gender: d.gender, birth: d.birth, postcode: pc,
				gp: gps[(i*2+j)%len(gps)], mobile: fmt.Sprintf("+447700900%03d", 400+i*2+j), email: fmt.Sprintf("twin%d%d@example.com", i, j)})
		}
	}
	return ps
}

// ordinaryPeople makes 40 people of varied names, ages, places and
// contact details, numbered by next.
func ordinaryPeople(next func() string, postcodes, gps []string) []person {
	var ps []person
	givenF := []string{"Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Sophia", "Grace", "Freya", "Aisha", "Priya", "Zainab", "Chloe", "Niamh"}
	givenM := []string{"Oliver", "George", "Noah", "Arthur", "Leo", "Muhammad", "Harry", "Oscar", "Jack", "Theo", "Arjun", "Kwame", "Rhys", "Callum", "Tomasz"}
	families := []string{"Taylor", "Brown", "Wilson", "Evans", "Thomas", "Johnson", "Roberts", "Walker", "Wright", "Robinson", "Patel", "Khan", "O'Brien", "Smith-Jones", "Nowak"}
	for i := 0; i < 40; i++ {
		female := i%2 == 0
		g, gender := givenM[i%len(givenM)], "male"
		if female {
			g, gender = givenF[i%len(givenF)], "female"
		}
		fam := families[(i*7)%len(families)]
		p := person{
			nhs: next(), given: []string{g}, family: fam, gender: gender,
			birth:    fmt.Sprintf("%d-%02d-%02d", 1940+i, 1+i%12, 1+(i*3)%28),
			postcode: postcodes[i%len(postcodes)], gp: gps[i%len(gps)],
			mobile: fmt.Sprintf("+447700900%03d", 100+i), email: fmt.Sprintf("person%02d@example.com", i),
		}
		switch i % 10 {
		case 3:
			p.mobile = "" // no mobile: only a landline
			p.landline = fmt.Sprintf("+441134960%03d", 100+i)
		case 5:
			p.email = "" // no email
		case 7:
			p.given = append(p.given, "Marie")
		case 9:
			p.previousFamily = "Maiden"
		}
		ps = append(ps, p)
	}
	return ps
}
