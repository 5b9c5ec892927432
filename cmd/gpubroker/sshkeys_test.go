package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/api/apitest"
)

// newKey makes an ed25519 key pair with ssh-keygen and returns the public key line and the
// fingerprint `ssh-keygen -l` prints for it.
func newKey(t *testing.T, comment string) (line, fingerprint string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is not installed: apt-get install -y openssh-client")
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	require.NoError(t, err, string(out))
	pub, err := os.ReadFile(path + ".pub")
	require.NoError(t, err)
	out, err = exec.Command("ssh-keygen", "-l", "-f", path+".pub").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(pub)), strings.Fields(string(out))[1]
}

func fingerprints(t *testing.T, res apitest.Result[api.SSHKeys]) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, res.Code, res)
	var out []string
	for _, k := range res.Body.SSHKeys {
		out = append(out, k.Fingerprint)
	}
	return out
}

// A key typed at checkout lands on the account the checkout created; more are added on the
// dashboard; duplicates, junk and an eleventh key are refused; another account cannot see or
// delete them; fingerprints match ssh-keygen -l.
func TestSSHKeysJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	laptop, laptopFP := newKey(t, "ada@laptop")
	desktop, desktopFP := newKey(t, "ada@desktop")

	// A bad key at checkout is a 422 on its field, and nothing is stored.
	order := e.order("keys@example.com", "pro", "a100", "us-east", 2)
	order.SSHPublicKey = "ssh-rsa AAAA not a key"
	res := e.api(newBrowser()).Checkout(order)
	require.Equal(t, http.StatusUnprocessableEntity, res.Code)
	require.Contains(t, res.Err.Fields, "ssh_public_key")
	require.Zero(t, e.count(`SELECT count(*) FROM orders`))

	c := newBrowser()
	sid := e.paidCheckout(c, "keys@example.com", laptop)
	e.eventually("verify 200", func() bool { return e.api(c).Verify(sid).Code == http.StatusOK })
	require.Equal(t, http.StatusOK, e.api(c).Activate(e.activationToken("keys@example.com", 1)).Code)

	keys := e.api(c).SSHKeys()
	require.Equal(t, []string{laptopFP}, fingerprints(t, keys))
	k := keys.Body.SSHKeys[0]
	require.Equal(t, "ada@laptop", k.Name, "the key's comment names it")
	require.Equal(t, "ssh-ed25519", k.Type)

	added := e.api(c).AddSSHKey("desktop", desktop)
	require.Equal(t, http.StatusCreated, added.Code, added)
	require.Equal(t, desktopFP, added.Body.Fingerprint)
	require.Equal(t, "desktop", added.Body.Name)
	desktopID := added.Body.ID

	added = e.api(c).AddSSHKey("again", laptop)
	require.Equal(t, http.StatusConflict, added.Code)
	require.Equal(t, "duplicate_key", added.Err.Error)
	for _, junk := range []string{"", "hello", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----", laptop + "\n" + desktop, strings.Repeat("A", 17<<10)} {
		added = e.api(c).AddSSHKey("junk", junk)
		require.Equal(t, http.StatusUnprocessableEntity, added.Code, junk)
		require.Equal(t, "invalid_fields", added.Err.Error)
		require.NotEmpty(t, added.Err.Fields["public_key"])
	}
	require.ElementsMatch(t, []string{laptopFP, desktopFP}, fingerprints(t, e.api(c).SSHKeys()))

	// Another account neither sees nor deletes them; without a session it is 401.
	other, _ := e.signUp("other@example.com")
	require.Empty(t, fingerprints(t, e.api(other).SSHKeys()))
	require.Equal(t, http.StatusNotFound, e.api(other).DeleteSSHKey(desktopID).Code)
	require.Equal(t, http.StatusNotFound, e.api(other).DeleteSSHKey("not-a-uuid").Code)
	require.Equal(t, http.StatusUnauthorized, e.api(newBrowser()).SSHKeys().Code)

	// Adding from another site is refused (CSRF).
	req, _ := http.NewRequest("DELETE", e.url+"/api/me/ssh-keys/"+desktopID, nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// Deploy: the instance gets both keys, the template's pinned image and the starter
	// project's files; the pod lists the fingerprints ssh-keygen -l prints.
	me := e.api(c).Me()
	require.Equal(t, http.StatusOK, me.Code)
	podID := me.Body.Pods[0].ID
	e.deploy(c, podID)
	p := e.waitPod(c, podID, "running")
	require.ElementsMatch(t, []string{laptopFP, desktopFP}, p.SSHKeyFingerprints)
	require.NotNil(t, p.StarterProject)
	require.Equal(t, "fine-tune-a-small-lm", p.StarterProject.Name)
	require.Equal(t, "/workspace/fine-tune-a-small-lm", p.StarterProject.Path)
	conn := p.Connection
	require.NotNil(t, conn)
	require.NotNil(t, conn.SSH)
	require.True(t, strings.HasPrefix(*conn.SSH, "ssh "), *conn.SSH)
	require.Contains(t, conn.JupyterURL, "token=", "the owner's Jupyter link carries the pod's token")
	require.Equal(t, http.StatusOK, ideStatus(t, conn.JupyterURL, "", true))
	require.NotEqual(t, http.StatusOK, ideStatus(t, conn.JupyterURL, "", false))

	instances := e.gpuInstances()
	require.Len(t, instances, 1)
	require.Equal(t, "gpubroker-"+podID, instances[0].Name)
	tpl, _ := e.m.JobDeps.Catalog.Template("data-science")
	require.Equal(t, tpl.Image, instances[0].Image)
	require.Len(t, instances[0].SSHAuthorizedKeys, 2)
	for i, line := range []string{laptop, desktop} {
		require.Contains(t, line, instances[0].SSHAuthorizedKeys[i], "the key as the customer gave it (without its comment)")
	}
	require.Contains(t, instances[0].WorkspaceFiles, "fine-tune.ipynb")

	// The pod-ready email says where the starter project is.
	e.eventually("pod ready email", func() bool { return e.mails("keys@example.com")[0].Kind == "pod_ready" })
	require.Contains(t, e.mails("keys@example.com")[0].Text, "/workspace/fine-tune-a-small-lm")

	require.Equal(t, http.StatusNoContent, e.api(c).DeleteSSHKey(desktopID).Code)
	require.Equal(t, []string{laptopFP}, fingerprints(t, e.api(c).SSHKeys()))
	require.ElementsMatch(t, []string{laptopFP, desktopFP}, e.pod(c, podID).SSHKeyFingerprints, "the running pod keeps what it was launched with")
}

