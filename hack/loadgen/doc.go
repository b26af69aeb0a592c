// Command loadgen drives the Gatehouse services with a known load and
// reports, as one JSON object on stdout, how many calls failed and why.
// services/e2e runs it as a pod inside the cluster while it rolls,
// restarts or breaks the services, so "a rolling restart loses no call" is
// a number (failed == 0) rather than an impression.
//
// Four scenarios:
//
//   - steady: an open-loop constant rate of authenticated GetUser calls
//     with a Login every Nth call; failures are counted by method and code.
//   - refresh-storm: many clients present the same refresh token at once,
//     step after step; each step reports how many were accepted (the
//     invariant is exactly one) and whether reuse detection then refused
//     the winner's new token.
//   - refresh-rate: -clients callers, each logged in once, refresh their
//     own sessions back to back for -duration (each with the token the
//     last refresh returned); the rate, p50 and p99, and any refusal.
//   - probe: one Login, no warm-up, and the status it got: what a client
//     in the cluster sees when the Auth service is down.
//
// The client side (serviceConfig, keepalive in policy.go) is the policy
// the README documents for users to copy: what is measured here is what
// a well-behaved client gets.
//
// Transport: plaintext unless -cacert is given. With -cacert FILE both
// connections speak TLS (1.2 or later) and trust only the CAs in that PEM
// bundle; -cert FILE -key FILE present a client certificate (needed when
// the services run with TLS_CLIENT_AUTH=require); -servername NAME is the
// name both servers' certificates are verified against, instead of the
// host of each address (for an IP address or a port-forward).
//
//	loadgen [-scenario steady] [-rate 50] [-duration 60s] [-login-every 10]
//	loadgen -scenario refresh-storm [-clients 20] [-steps 20]
//	loadgen -scenario refresh-rate [-clients 20] [-duration 60s]
//	loadgen -scenario probe -email E -password P   (one Login, no warm-up)
//	loadgen ... -cacert ca.crt [-cert tls.crt -key tls.key] [-servername NAME]
package main
