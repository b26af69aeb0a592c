// Package authz decides whether an authenticated caller may call a method.
// It runs after authn, which has verified the token; authz asks two further
// questions, once, in one interceptor, for every method:
//
//  1. Who is the caller now? A [Resolver] the service supplies turns the
//     token's claims into a [Principal] as the account is at this moment
//     (does it still exist, were its sessions ended, which roles does it
//     hold). A token says what was true when it was minted; the principal
//     says what is true now.
//  2. May that principal call this method on this target? Each method has
//     exactly one declared [Access] in a [Policy]: Anonymous, Public,
//     Self, SelfOrAdmin, Admin or Service. A method without one is refused, and
//     authztest.CheckPolicy fails for it.
//
// Handlers read the resolved caller with [Caller]; they keep only the rules
// that depend on request fields (who may set roles, say).
//
// It is a platform package: the service names its admin role and supplies
// the resolver, so authz knows no domain.
package authz
