// Command connbench measures what connections cost the User service: the
// memory each idle client connection holds, what open streams hold, and
// whether either slows the calls being made beside them. A replica
// behind a connection-balancing Service, or called by many clients that
// each keep a channel open, holds thousands of connections that carry
// nothing; these figures say how many fit in a pod's memory limit and
// what GetUser's latency is then.
//
// It builds and starts the real services as hack/bench does (production
// settings, SQLite in a temporary directory, tracing at a 10% sample
// exported to a local sink, loopback only, the servers pinned to the last
// CPU and this tool to the others) and runs each scenario on a fresh User
// service: one that has served keeps its heap's high-water mark, and new
// connections would first fill the pages earlier garbage left, so the
// difference between two readings would undercount them.
//
//   - idle: for each count in -idle, that many connections that complete
//     the HTTP/2 handshake a gRPC client makes (preface, SETTINGS, both
//     ACKs) and then send nothing. They are bare sockets on this side:
//     a grpc.ClientConn each would cost this process more than the server.
//     The ACK of this side's SETTINGS comes from the server's transport
//     once it runs, so each is a connection the server has fully set up.
//   - streams: -streams grpc.health.v1 Health/Watch calls held open,
//     -streams-per-conn to a connection, because the server lets each
//     carry GRPC_MAX_CONCURRENT_STREAMS (256) at once; then -streams
//     GetUser calls in flight at once over -stream-conns connections.
//
// Memory is read before any call, without and then with the connections
// or streams, each time right after a garbage collection the tool makes
// the service run (/debug/pprof/heap?gc=1, the one reason PPROF_ENABLED
// is on): the reading is then what the service holds, not wherever its
// heap had got to between two cycles. It reads RSS, RssAnon (the
// process's own memory, not the binary's pages), the server's sockets,
// and from /metrics its goroutines, Go heap and stacks. Then a steady
// load (-concurrency authenticated GetUser calls in flight over -conns
// connections of their own) runs beside them, and again on the same
// service without them: seconds apart in one process is the fairest
// comparison on a VM whose speed drifts between minutes. The tool also
// reports how much CPU other processes took during each load, and warns
// when a neighbour competed.
//
// The server sends GOAWAY to every connection GRPC_MAX_CONNECTION_AGE
// (5m, less up to 10% jitter) after it opened and closes it 30 s later,
// sends GOAWAY to any without a stream after GRPC_MAX_CONNECTION_IDLE
// (15m), and pings only after 2 h without a read (grpc-go's default
// keepalive time). So idle connections need answer nothing for the
// seconds a row holds them; the tool refuses settings that would hold
// them near the first limit, and after the load checks that every one is
// still open and has received nothing. Each idle connection is a
// descriptor here and one in the server: the tool raises its soft
// RLIMIT_NOFILE to the hard limit, which the servers inherit, and says
// what to change when the hard limit is below what the largest -idle
// needs. Idle connections are closed with a reset, so tens of thousands
// of them leave no ephemeral port in TIME_WAIT for the next row.
//
// It prints a markdown table and writes it, with the date, commit,
// machine and command line, to -out/connbench.md, and the figures to
// -out/connbench.json, for the README to quote. About a minute and a half
// with the defaults.
//
//	go run ./hack/connbench [-idle 0,1000,5000,10000] [-streams 1000] [-streams-per-conn 200] [-stream-conns 8]
//	    [-duration 5s] [-warmup 1s] [-settle 1s] [-concurrency 16] [-conns 4]
//	    [-server-env KEY=VALUE] [-pin=false] [-out bench-results]
package main
