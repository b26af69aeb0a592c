// Package authztest checks, against a running server, that its
// authorization policy covers every registered method and that no method
// lets a plain user act on another user. It is the authorization
// counterpart of authntest.CheckAllMethodsProtected.
//
// It is for tests only; nothing in production code may import it.
package authztest
