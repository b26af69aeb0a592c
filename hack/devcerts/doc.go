// Command devcerts writes a throwaway development CA and a certificate for
// each service under a directory (default .data/tls), for `make run TLS=1`:
//
//	ca.crt            the CA, which grpcurl -cacert and both services trust
//	user/tls.crt,key  the User service: localhost, 127.0.0.1, ::1
//	auth/tls.crt,key  the Auth service: the same, and gatehouse-auth, the
//	                  name the User service's SERVICE_PEER_NAMES expects
//	client/tls.crt,key  a client certificate for grpcurl -cert/-key
//
// Each directory also holds ca.crt, the layout of a Secret cert-manager
// fills. Existing files are kept while they are valid for another day;
// the CA's key is not kept, so renewal makes a new CA. Never use these
// outside a laptop.
package main
