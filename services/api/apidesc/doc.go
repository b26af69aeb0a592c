// Package apidesc holds the descriptors of the user.v1 and auth.v1
// contracts as `make proto` builds them with buf: with their source info
// (the comments of every service, method, message and field), which the
// descriptors compiled into the generated code do not keep. Pass Files to
// the server's reflection (server.Options.Descriptors) so that reflection
// clients such as `grpcurl describe` show the contract's documentation.
//
// descriptors.binpb is generated (`make proto`) and checked by
// `make proto-check` like the rest of services/api; the tests here fail
// when it disagrees with the generated code or when anything in it is
// undocumented.
package apidesc
