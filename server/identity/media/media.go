// Package media stores the evidence of identity proofing by photo ID and
// video (the P9 route): the photo of an identity document and a short video of
// the person's face. It checks what is uploaded, encrypts it at rest, hands it
// back to the ID checker who reviews it, and deletes it when told to; the
// caller keeps the Info of each file in its own records and decides when
// retention ends.
//
// # Checks
//
// Content is recognised by its bytes only, never by a file name or a declared
// Content-Type (Inspect):
//
//   - photos: JPEG, PNG, and HEIC (an ISO BMFF 'ftyp' box whose major brand is
//     heic, heix, hevc or hevx, or mif1/msf1 with one of those among the
//     compatible brands; mif1 alone is also AVIF, and any file naming avif or
//     avis is refused). JPEG and PNG must be at least MinPhotoSide pixels on
//     their shorter side, read from the header; HEIC dimensions are not
//     checked, because reading them means walking the HEIF item properties
//     (meta/iprp/ipco/ispe), which is more parsing of outside input than the
//     check is worth: the ID checker sees the photo anyway.
//   - videos: MP4 (ftyp major or compatible brand isom, iso2–iso6, mp41,
//     mp42, avc1, "M4V " or dash) and WebM (EBML DocType "webm"). QuickTime
//     ('qt  ' major brand, ContentType "video/quicktime") is accepted too,
//     because it is what iPhones record: its 'moov'/'mvhd' boxes are those of
//     MP4. Browsers other than Safari may not play it; a review page can offer
//     it for download, or serve it as video/mp4, which Chromium plays when the
//     codec is H.264.
//
// A video's length is read from its container: 'mvhd' for MP4 (or, for
// fragmented MP4 as MediaRecorder writes it, 'mehd' or the fragments'
// decode times and sample durations), Segment/Info/Duration for WebM. WebM
// from a browser's MediaRecorder is a live stream with no Duration; its
// length is then estimated from the frames' timestamps (Cluster Timecode plus
// block timecode, latest minus earliest), which is short by one frame.
//
// # Storage
//
// Each file is one encrypted file under Config.Dir, named by its id: random,
// 26 characters of lowercase base32. It is sealed with AES-256-GCM in 64 KiB
// segments under a per-file key derived from the master key and a random
// salt, with the id and kind as additional data and a final-segment flag
// against truncation; the header names the master key's id, so keys can be
// rotated (Config.OldKeys). See crypt.go for the byte layout.
//
// Put holds one upload in memory (at most the size limit plus one byte) while
// checking and encrypting it: callers bound how many uploads run at once.
package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kind is what a piece of evidence is.
type Kind string

// The kinds of evidence.
const (
	// KindIDPhoto is a photo of an identity document: JPEG, PNG or HEIC.
	KindIDPhoto Kind = "id_photo"
	// KindFaceVideo is a short video of the person's face: MP4, QuickTime or
	// WebM.
	KindFaceVideo Kind = "face_video"
)

// Valid reports whether k is one of the kinds of evidence.
func (k Kind) Valid() bool { return k == KindIDPhoto || k == KindFaceVideo }

// The errors of this package. Callers test them with errors.Is; the wrapped
// message says more (for logs, or to explain the refusal to the person).
var (
	// ErrUnsupportedType: the bytes are none of the accepted formats for the
	// kind (whatever the file's name or declared type).
	ErrUnsupportedType = errors.New("media: unsupported file type")
	// ErrTooLarge: the file is over the size limit for its kind.
	ErrTooLarge = errors.New("media: file too large")
	// ErrTooSmall: the file is under the minimum size for its kind, or a
	// photo is too few pixels on its shorter side.
	ErrTooSmall = errors.New("media: file too small")
	// ErrTooLong: the video is longer than Config.MaxVideo.
	ErrTooLong = errors.New("media: video too long")
	// ErrTooShort: the video is shorter than Config.MinVideo.
	ErrTooShort = errors.New("media: video too short")
	// ErrUnreadable: the container is malformed (its length or dimensions
	// cannot be read).
	ErrUnreadable = errors.New("media: unreadable file")
	// ErrNotFound: no file has this id (never stored, or deleted), or the
	// id is not a valid id.
	ErrNotFound = errors.New("media: not found")
	// ErrCorrupt: a stored file fails authentication: altered, truncated,
	// moved to another id or kind, or sealed with a key not configured.
	ErrCorrupt = errors.New("media: stored file corrupt or tampered with")
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxPhotoBytes = 10 << 20
	DefaultMaxVideoBytes = 50 << 20
	DefaultMinPhotoBytes = 1 << 10
	DefaultMinVideoBytes = 4 << 10
	DefaultMinPhotoSide  = 200
	DefaultMinVideo      = 2 * time.Second
	DefaultMaxVideo      = 30 * time.Second
	DefaultKeyID         = "1"
)

