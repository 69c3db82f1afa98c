package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// noisy returns a w×h image of pseudo-random pixels (deterministic), so that
// encoded files are not trivially small.
func noisy(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	return img
}

func jpegFile(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, noisy(w, h), &jpeg.Options{Quality: 80}))
	return b.Bytes()
}

func pngFile(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, noisy(w, h)))
	return b.Bytes()
}

// --- ISO BMFF ---

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// box builds an ISO BMFF box with a 32-bit size.
func box(typ string, payload ...[]byte) []byte {
	body := cat(payload...)
	return cat(u32(uint32(8+len(body))), []byte(typ), body)
}

// box64 builds a box with a 64-bit size.
func box64(typ string, payload ...[]byte) []byte {
	body := cat(payload...)
	return cat(u32(1), []byte(typ), u64(uint64(16+len(body))), body)
}

// boxToEnd builds a box with size 0 (to the end of the file).
func boxToEnd(typ string, payload ...[]byte) []byte {
	return cat(u32(0), []byte(typ), cat(payload...))
}

func ftyp(major string, compatible ...string) []byte {
	p := [][]byte{[]byte(major), u32(0)}
	for _, c := range compatible {
		p = append(p, []byte(c))
	}
	return box("ftyp", p...)
}

func mvhd0(timescale, duration uint32) []byte {
	return box("mvhd", u32(0), u32(0), u32(0), u32(timescale), u32(duration), make([]byte, 80))
}

func mvhd1(timescale uint32, duration uint64) []byte {
	return box("mvhd", []byte{1, 0, 0, 0}, u64(0), u64(0), u32(timescale), u64(duration), make([]byte, 80))
}

// mdat is a media data box of n filler bytes.
func mdat(n int) []byte { return box("mdat", bytes.Repeat([]byte{0x5A}, n)) }

// mp4File is ftyp isom + moov(mvhd) + mdat of 8 KiB, moov first or last.
func mp4File(mvhd []byte, moovLast bool) []byte {
	moov := box("moov", mvhd)
	if moovLast {
		return cat(ftyp("isom", "isom", "iso2", "avc1", "mp41"), mdat(8<<10), moov)
	}
	return cat(ftyp("isom", "isom", "iso2", "avc1", "mp41"), moov, mdat(8<<10))
}

// mp4Seconds is an MP4 of the given length (timescale 1000, mvhd v0).
func mp4Seconds(secs float64) []byte {
	return mp4File(mvhd0(1000, uint32(secs*1000)), false)
}

// fragmentedMP4 is an MP4 as MediaRecorder writes it: mvhd duration 0, one
// video track at timescale 90000 with trex default duration 3000 (30 fps),
// and fragments of 30 samples each with tfdt (1 s each).
func fragmentedMP4(fragments int, withTfdt bool) []byte {
	trak := box("trak",
		box("tkhd", u32(0), u32(0), u32(0), u32(1), make([]byte, 68)),
		box("mdia", box("mdhd", u32(0), u32(0), u32(0), u32(90000), u32(0), u32(0))))
	mvex := box("mvex", box("trex", u32(0), u32(1), u32(1), u32(3000), u32(0), u32(0)))
	out := cat(ftyp("iso5", "iso5", "iso6", "mp41"), box("moov", mvhd0(1000, 0), trak, mvex))
	for i := range fragments {
		traf := [][]byte{box("tfhd", u32(0x020000), u32(1))}
		if withTfdt {
			traf = append(traf, box("tfdt", []byte{1, 0, 0, 0}, u64(uint64(i)*90000)))
		}
		// Half the fragments list per-sample durations and sizes, the other
		// half rely on the trex default.
		if i%2 == 0 {
			entries := [][]byte{u32(0x000301), u32(30), u32(0)}
			for range 30 {
				entries = append(entries, u32(3000), u32(100))
			}
			traf = append(traf, box("trun", entries...))
		} else {
			traf = append(traf, box("trun", u32(0x000001), u32(30), u32(0)))
		}
		out = cat(out, box("moof", box("mfhd", u32(0), u32(uint32(i+1))), box("traf", traf...)), mdat(3000))
	}
	return out
}

