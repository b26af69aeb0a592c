// Command abuse replays, on loopback, the floods a hostile client aims at
// Gatehouse, and checks that each one is contained: the services stay
// within their limits, legitimate logins keep succeeding, and every
// refusal is a clear status with its reason. It starts its own User and
// Auth processes (production settings, SQLite in a temporary directory),
// bounds every loop in count and time, prints one line per attack with
// its figures, and exits non-zero if any promise breaks.
//
//	go run ./hack/abuse            # the full replay (about a minute)
//	go run ./hack/abuse -short     # what `make test` runs (about 20 s)
//
// The attacks, each from the security review that found it:
//
//   - amplify: 300,000-item repeated fields and masks answered with
//     megabytes of field violations;
//   - memory: 8 concurrent 1 MiB hostile requests against the chart's
//     256 MiB memory limit;
//   - free-cpu: an update_mask naming "password" 300 times hashed 300 times;
//   - signup-flood: anonymous sign-ups starving logins of hashing;
//   - lockout: wrong guesses from one address keeping the owner out;
//   - spray: many accounts from many addresses filling the limiter;
//   - log-flood: garbage refreshes writing a log line each;
//   - idle-http: idle HTTP connections taking the descriptors gRPC needs.
package main
