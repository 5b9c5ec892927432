package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// OriginSecretHeader is the header CloudFront adds to every request it sends the API origin
// (an origin custom header, which also replaces one a viewer sent), holding ORIGIN_SECRET.
const OriginSecretHeader = "X-Origin-Secret"

// healthPath is the load balancer's health check, which cannot send a header.
const healthPath = "/healthz"

// RequireOriginSecret answers 403 to every request whose header does not hold secret, except
// the load balancer's health check (GET or HEAD /healthz), so the process answers only our
// CloudFront distribution: the ALB's security group lets in every CloudFront distribution,
// anyone's, and the header is what tells ours apart. The comparison takes the same time
// whatever the guess, and the header is removed before next, so no handler, log or proxied
// request (the River UI) ever holds it. With an empty secret it is next itself.
func RequireOriginSecret(header, secret string, next http.Handler) http.Handler {
	if secret == "" {
		return next
	}
	want := sha256.Sum256([]byte(secret))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		// Hashed first, so the comparison's time tells nothing of the secret's length either.
		values := r.Header.Values(header)
		ok := 0
		if len(values) == 1 {
			got := sha256.Sum256([]byte(values[0]))
			ok = subtle.ConstantTimeCompare(got[:], want[:])
		}
		if ok != 1 {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: "forbidden", Message: "This address answers the site's CDN only."})
			return
		}
		r.Header.Del(header)
		next.ServeHTTP(w, r)
	})
}
