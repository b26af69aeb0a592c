// Command bench is `make bench`: it measures, side by side in one run on
// this machine, a bare grpc-go server (hack/bench/baseline) and the
// Gatehouse services with production settings (auth on, verified-token and
// user caches on or off, metrics on, tracing on at a 10% parent-based
// sample exported over OTLP to a local sink, SQLite), driving each with the
// same Go load generator, and prints one table of absolute figures and
// ratios to the baseline. Servers run pinned to one CPU and the load
// generator to the other when the machine has two or more. Each scenario
// runs right after a baseline run, in -rounds rounds, and the table shows
// medians: this VM's speed drifts too much between minutes for one run.
//
// With -tls every server, the baseline included, serves TLS with a
// certificate from a throwaway CA (hack/pki), the load generator trusts
// that CA and verifies the name localhost, and the services call each
// other as in production with TLS on: the User service fetches the JWKS
// over https, the Auth service presents its client certificate
// (gatehouse-auth) to the User service. The ratios then compare TLS with
// TLS, and the results say which TLS the connections negotiated.
//
//	go run ./hack/bench [-rounds 3] [-duration 5s] [-warmup 1s] [-concurrency 16] [-conns 4]
//	    [-scenarios REGEXP] [-profile DIR] [-server-env KEY=VALUE] [-tls] [-out bench-results]
package main