// KeySize is the length in bytes of an encryption key.
const KeySize = 32

// Config configures a Store. Zero numeric fields take the defaults above.
type Config struct {
	// Dir is the directory of the encrypted files, created (0700) if
	// missing. It should hold nothing else.
	Dir string
	// Key is the current 32-byte AES-256 master key, which seals new files.
	Key []byte
	// KeyID names Key in each file's header (1 to 64 of A–Z a–z 0–9 . _ -;
	// default "1"). Change it with the key.
	KeyID string
	// OldKeys are earlier keys by their ids, kept to open files sealed
	// before a rotation.
	OldKeys map[string][]byte

	// MaxPhotoBytes and MaxVideoBytes are the size limits (10 MiB, 50 MiB).
	MaxPhotoBytes, MaxVideoBytes int64
	// MinPhotoBytes and MinVideoBytes refuse empty and trivial files (1 KiB,
	// 4 KiB).
	MinPhotoBytes, MinVideoBytes int64
	// MinPhotoSide is the least number of pixels of a JPEG or PNG photo's
	// shorter side (200).
	MinPhotoSide int
	// MinVideo and MaxVideo bound a video's length (2 s, 30 s).
	MinVideo, MaxVideo time.Duration

	// Now is the clock (time.Now).
	Now func() time.Time
}

// Limits are the checks Inspect applies; the fields mean what Config's
// fields of the same names mean, except that zero is not replaced by a
// default.
type Limits struct {
	MaxPhotoBytes, MaxVideoBytes int64
	MinPhotoBytes, MinVideoBytes int64
	MinPhotoSide                 int
	MinVideo, MaxVideo           time.Duration
}

// DefaultLimits returns the limits used when Config leaves them zero.
func DefaultLimits() Limits {
	return Limits{
		MaxPhotoBytes: DefaultMaxPhotoBytes,
		MaxVideoBytes: DefaultMaxVideoBytes,
		MinPhotoBytes: DefaultMinPhotoBytes,
		MinVideoBytes: DefaultMinVideoBytes,
		MinPhotoSide:  DefaultMinPhotoSide,
		MinVideo:      DefaultMinVideo,
		MaxVideo:      DefaultMaxVideo,
	}
}

// Info describes a stored file. The caller keeps it with its case; Open
// returns it too, from the file's sealed metadata.
type Info struct {
	// ID names the file in the Store.
	ID string `json:"id"`
	// Kind is what the file is evidence of.
	Kind Kind `json:"kind"`
	// ContentType is one of the Type constants, from the file's bytes.
	ContentType string `json:"content_type"`
	// Size is the length in bytes of the content (not of the encrypted file).
	Size int64 `json:"size"`
	// Duration is a video's length.
	Duration time.Duration `json:"duration,omitempty"`
	// Width and Height are a JPEG or PNG photo's dimensions in pixels (zero
	// for HEIC).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// CreatedAt is when the file was stored, in UTC to the microsecond.
	CreatedAt time.Time `json:"created_at"`
}

