// Command greeter is a third service, not part of Gatehouse, that trusts
// Gatehouse access tokens: it verifies them locally with the public
// package services/authn, configured from the issuer URL alone.
//
//	GATEHOUSE_ISSUER=http://localhost:8082 go run .
//	grpcurl -plaintext -H "authorization: Bearer $TOKEN" localhost:50053 greeter.v1.GreeterService/Hello
package main
