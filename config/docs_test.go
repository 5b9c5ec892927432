package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README and .env.example must list every variable the code reads.
func TestEveryVariableIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	example, err := os.ReadFile("../.env.example")
	require.NoError(t, err)
	for _, v := range Vars {
		require.True(t, strings.Contains(string(readme), "`"+v.Name+"`"), "README.md does not document %s", v.Name)
		require.True(t, strings.Contains(string(example), "\n"+v.Name+"="), ".env.example does not list %s", v.Name)
	}
}
