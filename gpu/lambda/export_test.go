package lambda

// For caddy_test.go, which runs the Caddyfile a code-server VM gets against a local ACME server.
var (
	Caddyfile = caddyfile
	IPHost    = ipHost
)

// PublicHostScript is gpubroker-public-host, as written on code-server VMs.
const PublicHostScript = publicHostScript
