package media

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"jpeg", jpegFile(t, 20, 20), TypeJPEG},
		{"png", pngFile(t, 20, 20), TypePNG},
		{"heic major heic", heicFile("heic", "mif1", "heic"), TypeHEIC},
		{"heic major heix", heicFile("heix", "mif1", "heix"), TypeHEIC},
		{"heic sequence hevc", heicFile("hevc", "msf1", "hevc"), TypeHEIC},
		{"mif1 with heic", heicFile("mif1", "mif1", "heic"), TypeHEIC},
		{"msf1 with hevc", heicFile("msf1", "msf1", "hevc"), TypeHEIC},
		{"mif1 alone", heicFile("mif1", "mif1", "miaf"), ""},
		{"avif", heicFile("avif", "mif1", "avif", "miaf"), ""},
		{"mif1 with avif and heic", heicFile("mif1", "avif", "heic"), ""},
		{"mp4 isom", mp4Seconds(5), TypeMP4},
		{"mp4 mp42", cat(ftyp("mp42", "mp42", "isom"), box("moov")), TypeMP4},
		{"mp4 M4V", cat(ftyp("M4V ", "M4V ", "M4A ", "mp42"), box("moov")), TypeMP4},
		{"mp4 vendor major, isom compatible", cat(ftyp("XAVC", "XAVC", "isom"), box("moov")), TypeMP4},
		{"quicktime", cat(ftyp("qt  ", "qt  "), box("moov")), TypeQuickTime},
		{"3gp", cat(ftyp("3gp4", "3gp4"), box("moov")), ""},
		{"ftyp too short", []byte("\x00\x00\x00\x0cftypisom"), ""},
		{"ftyp size beyond data", cat(u32(100), []byte("ftypisom"), u32(0)), ""},
		{"webm", webmWithDuration(float64Bytes(5000), 1), TypeWebM},
		{"matroska", cat(ebmlHeader("matroska"), el(idSegment)), ""},
		{"ebml without doctype", cat(el(idEBML, el(0x4286, []byte{1})), el(idSegment)), ""},
		{"ebml header cut", ebmlHeader("webm")[:10], ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), ""},
		{"pdf", []byte("%PDF-1.7\n"), ""},
		{"empty", nil, ""},
		{"jpeg magic only", []byte{0xFF, 0xD8}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, sniff(tt.data))
		})
	}
}

