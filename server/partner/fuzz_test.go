package partner

import (
	"errors"
	"testing"
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
