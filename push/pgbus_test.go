package push_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
)

// replica opens its own pool and PostgreSQL bus on the shared schema.
func replica(t *testing.T, url string, minReconnect time.Duration) (*sqlx.DB, *push.PGBus) {
	t.Helper()
	db, err := migrations.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	bus, err := push.NewPGBus(db, url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	bus.MinReconnect = minReconnect
	return db, bus
}

func TestTwoReplicasOverPostgres(t *testing.T) {
	url := dbtest.PostgresURL(t)
	dbA, busA := replica(t, url, 100*time.Millisecond)
	dbB, busB := replica(t, url, 100*time.Millisecond)
	require.Equal(t, busA.Channel(), busB.Channel())
	a := newEnv(t, dbA, envOptions{bus: busA})
	b := newEnv(t, dbB, envOptions{bus: busB})
	waitListening(t, busA)
	waitListening(t, busB)

	d := a.addDevice(t, "acct-1", "token-1")
	phone := b.connect(t, d) // the phone's socket is held by replica B

	ap, err := a.svc.Create(ctx, req("acct-1")) // the browser logs in through replica A
	require.NoError(t, err)
	m := phone.next(t, push.MsgApprovalRequest)
	require.Equal(t, ap.ID, m.Approval.ID)
	phone.ack(ap.ID)
	eventually(t, func() bool { return a.audit.has("push.delivered") }, "A hears B's acknowledgement")
	require.Empty(t, a.sender.Wakes())

	watched := make(chan push.Approval, 1)
	go func() {
		w, _ := a.svc.Watch(ctx, "acct-1", ap.ID, time.Minute)
		watched <- w
	}()
	// The phone's answer reaches replica B.
	_, err = b.svc.Answer(ctx, d, ap.ID, push.Answer{Decision: push.DecisionApprove, Number: ap.Number, Assertion: assertion(*m.Approval, ap.Number)})
	require.NoError(t, err)
	select {
	case w := <-watched:
		require.Equal(t, push.StatusApproved, w.Status)
	case <-time.After(10 * time.Second):
		t.Fatal("replica A's watcher did not hear the approval")
	}
	require.NoError(t, a.svc.Consume(ctx, "acct-1", ap.ID))
}

func TestBusOutageLosesNoRequest(t *testing.T) {
	url := dbtest.PostgresURL(t)
	dbA, busA := replica(t, url, 100*time.Millisecond)
	// B reconnects only after a second, so the request is published while
	// B is deaf and can reach the phone only through B's resync.
	dbB, busB := replica(t, url, time.Second)
	a := newEnv(t, dbA, envOptions{bus: busA})
	b := newEnv(t, dbB, envOptions{bus: busB})
	waitListening(t, busA)
	waitListening(t, busB)
	d := a.addDevice(t, "acct-1", "token-1")
	phone := b.connect(t, d)

	pid, err := busB.BackendPID(ctx)
	require.NoError(t, err)
	require.NotZero(t, pid)
	var ok bool
	require.NoError(t, dbA.GetContext(ctx, &ok, `SELECT pg_terminate_backend($1)`, pid))
	require.True(t, ok)

	ap, err := a.svc.Create(ctx, req("acct-1"))
	require.NoError(t, err)
	m := phone.next(t, push.MsgApprovalRequest)
	require.Equal(t, ap.ID, m.Approval.ID, "the request reaches the phone after B reconnects")
	require.GreaterOrEqual(t, busB.Resyncs(), int64(1))
	require.Len(t, a.sender.Wakes(), 1, "meanwhile A woke the phone through FCM")
}

// waitListening waits until the bus's listening connection is up.
func waitListening(t *testing.T, b *push.PGBus) {
	t.Helper()
	eventually(t, func() bool {
		pid, err := b.BackendPID(ctx)
		return err == nil && pid != 0
	}, "bus listening")
}

// BenchmarkNotifyRoundTrip is the floor of the PostgreSQL bus: one
// pg_notify on one connection until a pq.Listener on another hears it.
//
//	IDLINK_TEST_POSTGRES_URL=postgres://…/test?sslmode=disable go test -run '^$' -bench NotifyRoundTrip ./push/
func BenchmarkNotifyRoundTrip(b *testing.B) {
	url := dbtest.PostgresURL(b)
	db, err := migrations.Open(ctx, url)
	require.NoError(b, err)
	defer db.Close()
	l := pq.NewListener(url, time.Second, time.Second, nil)
	defer l.Close()
	require.NoError(b, l.Listen("idlink_bench_notify"))
	conn, err := db.Conn(ctx)
	require.NoError(b, err)
	defer conn.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := conn.ExecContext(ctx, `SELECT pg_notify('idlink_bench_notify', 'x')`)
		require.NoError(b, err)
		select {
		case <-l.Notify:
		case <-time.After(10 * time.Second):
			b.Fatal("notification not heard")
		}
	}
}

// The listening connection is named by its application_name in
// pg_stat_activity, before and after the connection is cut and the bus
// reconnects, whatever query it last ran.
func TestListenerIdentifiable(t *testing.T) {
	url := dbtest.PostgresURL(t)
	db, bus := replica(t, url, 100*time.Millisecond)
	newEnv(t, db, envOptions{bus: bus})
	waitListening(t, bus)
	named := func() (int, string) {
		var row struct {
			PID   int    `db:"pid"`
			Query string `db:"query"`
		}
		err := db.GetContext(ctx, &row, `SELECT pid, query FROM pg_stat_activity WHERE application_name = $1`, bus.ListenerName())
		if err != nil {
			return 0, ""
		}
		return row.PID, row.Query
	}
	pid, _ := named()
	require.NotZero(t, pid)
	var ok bool
	require.NoError(t, db.GetContext(ctx, &ok, `SELECT pg_terminate_backend($1)`, pid))
	require.True(t, ok)
	eventually(t, func() bool {
		again, _ := named()
		return again != 0 && again != pid
	}, "the reconnected listener is named too")
}
