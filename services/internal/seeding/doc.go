// Package seeding writes users and refresh families straight into the
// services' databases, batch by batch, for measuring cost against data
// size (cmd/seed, cmd/scale). Rows are what the services write: the
// stores read them back (cmd/seed's tests).
package seeding