// Inspect checks data as evidence of kind against the default limits,
// without storing it. The result has no ID or CreatedAt.
func Inspect(kind Kind, data []byte) (Info, error) {
	return DefaultLimits().Inspect(kind, data)
}

// Inspect checks data as evidence of kind: size, type from the bytes, a
// photo's dimensions, a video's length. The error is one of the package's
// sentinel errors, wrapped with the reason.
func (l Limits) Inspect(kind Kind, data []byte) (Info, error) {
	info := Info{Kind: kind, Size: int64(len(data))}
	var minBytes, maxBytes int64
	switch kind {
	case KindIDPhoto:
		minBytes, maxBytes = l.MinPhotoBytes, l.MaxPhotoBytes
	case KindFaceVideo:
		minBytes, maxBytes = l.MinVideoBytes, l.MaxVideoBytes
	default:
		return Info{}, fmt.Errorf("media: unknown kind %q", kind)
	}
	if info.Size > maxBytes {
		return Info{}, fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxBytes)
	}
	if info.Size < minBytes {
		return Info{}, fmt.Errorf("%w: %d bytes, at least %d needed", ErrTooSmall, info.Size, minBytes)
	}
	ct := sniff(data)
	isPhoto := ct == TypeJPEG || ct == TypePNG || ct == TypeHEIC
	isVideo := ct == TypeMP4 || ct == TypeQuickTime || ct == TypeWebM
	switch {
	case ct == "":
		return Info{}, fmt.Errorf("%w: not a JPEG, PNG, HEIC, MP4, QuickTime or WebM file", ErrUnsupportedType)
	case kind == KindIDPhoto && !isPhoto:
		return Info{}, fmt.Errorf("%w: %s where a photo (JPEG, PNG or HEIC) was expected", ErrUnsupportedType, ct)
	case kind == KindFaceVideo && !isVideo:
		return Info{}, fmt.Errorf("%w: %s where a video (MP4, QuickTime or WebM) was expected", ErrUnsupportedType, ct)
	}
	info.ContentType = ct

	switch ct {
	case TypeJPEG, TypePNG:
		decode := jpeg.DecodeConfig
		if ct == TypePNG {
			decode = png.DecodeConfig
		}
		cfg, err := decode(bytes.NewReader(data))
		if err != nil {
			return Info{}, fmt.Errorf("%w: %s header: %w", ErrUnreadable, ct, err)
		}
		if short := min(cfg.Width, cfg.Height); short < l.MinPhotoSide {
			return Info{}, fmt.Errorf("%w: the photo is %d×%d pixels; its shorter side must be at least %d",
				ErrTooSmall, cfg.Width, cfg.Height, l.MinPhotoSide)
		}
		info.Width, info.Height = cfg.Width, cfg.Height
	case TypeMP4, TypeQuickTime, TypeWebM:
		var (
			d   time.Duration
			err error
		)
		if ct == TypeWebM {
			d, err = webmDuration(data)
		} else {
			d, err = mp4Duration(data)
		}
		if err != nil {
			return Info{}, err
		}
		if d > l.MaxVideo {
			return Info{}, fmt.Errorf("%w: %s, at most %s allowed", ErrTooLong, d.Round(time.Millisecond), l.MaxVideo)
		}
		if d < l.MinVideo {
			return Info{}, fmt.Errorf("%w: %s, at least %s needed", ErrTooShort, d.Round(time.Millisecond), l.MinVideo)
		}
		info.Duration = d
	}
	return info, nil
}

// Store keeps encrypted evidence in a directory. It is safe for concurrent
// use, also by several processes sharing the directory.
type Store struct {
	dir    string
	keyID  string
	key    []byte
	keys   map[string][]byte // every key by id, the current one included
	limits Limits
	now    func() time.Time
}