func TestMP4Duration(t *testing.T) {
	ftypBox := ftyp("isom", "isom")
	tests := []struct {
		name    string
		data    []byte
		want    time.Duration
		wantErr error
	}{
		{"mvhd v0, moov first", mp4File(mvhd0(1000, 5500), false), 5500 * time.Millisecond, nil},
		{"mvhd v0, moov last", mp4File(mvhd0(600, 6000), true), 10 * time.Second, nil},
		{"mvhd v1", mp4File(mvhd1(90000, 90000*3+45000), false), 3500 * time.Millisecond, nil},
		{"mvhd v1, moov last", mp4File(mvhd1(48000, 48000*12), true), 12 * time.Second, nil},
		{"odd timescale", mp4File(mvhd0(30000, 1001), false), 33366666 * time.Nanosecond, nil},
		{"64-bit box sizes", cat(ftypBox, box64("mdat", make([]byte, 100)), box64("moov", mvhd0(1000, 2000))), 2 * time.Second, nil},
		{"mdat to end of file", cat(ftypBox, box("moov", mvhd0(1000, 4000)), boxToEnd("mdat", make([]byte, 100))), 4 * time.Second, nil},
		{"free and uuid boxes", cat(ftypBox, box("free", make([]byte, 10)), box("uuid", make([]byte, 16)), box("moov", box("udta"), mvhd0(1, 7))), 7 * time.Second, nil},
		{"huge duration saturates", mp4File(mvhd1(1, 1<<62), false), time.Duration(1<<63 - 1), nil},
		{"fragmented, tfdt", fragmentedMP4(4, true), 4 * time.Second, nil},
		{"fragmented, no tfdt", fragmentedMP4(3, false), 3 * time.Second, nil},
		{"fragmented, mehd", cat(ftypBox, box("moov", mvhd0(1000, 0), box("mvex", box("mehd", u32(0), u32(8000))))), 8 * time.Second, nil},

		{"no moov", cat(ftypBox, mdat(10)), 0, ErrUnreadable},
		{"moov without mvhd", cat(ftypBox, box("moov", box("udta"))), 0, ErrUnreadable},
		{"two moov", cat(ftypBox, box("moov", mvhd0(1, 1)), box("moov", mvhd0(1, 1))), 0, ErrUnreadable},
		{"zero timescale", mp4File(mvhd0(0, 100), false), 0, ErrUnreadable},
		{"mvhd version 2", cat(ftypBox, box("moov", box("mvhd", []byte{2, 0, 0, 0}, make([]byte, 96)))), 0, ErrUnreadable},
		{"mvhd cut short", cat(ftypBox, box("moov", box("mvhd", u32(0), u32(0)))), 0, ErrUnreadable},
		{"truncated file", mp4File(mvhd0(1000, 5000), true)[:100], 0, ErrUnreadable},
		{"box size below header", cat(ftypBox, u32(4), []byte("moov")), 0, ErrUnreadable},
		{"box size beyond file", cat(ftypBox, u32(1000), []byte("moov"), mvhd0(1, 1)), 0, ErrUnreadable},
		{"64-bit size beyond file", cat(ftypBox, u32(1), []byte("moov"), u64(1<<62)), 0, ErrUnreadable},
		{"unknown duration, no fragments", mp4File(mvhd0(1000, 0xFFFFFFFF), false), 0, ErrUnreadable},
		{"fragment of unknown track", cat(ftypBox, box("moov", mvhd0(1000, 0)),
			box("moof", box("traf", box("tfhd", u32(0), u32(9)), box("trun", u32(0), u32(1))))), 0, ErrUnreadable},
		{"trun count beyond box", cat(ftypBox, box("moov", mvhd0(1000, 0),
			box("trak", box("tkhd", u32(0), u32(0), u32(0), u32(1)), box("mdia", box("mdhd", u32(0), u32(0), u32(0), u32(1000))))),
			box("moof", box("traf", box("tfhd", u32(0), u32(1)), box("trun", u32(0x100), u32(0xFFFFFFFF), u32(1))))), 0, ErrUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mp4Duration(tt.data)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestWebMDuration(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    time.Duration
		wantErr error
	}{
		{"duration float64", webmWithDuration(float64Bytes(5250), 1), 5250 * time.Millisecond, nil},
		{"duration float32", webmWithDuration(float32Bytes(12000), 1), 12 * time.Second, nil},
		{"timecode scale 1 µs", cat(ebmlHeader("webm"), el(idSegment, el(idInfo,
			el(idTimecodeScale, u32(1000)), el(idDuration, float64Bytes(3_000_000))))), 3 * time.Second, nil},
		{"default timecode scale", cat(ebmlHeader("webm"), el(idSegment, el(idInfo,
			el(idDuration, float64Bytes(2500))))), 2500 * time.Millisecond, nil},
		{"duration wins over clusters", webmWithDuration(float64Bytes(9000), 3), 9 * time.Second, nil},
		{"live, unknown-size segment, known clusters", webmLive(5, false), 4900 * time.Millisecond, nil},
		{"live, unknown-size clusters", webmLive(7, true), 6900 * time.Millisecond, nil},
		{"live, zero duration", cat(ebmlHeader("webm"), elUnknown(idSegment),
			el(idInfo, el(idDuration, float64Bytes(0))), clusters(3, true)), 2900 * time.Millisecond, nil},
		{"live, empty duration", cat(ebmlHeader("webm"), elUnknown(idSegment),
			el(idInfo, el(idDuration)), clusters(2, false)), 1900 * time.Millisecond, nil},
		{"negative block timecodes", cat(ebmlHeader("webm"), elUnknown(idSegment), elUnknown(idCluster),
			el(idTimecode, u32(100)), simpleBlock(-50, 1), simpleBlock(1950, 1)), 2 * time.Second, nil},

		{"no header", el(idSegment), 0, ErrUnreadable},
		{"no duration, no blocks", cat(ebmlHeader("webm"), elUnknown(idSegment), el(idInfo)), 0, ErrUnreadable},
		{"NaN duration", webmWithDuration(float64Bytes(nan()), 1), 0, ErrUnreadable},
		{"negative duration", webmWithDuration(float32Bytes(-5), 1), 0, ErrUnreadable},
		{"duration of 3 bytes", webmWithDuration([]byte{1, 2, 3}, 1), 0, ErrUnreadable},
		{"zero timecode scale", cat(ebmlHeader("webm"), el(idSegment, el(idInfo,
			el(idTimecodeScale, []byte{0}), el(idDuration, float64Bytes(2500))))), 0, ErrUnreadable},
		{"truncated in a block", webmLive(3, true)[:len(webmLive(3, true))-20], 0, ErrUnreadable},
		{"element overruns", cat(ebmlHeader("webm"), elUnknown(idSegment), []byte{0x1F, 0x43, 0xB6, 0x75, 0x88}), 0, ErrUnreadable},
		{"bad id", cat(ebmlHeader("webm"), elUnknown(idSegment), []byte{0x00, 0x81}), 0, ErrUnreadable},
		{"unknown size of a plain element", cat(ebmlHeader("webm"), elUnknown(idSegment), elUnknown(0x1254C367)), 0, ErrUnreadable},
		{"cluster outside segment", cat(ebmlHeader("webm"), clusters(1, false)), 0, ErrUnreadable},
		{"block too short", cat(ebmlHeader("webm"), elUnknown(idSegment), elUnknown(idCluster), el(idSimpleBlock, []byte{0x81})), 0, ErrUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webmDuration(tt.data)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestReadVints(t *testing.T) {
	tests := []struct {
		in       []byte
		size     uint64
		n        int
		ok       bool
		unknown  bool
		id       uint32
		idLength int
		idOK     bool
	}{
		{in: []byte{0x81}, size: 1, n: 1, ok: true, id: 0x81, idLength: 1, idOK: true},
		{in: []byte{0xFF}, size: unknownSize, n: 1, ok: true, unknown: true, id: 0xFF, idLength: 1, idOK: true},
		{in: []byte{0x40, 0x02}, size: 2, n: 2, ok: true, id: 0x4002, idLength: 2, idOK: true},
		{in: []byte{0x7F, 0xFF}, size: unknownSize, n: 2, ok: true, unknown: true, id: 0x7FFF, idLength: 2, idOK: true},
		{in: []byte{0x01, 0, 0, 0, 0, 0, 1, 0}, size: 256, n: 8, ok: true},
		{in: []byte{0x01, 0, 0}, ok: false},
		{in: []byte{0x00, 0x81}, ok: false},
		{in: nil, ok: false},
		{in: []byte{0x1A, 0x45, 0xDF, 0xA3}, size: 0x0A45DFA3, n: 4, ok: true, id: idEBML, idLength: 4, idOK: true},
	}
	for _, tt := range tests {
		size, n, ok := readSize(tt.in)
		require.Equal(t, tt.ok, ok, "%x", tt.in)
		if ok {
			require.Equal(t, tt.size, size, "%x", tt.in)
			require.Equal(t, tt.n, n, "%x", tt.in)
		}
		id, idn, idOK := readID(tt.in)
		require.Equal(t, tt.idOK, idOK, "%x", tt.in)
		if idOK {
			require.Equal(t, tt.id, id)
			require.Equal(t, tt.idLength, idn)
		}
	}
}
