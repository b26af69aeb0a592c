package auth

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
)

// ActiveKeyFile is the file in JWT_SIGNING_KEYS_DIR that may name the
// signing key, so a rotation needs no restart: add the key, let verifiers
// learn it, then write its kid here.
const ActiveKeyFile = "active-kid"

// SigningKeys is where the issuer gets its private keys.
type SigningKeys interface {
	Signer(kid string) (authn.Key, crypto.Signer, bool)
	SignerIDs() []string
}

// Issuer mints access tokens. It signs with the active key, chosen in this
// order: JWT_ACTIVE_KEY_ID, the kid in the key directory's active-kid
// file, else the greatest kid (name keys by date, e.g. 2026-11-21.pem, and
// the newest wins).
type Issuer struct {
	keys      SigningKeys
	secret    []byte // HS256 simple mode when set
	pinned    string // JWT_ACTIVE_KEY_ID
	activeDir string // directory holding ActiveKeyFile; "" for none
	issuer    string
	now       func() time.Time
}

// NewKeyIssuer signs with keys from a directory key set.
func NewKeyIssuer(keys SigningKeys, keysDir, pinnedKID, issuer string) (*Issuer, error) {
	i := &Issuer{keys: keys, pinned: pinnedKID, activeDir: keysDir, issuer: issuer, now: time.Now}
	if _, _, _, err := i.activeKey(); err != nil {
		return nil, err
	}
	return i, nil
}

// NewSecretIssuer signs with an HS256 secret (the first release's
// JWT_SECRET): every verifier then holds the signing secret, and it cannot
// rotate without downtime.
func NewSecretIssuer(secret []byte, issuer string) (*Issuer, error) {
	if len(secret) < authn.MinSecretSize {
		return nil, fmt.Errorf("JWT_SECRET must be at least %d bytes, got %d", authn.MinSecretSize, len(secret))
	}
	return &Issuer{secret: secret, issuer: issuer, now: time.Now}, nil
}

// ActiveKeyID reports the kid new tokens carry ("" in HS256 mode).
func (i *Issuer) ActiveKeyID() string {
	kid, _, _, err := i.activeKey()
	if err != nil {
		return ""
	}
	return kid
}

func (i *Issuer) activeKey() (string, jwt.SigningMethod, crypto.Signer, error) {
	if i.secret != nil {
		return "", jwt.SigningMethodHS256, nil, nil
	}
	kid := i.pinned
	if kid == "" && i.activeDir != "" {
		if b, err := os.ReadFile(filepath.Join(i.activeDir, ActiveKeyFile)); err == nil {
			kid = strings.TrimSpace(string(b))
		}
	}
	if kid == "" {
		ids := i.keys.SignerIDs()
		if len(ids) == 0 {
			return "", nil, nil, errors.New("no private signing key loaded")
		}
		kid = ids[len(ids)-1]
	}
	key, signer, ok := i.keys.Signer(kid)
	if !ok {
		return "", nil, nil, fmt.Errorf("active signing key %q is not loaded (loaded: %s)", kid, strings.Join(i.keys.SignerIDs(), ", "))
	}
	method := jwt.GetSigningMethod(key.Algorithm)
	if method == nil {
		return "", nil, nil, fmt.Errorf("key %q: unsupported algorithm %s", kid, key.Algorithm)
	}
	return kid, method, signer, nil
}

// AccessToken is a signed JWT and its expiry.
type AccessToken struct {
	Token     string
	KeyID     string
	ExpiresAt time.Time
}

// Issue signs an access token for the user acct, with its roles and
// session version, valid for ttl, for the given audience.
func (i *Issuer) Issue(acct Account, clientID, audience string, ttl time.Duration) (AccessToken, error) {
	version := acct.SessionVersion
	return i.issue(acct.ID, acct.Roles, &version, clientID, audience, ttl)
}

// IssueService signs the Auth service's own token: subject and client
// identity.ServiceSubject, role identity.RoleService, no session.
func (i *Issuer) IssueService(audience string, ttl time.Duration) (AccessToken, error) {
	return i.issue(identity.ServiceSubject, []string{identity.RoleService}, nil, identity.ServiceSubject, audience, ttl)
}

// issue signs an access token. The header carries typ at+jwt (RFC 9068) so
// it can never be mistaken for another kind of JWT, and kid so verifiers
// pick the key without trying each.
func (i *Issuer) issue(subject string, roles []string, sessionVersion *int64, clientID, audience string, ttl time.Duration) (AccessToken, error) {
	kid, method, signer, err := i.activeKey()
	if err != nil {
		return AccessToken{}, err
	}
	now := i.now().Truncate(time.Second)
	if roles == nil {
		roles = []string{}
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		ClientID:       clientID,
		Roles:          roles,
		SessionVersion: sessionVersion,
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "at+jwt"
	var key any = signer
	if i.secret != nil {
		key = i.secret
	} else {
		tok.Header["kid"] = kid
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		return AccessToken{}, fmt.Errorf("signing access token: %w", err)
	}
	return AccessToken{Token: signed, KeyID: kid, ExpiresAt: now.Add(ttl)}, nil
}

type accessClaims struct {
	jwt.RegisteredClaims
	// ClientID is RFC 9068's client_id: the client the token was issued to.
	ClientID string   `json:"client_id"`
	Roles    []string `json:"roles"`
	// SessionVersion is the user's session version at issue; the User
	// service refuses the token once it has moved on. Absent on the
	// service token, which belongs to no session.
	SessionVersion *int64 `json:"session_version,omitempty"`
}

// newRefreshToken returns an opaque refresh token (256 random bits) and the
// hash under which it is stored.
func newRefreshToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefreshToken(token), nil
}

// hashRefreshToken is SHA-256: refresh tokens are 256-bit random values,
// so a slow password hash would add cost without adding safety.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
