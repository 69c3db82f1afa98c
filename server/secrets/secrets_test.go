package secrets

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIDsAndTokensAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, tok := NewID(), NewToken()
		require.Len(t, id, 26)
		require.Len(t, tok, 43)
		require.False(t, seen[id] || seen[tok])
		seen[id], seen[tok] = true, true
	}
}

func TestNewDigits(t *testing.T) {
	counts := map[byte]int{}
	for range 2000 {
		d := NewDigits(6)
		require.Len(t, d, 6)
		for i := range len(d) {
			require.True(t, d[i] >= '0' && d[i] <= '9')
			counts[d[i]]++
		}
	}
	require.Len(t, counts, 10, "every digit appears")
}

func TestKeyring(t *testing.T) {
	_, err := NewKeyring([]byte("short"))
	require.ErrorIs(t, err, ErrKeySize)

	k, err := NewKeyring(NewKey())
	require.NoError(t, err)
	other, err := NewKeyring(NewKey())
	require.NoError(t, err)

	tests := []struct {
		name  string
		same  bool
		left  string
		right string
	}{
		{"same purpose same value", true, k.MAC("code", "123456"), k.MAC("code", "123456")},
		{"other value", false, k.MAC("code", "123456"), k.MAC("code", "123457")},
		{"other purpose", false, k.MAC("code", "123456"), k.MAC("token", "123456")},
		{"other key", false, k.MAC("code", "123456"), other.MAC("code", "123456")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.same, Equal(tc.left, tc.right))
		})
	}

	sealed := k.Seal("signing-key", []byte("secret"))
	pt, err := k.Open("signing-key", sealed)
	require.NoError(t, err)
	require.Equal(t, "secret", string(pt))
	_, err = k.Open("other", sealed)
	require.ErrorIs(t, err, ErrDecrypt)
	_, err = other.Open("signing-key", sealed)
	require.ErrorIs(t, err, ErrDecrypt)
	sealed[len(sealed)-1] ^= 1
	_, err = k.Open("signing-key", sealed)
	require.ErrorIs(t, err, ErrDecrypt)
	_, err = k.Open("signing-key", []byte{1})
	require.ErrorIs(t, err, ErrDecrypt)
}
