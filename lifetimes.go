package gpubroker

import "time"

// Token purposes: what an emailed one-time link does. The email that carries one has the
// same kind (MailActivation, MailLogin).
const (
	TokenActivation = "activation"
	TokenLogin      = "login"
)

// Lifetimes of links, sessions and checkouts: the one home of each, read both by the code that
// enforces it and by the text that tells the customer.
const (
	// ActivationTokenTTL is how long an activation link works.
	ActivationTokenTTL = 24 * time.Hour
	// LoginTokenTTL is how long a sign-in link works.
	LoginTokenTTL = 30 * time.Minute
	// SessionTTL is how long a browser stays signed in.
	SessionTTL = 30 * 24 * time.Hour
	// CheckoutLifetime is how long a Checkout Session can be paid. Stripe refuses less than 30
	// minutes measured on its own clock, so asking for exactly 30 fails now and then.
	CheckoutLifetime = 31 * time.Minute
)

// TokenTTL is how long a one-time link of the purpose works.
func TokenTTL(purpose string) time.Duration {
	if purpose == TokenLogin {
		return LoginTokenTTL
	}
	return ActivationTokenTTL
}