// New checks cfg, fills in its defaults and creates the directory.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("media: no directory")
	}
	if cfg.KeyID == "" {
		cfg.KeyID = DefaultKeyID
	}
	keys := make(map[string][]byte, 1+len(cfg.OldKeys))
	add := func(id string, key []byte) error {
		if !validKeyID(id) {
			return fmt.Errorf("media: bad key id %q (1 to %d of A-Z a-z 0-9 . _ -)", id, maxKeyIDLen)
		}
		if len(key) != KeySize {
			return fmt.Errorf("media: key %q is %d bytes, want %d", id, len(key), KeySize)
		}
		if _, dup := keys[id]; dup {
			return fmt.Errorf("media: key id %q given twice", id)
		}
		keys[id] = bytes.Clone(key)
		return nil
	}
	if err := add(cfg.KeyID, cfg.Key); err != nil {
		return nil, err
	}
	for id, key := range cfg.OldKeys {
		if err := add(id, key); err != nil {
			return nil, err
		}
	}

	l := DefaultLimits()
	for _, f := range []struct {
		dst *int64
		v   int64
	}{
		{&l.MaxPhotoBytes, cfg.MaxPhotoBytes}, {&l.MaxVideoBytes, cfg.MaxVideoBytes},
		{&l.MinPhotoBytes, cfg.MinPhotoBytes}, {&l.MinVideoBytes, cfg.MinVideoBytes},
		{(*int64)(&l.MinVideo), int64(cfg.MinVideo)}, {(*int64)(&l.MaxVideo), int64(cfg.MaxVideo)},
	} {
		if f.v < 0 {
			return nil, errors.New("media: negative limit")
		}
		if f.v > 0 {
			*f.dst = f.v
		}
	}
	if cfg.MinPhotoSide < 0 {
		return nil, errors.New("media: negative MinPhotoSide")
	}
	if cfg.MinPhotoSide > 0 {
		l.MinPhotoSide = cfg.MinPhotoSide
	}
	if l.MinPhotoBytes > l.MaxPhotoBytes || l.MinVideoBytes > l.MaxVideoBytes || l.MinVideo > l.MaxVideo {
		return nil, errors.New("media: a minimum is above its maximum")
	}
	if l.MaxPhotoBytes > 1<<30 || l.MaxVideoBytes > 1<<30 {
		return nil, errors.New("media: size limits above 1 GiB are not supported (files are checked in memory)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: create directory: %w", err)
	}
	return &Store{dir: cfg.Dir, keyID: cfg.KeyID, key: keys[cfg.KeyID], keys: keys, limits: l, now: cfg.Now}, nil
}

// Limits returns the store's checks, for Inspect before an upload is kept.
func (s *Store) Limits() Limits { return s.limits }

