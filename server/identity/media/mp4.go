package media

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// nextBox splits the ISO BMFF box at the start of b from what follows it.
// A 32-bit size of 1 means a 64-bit size follows the type; a size of 0 means
// the box extends to the end of b. A size smaller than the header or larger
// than b is an error, so every call either fails or consumes at least 8 bytes.
func nextBox(b []byte) (typ string, body, rest []byte, err error) {
	if len(b) < 8 {
		return "", nil, nil, fmt.Errorf("%w: box header cut short", ErrUnreadable)
	}
	size := uint64(binary.BigEndian.Uint32(b))
	typ = string(b[4:8])
	hdr := uint64(8)
	switch size {
	case 0:
		size = uint64(len(b))
	case 1:
		if len(b) < 16 {
			return "", nil, nil, fmt.Errorf("%w: box %q: 64-bit size cut short", ErrUnreadable, typ)
		}
		size = binary.BigEndian.Uint64(b[8:16])
		hdr = 16
	}
	if size < hdr || size > uint64(len(b)) {
		return "", nil, nil, fmt.Errorf("%w: box %q: size %d does not fit", ErrUnreadable, typ, size)
	}
	return typ, b[hdr:size], b[size:], nil
}

// mp4Track is what the duration fallback needs to know of a track.
type mp4Track struct {
	timescale       uint32
	defaultDuration uint32 // from mvex/trex
}

// mp4Movie is what mp4Duration gathers from the 'moov' box.
type mp4Movie struct {
	timescale        uint32
	duration         uint64 // from mvhd; 0 or all ones when unknown
	fragmentDuration uint64 // from mvex/mehd
	tracks           map[uint32]*mp4Track
}

// mp4Duration returns the duration of an MP4 or QuickTime file: the 'mvhd'
// box's duration over its timescale (versions 0 and 1), wherever 'moov' is
// among the top-level boxes (before or after 'mdat').
//
// A fragmented file (browsers' MediaRecorder, DASH) has a zero duration in
// 'mvhd'. Then the fragment duration in 'mvex/mehd' is used if present,
// otherwise the end of the last fragment of any track: its 'tfdt' decode time
// (or the sum of the track's earlier fragments) plus its samples' durations
// from 'trun', 'tfhd' or 'trex', in the track's 'mdhd' timescale.
//
// Every box must fit within its parent. Nothing is allocated from declared
// sizes or counts (per-sample tables are walked in place, and only when they
// fit in their box), so malformed input ends in ErrUnreadable.
func mp4Duration(data []byte) (time.Duration, error) {
	var (
		movie *mp4Movie
		moofs [][]byte
		rest  = data
	)
	for len(rest) > 0 {
		typ, body, next, err := nextBox(rest)
		if err != nil {
			return 0, err
		}
		switch typ {
		case "moov":
			if movie != nil {
				return 0, fmt.Errorf("%w: two moov boxes", ErrUnreadable)
			}
			if movie, err = parseMoov(body); err != nil {
				return 0, err
			}
		case "moof":
			moofs = append(moofs, body) // a sub-slice of data, not a copy
		}
		rest = next
	}
	if movie == nil {
		return 0, fmt.Errorf("%w: no moov box", ErrUnreadable)
	}
	if movie.timescale == 0 {
		return 0, fmt.Errorf("%w: zero movie timescale", ErrUnreadable)
	}
	if movie.duration != 0 && movie.duration != math.MaxUint64 && movie.duration != math.MaxUint32 {
		return ticks(movie.duration, movie.timescale), nil
	}
	if movie.fragmentDuration != 0 {
		return ticks(movie.fragmentDuration, movie.timescale), nil
	}
	return fragmentsDuration(movie, moofs)
}

// ticks converts a count of ticks at timescale per second to a Duration,
// saturating when it does not fit.
func ticks(n uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	secs := n / ts
	if secs > math.MaxInt64/uint64(time.Second)-1 {
		return math.MaxInt64
	}
	frac := (n % ts) * uint64(time.Second) / ts // < 2^32 · 10^9: no overflow
	return time.Duration(secs)*time.Second + time.Duration(frac)
}

func parseMoov(b []byte) (*mp4Movie, error) {
	m := &mp4Movie{tracks: map[uint32]*mp4Track{}}
	seenMvhd := false
	for len(b) > 0 {
		typ, body, next, err := nextBox(b)
		if err != nil {
			return nil, err
		}
		switch typ {
		case "mvhd":
			if err := parseMvhd(body, m); err != nil {
				return nil, err
			}
			seenMvhd = true
		case "trak":
			id, t, err := parseTrak(body)
			if err != nil {
				return nil, err
			}
			if old, ok := m.tracks[id]; ok {
				old.timescale = t.timescale
			} else {
				m.tracks[id] = t
			}
		case "mvex":
			if err := parseMvex(body, m); err != nil {
				return nil, err
			}
		}
		b = next
	}
	if !seenMvhd {
		return nil, fmt.Errorf("%w: no mvhd box", ErrUnreadable)
	}
	return m, nil
}

