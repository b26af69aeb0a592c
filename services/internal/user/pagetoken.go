package user

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"
)

// Page tokens are opaque to clients: version byte, the last id of the
// page (16 bytes) and a 4-byte checksum, base64url. The checksum catches
// edited or truncated tokens; it is not a security boundary (a forged
// token only moves the start of a listing the caller may read anyway).
const pageTokenVersion = 1

// pageTokenBytes is the decoded size: version, UUID, checksum.
const pageTokenBytes = 1 + 16 + 4

// pageTokenLen is the length of every token encodePageToken writes.
// Checked before decoding because Go's base64 decoder skips CR and LF
// (even in Strict mode), so "AQ\nGi..." would otherwise decode to the
// same page as "AQGi...": one token, one spelling.
var pageTokenLen = base64.RawURLEncoding.EncodedLen(pageTokenBytes)

func encodePageToken(lastID string) string {
	id, err := uuid.Parse(lastID)
	if err != nil {
		return ""
	}
	b := make([]byte, 0, pageTokenBytes)
	b = append(b, pageTokenVersion)
	b = append(b, id[:]...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:4]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	if len(tok) != pageTokenLen {
		return "", fmt.Errorf("%w: bad length", ErrInvalidPageToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != pageTokenBytes || b[0] != pageTokenVersion {
		return "", fmt.Errorf("%w: bad encoding", ErrInvalidPageToken)
	}
	sum := sha256.Sum256(b[:17])
	if !bytes.Equal(sum[:4], b[17:]) {
		return "", fmt.Errorf("%w: checksum mismatch", ErrInvalidPageToken)
	}
	id, err := uuid.FromBytes(b[1:17])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidPageToken, err)
	}
	return id.String(), nil
}

// PageTokenAfter is the page token of a listing that goes on after the
// user id, as ListUsers would have returned it; for tools that start in
// the middle of a listing (the scale bench's deep page). "" for an id
// that is not a UUID.
func PageTokenAfter(id string) string { return encodePageToken(id) }
