package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// TestMain lets the test binary play a child of "load -procs": the
// parent re-executes its own executable with "load -child …".
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "load" && os.Args[2] == "-child" {
		err := run(context.Background(), "load", os.Args[2:], os.Stdin, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// seedForTest writes n seeded devices the way "idlink dev seed-devices"
// does (accounts made active directly, app credentials through the real
// ceremony) and returns the file.
func seedForTest(t *testing.T, s *servertest.Server, n int) string {
	t.Helper()
	ctx := context.Background()
	hash, err := s.Accounts.Hasher().Hash(ctx, "load test password")
	require.NoError(t, err)
	var out []map[string]any
	for i := range n {
		email := fmt.Sprintf("load%05d@example.test", i+1)
		acct, err := s.Accounts.SeedAccount(ctx, email, fmt.Sprintf("+447700900%03d", i), hash)
		require.NoError(t, err)
		st, err := newState(s.URL, servertest.WebAuthnOrigin, servertest.WebAuthnRPID)
		require.NoError(t, err)
		st.DeviceID = secrets.NewID()
		ceremony, options, err := s.FIDO.BeginRegistration(ctx, fido.User{AccountID: acct.ID, Name: email}, fido.KindApp)
		require.NoError(t, err)
		att, err := st.attest(options)
		require.NoError(t, err)
		cred, err := s.FIDO.FinishRegistration(ctx, acct.ID, ceremony, att, "Load phone", st.DeviceID)
		require.NoError(t, err)
		spki, err := x509.MarshalPKIXPublicKey(&st.deviceKey.PublicKey)
		require.NoError(t, err)
		_, err = s.Devices.Register(ctx, device.Device{ID: st.DeviceID, AccountID: acct.ID, Name: "Load phone",
			Platform: device.PlatformAndroid, PublicKey: spki, FIDOCredentialID: cred.ID})
		require.NoError(t, err)
		b, err := json.Marshal(st)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		m["account_id"] = acct.ID
		out = append(out, m)
	}
	path := filepath.Join(t.TempDir(), "devices.json")
	b, err := json.Marshal(out)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// TestLoad holds a handful of seeded devices' sockets against an
// in-process server, has the benchmark endpoint create a request for each
// and answers them; the report counts and measures them.
func TestLoad(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	devices := seedForTest(t, s, 6)

	for _, tc := range []struct {
		name   string
		args   []string
		count  int
		answer string
	}{
		{"approve", []string{"-count", "3", "-answer", "approve", "-source-ips", "127.0.0.1"}, 3, "approved"},
		{"deny in two processes", []string{"-from", "3", "-answer", "deny", "-procs", "2"}, 3, "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"-devices", devices, "-url", s.URL, "-bench-rate", "200", "-hold", "20s",
				"-concurrency", "4", "-server-pid", fmt.Sprint(os.Getpid())}, tc.args...)
			require.NoError(t, run(context.Background(), "load", args, nil, &out))
			t.Log(out.String())
			var rep loadReport
			require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
			require.Equal(t, tc.count, rep.Devices)
			require.Equal(t, tc.count, rep.Connected)
			require.Empty(t, rep.Failures)
			require.Equal(t, tc.count, rep.BenchCreated, rep.BenchErrors)
			require.Equal(t, tc.count, rep.Received)
			require.Equal(t, tc.count, rep.Delivery.Count)
			require.Equal(t, map[string]int{tc.answer: tc.count}, rep.Answers)
			require.Equal(t, tc.count, rep.AnswerLatency.Count)
			require.LessOrEqual(t, rep.Delivery.P50, rep.Delivery.Max)
			require.Positive(t, rep.ServerRSSBeforeKB)
			require.Nil(t, rep.DeliverySamples)
		})
	}

	// The benchmark endpoint caps its rate and its list.
	for _, body := range []string{`{"account_ids":["x"],"rate":5001}`, `{"account_ids":[],"rate":10}`, `{"account_ids":["x"],"rate":0}`, `{"nope":1}`} {
		resp, err := http.Post(s.URL+"/dev/push/bench", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	}

	// The seeded devices file loads as states.
	devs, err := loadSeeded(devices, 1, 2)
	require.NoError(t, err)
	require.Len(t, devs, 2)
	require.NotEmpty(t, devs[0].accountID)
	require.NotNil(t, devs[0].st.deviceKey)

	var out bytes.Buffer
	err = run(context.Background(), "load", []string{"-devices", devices, "-answer", "approve"}, nil, &out)
	require.ErrorIs(t, err, errUsage, "approving needs the numbers of the benchmark")
}
