package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// EBML and Matroska element ids (with their length-marker bits, as written).
const (
	idEBML          = 0x1A45DFA3
	idDocType       = 0x4282
	idSegment       = 0x18538067
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idCluster       = 0x1F43B675
	idTimecode      = 0xE7
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
)

// unknownSize is what readSize returns for an element whose size field has
// every value bit set: the size is unknown (a live stream, as MediaRecorder
// writes).
const unknownSize = math.MaxUint64

// defaultTimecodeScale is Matroska's default TimecodeScale: 1 ms in ns.
const defaultTimecodeScale = 1_000_000

// readID reads an EBML element id (1 to 4 bytes, marker bits kept).
func readID(b []byte) (id uint32, n int, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false
	}
	n = 1
	for mask := byte(0x80); b[0]&mask == 0; mask >>= 1 {
		n++
	}
	if n > 4 || len(b) < n {
		return 0, 0, false
	}
	for i := range n {
		id = id<<8 | uint32(b[i])
	}
	return id, n, true
}

// readSize reads an EBML variable-length size (1 to 8 bytes, marker bit
// removed). A size with all value bits set is unknownSize.
func readSize(b []byte) (size uint64, n int, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false
	}
	n = 1
	for mask := byte(0x80); b[0]&mask == 0; mask >>= 1 {
		n++
	}
	if len(b) < n {
		return 0, 0, false
	}
	size = uint64(b[0] & (0xFF >> n))
	allOnes := size == uint64(0xFF>>n)
	for i := 1; i < n; i++ {
		size = size<<8 | uint64(b[i])
		allOnes = allOnes && b[i] == 0xFF
	}
	if allOnes {
		return unknownSize, n, true
	}
	return size, n, true
}

// errNoDuration is returned by webmDuration when the file holds neither a
// Duration nor any block to estimate one from.
var errNoDuration = errors.New("no duration and no timestamped frames")

// webmDuration returns the duration of a WebM file.
//
// If the Segment's Info has a Duration, that is the answer (scaled by
// TimecodeScale). Browsers' MediaRecorder writes a live stream instead: the
// Segment and often the Clusters have unknown sizes and there is no Duration.
// Then the duration is estimated from the frames' timestamps: the latest
// (Cluster Timecode + block timecode) minus the earliest. That misses the last
// frame's own length (a few tens of milliseconds), which is immaterial for
// limits measured in seconds.
//
// The walk is linear over data: master elements of interest (Segment, Info,
// Cluster, BlockGroup) are entered, so their unknown sizes do not matter;
// every other element is skipped by its declared size, which must fit in
// data. Every step advances, so the walk ends; nothing is allocated from
// declared sizes.
func webmDuration(data []byte) (time.Duration, error) {
	id, n, ok := readID(data)
	if !ok || id != idEBML {
		return 0, fmt.Errorf("%w: no EBML header", ErrUnreadable)
	}
	size, m, ok := readSize(data[n:])
	if !ok || size == unknownSize || size > uint64(len(data)-n-m) {
		return 0, fmt.Errorf("%w: bad EBML header size", ErrUnreadable)
	}
	pos := n + m + int(size)

	w := webmTimes{scale: defaultTimecodeScale, minTS: math.MaxInt64, maxTS: math.MinInt64}
	inSegment := false
	for pos < len(data) {
		id, n, ok := readID(data[pos:])
		if !ok {
			return 0, fmt.Errorf("%w: bad element id at offset %d", ErrUnreadable, pos)
		}
		size, m, ok := readSize(data[pos+n:])
		if !ok {
			return 0, fmt.Errorf("%w: bad element size at offset %d", ErrUnreadable, pos)
		}
		body := pos + n + m
		switch id {
		case idSegment:
			inSegment = true
			pos = body
			continue
		case idInfo, idCluster, idBlockGroup:
			if !inSegment {
				return 0, fmt.Errorf("%w: element outside the Segment", ErrUnreadable)
			}
			pos = body
			continue
		}
		if size == unknownSize || size > uint64(len(data)-body) {
			return 0, fmt.Errorf("%w: element %#x overruns the file", ErrUnreadable, id)
		}
		if err := w.element(id, data[body:body+int(size)]); err != nil {
			return 0, err
		}
		pos = body + int(size)
	}
	return w.duration()
}

// webmTimes is what webmDuration gathers from the elements it reads.
type webmTimes struct {
	scale        uint64  // TimecodeScale, nanoseconds per tick
	declared     float64 // the Info's Duration, in ticks
	hasDuration  bool
	cluster      int64 // the current Cluster's Timecode
	minTS, maxTS int64 // the earliest and latest frame timestamps
}

// element takes in one element that is not a master element of interest.
func (w *webmTimes) element(id uint32, el []byte) error {
	switch id {
	case idTimecodeScale:
		v, ok := readUint(el)
		if !ok || v == 0 {
			return fmt.Errorf("%w: bad TimecodeScale", ErrUnreadable)
		}
		w.scale = v
	case idDuration:
		return w.readDuration(el)
	case idTimecode:
		v, ok := readUint(el)
		if !ok || v > math.MaxInt64/4 {
			return fmt.Errorf("%w: bad Cluster Timecode", ErrUnreadable)
		}
		w.cluster = int64(v)
	case idSimpleBlock, idBlock:
		// Track number (a vint), then a signed 16-bit timecode relative to
		// the Cluster's.
		_, tn, ok := readSize(el)
		if !ok || len(el) < tn+2 {
			return fmt.Errorf("%w: bad block header", ErrUnreadable)
		}
		ts := w.cluster + int64(int16(binary.BigEndian.Uint16(el[tn:])))
		w.minTS = min(w.minTS, ts)
		w.maxTS = max(w.maxTS, ts)
	}
	return nil
}

// readDuration reads the Info's Duration, a float of 0, 4 or 8 bytes.
func (w *webmTimes) readDuration(el []byte) error {
	var duration float64
	switch len(el) {
	case 0:
		return nil // an empty float is 0: no duration, nothing changes
	case 4:
		duration = float64(math.Float32frombits(binary.BigEndian.Uint32(el)))
	case 8:
		duration = math.Float64frombits(binary.BigEndian.Uint64(el))
	default:
		return fmt.Errorf("%w: Duration of %d bytes", ErrUnreadable, len(el))
	}
	if math.IsNaN(duration) || math.IsInf(duration, 0) || duration < 0 {
		return fmt.Errorf("%w: bad Duration", ErrUnreadable)
	}
	w.declared, w.hasDuration = duration, duration != 0
	return nil
}

// duration is the declared Duration, or else the span of the frames.
func (w *webmTimes) duration() (time.Duration, error) {
	if w.hasDuration {
		return saturate(w.declared * float64(w.scale)), nil
	}
	if w.maxTS == math.MinInt64 {
		return 0, fmt.Errorf("%w: %w", ErrUnreadable, errNoDuration)
	}
	return saturate(float64(w.maxTS-w.minTS) * float64(w.scale)), nil
}

// readUint reads an EBML unsigned integer of 0 to 8 bytes.
func readUint(b []byte) (uint64, bool) {
	if len(b) > 8 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// saturate converts nanoseconds to a Duration, clamping values too large to
// represent (which then fail any length limit).
func saturate(ns float64) time.Duration {
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	if ns <= 0 {
		return 0
	}
	return time.Duration(ns)
}
