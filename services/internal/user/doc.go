// Package user is the user domain: accounts, their roles and passwords, and
// the gRPC handlers of user.v1.UserService. Storage and password hashing live
// in the store and password subpackages; this package defines what it needs
// from them as small interfaces.
package user
