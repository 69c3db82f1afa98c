package media

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// The parsers read outside input: these targets check that they never
// panic, never hang, and answer only with the package's errors. Allocation
// from declared sizes would show as out-of-memory crashes.

func FuzzSniff(f *testing.F) {
	for _, seed := range [][]byte{
		jpegFile(f, 8, 8), pngFile(f, 8, 8), heicFile("mif1", "mif1", "heic"), heicFile("avif", "mif1"),
		mp4Seconds(3), cat(ftyp("qt  ", "qt  "), box("moov")), webmWithDuration(float32Bytes(1), 0),
		ebmlHeader("matroska"), nil, {0xFF, 0xD8, 0xFF},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ct := sniff(data)
		switch ct {
		case "", TypeJPEG, TypePNG, TypeHEIC, TypeMP4, TypeQuickTime, TypeWebM:
		default:
			t.Fatalf("unexpected type %q", ct)
		}
		// The whole check, with limits low enough for fuzzed inputs.
		l := Limits{MaxPhotoBytes: 1 << 20, MaxVideoBytes: 1 << 20, MinPhotoSide: 1, MaxVideo: time.Hour}
		for _, kind := range []Kind{KindIDPhoto, KindFaceVideo} {
			_, _ = l.Inspect(kind, data)
		}
	})
}

func FuzzMP4Duration(f *testing.F) {
	for _, seed := range [][]byte{
		mp4File(mvhd0(1000, 5000), false), mp4File(mvhd1(90000, 1<<40), true),
		cat(ftyp("isom"), box64("moov", mvhd0(1, 1)), boxToEnd("mdat", make([]byte, 10))),
		fragmentedMP4(2, true), fragmentedMP4(2, false),
		cat(ftyp("isom"), box("moov", mvhd0(1000, 0), box("mvex", box("mehd", u32(0), u32(8000))))),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := mp4Duration(data)
		if err == nil && d < 0 {
			t.Fatalf("negative duration %v", d)
		}
	})
}

func FuzzWebMDuration(f *testing.F) {
	for _, seed := range [][]byte{
		webmWithDuration(float64Bytes(5000), 1), webmWithDuration(float32Bytes(5000), 0),
		webmLive(2, true), webmLive(2, false),
		cat(ebmlHeader("webm"), elUnknown(idSegment), elUnknown(idCluster), el(idTimecode, u32(5)), simpleBlock(-3, 1)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := webmDuration(data)
		if err == nil && d < 0 {
			t.Fatalf("negative duration %v", d)
		}
	})
}

// FuzzOpen feeds arbitrary bytes to the decrypter as a stored file: it must
// fail with ErrCorrupt (or succeed only for a genuine file), never panic.
func FuzzOpen(f *testing.F) {
	key := map[string][]byte{"k": testKey(9)}
	id := "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	var sealed bytes.Buffer
	if err := encrypt(context.Background(), &sealed, key["k"], "k", KindIDPhoto, id, meta{Size: 5}, []byte("hello")); err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Bytes())
	f.Add([]byte("IDLM\x01\x01k"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, _, err := openDecrypter(context.Background(), bytes.NewReader(data), key, KindIDPhoto, id)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, d)
	})
}
