package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
)

// APIKeyFile is the format of Config.APIKeysFile:
//
//	{"keys": [
//	  {"principal": "billing", "sha256": "<hex SHA-256 of the key>",
//	   "scopes": ["send:order", "subscribe:*"]}
//	]}
//
// Only hashes are stored: make one with
// printf %s "$KEY" | sha256sum. A principal may have several keys (to
// rotate them), each with its own scopes.
type APIKeyFile struct {
	Keys []APIKey `json:"keys"`
}

// APIKey is one entry of an [APIKeyFile].
type APIKey struct {
	Principal string   `json:"principal"`
	SHA256    string   `json:"sha256"`
	Scopes    []string `json:"scopes"`
}

// apiKeys holds the loaded keys, by hash.
type apiKeys struct {
	byHash atomic.Pointer[map[[sha256.Size]byte]*Principal]
}

func newAPIKeys(ctx context.Context, a *Authenticator) (*apiKeys, error) {
	k := new(apiKeys)
	return k, a.watchFile(ctx, "api-keys", a.cfg.APIKeysFile, func(data []byte) error {
		m, err := LoadAPIKeys(data)
		if err != nil {
			return err
		}
		k.byHash.Store(&m)
		return nil
	})
}

// LoadAPIKeys parses an [APIKeyFile] strictly: unknown fields, bad hashes,
// unknown scopes and a key listed twice are errors.
func LoadAPIKeys(data []byte) (map[[sha256.Size]byte]*Principal, error) {
	var f APIKeyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("want {\"keys\": [{\"principal\", \"sha256\", \"scopes\"}]}: %w", err)
	}
	m := make(map[[sha256.Size]byte]*Principal, len(f.Keys))
	for i, k := range f.Keys {
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(k.SHA256)); err != nil || n != len(h) || len(k.SHA256) != 2*len(h) {
			return nil, fmt.Errorf("key %d: sha256: want 64 hex digits", i+1)
		}
		if k.Principal == "" {
			return nil, fmt.Errorf("key %d: no principal", i+1)
		}
		scopes, err := ParseScopes(k.Scopes, true)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if _, dup := m[h]; dup {
			return nil, fmt.Errorf("key %d: the same key is listed twice", i+1)
		}
		m[h] = &Principal{Name: k.Principal, Method: "api-key", Scopes: scopes}
	}
	return m, nil
}

// errUnknownKey refuses a key not in the file.
var errUnknownKey = errors.New("unknown API key")

// lookup finds key's principal. Keys are compared by their SHA-256: the
// time a lookup takes depends on the hash, never on how much of a stored
// key the caller's matches, so timing reveals nothing about the keys.
func (k *apiKeys) lookup(key string) (*Principal, error) {
	if p, ok := (*k.byHash.Load())[sha256.Sum256([]byte(key))]; ok {
		return p, nil
	}
	return nil, errUnknownKey
}
