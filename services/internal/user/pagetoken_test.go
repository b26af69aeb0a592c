package user

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestPageTokenRoundTrip(t *testing.T) {
	id := uuid.Must(uuid.NewV7()).String()
	tok := encodePageToken(id)
	got, err := decodePageToken(tok)
	if err != nil || got != id {
		t.Fatalf("decode(encode(%s)) = %q, %v", id, got, err)
	}
	if got, err := decodePageToken(""); err != nil || got != "" {
		t.Errorf("empty token = %q, %v; want the first page", got, err)
	}
	for _, bad := range []string{"x", tok[:len(tok)-1], tok + "A", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "!!", string([]byte{0xff, 0xfe}),
		// base64 decoders skip line breaks; a token has one spelling only.
		tok[:25] + "\n" + tok[25:], tok[:25] + "\r\n" + tok[25:], "\n" + tok} {
		if _, err := decodePageToken(bad); !errors.Is(err, ErrInvalidPageToken) {
			t.Errorf("decode(%q) error = %v, want ErrInvalidPageToken", bad, err)
		}
	}
}

// FuzzPageToken: page tokens come from clients; any input either decodes
// to a UUID that re-encodes to the same token, or fails with
// ErrInvalidPageToken. Never a panic.
func FuzzPageToken(f *testing.F) {
	f.Add(encodePageToken(uuid.Must(uuid.NewV7()).String()))
	f.Add("")
	f.Add("AQID")
	f.Add("not base64 at all")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := decodePageToken(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if tok != "" && encodePageToken(id) != tok {
			t.Fatalf("token %q decoded to %s which encodes to %q", tok, id, encodePageToken(id))
		}
	})
}
