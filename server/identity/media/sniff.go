package media

import (
	"bytes"
	"encoding/binary"
)

// Content types reported in Info.ContentType.
const (
	TypeJPEG      = "image/jpeg"
	TypePNG       = "image/png"
	TypeHEIC      = "image/heic"
	TypeMP4       = "video/mp4"
	TypeQuickTime = "video/quicktime"
	TypeWebM      = "video/webm"
)

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}
	ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}
)

// heicBrands are the ISO BMFF brands that by themselves mean HEIF with HEVC
// coding: heic/heix (still images), hevc/hevx (image sequences).
var heicBrands = map[string]bool{"heic": true, "heix": true, "hevc": true, "hevx": true}

// heifStructuralBrands are the generic HEIF brands (mif1: image, msf1:
// sequence). They are shared with AVIF and others, so they count as HEIC only
// together with a brand from heicBrands.
var heifStructuralBrands = map[string]bool{"mif1": true, "msf1": true}

// mp4Brands are the ISO BMFF brands accepted as MP4 video.
var mp4Brands = map[string]bool{
	"isom": true, "iso2": true, "iso3": true, "iso4": true, "iso5": true, "iso6": true,
	"mp41": true, "mp42": true, "avc1": true, "M4V ": true, "dash": true,
}

// quickTimeBrand is the major brand of QuickTime (.mov) files, which iPhones
// record by default.
const quickTimeBrand = "qt  "

// sniff returns the content type of data from its first bytes, or "" if it is
// none of the accepted formats. It never trusts names or declared types, and
// reads only within data.
func sniff(data []byte) string {
	switch {
	case bytes.HasPrefix(data, jpegMagic):
		return TypeJPEG
	case bytes.HasPrefix(data, pngMagic):
		return TypePNG
	case bytes.HasPrefix(data, ebmlMagic):
		if webmDocType(data) {
			return TypeWebM
		}
		return ""
	}
	major, compatible, ok := ftypBrands(data)
	if !ok {
		return ""
	}
	brands := append([]string{major}, compatible...)
	// AVIF (major avif/avis, usually with mif1) is HEIF too, but not HEIC: a
	// file claiming both is ambiguous and refused.
	for _, b := range brands {
		if b == "avif" || b == "avis" {
			return ""
		}
	}
	if heicBrands[major] {
		return TypeHEIC
	}
	if heifStructuralBrands[major] {
		for _, b := range compatible {
			if heicBrands[b] {
				return TypeHEIC
			}
		}
		return ""
	}
	if major == quickTimeBrand {
		return TypeQuickTime
	}
	if mp4Brands[major] {
		return TypeMP4
	}
	// A major brand we do not know (e.g. a vendor brand) with a known MP4
	// compatible brand is still an MP4 file.
	for _, b := range compatible {
		if mp4Brands[b] {
			return TypeMP4
		}
	}
	return ""
}

// ftypBrands reads the 'ftyp' box that must open an ISO BMFF file: its major
// brand and its compatible brands.
func ftypBrands(data []byte) (major string, compatible []string, ok bool) {
	if len(data) < 16 || string(data[4:8]) != "ftyp" {
		return "", nil, false
	}
	size := uint64(binary.BigEndian.Uint32(data[0:4]))
	if size < 16 || size > uint64(len(data)) || size > 4096 {
		return "", nil, false
	}
	major = string(data[8:12])
	// data[12:16] is the minor version.
	for off := uint64(16); off+4 <= size; off += 4 {
		compatible = append(compatible, string(data[off:off+4]))
	}
	return major, compatible, true
}

// webmDocType reports whether data opens with an EBML header whose DocType is
// "webm".
func webmDocType(data []byte) bool {
	id, n, ok := readID(data)
	if !ok || id != idEBML {
		return false
	}
	size, m, ok := readSize(data[n:])
	if !ok || size == unknownSize {
		return false
	}
	start := n + m
	if size > uint64(len(data)-start) {
		return false
	}
	hdr := data[start : start+int(size)]
	for len(hdr) > 0 {
		cid, cn, ok := readID(hdr)
		if !ok {
			return false
		}
		csize, cm, ok := readSize(hdr[cn:])
		if !ok || csize == unknownSize || csize > uint64(len(hdr)-cn-cm) {
			return false
		}
		body := hdr[cn+cm : cn+cm+int(csize)]
		if cid == idDocType {
			// Strings may be padded with zero bytes.
			return string(bytes.TrimRight(body, "\x00")) == "webm"
		}
		hdr = hdr[cn+cm+int(csize):]
	}
	return false // DocType defaults to "matroska"
}