// Put reads an upload of kind from r (at most the size limit plus one byte,
// so an oversized upload is refused without reading it all), checks it,
// encrypts it and stores it under a new id. The Info it returns is for the
// caller's records.
func (s *Store) Put(ctx context.Context, kind Kind, r io.Reader) (Info, error) {
	if !kind.Valid() {
		return Info{}, fmt.Errorf("media: unknown kind %q", kind)
	}
	limit := s.limits.MaxPhotoBytes
	if kind == KindFaceVideo {
		limit = s.limits.MaxVideoBytes
	}
	data, err := readLimited(ctx, r, limit+1)
	if err != nil {
		return Info{}, fmt.Errorf("media: read upload: %w", err)
	}
	if int64(len(data)) > limit {
		return Info{}, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	info, err := s.limits.Inspect(kind, data)
	if err != nil {
		return Info{}, err
	}
	info.ID = newID()
	info.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	m := meta{
		ContentType: info.ContentType,
		Size:        info.Size,
		DurationNS:  int64(info.Duration),
		Width:       info.Width,
		Height:      info.Height,
		CreatedAt:   info.CreatedAt.Format(time.RFC3339Nano),
	}
	if err := s.write(ctx, info.ID, kind, m, data); err != nil {
		return Info{}, fmt.Errorf("media: store %s: %w", info.ID, err)
	}
	return info, nil
}

// write seals content into a temporary file in the directory, flushes it to
// disk and renames it into place, so a file under its id is always whole.
func (s *Store) write(ctx context.Context, id string, kind Kind, m meta, content []byte) (err error) {
	f, err := os.CreateTemp(s.dir, ".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = encrypt(ctx, f, s.key, s.keyID, kind, id, m, content); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), s.path(id)); err != nil {
		return err
	}
	return s.syncDir()
}

// syncDir flushes the directory entry changes (a rename, a removal).
func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open returns the content of the file id, which must be of kind, with its
// Info. The header and metadata are authenticated before Open returns; the
// content is authenticated segment by segment as it is read, so a Read may
// fail with ErrCorrupt after returning earlier parts: a caller that must not
// show anything unauthenticated uses Get. The reader checks ctx between
// segments. The caller closes it.
func (s *Store) Open(ctx context.Context, id string, kind Kind) (io.ReadCloser, Info, error) {
	if !validID(id) {
		return nil, Info{}, fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	if !kind.Valid() {
		return nil, Info{}, fmt.Errorf("media: unknown kind %q", kind)
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("media: open %s: %w", id, err)
	}
	d, m, err := openDecrypter(ctx, f, s.keys, kind, id)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, fmt.Errorf("media: open %s: %w", id, err)
	}
	created, err := time.Parse(time.RFC3339Nano, m.CreatedAt)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, fmt.Errorf("media: open %s: %w", id, errCorrupt("bad creation time"))
	}
	info := Info{
		ID: id, Kind: kind, ContentType: m.ContentType, Size: m.Size,
		Duration: time.Duration(m.DurationNS), Width: m.Width, Height: m.Height,
		CreatedAt: created,
	}
	return &readCloser{Reader: d, f: f}, info, nil
}

// Get returns the whole content of the file id, which must be of kind, fully
// authenticated, with its Info.
func (s *Store) Get(ctx context.Context, id string, kind Kind) ([]byte, Info, error) {
	rc, info, err := s.Open(ctx, id, kind)
	if err != nil {
		return nil, Info{}, err
	}
	defer rc.Close()
	// The size is authenticated, so it can size the buffer (bounded all the
	// same, in case the limits have since been lowered).
	buf := bytes.NewBuffer(make([]byte, 0, min(info.Size, max(s.limits.MaxPhotoBytes, s.limits.MaxVideoBytes))))
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, Info{}, fmt.Errorf("media: read %s: %w", id, err)
	}
	return buf.Bytes(), info, nil
}

// Delete removes the file id. Deleting a file that does not exist is not an
// error. The content is not overwritten: without the key it is unreadable.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("media: delete %s: %w", id, err)
	}
	return nil
}

// List returns the ids of the stored files with their modification times,
// so a sweep can delete files no case refers to (an upload whose case was
// never saved). It also removes temporary files older than an hour, left by
// a crash during Put.
func (s *Store) List(ctx context.Context) (map[string]time.Time, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("media: list: %w", err)
	}
	out := make(map[string]time.Time, len(entries))
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue // removed meanwhile, or not ours
		}
		name := e.Name()
		switch {
		case validID(name):
			out[name] = fi.ModTime().UTC()
		case strings.HasPrefix(name, ".tmp-") && s.now().Sub(fi.ModTime()) > time.Hour:
			_ = os.Remove(filepath.Join(s.dir, name))
		}
	}
	return out, nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id) }

type readCloser struct {
	io.Reader
	f *os.File
}

func (r *readCloser) Close() error { return r.f.Close() }

// readLimited reads r until EOF or n bytes, checking ctx between reads.
func readLimited(ctx context.Context, r io.Reader, n int64) ([]byte, error) {
	var buf bytes.Buffer
	lr := io.LimitReader(r, n)
	chunk := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := lr.Read(chunk)
		buf.Write(chunk[:k])
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// idLen is the length of an id: 128 random bits in base32.
const idLen = 26

// newID returns a random 128-bit id as 26 lowercase base32 characters, like
// the server's other ids (server/secrets.NewID).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// validID reports whether id could have come from newID: exactly idLen
// characters of a–z and 2–7, so it can never name anything outside Dir.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
