package account

import "context"

// AccountByEmail returns the account registered with email (compared
// without regard to case), or ErrNotFound. It checks no password and
// records nothing: it is for operators' commands (idlink staff), never for
// pages a stranger can reach, where it would tell whether an address is
// registered.
func (s *Service) AccountByEmail(ctx context.Context, email string) (Account, error) {
	return s.st.byEmail(ctx, email)
}
