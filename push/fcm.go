package push

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"
)

// ErrUnregistered is returned by a Sender when the push token is dead (the
// app was uninstalled or the token rotated): the device's token should be
// cleared.
var ErrUnregistered = errors.New("push: push token is no longer registered")

// Wake is the content of a wake-up message: ids only, no personal data.
type Wake struct {
	ApprovalID string
	// ExpiresAt bounds how long the provider should try to deliver it.
	ExpiresAt time.Time
}

// WakeType is the "type" data member of a wake-up message.
const WakeType = "approval_request"

// Sender wakes a sleeping app. FCM is the real implementation.
type Sender interface {
	Wake(ctx context.Context, token string, w Wake) error
}

// FCMConfig configures the FCM sender.
type FCMConfig struct {
	// ProjectID is the Firebase project.
	ProjectID string
	// CredentialsFile is a service-account key JSON file (the operator's
	// own, from configuration); empty uses the
	// environment's application default credentials.
	CredentialsFile string
	// Endpoint replaces https://fcm.googleapis.com/v1 (a local fake in
	// tests and development); with an endpoint and no credentials file,
	// requests are sent without authentication.
	Endpoint string
	// Timeout bounds one send, retries included (default 5 s).
	Timeout time.Duration
}

// FCM sends wake-up messages through Firebase Cloud Messaging with the
// Firebase Admin SDK.
type FCM struct {
	client  *messaging.Client
	timeout time.Duration
}

// NewFCM returns an FCM sender.
func NewFCM(ctx context.Context, cfg FCMConfig) (*FCM, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("push: fcm project id is required")
	}
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	switch {
	case cfg.CredentialsFile != "":
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	case cfg.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("push: firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("push: firebase messaging: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &FCM{client: client, timeout: cfg.Timeout}, nil
}

// Wake sends a data-only, high-priority message that carries the request
// id, living no longer than the request.
func (f *FCM) Wake(ctx context.Context, token string, w Wake) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	ttl := max(time.Until(w.ExpiresAt).Truncate(time.Second), 0)
	msg := &messaging.Message{
		//lint:ignore SA1019 the app registers an FCM registration token; FID targeting is not what it sends
		Token: token,
		Data:  map[string]string{"type": WakeType, "approval_id": w.ApprovalID},
		Android: &messaging.AndroidConfig{
			Priority: "high",
			TTL:      &ttl,
		},
		APNS: &messaging.APNSConfig{
			Headers: map[string]string{
				"apns-push-type":  "background",
				"apns-priority":   "5",
				"apns-expiration": strconv.FormatInt(w.ExpiresAt.Unix(), 10),
			},
			Payload: &messaging.APNSPayload{Aps: &messaging.Aps{ContentAvailable: true}},
		},
	}
	if _, err := f.client.Send(ctx, msg); err != nil {
		if messaging.IsUnregistered(err) {
			return fmt.Errorf("%w: %v", ErrUnregistered, err)
		}
		return fmt.Errorf("push: fcm send: %w", err)
	}
	return nil
}
