package password

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// phcPrefix starts every hash this package writes or reads.
const phcPrefix = "$argon2id$v=19$"

// b64 is the PHC strings' base64: standard alphabet, no padding, and (with
// Strict) no stray bits, so each value has exactly one encoding.
var b64 = base64.RawStdEncoding.Strict()

// maxPHCLen bounds an acceptable PHC string before any parsing: prefix,
// the longest parameters ("m=1048576,t=100,p=255"), and the longest salt and
// hash.
var maxPHCLen = len(phcPrefix) + len("m=1048576,t=100,p=255") + 2 +
	b64.EncodedLen(maxSaltLen) + b64.EncodedLen(maxKeyLen)

// encodePHC writes the PHC string of an Argon2id hash.
func encodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parsePHC reads an Argon2id version 19 PHC string strictly: exactly the
// form encodePHC writes (parameters m, t, p in that order, decimal without
// leading zeros, unpadded canonical base64), with parameters within the
// package's bounds. SaltLen and KeyLen of the returned Params are the lengths
// found. Every error wraps ErrMalformedHash.
func parsePHC(s string) (p Params, salt, key []byte, err error) {
	if len(s) > maxPHCLen {
		return p, nil, nil, malformed("too long")
	}
	rest, ok := strings.CutPrefix(s, "$argon2id$")
	if !ok {
		return p, nil, nil, malformed("not an argon2id hash")
	}
	rest, ok = strings.CutPrefix(rest, "v=19$")
	if !ok {
		return p, nil, nil, malformed("not version 19")
	}
	params, rest, ok := strings.Cut(rest, "$")
	if !ok {
		return p, nil, nil, malformed("missing salt")
	}
	saltB64, keyB64, ok := strings.Cut(rest, "$")
	if !ok {
		return p, nil, nil, malformed("missing hash")
	}
	if strings.Contains(keyB64, "$") {
		return p, nil, nil, malformed("extra fields")
	}

	m, params, ok := strings.Cut(params, ",")
	if !ok {
		return p, nil, nil, malformed("parameters are not m,t,p")
	}
	t, threads, ok := strings.Cut(params, ",")
	if !ok {
		return p, nil, nil, malformed("parameters are not m,t,p")
	}
	if p.Memory, err = parseParam(m, "m=", maxMemory); err != nil {
		return p, nil, nil, err
	}
	if p.Time, err = parseParam(t, "t=", maxTime); err != nil {
		return p, nil, nil, err
	}
	n, err := parseParam(threads, "p=", 255)
	if err != nil {
		return p, nil, nil, err
	}
	p.Threads = uint8(n)

	if salt, err = decodeB64(saltB64, "salt", maxSaltLen); err != nil {
		return p, nil, nil, err
	}
	if key, err = decodeB64(keyB64, "hash", maxKeyLen); err != nil {
		return p, nil, nil, err
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return p, nil, nil, malformed(err.Error())
	}
	return p, salt, key, nil
}

// parseParam reads "name=N" with N a canonical decimal no greater than limit.
func parseParam(s, name string, limit uint32) (uint32, error) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, malformed("parameters are not m,t,p")
	}
	if digits == "" || len(digits) > 10 || (len(digits) > 1 && digits[0] == '0') {
		return 0, malformed("bad number for " + name)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, malformed("bad number for " + name)
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n > uint64(limit) {
		return 0, malformed("out of range: " + name)
	}
	return uint32(n), nil
}

// decodeB64 decodes an unpadded standard base64 field of at most limit bytes.
// The alphabet is checked first because the decoder skips CR and LF.
func decodeB64(s, what string, limit int) ([]byte, error) {
	if len(s) > b64.EncodedLen(limit) {
		return nil, malformed(what + " too long")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, malformed(what + " is not base64")
		}
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, malformed(what + " is not canonical base64")
	}
	return b, nil
}

func malformed(reason string) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, reason)
}
