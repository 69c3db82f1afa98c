package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

var testNow = time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.UTC)

func newTestStore(t *testing.T, mod ...func(*Config)) (*Store, Config) {
	t.Helper()
	cfg := Config{
		Dir:   filepath.Join(t.TempDir(), "media"),
		Key:   testKey(1),
		KeyID: "k1",
		Now:   func() time.Time { return testNow },
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	return s, cfg
}

func TestInspect(t *testing.T) {
	bigJPEG := jpegFile(t, 400, 300)
	tests := []struct {
		name    string
		kind    Kind
		data    []byte
		limits  func(*Limits)
		want    Info
		wantErr error
		msg     string
	}{
		{name: "jpeg", kind: KindIDPhoto, data: bigJPEG,
			want: Info{Kind: KindIDPhoto, ContentType: TypeJPEG, Size: int64(len(bigJPEG)), Width: 400, Height: 300}},
		{name: "png", kind: KindIDPhoto, data: pngFile(t, 200, 640),
			want: Info{Kind: KindIDPhoto, ContentType: TypePNG, Width: 200, Height: 640}},
		{name: "heic, dimensions not checked", kind: KindIDPhoto, data: heicFile("heic", "mif1", "heic"),
			want: Info{Kind: KindIDPhoto, ContentType: TypeHEIC}},
		{name: "mp4", kind: KindFaceVideo, data: mp4Seconds(5),
			want: Info{Kind: KindFaceVideo, ContentType: TypeMP4, Duration: 5 * time.Second}},
		{name: "mp4 of exactly the maximum", kind: KindFaceVideo, data: mp4Seconds(30),
			want: Info{Kind: KindFaceVideo, ContentType: TypeMP4, Duration: 30 * time.Second}},
		{name: "quicktime", kind: KindFaceVideo, data: cat(ftyp("qt  ", "qt  "), mdat(5000), box("moov", mvhd0(600, 1800))),
			want: Info{Kind: KindFaceVideo, ContentType: TypeQuickTime, Duration: 3 * time.Second}},
		{name: "webm", kind: KindFaceVideo, data: webmWithDuration(float64Bytes(4000), 3),
			want: Info{Kind: KindFaceVideo, ContentType: TypeWebM, Duration: 4 * time.Second}},
		{name: "webm from MediaRecorder", kind: KindFaceVideo, data: webmLive(6, true),
			want: Info{Kind: KindFaceVideo, ContentType: TypeWebM, Duration: 5900 * time.Millisecond}},
		{name: "fragmented mp4", kind: KindFaceVideo, data: fragmentedMP4(3, true),
			want: Info{Kind: KindFaceVideo, ContentType: TypeMP4, Duration: 3 * time.Second}},

		{name: "video uploaded as photo", kind: KindIDPhoto, data: mp4Seconds(5), wantErr: ErrUnsupportedType, msg: "video/mp4"},
		{name: "photo uploaded as video", kind: KindFaceVideo, data: bigJPEG, wantErr: ErrUnsupportedType, msg: "image/jpeg"},
		{name: "text renamed .jpg", kind: KindIDPhoto, data: bytes.Repeat([]byte("not a photo "), 200), wantErr: ErrUnsupportedType},
		{name: "gif", kind: KindIDPhoto, data: append([]byte("GIF89a"), make([]byte, 2000)...), wantErr: ErrUnsupportedType},
		{name: "avif", kind: KindIDPhoto, data: heicFile("avif", "mif1", "avif"), wantErr: ErrUnsupportedType},
		{name: "mif1 without heic brand", kind: KindIDPhoto, data: heicFile("mif1", "mif1", "miaf"), wantErr: ErrUnsupportedType},
		{name: "matroska", kind: KindFaceVideo, data: cat(ebmlHeader("matroska"), el(idSegment, make([]byte, 5000))), wantErr: ErrUnsupportedType},
		{name: "photo too large", kind: KindIDPhoto, data: bigJPEG, limits: func(l *Limits) { l.MaxPhotoBytes = 1000 }, wantErr: ErrTooLarge},
		{name: "video too large", kind: KindFaceVideo, data: mp4Seconds(5), limits: func(l *Limits) { l.MaxVideoBytes = 5000 }, wantErr: ErrTooLarge},
		{name: "empty photo", kind: KindIDPhoto, data: nil, wantErr: ErrTooSmall},
		{name: "tiny video", kind: KindFaceVideo, data: cat(ftyp("isom"), box("moov", mvhd0(1, 5))), wantErr: ErrTooSmall},
		{name: "photo too few pixels", kind: KindIDPhoto, data: jpegFile(t, 640, 150), wantErr: ErrTooSmall, msg: "640×150"},
		{name: "png too few pixels", kind: KindIDPhoto, data: pngFile(t, 199, 300), wantErr: ErrTooSmall},
		{name: "jpeg header broken", kind: KindIDPhoto, data: append([]byte{0xFF, 0xD8, 0xFF, 0x00}, make([]byte, 2000)...), wantErr: ErrUnreadable},
		{name: "video too long", kind: KindFaceVideo, data: mp4Seconds(30.001), wantErr: ErrTooLong},
		{name: "video too short", kind: KindFaceVideo, data: mp4Seconds(1.999), wantErr: ErrTooShort},
		{name: "webm too long", kind: KindFaceVideo, data: webmLive(40, false), wantErr: ErrTooLong},
		{name: "webm too short", kind: KindFaceVideo, data: webmLive(2, true), wantErr: ErrTooShort},
		{name: "custom length limit", kind: KindFaceVideo, data: mp4Seconds(5), limits: func(l *Limits) { l.MaxVideo = 4 * time.Second }, wantErr: ErrTooLong},
		{name: "mp4 truncated", kind: KindFaceVideo, data: mp4File(mvhd0(1000, 5000), true)[:6000], wantErr: ErrUnreadable},
		{name: "webm truncated", kind: KindFaceVideo, data: webmWithDuration(float64Bytes(5000), 3)[:5000], wantErr: ErrUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := DefaultLimits()
			if tt.limits != nil {
				tt.limits(&l)
			}
			got, err := l.Inspect(tt.kind, tt.data)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Contains(t, err.Error(), tt.msg)
				return
			}
			require.NoError(t, err)
			tt.want.Size = int64(len(tt.data))
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("package Inspect uses the defaults", func(t *testing.T) {
		_, err := Inspect(KindFaceVideo, mp4Seconds(31))
		require.ErrorIs(t, err, ErrTooLong)
		_, err = Inspect("passport", bigJPEG)
		require.Error(t, err)
	})
}

func TestNewConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{Key: testKey(1)}},
		{"no key", Config{Dir: dir}},
		{"short key", Config{Dir: dir, Key: make([]byte, 16)}},
		{"bad key id", Config{Dir: dir, Key: testKey(1), KeyID: "../x"}},
		{"long key id", Config{Dir: dir, Key: testKey(1), KeyID: strings.Repeat("a", 65)}},
		{"bad old key", Config{Dir: dir, Key: testKey(1), OldKeys: map[string][]byte{"old": {1}}}},
		{"old key reuses the current id", Config{Dir: dir, Key: testKey(1), KeyID: "a", OldKeys: map[string][]byte{"a": testKey(2)}}},
		{"negative limit", Config{Dir: dir, Key: testKey(1), MaxPhotoBytes: -1}},
		{"min above max", Config{Dir: dir, Key: testKey(1), MinVideo: time.Minute}},
		{"negative side", Config{Dir: dir, Key: testKey(1), MinPhotoSide: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.Error(t, err)
		})
	}

	s, err := New(Config{Dir: filepath.Join(dir, "a", "b"), Key: testKey(1)})
	require.NoError(t, err)
	require.Equal(t, DefaultLimits(), s.Limits())
	fi, err := os.Stat(filepath.Join(dir, "a", "b"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestPutOpen(t *testing.T) {
	ctx := context.Background()
	s, cfg := newTestStore(t)
	bigVideo := cat(ftyp("mp42", "isom"), box("moov", mvhd1(1000, 10_000)), mdat(3*segmentSize+123))
	tests := []struct {
		name string
		kind Kind
		data []byte
		ct   string
	}{
		{"jpeg", KindIDPhoto, jpegFile(t, 300, 300), TypeJPEG},
		{"png", KindIDPhoto, pngFile(t, 256, 256), TypePNG},
		{"heic", KindIDPhoto, heicFile("heic", "mif1", "heic"), TypeHEIC},
		{"mp4 over several segments", KindFaceVideo, bigVideo, TypeMP4},
		{"webm", KindFaceVideo, webmLive(5, true), TypeWebM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := s.Put(ctx, tt.kind, bytes.NewReader(tt.data))
			require.NoError(t, err)
			require.True(t, validID(info.ID), info.ID)
			require.Equal(t, tt.kind, info.Kind)
			require.Equal(t, tt.ct, info.ContentType)
			require.Equal(t, int64(len(tt.data)), info.Size)
			require.True(t, testNow.Truncate(time.Microsecond).Equal(info.CreatedAt))

			// On disk: 0600, not the plaintext.
			raw, err := os.ReadFile(filepath.Join(cfg.Dir, info.ID))
			require.NoError(t, err)
			require.False(t, bytes.Contains(raw, tt.data[:64]))
			fi, err := os.Stat(filepath.Join(cfg.Dir, info.ID))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

			rc, got, err := s.Open(ctx, info.ID, tt.kind)
			require.NoError(t, err)
			content, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			require.Equal(t, tt.data, content)
			require.Equal(t, info.CreatedAt.UnixNano(), got.CreatedAt.UnixNano())
			got.CreatedAt = info.CreatedAt
			require.Equal(t, info, got)

			content, got, err = s.Get(ctx, info.ID, tt.kind)
			require.NoError(t, err)
			require.Equal(t, tt.data, content)
			require.Equal(t, info.ID, got.ID)

			// The wrong kind does not open.
			other := KindIDPhoto
			if tt.kind == KindIDPhoto {
				other = KindFaceVideo
			}
			_, _, err = s.Open(ctx, info.ID, other)
			require.ErrorIs(t, err, ErrCorrupt)

			require.NoError(t, s.Delete(ctx, info.ID))
			require.NoError(t, s.Delete(ctx, info.ID), "idempotent")
			_, _, err = s.Open(ctx, info.ID, tt.kind)
			require.ErrorIs(t, err, ErrNotFound)
		})
	}

	entries, err := os.ReadDir(cfg.Dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no temporary files left behind")
}

func TestPutRefuses(t *testing.T) {
	ctx := context.Background()
	s, cfg := newTestStore(t, func(c *Config) { c.MaxPhotoBytes = 100 << 10 })

	// An oversized upload is not read beyond the limit plus one byte.
	r := &countingReader{r: bytes.NewReader(make([]byte, 1<<20))}
	_, err := s.Put(ctx, KindIDPhoto, r)
	require.ErrorIs(t, err, ErrTooLarge)
	require.Equal(t, int64(100<<10+1), r.n)

	_, err = s.Put(ctx, KindIDPhoto, bytes.NewReader(mp4Seconds(5)))
	require.ErrorIs(t, err, ErrUnsupportedType)
	_, err = s.Put(ctx, KindFaceVideo, bytes.NewReader(mp4Seconds(45)))
	require.ErrorIs(t, err, ErrTooLong)
	_, err = s.Put(ctx, "selfie", bytes.NewReader(mp4Seconds(5)))
	require.Error(t, err)
	_, err = s.Put(ctx, KindFaceVideo, io.MultiReader(bytes.NewReader(mp4Seconds(5)[:100]), errReader{}))
	require.ErrorContains(t, err, "boom")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cancelled, KindFaceVideo, bytes.NewReader(mp4Seconds(5)))
	require.ErrorIs(t, err, context.Canceled)

	entries, err := os.ReadDir(cfg.Dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing stored")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("boom") }

func TestBadIDs(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	for _, id := range []string{
		"", "..", "../../etc/passwd", "abc", strings.Repeat("a", 25), strings.Repeat("a", 27),
		strings.Repeat("A", 26), strings.Repeat("a", 25) + "/", strings.Repeat("a", 25) + "8",
		strings.Repeat("a", 24) + "\x00a", ".tmp-" + strings.Repeat("a", 21),
	} {
		_, _, err := s.Open(ctx, id, KindIDPhoto)
		require.ErrorIs(t, err, ErrNotFound, "%q", id)
		require.ErrorIs(t, s.Delete(ctx, id), ErrNotFound, "%q", id)
	}
	_, _, err := s.Open(ctx, newID(), KindIDPhoto)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestTampering(t *testing.T) {
	ctx := context.Background()
	s, cfg := newTestStore(t)
	video := cat(ftyp("isom", "isom"), box("moov", mvhd0(1000, 5000)), mdat(2*segmentSize+500))
	put := func() (Info, string, []byte) {
		info, err := s.Put(ctx, KindFaceVideo, bytes.NewReader(video))
		require.NoError(t, err)
		path := filepath.Join(cfg.Dir, info.ID)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		return info, path, raw
	}
	headerLen := 4 + 1 + 1 + len(cfg.KeyID) + saltSize + prefixSize
	metaLen := int(binary.BigEndian.Uint16(func() []byte { _, _, raw := put(); return raw }()[headerLen:]))
	firstSegment := headerLen + 2 + metaLen
	segCT := segmentSize + tagSize

	tests := []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[4] = 2; return b }},
		{"key id", func(b []byte) []byte { b[6] = 'x'; return b }},
		{"salt", func(b []byte) []byte { b[8] ^= 1; return b }},
		{"nonce prefix", func(b []byte) []byte { b[headerLen-1] ^= 1; return b }},
		{"metadata length", func(b []byte) []byte { b[headerLen+1] ^= 1; return b }},
		{"metadata", func(b []byte) []byte { b[headerLen+2+5] ^= 1; return b }},
		{"first segment", func(b []byte) []byte { b[firstSegment+10] ^= 1; return b }},
		{"last segment", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"segments swapped", func(b []byte) []byte {
			s1 := bytes.Clone(b[firstSegment : firstSegment+segCT])
			copy(b[firstSegment:], b[firstSegment+segCT:firstSegment+2*segCT])
			copy(b[firstSegment+segCT:], s1)
			return b
		}},
		{"cut at a segment boundary", func(b []byte) []byte { return b[:firstSegment+2*segCT] }},
		{"cut inside a segment", func(b []byte) []byte { return b[:firstSegment+segCT+100] }},
		{"cut in the header", func(b []byte) []byte { return b[:20] }},
		{"cut after the first segment", func(b []byte) []byte { return b[:firstSegment+segCT] }},
		{"segment appended", func(b []byte) []byte { return append(b, b[firstSegment:firstSegment+segCT]...) }},
		{"empty file", func([]byte) []byte { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, path, raw := put()
			require.NoError(t, os.WriteFile(path, tt.mangle(raw), 0o600))
			_, _, err := s.Get(ctx, info.ID, KindFaceVideo)
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}

	t.Run("files swapped between ids", func(t *testing.T) {
		a, pathA, rawA := put()
		b, pathB, rawB := put()
		require.NoError(t, os.WriteFile(pathA, rawB, 0o600))
		require.NoError(t, os.WriteFile(pathB, rawA, 0o600))
		_, _, err := s.Get(ctx, a.ID, KindFaceVideo)
		require.ErrorIs(t, err, ErrCorrupt)
		_, _, err = s.Get(ctx, b.ID, KindFaceVideo)
		require.ErrorIs(t, err, ErrCorrupt)
	})

	t.Run("streaming reader reports corruption after the good segments", func(t *testing.T) {
		info, path, raw := put()
		raw[len(raw)-1] ^= 1
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		rc, _, err := s.Open(ctx, info.ID, KindFaceVideo)
		require.NoError(t, err, "header and metadata are intact")
		defer rc.Close()
		got, err := io.ReadAll(rc)
		require.ErrorIs(t, err, ErrCorrupt)
		require.Equal(t, video[:len(got)], got)
	})
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	photo := jpegFile(t, 300, 200)

	old, err := New(Config{Dir: dir, Key: testKey(1), KeyID: "2025"})
	require.NoError(t, err)
	info, err := old.Put(ctx, KindIDPhoto, bytes.NewReader(photo))
	require.NoError(t, err)

	rotated, err := New(Config{Dir: dir, Key: testKey(2), KeyID: "2026", OldKeys: map[string][]byte{"2025": testKey(1)}})
	require.NoError(t, err)
	got, _, err := rotated.Get(ctx, info.ID, KindIDPhoto)
	require.NoError(t, err)
	require.Equal(t, photo, got)
	info2, err := rotated.Put(ctx, KindIDPhoto, bytes.NewReader(photo))
	require.NoError(t, err)
	got, _, err = rotated.Get(ctx, info2.ID, KindIDPhoto)
	require.NoError(t, err)
	require.Equal(t, photo, got)

	// The old store does not know the new key.
	_, _, err = old.Get(ctx, info2.ID, KindIDPhoto)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "unknown key id")

	// Once the old key is dropped, its files no longer open.
	dropped, err := New(Config{Dir: dir, Key: testKey(2), KeyID: "2026"})
	require.NoError(t, err)
	_, _, err = dropped.Get(ctx, info.ID, KindIDPhoto)
	require.ErrorIs(t, err, ErrCorrupt)

	// A different key under the same id fails authentication.
	wrong, err := New(Config{Dir: dir, Key: testKey(3), KeyID: "2025"})
	require.NoError(t, err)
	_, _, err = wrong.Get(ctx, info.ID, KindIDPhoto)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestSegmentBoundaries(t *testing.T) {
	keys := map[string][]byte{"k": testKey(7)}
	for _, n := range []int{0, 1, segmentSize - 1, segmentSize, segmentSize + 1, 2 * segmentSize, 3*segmentSize + 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			content := bytes.Repeat([]byte{0xA5}, n)
			var sealed bytes.Buffer
			id := newID()
			require.NoError(t, encrypt(context.Background(), &sealed, keys["k"], "k", KindFaceVideo, id,
				meta{Size: int64(n), CreatedAt: testNow.Format(time.RFC3339Nano)}, content))
			d, m, err := openDecrypter(context.Background(), bytes.NewReader(sealed.Bytes()), keys, KindFaceVideo, id)
			require.NoError(t, err)
			require.Equal(t, int64(n), m.Size)
			got, err := io.ReadAll(d)
			require.NoError(t, err)
			require.Equal(t, len(content), len(got))
			require.Equal(t, content, got)

			// Truncating the final segment's tag is detected.
			_, _, err = func() ([]byte, meta, error) {
				d, m, err := openDecrypter(context.Background(), bytes.NewReader(sealed.Bytes()[:sealed.Len()-1]), keys, KindFaceVideo, id)
				if err != nil {
					return nil, m, err
				}
				b, err := io.ReadAll(d)
				return b, m, err
			}()
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s, cfg := newTestStore(t, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	info, err := s.Put(ctx, KindIDPhoto, bytes.NewReader(jpegFile(t, 200, 200)))
	require.NoError(t, err)
	stale := filepath.Join(cfg.Dir, ".tmp-123")
	require.NoError(t, os.WriteFile(stale, []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Dir, "README"), []byte("x"), 0o600))

	ids, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	require.Contains(t, ids, info.ID)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "stale temporary file removed")
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	photo := pngFile(t, 220, 220)
	video := webmLive(4, false)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			kind, data := KindIDPhoto, photo
			if i%2 == 1 {
				kind, data = KindFaceVideo, video
			}
			for range 4 {
				info, err := s.Put(ctx, kind, bytes.NewReader(data))
				if err != nil {
					errs <- err
					return
				}
				got, _, err := s.Get(ctx, info.ID, kind)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("content of %s differs", info.ID)
					return
				}
				if err := s.Delete(ctx, info.ID); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
