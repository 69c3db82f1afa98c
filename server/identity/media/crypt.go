package media

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The encrypted file format, version 1 (all integers big-endian):
//
//	magic        4 bytes  "IDLM"
//	version      1 byte   0x01
//	key id len   1 byte   1..64
//	key id       that many bytes, the id of the master key (Config.KeyID)
//	salt         32 bytes random: file key = HKDF-SHA256(master, salt, "idlink:media:v1")
//	nonce prefix 7 bytes  random
//	meta length  2 bytes  length of the sealed metadata (≤ maxMetaSealed)
//	meta         AES-256-GCM(file key, nonce(0, false), JSON metadata)
//	segments     AES-256-GCM(file key, nonce(i, last), plaintext segment i), i = 1, 2, …
//
// The content is cut into segments of segmentSize bytes (the last one shorter,
// possibly empty), each sealed on its own with the nonce
// prefix ‖ counter (4 bytes) ‖ last-segment flag (1 byte), as in the STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): reordering,
// dropping or duplicating segments and truncating the file at a segment
// boundary all fail authentication. Every seal's additional data is the
// header (magic to nonce prefix, so the version and key id are bound too),
// the kind, a zero byte and the id: a file moved to another id or kind does
// not open.
//
// A fresh key per file (from the random salt) leaves the nonces free to be
// counters; the per-key nonce-collision bounds of random 96-bit nonces do not
// come into play however many files a master key encrypts.
const (
	formatVersion = 1
	segmentSize   = 64 << 10
	tagSize       = 16
	saltSize      = 32
	prefixSize    = 7
	maxKeyIDLen   = 64
	maxMetaSealed = 4096
)

var magic = [4]byte{'I', 'D', 'L', 'M'}

