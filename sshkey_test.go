package gpubroker

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func authorizedLine(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

func TestParseSSHKeyAccepts(t *testing.T) {
	t.Parallel()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	ec256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ec521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	for _, tc := range []struct {
		line, typ string
	}{
		{authorizedLine(t, edPub, "ada@laptop"), ssh.KeyAlgoED25519},
		{authorizedLine(t, &ec256.PublicKey, "ada@laptop"), ssh.KeyAlgoECDSA256},
		{authorizedLine(t, &ec521.PublicKey, ""), ssh.KeyAlgoECDSA521},
		{"  " + authorizedLine(t, &rsa2048.PublicKey, "ada@laptop") + "\r\n", ssh.KeyAlgoRSA},
	} {
		k, err := NewSSHKey("", tc.line)
		require.NoError(t, err, tc.line)
		require.Equal(t, tc.typ, k.Type)
		require.True(t, strings.HasPrefix(k.Fingerprint, "SHA256:"), k.Fingerprint)
		require.True(t, strings.HasPrefix(k.PublicKey, tc.typ+" AAAA"), "canonical form without the comment")
		require.NotContains(t, k.PublicKey, "ada@laptop")
		if strings.Contains(tc.line, "ada@laptop") {
			require.Equal(t, "ada@laptop", k.Name, "the comment names an unnamed key")
		} else {
			require.Equal(t, tc.typ, k.Name)
		}
	}
}

// The fingerprint is the one `ssh-keygen -l` prints for the same key, so a customer can check it.
func TestParseSSHKeyFingerprintMatchesSSHKeygen(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is not installed: apt-get install -y openssh-client")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "id_ed25519")
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f", path).CombinedOutput()
	require.NoError(t, err, string(out))
	pub, err := os.ReadFile(path + ".pub")
	require.NoError(t, err)
	out, err = exec.Command("ssh-keygen", "-l", "-f", path+".pub").Output()
	require.NoError(t, err)
	k, err := NewSSHKey("work laptop", string(pub))
	require.NoError(t, err)
	require.Equal(t, strings.Fields(string(out))[1], k.Fingerprint)
	require.Equal(t, "work laptop", k.Name)

	// The private key file next to it is refused, and the message says so.
	priv, err := os.ReadFile(path)
	require.NoError(t, err)
	_, err = NewSSHKey("", string(priv))
	require.Contains(t, fieldError(t, err), "private key")
}

func fieldError(t *testing.T, err error) string {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, EINVALID, ErrorCode(err))
	e := err.(*Error)
	msg, ok := e.Fields["public_key"]
	require.True(t, ok, "fields.public_key is set: %v", e.Fields)
	return msg
}

func TestParseSSHKeyRefuses(t *testing.T) {
	t.Parallel()
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	good := authorizedLine(t, edPub, "ada@laptop")
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	privPEM, err := ssh.MarshalPrivateKey(edPriv, "")
	require.NoError(t, err)

	// A certificate for the key, signed by a CA.
	signer, err := ssh.NewSignerFromKey(edPriv)
	require.NoError(t, err)
	sshPub, _ := ssh.NewPublicKey(edPub)
	cert := &ssh.Certificate{Key: sshPub, CertType: ssh.UserCert, ValidPrincipals: []string{"ada"}, ValidBefore: ssh.CertTimeInfinity}
	require.NoError(t, cert.SignCert(rand.Reader, signer))
	certLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))

	// A FIDO security key (sk-ssh-ed25519@openssh.com) and a DSA key, built from their wire forms.
	sk := ssh.Marshal(struct {
		Name        string
		Key         []byte
		Application string
	}{"sk-ssh-ed25519@openssh.com", edPub, "ssh:"})
	dsa := ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", new(big.Int).SetBit(big.NewInt(1), 1023, 1), new(big.Int).SetBit(big.NewInt(1), 159, 1), big.NewInt(4), big.NewInt(8)})
	b64 := func(b []byte) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(mustParse(t, b)))) }

	for _, tc := range []struct{ name, line, want string }{
		{"empty", "   ", "Paste your public key"},
		{"junk", "hello world", "not an OpenSSH public key"},
		{"private key", string(pem.EncodeToMemory(privPEM)), "private key"},
		{"two keys", good + "\n" + good, "one key at a time"},
		// ParseAuthorizedKey skips lines it cannot parse: a junk line before the key must
		// not hide that the field holds more than one line.
		{"junk line then a key", "not a key\n" + good, "one key at a time"},
		{"comment line then a key", "# laptop\n" + good, "one key at a time"},
		{"options", `command="rm -rf /" ` + good, "options"},
		{"certificate", certLine, "certificates"},
		{"short rsa", authorizedLine(t, &rsa1024.PublicKey, ""), "2048 bits"},
		{"security key", b64(sk), "not supported"},
		{"dsa", b64(dsa), "not supported"},
		{"too long", good + " " + strings.Repeat("x", MaxSSHKeyBytes), "16 KiB"},
		{"nul", good[:20] + "\x00" + good[20:], "not text"},
		{"invalid utf-8", good + " \xff\xfe", "not text"},
	} {
		_, err := NewSSHKey("", tc.line)
		require.Contains(t, fieldError(t, err), tc.want, tc.name)
	}

	_, err = NewSSHKey(strings.Repeat("n", MaxSSHKeyNameLen+1), good)
	require.Error(t, err)
	require.Contains(t, err.(*Error).Fields, "name")
	k, err := NewSSHKey("", good+" "+strings.Repeat("c", 300))
	require.NoError(t, err, "a long comment is cut to fit as the name")
	require.Len(t, k.Name, MaxSSHKeyNameLen)
}

func mustParse(t *testing.T, wire []byte) ssh.PublicKey {
	t.Helper()
	k, err := ssh.ParsePublicKey(wire)
	require.NoError(t, err)
	return k
}
