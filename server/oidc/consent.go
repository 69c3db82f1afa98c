package oidc

import (
	"context"
	"slices"
	"time"
)

// consents remembers which scopes a person agreed to share with a client,
// so they are asked again only when a client asks for something new.
type consents struct{ store *store }

// covers reports whether the person has agreed to share every scope in
// want with the client. Nothing to share needs no agreement only once the
// person has met the client: the first meeting always asks.
func (cs *consents) covers(ctx context.Context, accountID, clientID string, want []string) (bool, error) {
	have, met, err := cs.store.consent(ctx, accountID, clientID)
	if err != nil || !met {
		return false, err
	}
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false, nil
		}
	}
	return true, nil
}

// add records agreement to scopes (added to what was agreed before).
func (cs *consents) add(ctx context.Context, accountID, clientID string, scopes []string, now time.Time) error {
	have, _, err := cs.store.consent(ctx, accountID, clientID)
	if err != nil {
		return err
	}
	for _, s := range scopes {
		if !slices.Contains(have, s) {
			have = append(have, s)
		}
	}
	slices.Sort(have)
	return cs.store.setConsent(ctx, accountID, clientID, have, now)
}
