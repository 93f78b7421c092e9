package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
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

// KeysFromSecret finds ref.Key in a Secret's data (as client-go returns it,
// already base64-decoded once by the API) and parses it with ParseKeys.
func KeysFromSecret(ref SecretRef, data map[string][]byte) ([][]byte, error) {
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
	return ParseKeys(ref, raw)
}

// ParseKeys reads the keys of a memberlist Secret: one key (see ParseKey),
// or several base64 keys separated by newlines, spaces or commas. The first
// one encrypts; all of them decrypt, which is what lets the key be rotated
// without a restart (docs/security.md): add the new key second, make it
// first once every speaker has it, then remove the old one.
func ParseKeys(ref SecretRef, data []byte) ([][]byte, error) {
	if key, err := ParseKey(ref, data); err == nil {
		return [][]byte{key}, nil
	}
	fields := strings.FieldsFunc(string(data), func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) < 2 {
		return nil, singleKeyError(ref, data)
	}
	var keys [][]byte
	for i, f := range fields {
		key, ok := decodeBase64([]byte(f))
		if !ok || !validKeyLen(len(key)) {
			return nil, fmt.Errorf("%s holds %d keys; key %d (counting from 1) is not base64 of 16, 24 or 32 bytes "+
				"(with several keys, each must be base64 %s, one per line)", ref, len(fields), i+1, keyHint)
		}
		if slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) }) {
			return nil, fmt.Errorf("%s holds key %d (counting from 1) twice; list each key once, the one that encrypts first", ref, i+1)
		}
		keys = append(keys, key)
	}
	return keys, nil
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
	decoded, isBase64 := decodeBase64(bytes.TrimSpace(data))
	if isBase64 && validKeyLen(len(decoded)) {
		return decoded, nil
	}
	if validKeyLen(len(data)) {
		return slices.Clone(data), nil
	}
	return nil, singleKeyError(ref, data)
}

// singleKeyError says why data is not one key.
func singleKeyError(ref SecretRef, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s is empty; it must hold a 16, 24 or 32 byte key, raw or base64 %s", ref, keyHint)
	}
	decoded, isBase64 := decodeBase64(bytes.TrimSpace(data))
	if isBase64 {
		return fmt.Errorf("%s is %d bytes (%d once base64-decoded); it must be 16, 24 or 32 bytes %s",
			ref, len(data), len(decoded), keyHint)
	}
	return fmt.Errorf("%s is %d bytes; it must be 16, 24 or 32 bytes %s", ref, len(data), keyHint)
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

// checkKeys validates a Config's keys.
func checkKeys(keys [][]byte, allowUnencrypted bool) error {
	if len(keys) == 0 {
		if allowUnencrypted {
			return nil
		}
		return ErrNoKey
	}
	for i, key := range keys {
		if !validKeyLen(len(key)) {
			return fmt.Errorf("memberlist secret key %d (counting from 1) is %d bytes; it must be 16, 24 or 32 bytes %s", i+1, len(key), keyHint)
		}
	}
	return nil
}

// Fingerprint names a key in logs and events without revealing it: the
// first 8 hex digits of its SHA-256.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return "sha256:" + hex.EncodeToString(sum[:4])
}
