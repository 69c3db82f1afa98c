package oidc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
)

// benchPayload is the size of a typical ID token's claims.
var benchPayload = []byte(`{"iss":"https://id.example.test","sub":"abcdefghijklmnopqrstuvwxyz","aud":"rp1",` +
	`"exp":1700003600,"iat":1700000000,"jti":"abcdefghijklmnopqrstuvwxyz","auth_time":1699999940,` +
	`"nonce":"n-abcdefghijklmnopqrstuvwxyz","vot":"P9.Cp.Cd","vtm":"https://id.example.test/trustmark/id.example.test",` +
	`"nhs_number":"9000000009","family_name":"Smith","birthdate":"2010-10-22","identity_proofing_level":"P9",` +
	`"email":"jane@example.test","email_verified":true}`)

func rs512Sign(b testing.TB, key *rsa.PrivateKey) {
	sum := sha512.Sum512(benchPayload)
	if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA512, sum[:]); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRS512Sign is the bare cost of one RS512 signature with a
// 2048-bit key: the ceiling of an authorization-code exchange, which signs
// twice, is 1/(2 × this).
func BenchmarkRS512Sign(b *testing.B) {
	key := testKey(b, "sign1")
	for b.Loop() {
		rs512Sign(b, key)
	}
}

// openBenchDB opens a migrated SQLite database in a temporary directory
// (the embedded default).
func openBenchDB(b *testing.B) *sqlx.DB {
	db, err := migrations.OpenMigrated(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkCodeExchange measures a full POST /token authorization_code
// exchange on SQLite: form parsing, the client assertion (signature check
// and single-use jti), the code's atomic redemption with PKCE, the refresh
// token and ID-token record, and two RS512 signatures. Codes and client
// assertions (which the relying party signs) are made before the timer
// starts. The pct_of_ceiling metric compares exchanges per second with
// 1/(2 × RS512 signature), measured alongside in wall time;
// cpu_pct_of_ceiling does the same in process CPU time (every thread,
// garbage collection included), which a busy machine disturbs less.
func BenchmarkCodeExchange(b *testing.B) {
	e := newEnv(b, openBenchDB(b))
	type prepared struct{ body string }
	pool := make([]prepared, b.N)
	for i := range pool {
		g, verifier := e.grant(nil)
		pool[i] = prepared{body: e.exchangeForm(e.issue(g), verifier).Encode()}
	}
	// Warm the key and client caches and the connection pool.
	{
		g, verifier := e.grant(nil)
		e.postForm("/token", e.exchangeForm(e.issue(g), verifier))
	}
	signKey := testKey(b, "sign1")
	const signs = 200
	start, startCPU := time.Now(), cpuTime()
	for range signs {
		rs512Sign(b, signKey)
	}
	signCost, signCPU := time.Since(start)/signs, (cpuTime()-startCPU)/signs

	b.ResetTimer()
	start, startCPU = time.Now(), cpuTime()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(pool[i].body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := e.app.Test(req, fiberTestConfig())
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	perOp, perOpCPU := time.Since(start)/time.Duration(b.N), (cpuTime()-startCPU)/time.Duration(b.N)
	b.StopTimer()
	b.ReportMetric(float64(2*signCost)/float64(perOp)*100, "pct_of_ceiling")
	if perOpCPU > 0 {
		b.ReportMetric(float64(perOpCPU.Nanoseconds()), "cpu_ns/op")
		b.ReportMetric(float64(2*signCPU)/float64(perOpCPU)*100, "cpu_pct_of_ceiling")
	}
}
