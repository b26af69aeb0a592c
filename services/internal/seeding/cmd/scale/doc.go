// Command scale measures how the cost of Gatehouse's database work grows
// with its data (make bench-scale). For each size N users / M refresh
// families it seeds fresh databases (package seeding: valid rows, one
// argon2id hash reused), then times, through the services' own stores,
// the queries behind each operation, one call at a time, on random rows:
//
//	GetUser             user store Get (the user cache's miss; every
//	                    authenticated call's current-user check on a miss)
//	Login (lookup)      user store GetByEmail (the hash check is argon2id,
//	                    constant, and left out)
//	ListUsers           List, the first page and a page 90% deep (keyset)
//	RefreshToken        refresh store Lookup then Rotate
//	RevokeAllSessions   RevokeUserFamilies of one user
//	purge               PurgeExpired with nothing to purge: the scan the
//	                    background purge makes every interval
//	start               database.Open with the migrations, on the seeded
//	                    database (what every start pays)
//
// and the database's size per user and per family. Then, unless -rpc=false,
// it runs the User and Auth services (built from this checkout with the
// images' flags) on the same databases and times the operations as a
// client sees them, real gRPC calls over loopback, -concurrency of them in
// flight: GetUser and RevokeAllSessions of random users with an admin
// token, ListUsers' first page and one 90% deep, Login of random users
// (argon2id with the service's own parameters, two at a time), RefreshToken
// of seeded tokens, and the User service's start from exec to SERVING.
// The User service runs with its user cache off (USER_CACHE_SIZE=0): it
// would hold every user of a small size and a hundredth of 1M, and the
// ratio would measure its hit rate, not the data (make bench measures the
// cached path). The refresh tokens are of families picked at random over
// the whole table, each used once; each revocation ends a user no other
// call touched.
//
// Every size is seeded first and all are timed together, in -rounds
// rounds that each make a share of every operation's calls on each size
// in turn: the sizes of one operation are measured seconds apart, so a
// drift in this machine's speed over the minutes of seeding cannot pass
// for a cost of size. A ratio is the median of the rounds' ratios. An
// interrupt (Ctrl-C) stops the run and still removes what it seeded.
//
//	go run ./services/internal/seeding/cmd/scale [-postgres URL [-no-sqlite]] [-sizes 1000:10000,100000:1000000] [-samples 2000]
//	    [-rounds 3] [-rpc=false] [-concurrency 4] [-sqlite-params 'k=v&...'] [-keep -dir DIR]
//
// -postgres names a server whose role may CREATE DATABASE; without it only
// SQLite is measured. -sqlite-params adds query parameters to the SQLite
// URLs, to compare a setting side by side. -keep leaves the seeded
// databases (PostgreSQL scale_N_M_user and _auth, SQLite files in -dir)
// for a look with EXPLAIN. Results go to stdout as a Markdown table.
package main
