package servertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/notify"
)

func notifyKind(k string) notify.Kind { return notify.Kind(k) }

// E164 returns phone as the server stores it (development rules).
func E164(t testing.TB, phone string) string {
	t.Helper()
	e, err := account.ParsePhone(phone, true)
	require.NoError(t, err)
	return e
}
