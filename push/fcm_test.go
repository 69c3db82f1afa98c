package push_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/push/fcmfake"
)

func TestFCMSenderAgainstFake(t *testing.T) {
	fake := fcmfake.New()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	f, err := push.NewFCM(ctx, push.FCMConfig{ProjectID: "idlink-test", Endpoint: srv.URL + "/v1"})
	require.NoError(t, err)

	exp := time.Now().Add(time.Minute)
	require.NoError(t, f.Wake(ctx, "token-1", push.Wake{ApprovalID: "ap-1", ExpiresAt: exp}))
	msgs := fake.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "idlink-test", msgs[0].Project)
	require.Equal(t, "token-1", msgs[0].Token)
	require.Equal(t, map[string]string{"type": push.WakeType, "approval_id": "ap-1"}, msgs[0].Data, "ids only: no personal data")
	require.Contains(t, string(msgs[0].Android), `"priority":"high"`)
	require.Contains(t, string(msgs[0].APNS), `"apns-push-type":"background"`)
	require.NotContains(t, string(msgs[0].Android), "notification")

	fake.MarkUnregistered("dead")
	require.ErrorIs(t, f.Wake(ctx, "dead", push.Wake{ApprovalID: "ap-2", ExpiresAt: exp}), push.ErrUnregistered)

	fake.SetFailing(true)
	err = f.Wake(ctx, "token-1", push.Wake{ApprovalID: "ap-3", ExpiresAt: exp})
	require.Error(t, err)
	require.NotErrorIs(t, err, push.ErrUnregistered)
}
