// Package mediatest makes small, valid evidence files for tests of the
// photo ID route: a JPEG photo of a chosen size and a minimal MP4 video of
// a chosen length (ftyp, moov/mvhd, 8 KiB of media data), which the media
// store accepts.
package mediatest

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	mrand "math/rand/v2"
	"testing"
)

// JPEG returns a w×h JPEG of noise (so it does not compress to nothing).
func JPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := mrand.New(mrand.NewPCG(uint64(w), uint64(h)))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		tb.Fatalf("encode JPEG: %v", err)
	}
	return b.Bytes()
}

// Photo is a 320×240 JPEG, large enough for the store's minimum side.
func Photo(tb testing.TB) []byte { return JPEG(tb, 320, 240) }

// MP4 returns a minimal MP4 lasting seconds (timescale 1000).
func MP4(seconds float64) []byte {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	box := func(typ string, payload ...[]byte) []byte {
		body := bytes.Join(payload, nil)
		return bytes.Join([][]byte{u32(uint32(8 + len(body))), []byte(typ), body}, nil)
	}
	ftyp := box("ftyp", []byte("isom"), u32(0), []byte("isomiso2avc1mp41"))
	mvhd := box("mvhd", u32(0), u32(0), u32(0), u32(1000), u32(uint32(seconds*1000)), make([]byte, 80))
	return bytes.Join([][]byte{ftyp, box("moov", mvhd), box("mdat", bytes.Repeat([]byte{0x5A}, 8<<10))}, nil)
}
