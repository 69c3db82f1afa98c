package password

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePHC(t *testing.T) {
	p, salt, key, err := parsePHC(referenceHash)
	require.NoError(t, err)
	require.Equal(t, referenceParams, p)
	require.Equal(t, []byte("somesalt"), salt)
	require.Len(t, key, 32)
	require.Equal(t, referenceHash, encodePHC(p, salt, key))

	// The largest salt and hash accepted.
	big := "$argon2id$v=19$m=1048576,t=100,p=255$" + b64.EncodeToString(bytes.Repeat([]byte{1}, maxSaltLen)) +
		"$" + b64.EncodeToString(bytes.Repeat([]byte{2}, maxKeyLen))
	p, _, _, err = parsePHC(big)
	require.NoError(t, err)
	require.Equal(t, Params{Memory: 1 << 20, Time: 100, Threads: 255, SaltLen: maxSaltLen, KeyLen: maxKeyLen}, p)
}

func TestParsePHCRejects(t *testing.T) {
	const (
		salt = "c29tZXNhbHQ"
		hash = "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	)
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + hash }
	tests := map[string]string{
		"empty":                "",
		"argon2i":              "$argon2i$v=19$m=256,t=2,p=1$" + salt + "$" + hash,
		"argon2d":              "$argon2d$v=19$m=256,t=2,p=1$" + salt + "$" + hash,
		"upper case":           "$ARGON2ID$v=19$m=256,t=2,p=1$" + salt + "$" + hash,
		"bcrypt":               "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"version 16":           "$argon2id$v=16$m=256,t=2,p=1$" + salt + "$" + hash,
		"no version":           "$argon2id$m=256,t=2,p=1$" + salt + "$" + hash,
		"leading space":        " " + referenceHash,
		"trailing newline":     referenceHash + "\n",
		"missing salt":         "$argon2id$v=19$m=256,t=2,p=1",
		"missing hash":         "$argon2id$v=19$m=256,t=2,p=1$" + salt,
		"empty hash":           "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$",
		"empty salt":           "$argon2id$v=19$m=256,t=2,p=1$$" + hash,
		"extra field":          referenceHash + "$AAAA",
		"params out of order":  with("t=2,m=256,p=1"),
		"missing parameter":    with("m=256,t=2"),
		"extra parameter":      with("m=256,t=2,p=1,keyid=abc"),
		"data parameter":       with("m=256,t=2,p=1,data=YWJj"),
		"memory over 1 GiB":    with("m=1048577,t=2,p=1"),
		"memory overflows":     with("m=4294967296,t=2,p=1"),
		"memory huge":          with("m=99999999999999999999,t=2,p=1"),
		"memory zero":          with("m=0,t=2,p=1"),
		"memory under 8*p":     with("m=15,t=2,p=2"),
		"memory leading zero":  with("m=0256,t=2,p=1"),
		"memory plus sign":     with("m=+256,t=2,p=1"),
		"memory negative":      with("m=-256,t=2,p=1"),
		"memory empty":         with("m=,t=2,p=1"),
		"memory hex":           with("m=0x100,t=2,p=1"),
		"memory underscore":    with("m=2_56,t=2,p=1"),
		"time zero":            with("m=256,t=0,p=1"),
		"time over 100":        with("m=256,t=101,p=1"),
		"threads zero":         with("m=256,t=2,p=0"),
		"threads over 255":     with("m=4096,t=2,p=256"),
		"spaces in params":     with("m=256, t=2, p=1"),
		"salt too short":       "$argon2id$v=19$m=256,t=2,p=1$c29tZQ$" + hash,
		"salt padded":          "$argon2id$v=19$m=256,t=2,p=1$" + salt + "=$" + hash,
		"salt with newline":    "$argon2id$v=19$m=256,t=2,p=1$c29tZX\nNhbHQ$" + hash,
		"salt with CR":         "$argon2id$v=19$m=256,t=2,p=1$c29tZX\rNhbHQ$" + hash,
		"salt stray bits":      "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$" + hash,
		"salt bad length":      "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQAA$" + hash[:42],
		"hash url alphabet":    "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + strings.ReplaceAll(hash, "/", "_"),
		"hash too short":       "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$AAAA",
		"hash over 1024 bytes": "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + b64.EncodeToString(make([]byte, maxKeyLen+1)),
		"salt over 1024 bytes": "$argon2id$v=19$m=256,t=2,p=1$" + b64.EncodeToString(make([]byte, maxSaltLen+1)) + "$" + hash,
		"megabyte":             referenceHash + strings.Repeat("A", 1<<20),
		"non-ASCII":            "$argon2id$v=19$m=256,t=2,p=1$" + salt + "é$" + hash,
		"NUL":                  "$argon2id$v=19$m=256,t=2,p=1$" + salt + "\x00$" + hash,
	}
	for name, enc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := parsePHC(enc)
			require.ErrorIs(t, err, ErrMalformedHash)
			require.NotContains(t, err.Error(), salt, "errors do not echo the hash")
		})
	}
}

// FuzzParsePHC checks that the parser never panics, that every error is
// ErrMalformedHash, and that whatever it accepts is within bounds and is
// exactly the string encodePHC would write (one encoding per hash).
func FuzzParsePHC(f *testing.F) {
	for _, s := range []string{
		referenceHash,
		"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=1048576,t=100,p=255$c29tZXNhbHQ$AAAA",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=0256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1,keyid=x$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZX\nNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8",
		"$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c29tZXNhbHQ$AAAA",
		"$argon2id$v=19$$$",
		"$",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("error %v does not wrap ErrMalformedHash", err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("accepted out-of-bounds params %+v: %v", p, err)
		}
		if int(p.SaltLen) != len(salt) || int(p.KeyLen) != len(key) {
			t.Fatalf("params %+v disagree with salt %d and key %d bytes", p, len(salt), len(key))
		}
		if got := encodePHC(p, salt, key); got != s {
			t.Fatalf("accepted a non-canonical form:\n got %q\nwant %q", s, got)
		}
	})
}
