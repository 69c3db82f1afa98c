package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
)

// pushActor is the audit actor of what the push service does by itself
// (deliveries, fallbacks): no browser is behind it.
var pushActor = audit.Actor{RequestID: "push"}

// pushAudit records the push service's events in the audit log.
type pushAudit struct {
	log    *audit.Log
	logger *slog.Logger
}

func (p pushAudit) Audit(ctx context.Context, typ string, success bool, accountID string, detail map[string]any) {
	outcome := audit.Success
	if !success {
		outcome = audit.Failure
	}
	if err := p.log.Record(context.WithoutCancel(ctx), pushActor, typ, outcome, accountID, detail); err != nil {
		p.logger.Error("push audit event lost", "type", typ, "account_id", accountID, "err", err)
	}
}

// pushAlerts emails a person who reported a login request as not theirs.
type pushAlerts struct{ accounts *account.Service }

func (p pushAlerts) PushReported(ctx context.Context, a push.Approval) error {
	where := strings.TrimSpace(strings.Join([]string{a.Browser, a.OS}, " on "))
	if a.Browser == "" || a.OS == "" {
		where = strings.TrimSpace(a.Browser + a.OS)
	}
	if where == "" {
		where = "a browser"
	}
	text := fmt.Sprintf("You told us that a login to your idlink account from %s was not you. "+
		"We declined it, and your phone will not be asked to approve logins for the next hour. "+
		"If someone else knows your password, change it now.", where)
	return p.accounts.SendSecurityAlert(ctx, pushActor, a.AccountID, "push_reported", text)
}

// buildPush creates the push service: the in-process bus on SQLite (one
// node), PostgreSQL LISTEN/NOTIFY otherwise; FCM when a project is
// configured.
func (s *Server) buildPush(ctx context.Context) error {
	var bus push.Bus = push.NewMemBus()
	if migrations.DialectOf(s.DB) == migrations.Postgres {
		b, err := push.NewPGBus(s.DB, s.cfg.DatabaseURL, s.log)
		if err != nil {
			return err
		}
		bus = b
	}
	var sender push.Sender
	if s.cfg.FCMProjectID != "" {
		f, err := push.NewFCM(ctx, push.FCMConfig{ProjectID: s.cfg.FCMProjectID, CredentialsFile: s.cfg.FCMCredentialsFile, Endpoint: s.cfg.FCMEndpoint})
		if err != nil {
			return err
		}
		sender = f
	}
	svc, err := push.New(push.Config{TTL: s.cfg.PushTTL}, push.Deps{
		DB: s.DB, Devices: s.Devices, Verifier: s.FIDO, Bus: bus, Sender: sender,
		Audit: pushAudit{s.Audit, s.log}, Alerter: pushAlerts{s.Accounts}, Logger: s.log, Now: s.now,
	})
	if err != nil {
		return err
	}
	s.Push = svc
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "idlink_push_sockets", Help: "Companion-app sockets held by this replica.",
	}, func() float64 { return float64(svc.Hub().Connections()) }))
	return nil
}
