package membership

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoKey is returned by New when no secret key is configured and
// unencrypted membership was not explicitly allowed.
var ErrNoKey = errors.New("no memberlist secret key: refusing to run membership unencrypted " +
	"(provide a 16, 24 or 32 byte key, or allow unencrypted membership explicitly)")

// keyHint tells the user how to make a good key.
const keyHint = "(e.g. `openssl rand -base64 32`)"

// SecretRef names where a key came from, for error messages: a key of a
// Kubernetes Secret.
type SecretRef struct {
	Namespace, Name, Key string
}

func (r SecretRef) String() string {
	return fmt.Sprintf("secret %s/%s key %q", r.Namespace, r.Name, r.Key)
}

// KeyFromSecret finds ref.Key in a Secret's data (as client-go returns it,
// already base64-decoded once by the API) and parses it with ParseKey.
func KeyFromSecret(ref SecretRef, data map[string][]byte) ([]byte, error) {
	raw, ok := data[ref.Key]
	if !ok {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, fmt.Sprintf("%q", k))
		}
		slices.Sort(keys)
		has := "it has no keys"
		if len(keys) > 0 {
			has = "it has " + strings.Join(keys, ", ")
		}
		return nil, fmt.Errorf("secret %s/%s has no key %q (%s); create it with "+
			"`kubectl -n %s create secret generic %s --from-literal=%s=\"$(openssl rand -base64 32)\"`",
			ref.Namespace, ref.Name, ref.Key, has, ref.Namespace, ref.Name, ref.Key)
	}
	return ParseKey(ref, raw)
}

// ParseKey turns a stored key into an AES key for memberlist: 16, 24 or 32
// bytes select AES-128, AES-192 or AES-256.
//
// The value may be the raw key bytes or base64 text (standard or URL
// alphabet, padded or not, surrounding whitespace such as a trailing newline
// ignored) of them, which is what `openssl rand -base64 32` prints. Text
// that is valid base64 of 16, 24 or 32 bytes is taken as base64; otherwise a
// value of exactly 16, 24 or 32 bytes is taken as the raw key. (Random raw
// bytes are valid base64 of the right length with negligible probability.)
func ParseKey(ref SecretRef, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%s is empty; it must hold a 16, 24 or 32 byte key, raw or base64 %s", ref, keyHint)
	}
	decoded, isBase64 := decodeBase64(bytes.TrimSpace(data))
	if isBase64 && validKeyLen(len(decoded)) {
		return decoded, nil
	}
	if validKeyLen(len(data)) {
		return slices.Clone(data), nil
	}
	if isBase64 {
		return nil, fmt.Errorf("%s is %d bytes (%d once base64-decoded); it must be 16, 24 or 32 bytes %s",
			ref, len(data), len(decoded), keyHint)
	}
	return nil, fmt.Errorf("%s is %d bytes; it must be 16, 24 or 32 bytes %s", ref, len(data), keyHint)
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

func decodeBase64(s []byte) ([]byte, bool) {
	if len(s) == 0 {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		out := make([]byte, enc.DecodedLen(len(s)))
		if n, err := enc.Decode(out, s); err == nil {
			return out[:n], true
		}
	}
	return nil, false
}

// checkKey validates a Config's key.
func checkKey(key []byte, allowUnencrypted bool) error {
	if len(key) == 0 {
		if allowUnencrypted {
			return nil
		}
		return ErrNoKey
	}
	if !validKeyLen(len(key)) {
		return fmt.Errorf("memberlist secret key is %d bytes; it must be 16, 24 or 32 bytes %s", len(key), keyHint)
	}
	return nil
}