// Paying with someone else's email never puts the payer's key on that person's account.
func TestCheckoutKeyNeverReachesAnotherAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	victim, _ := e.signUp("victim@example.com")
	attackerKey, _ := newKey(t, "mallory")

	e.paidCheckout(newBrowser(), "victim@example.com", attackerKey)
	e.eventually("order attached", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE email = 'victim@example.com' AND account_id IS NOT NULL`) == 2
	})
	require.Empty(t, fingerprints(t, e.api(victim).SSHKeys()))

	// The owner, signed in, adds a key with a new checkout: it is saved.
	ownKey, ownFP := newKey(t, "victim")
	e.paidCheckout(victim, "victim@example.com", ownKey)
	e.eventually("owner's key saved", func() bool { return e.count(`SELECT count(*) FROM ssh_keys`) == 1 })
	require.Equal(t, []string{ownFP}, fingerprints(t, e.api(victim).SSHKeys()))
}

// Someone pays with a stranger's email before the stranger has an account: the account is
// created pending, and the payer's keys (typed at checkout, and added through the success
// page's provisional session) sit on it. When the email's owner activates it in their own
// browser, those keys go: they never reach the owner's pods. The payer who activates in the
// browser that paid keeps them (TestSSHKeysJourney).
func TestPendingAccountKeysNeverReachTheOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	checkoutKey, _ := newKey(t, "mallory@checkout")
	addedKey, _ := newKey(t, "mallory@dashboard")

	mallory := newBrowser()
	sid := e.paidCheckout(mallory, "owner@example.com", checkoutKey)
	e.eventually("verify signs the payer in", func() bool {
		res := e.api(mallory).Verify(sid)
		return res.Code == http.StatusOK && isSignedIn(res)
	})
	added := e.api(mallory).AddSSHKey("mine", addedKey)
	require.Equal(t, http.StatusCreated, added.Code, added)
	require.Equal(t, 2, e.count(`SELECT count(*) FROM ssh_keys`))

	owner := newBrowser()
	require.Equal(t, http.StatusOK, e.api(owner).Activate(e.activationToken("owner@example.com", 1)).Code)
	require.Empty(t, fingerprints(t, e.api(owner).SSHKeys()), "the payer's keys were left on the owner's account")
	require.Zero(t, e.count(`SELECT count(*) FROM ssh_keys`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'ssh_keys.dropped'`))
}

// The success page's verify answer is readable by the paying browser for a day (and anyone
// holding the session id, which is in a URL, reads its status): it never carries the pod's
// connection or IDE secret, which only the owner's signed-in pod JSON has.
func TestVerifyNeverShowsTheIDESecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 20 * time.Millisecond})
	c := newBrowser()
	sid, vb := e.paid(c, "secret@example.com")
	podID := vb.Pod.ID
	require.Equal(t, http.StatusOK, e.api(c).Activate(e.activationToken("secret@example.com", 1)).Code)
	e.deploy(c, podID)
	p := e.waitPod(c, podID, "running")
	require.NotEmpty(t, p.Connection.IDESecret, "the owner sees the secret")

	// The paying browser reads the whole answer, anyone else the status alone: neither has it.
	for i, b := range []*http.Client{c, newBrowser()} {
		res := e.api(b).Verify(sid)
		require.Equal(t, http.StatusOK, res.Code)
		if i == 0 {
			require.NotNil(t, res.Body.Verify, res)
			require.Nil(t, res.Body.Pod.Connection, "verify must not hand out the pod's connection")
			require.Contains(t, string(res.Raw), `"connection":null`)
		}
		require.NotContains(t, string(res.Raw), p.Connection.IDESecret)
	}
}
