package gpubroker_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gpubroker"
)

func TestMailbox(t *testing.T) {
	cases := []struct{ email, want string }{
		{"ada@example.com", "ada@example.com"},
		{" Ada@Example.COM ", "ada@example.com"},
		{"ada+gpu@example.com", "ada@example.com"},
		{"ada+gpu+more@example.com", "ada@example.com"},
		{"a.da@example.com", "a.da@example.com"}, // dots matter outside Gmail
		{"a+1@gmail.com", "a@gmail.com"},
		{"a+2@gmail.com", "a@gmail.com"},
		{"A.1+x@googlemail.com", "a1@gmail.com"},
		{"a.1@gmail.com", "a1@gmail.com"},
		{"a...1@GMail.com", "a1@gmail.com"},
		{"a.b+c.d@googlemail.com", "ab@gmail.com"},
		{"a.b@gmail.com.evil.example", "a.b@gmail.com.evil.example"},
		{"a.b@sub.gmail.com", "a.b@sub.gmail.com"},
		{"+tag@example.com", "@example.com"},
		{"no-at-sign", "no-at-sign"},
		// Unicode is normalised (NFKC) before the rules, and the domain is looked up as IDNA:
		// full-width letters, a full-width "+" or "." and a decomposed accent are no new mailbox.
		{"ａb@ｇmail.com", "ab@gmail.com"},
		{"ＡＢ＋x@ｇｏｏｇｌｅｍａｉｌ．ｃｏｍ", "ab@gmail.com"},
		{"ａ.b@gmail.com", "ab@gmail.com"},
		{"jose\u0301@example.com", "jos\u00e9@example.com"},
		{"jos\u00e9@example.com", "jos\u00e9@example.com"},
		{"user@bücher.example", "user@xn--bcher-kva.example"},
		{"User+x@BÜCHER.Example", "user@xn--bcher-kva.example"},
		{"user@xn--bcher-kva.example", "user@xn--bcher-kva.example"},
		{"ｕser@ｂücher．example", "user@xn--bcher-kva.example"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, gpubroker.Mailbox(tc.email), tc.email)
	}
	// The stored email stays as typed (lower-cased): only trial claims use the mailbox.
	require.Equal(t, "a.1+x@googlemail.com", gpubroker.NormalizeEmail("A.1+x@googlemail.com"))
}

// The three spellings of issue 19 item 8 are one mailbox, and the stored form of each stays
// as typed: signing in with the string typed at checkout finds its account.
func TestMailboxNormalisesUnicode(t *testing.T) {
	for _, email := range []string{"ab@gmail.com", "ａb@ｇmail.com", "AB+x@googlemail.com"} {
		assert.True(t, gpubroker.ValidEmail(gpubroker.NormalizeEmail(email)), email)
		assert.Equal(t, "ab@gmail.com", gpubroker.Mailbox(email), email)
	}
	require.Equal(t, "ａb@ｇmail.com", gpubroker.NormalizeEmail(" ＡB@Ｇmail.com "))
	require.Equal(t, "user@bücher.example", gpubroker.NormalizeEmail("User@Bücher.example"))
}

func TestValidEmail(t *testing.T) {
	valid := []string{
		"ada@example.com",
		"a.b+tag@sub.example.co.uk",
		"first_last@example.com",
		"ab@gmail.com",
		"ａb@ｇmail.com",               // full-width: normalised, not refused
		"a@ｇmail．com",                // its NFKC form is a@gmail.com
		"user@bücher.example",        // an internationalised domain
		"user@xn--bcher-kva.example", // the same, as punycode
		"jos\u00e9@example.com",
		"jose\u0301@example.com",
	}
	for _, s := range valid {
		assert.True(t, gpubroker.ValidEmail(s), "%q is an address", s)
	}
	invalid := []string{
		"",
		"ada",
		"Ada <ada@example.com>",
		"ada@localhost",
		// IP literals, in any form: not a mailbox anyone signs up with, and a way to make a
		// mail server deliver to an internal address.
		"ab@[169.254.169.254]",
		"ab@[127.0.0.1]",
		"ab@[IPv6:::1]",
		"ab@[::1]",
		"ab@［169.254.169.254］", // full-width brackets
		"a@127.0.0.1",
		"a@169.254.169.254",
		"a@１２７.０.０.１",
		"a@127.1",      // inet_aton reads it as 127.0.0.1; no top-level domain is numeric
		"a@1.2.3.0x7f", // nor hexadecimal
		"a@::1",
		// An NFKC form that is no plain address, or reads as another one.
		"a＠b@gmail.com",
		"a\u3000b@gmail.com",
		"a\u00a0b@gmail.com",
		// Invisible characters: an address that looks like another one.
		"a\u200b@gmail.com",
		"a\u00ad@gmail.com",
		"a\u202e@gmail.com",
		"a\u0085@gmail.com",
		"a@gm\u200bail.com",
		// Domains no DNS lookup accepts.
		"a@-example.com",
		"a@example-.com",
	}
	for _, s := range invalid {
		assert.False(t, gpubroker.ValidEmail(s), "%q is not an address", s)
	}
}
