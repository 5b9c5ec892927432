package gpubroker

import (
	"bytes"
	"crypto/rsa"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// SSHKey is a public key an account brings to its pods: at deploy every key of the account
// goes onto the instance, at whichever provider runs it.
type SSHKey struct {
	ID        string
	AccountID string
	Name      string
	// Type is the key's algorithm as OpenSSH names it: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa….
	Type string
	// Fingerprint is the SHA-256 fingerprint as `ssh-keygen -l` prints it (SHA256:…).
	Fingerprint string
	// PublicKey is the canonical authorized_keys line: type and base64 key, without options.
	PublicKey string
	CreatedAt time.Time
}

// Limits on SSH keys.
const (
	MaxSSHKeys       = 10       // per account
	MaxSSHKeyBytes   = 16 << 10 // one pasted key line
	MinRSAKeyBits    = 2048
	MaxSSHKeyNameLen = 100
)

// ParseSSHKey validates one OpenSSH public key line (as in ~/.ssh/id_ed25519.pub) and returns
// it in canonical form, with its type, fingerprint and comment. It accepts ed25519, ecdsa
// (nistp256/384/521) and rsa keys of at least 2048 bits, and refuses private keys,
// certificates, security-key and DSA keys, authorized_keys options and several keys at once:
// each with an EINVALID error whose fields["public_key"] says what was wrong.
func ParseSSHKey(line string) (key SSHKey, comment string, err error) {
	bad := func(msg string) (SSHKey, string, error) {
		return SSHKey{}, "", &Error{Code: EINVALID, Reason: "invalid_fields", Message: msg, Fields: map[string]string{"public_key": msg}}
	}
	switch {
	case len(line) > MaxSSHKeyBytes:
		return bad("This is longer than any public key (16 KiB at most). Paste the one line of your .pub file.")
	case strings.Contains(line, "PRIVATE KEY"):
		// Said plainly, because the customer may need to replace a key they just exposed.
		return bad("This is a private key: never share it. Paste the public key instead, the one line in the .pub file (cat ~/.ssh/id_ed25519.pub).")
	case !utf8.ValidString(line) || strings.ContainsRune(line, 0):
		return bad("This is not text. Paste the one line of your .pub file.")
	case strings.TrimSpace(line) == "":
		return bad("Paste your public key: the one line in ~/.ssh/id_ed25519.pub.")
	case strings.ContainsAny(strings.TrimSpace(line), "\r\n"):
		// ParseAuthorizedKey skips lines it cannot parse (comments, junk), so a field of
		// several lines is refused here, whatever its other lines hold.
		return bad("Paste one key at a time; add the others one by one.")
	}
	pub, comment, options, rest, perr := ssh.ParseAuthorizedKey([]byte(line))
	if perr != nil {
		return bad("This is not an OpenSSH public key. It should look like: ssh-ed25519 AAAA… you@laptop.")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return bad("Paste one key at a time; add the others one by one.")
	}
	if len(options) > 0 {
		return bad("Remove the authorized_keys options before the key type: paste only the key line.")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return bad("SSH certificates are not accepted: paste the plain public key.")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
	case ssh.KeyAlgoRSA:
		ck, ok := pub.(ssh.CryptoPublicKey)
		rk, isRSA := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || !isRSA || rk.N.BitLen() < MinRSAKeyBits {
			return bad("RSA keys must have at least 2048 bits. Make a new key with: ssh-keygen -t ed25519")
		}
	default:
		return bad("Keys of type " + pub.Type() + " are not supported: use ed25519, ecdsa or rsa (2048 bits or more). Make one with: ssh-keygen -t ed25519")
	}
	return SSHKey{
		Type:        pub.Type(),
		Fingerprint: ssh.FingerprintSHA256(pub),
		PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
	}, comment, nil
}

// NewSSHKey validates a key and its name as the customer typed them; an empty name becomes the
// key's comment, or its type.
func NewSSHKey(name, line string) (SSHKey, error) {
	k, comment, err := ParseSSHKey(line)
	if err != nil {
		return SSHKey{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		// The comment (usually user@host) names the key, cut to fit.
		name = strings.TrimSpace(strings.ToValidUTF8(strings.ReplaceAll(comment, "\x00", ""), ""))
		if r := []rune(name); len(r) > MaxSSHKeyNameLen {
			name = string(r[:MaxSSHKeyNameLen])
		}
	}
	if name == "" {
		name = k.Type
	}
	if !utf8.ValidString(name) || strings.ContainsRune(name, 0) || utf8.RuneCountInString(name) > MaxSSHKeyNameLen {
		msg := "Use a plain name of at most 100 characters."
		return SSHKey{}, &Error{Code: EINVALID, Reason: "invalid_fields", Message: msg, Fields: map[string]string{"name": msg}}
	}
	k.Name = name
	return k, nil
}
