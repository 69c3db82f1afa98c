package password

import (
	"context"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fastParams keep tests quick: 64 KiB, one pass.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// referenceHash is the Argon2 reference implementation's test vector
// (src/test.c): password "password", salt "somesalt", m=256, t=2, p=1.
const referenceHash = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"

var referenceParams = Params{Memory: 256, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	ctx := t.Context()
	h := NewHasher(fastParams, 2)

	enc, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`), enc)

	ok, rehash, err := h.Verify(ctx, enc, "correct horse battery staple")
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, rehash)

	ok, rehash, err = h.Verify(ctx, enc, "correct horse battery stapler")
	require.NoError(t, err)
	require.False(t, ok)
	require.False(t, rehash)

	again, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.NotEqual(t, enc, again, "each hash has its own salt")
}

func TestDefaultParams(t *testing.T) {
	ctx := t.Context()
	h := NewHasher(DefaultParams, 0)
	require.Equal(t, DefaultParams, h.Params())
	require.Equal(t, runtime.GOMAXPROCS(0), cap(h.slots))

	enc, err := h.Hash(ctx, "pässwörd with ünïcode")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`), enc)
	ok, rehash, err := h.Verify(ctx, enc, "pässwörd with ünïcode")
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, rehash)
}

func TestVerifyReferenceVector(t *testing.T) {
	ctx := t.Context()

	same := NewHasher(referenceParams, 1)
	ok, rehash, err := same.Verify(ctx, referenceHash, "password")
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, rehash)

	other := NewHasher(fastParams, 1)
	ok, rehash, err = other.Verify(ctx, referenceHash, "password")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, rehash, "stored with other parameters: store a new hash")

	ok, rehash, err = other.Verify(ctx, referenceHash, "passwore")
	require.NoError(t, err)
	require.False(t, ok)
	require.False(t, rehash, "no rehash without a match")
}

func TestVerifyMalformed(t *testing.T) {
	h := NewHasher(fastParams, 1)
	var computed atomic.Int32
	h.onAcquire = func(int) { computed.Add(1) }
	for _, enc := range []string{
		"",
		"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8",
		"$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	} {
		ok, rehash, err := h.Verify(t.Context(), enc, "password")
		require.ErrorIs(t, err, ErrMalformedHash, enc)
		require.False(t, ok)
		require.False(t, rehash)
	}
	require.Zero(t, computed.Load(), "a malformed hash is never computed")
}

func TestDummy(t *testing.T) {
	h := NewHasher(fastParams, 1)
	var computed atomic.Int32
	h.onAcquire = func(int) { computed.Add(1) }
	require.NoError(t, h.Dummy(t.Context(), "whatever was typed"))
	require.EqualValues(t, 1, computed.Load(), "Dummy runs one real computation")

	p, _, _, err := parsePHC(h.dummy)
	require.NoError(t, err)
	require.Equal(t, fastParams, p, "the dummy hash costs what a real one does")
}

// TestConcurrencyBound hashes from many goroutines and records how many
// computations ran at once: never more than the bound.
func TestConcurrencyBound(t *testing.T) {
	const bound = 2
	h := NewHasher(fastParams, bound)
	var highest atomic.Int32
	h.onAcquire = func(n int) {
		for {
			old := highest.Load()
			if int32(n) <= old || highest.CompareAndSwap(old, int32(n)) {
				break
			}
		}
		time.Sleep(time.Millisecond) // hold the slot so that callers pile up
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			enc, err := h.Hash(t.Context(), "password")
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				if ok, _, err := h.Verify(t.Context(), enc, "password"); err != nil || !ok {
					t.Errorf("verify: ok=%v err=%v", ok, err)
				}
			} else if err := h.Dummy(t.Context(), "password"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	t.Logf("highest concurrency observed: %d", highest.Load())
	require.GreaterOrEqual(t, highest.Load(), int32(1))
	require.LessOrEqual(t, highest.Load(), int32(bound))
	require.Zero(t, h.InFlight())
}

// TestBusy fills every slot, then shows that a caller whose context ends
// while waiting gets ErrBusy, and that the slots were all in use.
func TestBusy(t *testing.T) {
	h := NewHasher(fastParams, 2)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.onAcquire = func(int) {
		entered <- struct{}{}
		<-release
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "password"); err != nil {
				t.Error(err)
			}
		})
	}
	<-entered
	<-entered
	require.Equal(t, 2, h.InFlight())

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := h.Hash(cancelled, "password")
	require.ErrorIs(t, err, ErrBusy)
	require.ErrorIs(t, err, context.Canceled)

	waiting, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, _, err = h.Verify(waiting, referenceHash, "password")
	require.ErrorIs(t, err, ErrBusy)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	err = h.Dummy(cancelled, "password")
	require.ErrorIs(t, err, ErrBusy)

	close(release)
	wg.Wait()
	require.Zero(t, h.InFlight())
}

func TestNewHasherRejectsBadParams(t *testing.T) {
	for name, p := range map[string]Params{
		"zero":            {},
		"no threads":      {Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		"memory < 8*p":    {Memory: 15, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		"memory > 1 GiB":  {Memory: 1<<20 + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"no time":         {Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		"time > 100":      {Memory: 64, Time: 101, Threads: 1, SaltLen: 16, KeyLen: 32},
		"short salt":      {Memory: 64, Time: 1, Threads: 1, SaltLen: 7, KeyLen: 32},
		"short key":       {Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 3},
		"key > 1024":      {Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 1025},
		"salt > 1024":     {Memory: 64, Time: 1, Threads: 1, SaltLen: 1025, KeyLen: 32},
		"time 2^32 - 1":   {Memory: 64, Time: ^uint32(0), Threads: 1, SaltLen: 16, KeyLen: 32},
		"memory 2^32 - 1": {Memory: ^uint32(0), Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		require.Panics(t, func() { NewHasher(p, 1) }, name)
	}
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := b.Context()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, _, err := h.Verify(ctx, enc, "correct horse battery staple")
		if err != nil || !ok {
			b.Fatalf("verify: ok=%v err=%v", ok, err)
		}
	}
}