// parseMvhd reads the movie header: version 0 has 32-bit times and duration,
// version 1 64-bit ones.
func parseMvhd(b []byte, m *mp4Movie) error {
	if len(b) < 4 {
		return fmt.Errorf("%w: mvhd cut short", ErrUnreadable)
	}
	switch b[0] {
	case 0:
		if len(b) < 4+4+4+4+4 {
			return fmt.Errorf("%w: mvhd cut short", ErrUnreadable)
		}
		m.timescale = binary.BigEndian.Uint32(b[12:])
		m.duration = uint64(binary.BigEndian.Uint32(b[16:]))
	case 1:
		if len(b) < 4+8+8+4+8 {
			return fmt.Errorf("%w: mvhd cut short", ErrUnreadable)
		}
		m.timescale = binary.BigEndian.Uint32(b[20:])
		m.duration = binary.BigEndian.Uint64(b[24:])
	default:
		return fmt.Errorf("%w: mvhd version %d", ErrUnreadable, b[0])
	}
	return nil
}

// parseTrak reads a track's id (tkhd) and timescale (mdia/mdhd).
func parseTrak(b []byte) (uint32, *mp4Track, error) {
	var (
		id    uint32
		hasID bool
		t     = &mp4Track{}
	)
	for len(b) > 0 {
		typ, body, next, err := nextBox(b)
		if err != nil {
			return 0, nil, err
		}
		switch typ {
		case "tkhd":
			// version/flags, then creation and modification times (32 or 64
			// bits), then track_ID.
			off := 4 + 8
			if len(body) > 0 && body[0] == 1 {
				off = 4 + 16
			}
			if len(body) < off+4 {
				return 0, nil, fmt.Errorf("%w: tkhd cut short", ErrUnreadable)
			}
			id, hasID = binary.BigEndian.Uint32(body[off:]), true
		case "mdia":
			mdia := body
			for len(mdia) > 0 {
				typ, mb, mnext, err := nextBox(mdia)
				if err != nil {
					return 0, nil, err
				}
				if typ == "mdhd" {
					off := 4 + 8
					if len(mb) > 0 && mb[0] == 1 {
						off = 4 + 16
					}
					if len(mb) < off+4 {
						return 0, nil, fmt.Errorf("%w: mdhd cut short", ErrUnreadable)
					}
					t.timescale = binary.BigEndian.Uint32(mb[off:])
				}
				mdia = mnext
			}
		}
		b = next
	}
	if !hasID {
		return 0, nil, fmt.Errorf("%w: track without tkhd", ErrUnreadable)
	}
	return id, t, nil
}

// parseMvex reads the fragment duration (mehd) and the tracks' default sample
// durations (trex).
func parseMvex(b []byte, m *mp4Movie) error {
	for len(b) > 0 {
		typ, body, next, err := nextBox(b)
		if err != nil {
			return err
		}
		switch typ {
		case "mehd":
			switch {
			case len(body) >= 12 && body[0] == 1:
				m.fragmentDuration = binary.BigEndian.Uint64(body[4:])
			case len(body) >= 8 && body[0] == 0:
				m.fragmentDuration = uint64(binary.BigEndian.Uint32(body[4:]))
			default:
				return fmt.Errorf("%w: bad mehd", ErrUnreadable)
			}
		case "trex":
			// version/flags, track_ID, default_sample_description_index,
			// default_sample_duration, …
			if len(body) < 16 {
				return fmt.Errorf("%w: trex cut short", ErrUnreadable)
			}
			id := binary.BigEndian.Uint32(body[4:])
			t := m.tracks[id]
			if t == nil {
				t = &mp4Track{}
				m.tracks[id] = t
			}
			t.defaultDuration = binary.BigEndian.Uint32(body[12:])
		}
		b = next
	}
	return nil
}

// Track fragment header and track run flags (ISO/IEC 14496-12).
const (
	tfhdBaseDataOffset         = 0x01
	tfhdSampleDescriptionIndex = 0x02
	tfhdDefaultSampleDuration  = 0x08

	trunDataOffset            = 0x001
	trunFirstSampleFlags      = 0x004
	trunSampleDuration        = 0x100
	trunSampleSize            = 0x200
	trunSampleFlags           = 0x400
	trunSampleCompositionTime = 0x800
)

