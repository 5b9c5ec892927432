package gpubroker_test

import (
	"testing"

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
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, gpubroker.Mailbox(tc.email), tc.email)
	}
	// The stored email stays as typed (lower-cased): only trial claims use the mailbox.
	require.Equal(t, "a.1+x@googlemail.com", gpubroker.NormalizeEmail("A.1+x@googlemail.com"))
}
