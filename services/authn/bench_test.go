package authn_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/authn/authntest"
)

// BenchmarkVerify compares a full signature check with a cache hit; run
// with `go test -bench Verify -benchmem ./services/authn/`.
func BenchmarkVerify(b *testing.B) {
	s := authntest.NewSigner(b)
	tok := s.Token(b, "user-1", authntest.Roles("admin"))
	for _, bc := range []struct {
		name string
		size int
	}{{"nocache", 0}, {"cache", 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := authn.NewVerifier(s.KeySet(b), authntest.DefaultIssuer, authntest.DefaultAudience, authn.WithCache(bc.size))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInterceptor measures the unary auth interceptor around a no-op
// handler, with a cached verifier (the production default).
func BenchmarkInterceptor(b *testing.B) {
	s := authntest.NewSigner(b)
	v, err := authn.NewVerifier(s.KeySet(b), authntest.DefaultIssuer, authntest.DefaultAudience, authn.WithCache(1000))
	if err != nil {
		b.Fatal(err)
	}
	ic, err := authn.NewInterceptor(v, nil)
	if err != nil {
		b.Fatal(err)
	}
	unary := ic.UnaryServerInterceptor()
	ctx := authntest.IncomingBearerContext(context.Background(), s.Token(b, "user-1"))
	info := &grpc.UnaryServerInfo{FullMethod: "/user.v1.UserService/GetUser"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unary(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