// meta is the metadata sealed at the head of each file, so Open can answer
// with the Info without the caller's database.
type meta struct {
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	DurationNS  int64  `json:"duration_ns,omitempty"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	CreatedAt   string `json:"created_at"`
}

// fileCipher seals or opens one file's segments.
type fileCipher struct {
	aead   cipher.AEAD
	prefix [prefixSize]byte
	aad    []byte
	nonce  [12]byte
}

func newFileCipher(master, salt []byte, prefix [prefixSize]byte, header []byte, kind Kind, id string) (*fileCipher, error) {
	key, err := hkdf.Key(sha256.New, master, salt, "idlink:media:v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive file key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	aad := make([]byte, 0, len(header)+len(kind)+1+len(id))
	aad = append(aad, header...)
	aad = append(aad, kind...)
	aad = append(aad, 0)
	aad = append(aad, id...)
	return &fileCipher{aead: aead, prefix: prefix, aad: aad}, nil
}

func (c *fileCipher) nonceFor(counter uint32, last bool) []byte {
	copy(c.nonce[:], c.prefix[:])
	binary.BigEndian.PutUint32(c.nonce[prefixSize:], counter)
	c.nonce[11] = 0
	if last {
		c.nonce[11] = 1
	}
	return c.nonce[:]
}

// header builds the plaintext header for keyID with fresh randomness.
func newHeader(keyID string) (header, salt []byte, prefix [prefixSize]byte) {
	header = make([]byte, 0, 4+1+1+len(keyID)+saltSize+prefixSize)
	header = append(header, magic[:]...)
	header = append(header, formatVersion, byte(len(keyID)))
	header = append(header, keyID...)
	salt = make([]byte, saltSize)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go ≥ 1.24).
	header = append(header, salt...)
	_, _ = rand.Read(prefix[:])
	header = append(header, prefix[:]...)
	return header, salt, prefix
}

// encrypt writes the sealed form of content to w.
func encrypt(ctx context.Context, w io.Writer, master []byte, keyID string, kind Kind, id string, m meta, content []byte) error {
	header, salt, prefix := newHeader(keyID)
	c, err := newFileCipher(master, salt, prefix, header, kind, id)
	if err != nil {
		return err
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	buf := make([]byte, 0, segmentSize+tagSize)
	sealedMeta := c.aead.Seal(buf, c.nonceFor(0, false), mj, c.aad)
	if len(sealedMeta) > maxMetaSealed {
		return fmt.Errorf("metadata too long (%d bytes)", len(sealedMeta))
	}
	var ml [2]byte
	binary.BigEndian.PutUint16(ml[:], uint16(len(sealedMeta)))
	if _, err := w.Write(header); err != nil {
		return err
	}
	if _, err := w.Write(ml[:]); err != nil {
		return err
	}
	if _, err := w.Write(sealedMeta); err != nil {
		return err
	}
	for counter := uint32(1); ; counter++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(content), segmentSize)
		last := n == len(content)
		sealed := c.aead.Seal(buf[:0], c.nonceFor(counter, last), content[:n], c.aad)
		if _, err := w.Write(sealed); err != nil {
			return err
		}
		content = content[n:]
		if last {
			return nil
		}
	}
}

// decrypter reads a sealed file: Open checks the header and metadata, then
// Read yields the content one authenticated segment at a time.
type decrypter struct {
	ctx     context.Context
	r       *bufio.Reader
	c       *fileCipher
	buf     []byte // ciphertext, then plaintext, of the current segment
	plain   []byte // the not yet read part of buf
	counter uint32
	size    int64 // the size recorded in the metadata
	total   int64 // plaintext bytes authenticated so far
	done    bool
	err     error
}

// errCorrupt builds an ErrCorrupt with a reason.
func errCorrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// openDecrypter reads the header and the metadata of a sealed file from r.
// keys maps key ids to master keys.
func openDecrypter(ctx context.Context, r io.Reader, keys map[string][]byte, kind Kind, id string) (*decrypter, meta, error) {
	br := bufio.NewReaderSize(r, segmentSize+tagSize)
	var fixed [6]byte
	if _, err := io.ReadFull(br, fixed[:]); err != nil {
		return nil, meta{}, errCorrupt("header cut short")
	}
	if [4]byte(fixed[:4]) != magic {
		return nil, meta{}, errCorrupt("not a media file")
	}
	if fixed[4] != formatVersion {
		return nil, meta{}, errCorrupt("format version %d", fixed[4])
	}
	kl := int(fixed[5])
	if kl == 0 || kl > maxKeyIDLen {
		return nil, meta{}, errCorrupt("bad key id length")
	}
	header := make([]byte, 6+kl+saltSize+prefixSize+2)
	copy(header, fixed[:])
	if _, err := io.ReadFull(br, header[6:]); err != nil {
		return nil, meta{}, errCorrupt("header cut short")
	}
	keyID := string(header[6 : 6+kl])
	salt := header[6+kl : 6+kl+saltSize]
	prefix := [prefixSize]byte(header[6+kl+saltSize:])
	ml := int(binary.BigEndian.Uint16(header[len(header)-2:]))
	header = header[:len(header)-2]
	master, ok := keys[keyID]
	if !ok {
		return nil, meta{}, errCorrupt("unknown key id %q", keyID)
	}
	if ml < tagSize || ml > maxMetaSealed {
		return nil, meta{}, errCorrupt("bad metadata length")
	}
	c, err := newFileCipher(master, salt, prefix, header, kind, id)
	if err != nil {
		return nil, meta{}, err
	}
	buf := make([]byte, segmentSize+tagSize)
	if _, err := io.ReadFull(br, buf[:ml]); err != nil {
		return nil, meta{}, errCorrupt("metadata cut short")
	}
	mj, err := c.aead.Open(buf[:0], c.nonceFor(0, false), buf[:ml], c.aad)
	if err != nil {
		return nil, meta{}, errCorrupt("metadata fails authentication (wrong key, id or kind, or altered)")
	}
	var m meta
	if err := json.Unmarshal(mj, &m); err != nil || m.Size < 0 {
		return nil, meta{}, errCorrupt("bad metadata")
	}
	return &decrypter{ctx: ctx, r: br, c: c, buf: buf, size: m.Size}, m, nil
}

// Read returns authenticated plaintext. An altered or truncated file makes it
// fail with ErrCorrupt, possibly after earlier segments have been returned.
func (d *decrypter) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

// next reads, authenticates and decrypts the next segment.
func (d *decrypter) next() error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	if d.counter == 1<<32-1 {
		return errCorrupt("too many segments")
	}
	d.counter++
	n, err := io.ReadFull(d.r, d.buf)
	last := false
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		return fmt.Errorf("read media file: %w", err)
	default:
		if _, perr := d.r.Peek(1); errors.Is(perr, io.EOF) {
			last = true
		} else if perr != nil {
			return fmt.Errorf("read media file: %w", perr)
		}
	}
	if n < tagSize {
		return errCorrupt("file cut short")
	}
	pt, err := d.c.aead.Open(d.buf[:0], d.c.nonceFor(d.counter, last), d.buf[:n], d.c.aad)
	if err != nil {
		return errCorrupt("segment %d fails authentication (altered, reordered or cut short)", d.counter)
	}
	d.total += int64(len(pt))
	if d.total > d.size || (last && d.total != d.size) {
		return errCorrupt("content length differs from the metadata")
	}
	d.plain = pt
	d.done = last
	return nil
}
