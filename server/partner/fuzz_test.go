package partner

import (
	"errors"
	"testing"

	"github.com/idlink/idlink/server/account"
)

// FuzzParseUsersQuery: any query parameters either parse into a search
// with something to search by, or are refused with one of the sentinels.
func FuzzParseUsersQuery(f *testing.F) {
	f.Add("9000000009", "")
	f.Add("900 000 0009", "Jane@Example.org")
	f.Add("", "a@b")
	f.Add("9000000008", "no-at-sign")
	f.Fuzz(func(t *testing.T, nhs, email string) {
		q, err := ParseUsersQuery(nhs, email)
		if err != nil {
			if !errors.Is(err, ErrInvalidSearch) && !errors.Is(err, ErrInvalidNHSNumber) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if q.NHSNumber.IsZero() && q.Email == "" {
			t.Fatal("a search with nothing to search by")
		}
	})
}

// FuzzParseProvisionRequest: any body either parses into a complete
// request or is refused with a *FieldError carrying a stable code.
func FuzzParseProvisionRequest(f *testing.F) {
	f.Add([]byte(`{"ods_code":"Y90003","nhs_number":"9990000344","given_name":"Olivia","family_name":"Taylor",` +
		`"birth_date":"1970-07-07","postcode":"LS1 6AE","mobile_number":"07700 900130","email":"olivia.taylor@example.org"}`))
	f.Add([]byte(`{"ods_code":"rr8"}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		phone := func(raw string) (string, error) { return account.ParsePhone(raw, true) }
		_, p, err := ParseProvisionRequest(body, phone)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Code == "" || !errors.Is(err, ErrInvalidProvisionRequest) {
				t.Fatalf("refusal without a field error: %v", err)
			}
			return
		}
		if p.ods == "" || p.query.NHSNumber.IsZero() || p.query.Family == "" || len(p.query.Given) == 0 || p.mobile == "" || p.email == "" {
			t.Fatalf("accepted an incomplete request: %+v", p)
		}
	})
}
