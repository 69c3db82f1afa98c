// Package password hashes passwords with Argon2id and applies the password
// policy (length, not the email address, not a common password).
//
// Hashes are stored as PHC strings, as the Argon2 reference implementation
// writes them:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// One Argon2id computation with DefaultParams takes tens of milliseconds and
// about 20 MB of memory, so a Hasher bounds how many run at once: a burst of
// logins queues instead of exhausting memory.
//
// The common-password list (common-passwords.txt) is the first 20,000
// entries of src/passwords.json in the npm package @zxcvbn-ts/language-common
// 4.1.3, in its order, derived from public password-frequency lists; it is
// under the MIT licence, reproduced in common-passwords.LICENSE.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Params are the Argon2id cost parameters and output sizes.
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes over the memory
	Threads uint8  // lanes (degree of parallelism)
	SaltLen uint32 // salt length in bytes
	KeyLen  uint32 // hash length in bytes
}

// DefaultParams are OWASP's minimum recommendation for Argon2id: 19 MiB of
// memory, two passes, one lane, a 16-byte salt and a 32-byte hash.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on parameters, for ours and for those read from a stored hash: a
// corrupted or hostile hash must not make us allocate gigabytes or spin.
const (
	maxMemory  = 1 << 20 // KiB, i.e. 1 GiB
	maxTime    = 100
	minSaltLen = 8 // RFC 9106 minimum
	maxSaltLen = 1024
	minKeyLen  = 4 // RFC 9106 minimum
	maxKeyLen  = 1024
)

// ErrMalformedHash is returned when a stored hash is not an Argon2id
// (version 19) PHC string with sane parameters.
var ErrMalformedHash = errors.New("malformed password hash")

// ErrBusy is returned when the context ends before a hashing slot is free.
// The error also wraps the context's error.
var ErrBusy = errors.New("password hashing is busy")

// validate reports why p is unusable, or nil.
func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("memory must be between 8 KiB per thread and %d KiB", maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time must be between 1 and %d", maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length must be between %d and %d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length must be between %d and %d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// Hasher hashes and verifies passwords with fixed parameters, running at
// most a fixed number of Argon2id computations at once. It is safe for
// concurrent use.
type Hasher struct {
	params   Params
	slots    chan struct{} // semaphore: one token per running computation
	inFlight atomic.Int32
	dummy    string // hash of a random password, for Dummy

	// onAcquire, when set (by tests), is called inside a slot just before
	// the computation, with the number of computations then in flight.
	onAcquire func(inFlight int)
}

// NewHasher returns a Hasher that hashes with p and runs at most
// maxConcurrent computations at once; maxConcurrent <= 0 means
// runtime.GOMAXPROCS(0). It computes one hash at once (for Dummy), so it
// costs as much as a Hash call. It panics if p is outside sane bounds
// (memory up to 1 GiB, time up to 100, salt of 8 to 1024 bytes, key of 4 to
// 1024 bytes), which is a programming error.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	if err := p.validate(); err != nil {
		panic(fmt.Sprintf("password: invalid params: %v", err))
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, slots: make(chan struct{}, maxConcurrent)}
	var pw [32]byte
	_, _ = rand.Read(pw[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	salt := h.newSalt()
	h.dummy = encodePHC(p, salt, idKey(p, pw[:], salt))
	return h
}

// Params returns the parameters h hashes with.
func (h *Hasher) Params() Params { return h.params }

// InFlight returns how many Argon2id computations h is running now.
func (h *Hasher) InFlight() int { return int(h.inFlight.Load()) }

// Hash returns the PHC string of password under a fresh random salt. It
// waits for a free slot; if ctx ends first it returns an error wrapping
// ErrBusy and ctx.Err(). Once started, a computation is not interrupted.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := h.newSalt()
	key, err := h.compute(ctx, h.params, []byte(password), salt)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return encodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, a PHC string made by
// Hash (with these or other parameters). rehash is true when the password
// matched and encoded used other parameters than h's: the caller should then
// store a fresh Hash. A malformed encoded gives an error wrapping
// ErrMalformedHash; a context that ends while waiting for a slot gives one
// wrapping ErrBusy.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (ok bool, rehash bool, err error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	got, err := h.compute(ctx, p, []byte(password), salt)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, ok && p != h.params, nil
}

// Dummy verifies password against a fixed hash made by NewHasher, and
// discards the result. Call it when no account matches the email address
// given, so that an unknown address costs the same time as a wrong
// password. It returns an error only when ctx ends while waiting for a slot
// (wrapping ErrBusy).
func (h *Hasher) Dummy(ctx context.Context, password string) error {
	if _, _, err := h.Verify(ctx, h.dummy, password); err != nil {
		return fmt.Errorf("dummy verification: %w", err)
	}
	return nil
}

// compute runs Argon2id with p inside a slot of the semaphore.
func (h *Hasher) compute(ctx context.Context, p Params, password, salt []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
	defer func() { <-h.slots }()
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	if h.onAcquire != nil {
		h.onAcquire(int(n))
	}
	return idKey(p, password, salt), nil
}

// idKey runs Argon2id with p, without taking a slot.
func idKey(p Params, password, salt []byte) []byte {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

func (h *Hasher) newSalt() []byte {
	salt := make([]byte, h.params.SaltLen)
	_, _ = rand.Read(salt)
	return salt
}