// heicFile is a minimal HEIF file: ftyp plus filler.
func heicFile(major string, compatible ...string) []byte {
	return cat(ftyp(major, compatible...), box("meta", u32(0)), mdat(4<<10))
}

// --- EBML / WebM ---

// ebmlID writes an element id (already carrying its length marker).
func ebmlID(id uint32) []byte {
	switch {
	case id >= 1<<24:
		return u32(id)
	case id >= 1<<16:
		return []byte{byte(id >> 16), byte(id >> 8), byte(id)}
	case id >= 1<<8:
		return []byte{byte(id >> 8), byte(id)}
	default:
		return []byte{byte(id)}
	}
}

// el builds an EBML element with an 8-byte size.
func el(id uint32, payload ...[]byte) []byte {
	body := cat(payload...)
	size := u64(uint64(len(body)))
	size[0] = 0x01
	return cat(ebmlID(id), size, body)
}

// elUnknown builds an element of unknown size (its children follow).
func elUnknown(id uint32) []byte {
	return cat(ebmlID(id), []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
}

func ebmlHeader(docType string) []byte {
	return el(idEBML,
		el(0x4286, []byte{1}), // EBMLVersion
		el(0x42F7, []byte{1}), // EBMLReadVersion
		el(0x42F2, []byte{4}), // EBMLMaxIDLength
		el(0x42F3, []byte{8}), // EBMLMaxSizeLength
		el(idDocType, []byte(docType)),
		el(0x4287, []byte{4}), // DocTypeVersion
		el(0x4285, []byte{2})) // DocTypeReadVersion
}

func float32Bytes(f float32) []byte { return u32(math.Float32bits(f)) }
func float64Bytes(f float64) []byte { return u64(math.Float64bits(f)) }

// simpleBlock is a SimpleBlock on track 1 at timecode rel, with filler.
func simpleBlock(rel int16, filler int) []byte {
	return el(idSimpleBlock, []byte{0x81}, binary.BigEndian.AppendUint16(nil, uint16(rel)), []byte{0x80},
		bytes.Repeat([]byte{0x33}, filler))
}

// clusters are clusters of 1 s each (timecodes in ms), 10 frames a second.
func clusters(seconds int, unknownSize bool) []byte {
	var out []byte
	for s := range seconds {
		var blocks [][]byte
		blocks = append(blocks, el(idTimecode, u32(uint32(s*1000))))
		for f := range 10 {
			if f == 5 {
				// One frame in a BlockGroup, as some muxers write.
				blocks = append(blocks, el(idBlockGroup,
					el(idBlock, []byte{0x81}, binary.BigEndian.AppendUint16(nil, uint16(f*100)), []byte{0}, make([]byte, 200)),
					el(0x9B, []byte{100})))
				continue
			}
			blocks = append(blocks, simpleBlock(int16(f*100), 200))
		}
		if unknownSize {
			out = cat(out, elUnknown(idCluster), cat(blocks...))
		} else {
			out = cat(out, el(idCluster, blocks...))
		}
	}
	return out
}

// webmWithDuration is a WebM file whose Info has a Duration (ms, scale 1 ms).
func webmWithDuration(duration []byte, seconds int) []byte {
	info := el(idInfo, el(idTimecodeScale, u32(1_000_000)), el(idDuration, duration),
		el(0x4D80, []byte("test")), el(0x5741, []byte("test")))
	tracks := el(0x1654AE6B, el(0xAE, el(0xD7, []byte{1}), el(0x83, []byte{1}), el(0x86, []byte("V_VP8"))))
	return cat(ebmlHeader("webm"), el(idSegment, info, tracks, clusters(seconds, false)))
}

// webmLive is WebM as MediaRecorder writes it: unknown-size Segment (and
// Clusters), Info without Duration.
func webmLive(seconds int, unknownClusters bool) []byte {
	info := el(idInfo, el(idTimecodeScale, u32(1_000_000)), el(0x4D80, []byte("Chrome")), el(0x5741, []byte("Chrome")))
	tracks := el(0x1654AE6B, el(0xAE, el(0xD7, []byte{1}), el(0x83, []byte{1}), el(0x86, []byte("V_VP8"))))
	return cat(ebmlHeader("webm"), elUnknown(idSegment), info, tracks, clusters(seconds, unknownClusters))
}
