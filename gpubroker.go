// Package gpubroker holds the domain of GPU Broker, with no I/O, one file per concept: accounts
// (account.go), orders (order.go) and pods (pod.go) with their typed statuses and transition
// tables, extensions (extension.go), the ledger of payments and refunds (ledger.go), the rental
// rule and its clock (rental.go), the audit vocabulary (audit.go), emails: kinds, statuses,
// address rules and the Sender (email.go), the catalog and pricing (catalog.go), SSH keys
// (sshkey.go), lifetimes of links, sessions and card holds (lifetimes.go) and error codes
// (error.go), plus the Payments interface of the outside service the domain needs
// (payments.go). GPU providers have their own portable package, gpu. Each outside service has
// its own package implementing these interfaces.
package gpubroker
