package postgres

import "context"

// InsertContactMessage stores a sales enquiry.
func InsertContactMessage(ctx context.Context, q Querier, name, email, company, message string) error {
	_, err := q.Exec(ctx, `INSERT INTO contact_messages (name, email, company, message) VALUES ($1, $2, $3, $4)`, name, email, company, message)
	return err
}