// fragmentsDuration is the latest end time, over every track fragment, in
// its track's timescale.
func fragmentsDuration(m *mp4Movie, moofs [][]byte) (time.Duration, error) {
	next := map[uint32]uint64{} // per track: end of the previous fragment
	var longest time.Duration
	found := false
	for _, moof := range moofs {
		for len(moof) > 0 {
			typ, body, rest, err := nextBox(moof)
			if err != nil {
				return 0, err
			}
			moof = rest
			if typ != "traf" {
				continue
			}
			id, end, err := parseTraf(body, m, next)
			if err != nil {
				return 0, err
			}
			t := m.tracks[id]
			if t == nil || t.timescale == 0 {
				return 0, fmt.Errorf("%w: fragment of unknown track %d", ErrUnreadable, id)
			}
			next[id] = end
			longest = max(longest, ticks(end, t.timescale))
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: no duration in mvhd and no fragments", ErrUnreadable)
	}
	return longest, nil
}

// parseTraf returns a track fragment's track and end time.
func parseTraf(b []byte, m *mp4Movie, next map[uint32]uint64) (uint32, uint64, error) {
	var (
		id, flags   uint32
		defDur      uint32
		hasTfhd     bool
		base        uint64
		hasTfdt     bool
		total       uint64
		tfhdDefault bool
	)
	for len(b) > 0 {
		typ, body, rest, err := nextBox(b)
		if err != nil {
			return 0, 0, err
		}
		b = rest
		switch typ {
		case "tfhd":
			if len(body) < 8 {
				return 0, 0, fmt.Errorf("%w: tfhd cut short", ErrUnreadable)
			}
			flags = binary.BigEndian.Uint32(body) & 0xFFFFFF
			id = binary.BigEndian.Uint32(body[4:])
			hasTfhd = true
			off := 8
			if flags&tfhdBaseDataOffset != 0 {
				off += 8
			}
			if flags&tfhdSampleDescriptionIndex != 0 {
				off += 4
			}
			if flags&tfhdDefaultSampleDuration != 0 {
				if len(body) < off+4 {
					return 0, 0, fmt.Errorf("%w: tfhd cut short", ErrUnreadable)
				}
				defDur, tfhdDefault = binary.BigEndian.Uint32(body[off:]), true
			}
		case "tfdt":
			switch {
			case len(body) >= 12 && body[0] == 1:
				base = binary.BigEndian.Uint64(body[4:])
			case len(body) >= 8 && body[0] == 0:
				base = uint64(binary.BigEndian.Uint32(body[4:]))
			default:
				return 0, 0, fmt.Errorf("%w: bad tfdt", ErrUnreadable)
			}
			hasTfdt = true
		case "trun":
			if !hasTfhd {
				return 0, 0, fmt.Errorf("%w: trun before tfhd", ErrUnreadable)
			}
			if !tfhdDefault {
				if t := m.tracks[id]; t != nil {
					defDur = t.defaultDuration
				}
			}
			d, err := trunDuration(body, defDur)
			if err != nil {
				return 0, 0, err
			}
			if d > math.MaxUint64-total {
				return 0, 0, fmt.Errorf("%w: fragment time overflows", ErrUnreadable)
			}
			total += d
		}
	}
	if !hasTfhd {
		return 0, 0, fmt.Errorf("%w: traf without tfhd", ErrUnreadable)
	}
	if !hasTfdt {
		base = next[id]
	}
	if total > math.MaxUint64-base {
		return 0, 0, fmt.Errorf("%w: fragment time overflows", ErrUnreadable)
	}
	return id, base + total, nil
}

// trunDuration sums the sample durations of a track run. The per-sample
// table is read in place, and only if it fits in the box.
func trunDuration(b []byte, defDur uint32) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("%w: trun cut short", ErrUnreadable)
	}
	flags := binary.BigEndian.Uint32(b) & 0xFFFFFF
	count := uint64(binary.BigEndian.Uint32(b[4:]))
	off := 8
	if flags&trunDataOffset != 0 {
		off += 4
	}
	if flags&trunFirstSampleFlags != 0 {
		off += 4
	}
	if len(b) < off {
		return 0, fmt.Errorf("%w: trun cut short", ErrUnreadable)
	}
	if flags&trunSampleDuration == 0 {
		return count * uint64(defDur), nil // both < 2^32: no overflow
	}
	entry := 4
	for _, f := range []uint32{trunSampleSize, trunSampleFlags, trunSampleCompositionTime} {
		if flags&f != 0 {
			entry += 4
		}
	}
	table := b[off:]
	if count > uint64(len(table)/entry) {
		return 0, fmt.Errorf("%w: trun of %d samples does not fit", ErrUnreadable, count)
	}
	var total uint64
	for i := range int(count) {
		total += uint64(binary.BigEndian.Uint32(table[i*entry:])) // ≤ 2^32 · 2^32 / 4
	}
	return total, nil
}
