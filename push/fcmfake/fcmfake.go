// Package fcmfake is a local stand-in for the FCM HTTP v1 API
// (POST /v1/projects/{project}/messages:send), for tests and development:
// it records the messages it is sent, answers UNREGISTERED for tokens
// marked dead, and fails on demand. The real FCM client (push.FCM, the
// Firebase Admin SDK) talks to it through its endpoint option.
package fcmfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Message is one message the fake received.
type Message struct {
	Project string
	Token   string
	Data    map[string]string
	// Android and APNS hold the raw platform sections.
	Android json.RawMessage
	APNS    json.RawMessage
}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	mu       sync.Mutex
	messages []Message
	dead     map[string]bool
	failing  bool
	notify   chan Message
}

// New returns an empty fake.
func New() *Server { return &Server{dead: map[string]bool{}, notify: make(chan Message, 1024)} }

// MarkUnregistered makes sends to token fail with UNREGISTERED.
func (s *Server) MarkUnregistered(token string) {
	s.mu.Lock()
	s.dead[token] = true
	s.mu.Unlock()
}

// SetFailing makes every send fail with an internal error (or not).
func (s *Server) SetFailing(on bool) {
	s.mu.Lock()
	s.failing = on
	s.mu.Unlock()
}

// Messages returns what was accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Received delivers each accepted message as it arrives (buffered; a
// slow reader misses none of the first 1024).
func (s *Server) Received() <-chan Message { return s.notify }

// ServeHTTP implements the send endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	project, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if r.Method != http.MethodPost || !ok || !strings.HasSuffix(project, "/messages:send") {
		fail(w, http.StatusNotFound, "NOT_FOUND", "")
		return
	}
	project = strings.TrimSuffix(project, "/messages:send")
	var body struct {
		Message struct {
			Token   string            `json:"token"`
			Data    map[string]string `json:"data"`
			Android json.RawMessage   `json:"android"`
			APNS    json.RawMessage   `json:"apns"`
		} `json:"message"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil || body.Message.Token == "" {
		fail(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
		return
	}
	s.mu.Lock()
	failing, dead := s.failing, s.dead[body.Message.Token]
	s.mu.Unlock()
	switch {
	case failing:
		fail(w, http.StatusInternalServerError, "INTERNAL", "INTERNAL")
		return
	case dead:
		fail(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED")
		return
	}
	m := Message{Project: project, Token: body.Message.Token, Data: body.Message.Data,
		Android: body.Message.Android, APNS: body.Message.APNS}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	select {
	case s.notify <- m:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": "projects/" + project + "/messages/1"})
}

func fail(w http.ResponseWriter, status int, grpcStatus, fcmCode string) {
	body := map[string]any{"code": status, "message": grpcStatus, "status": grpcStatus}
	if fcmCode != "" {
		body["details"] = []any{map[string]string{
			"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}
