package app

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	userv1 "github.com/gatehouse-dev/gatehouse/services/api/user/v1"
	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database/dbtest"
)

// TestReplicasOnPostgresShareWhatChanged: two User service replicas on one
// PostgreSQL database, each answering from its own user cache. A change
// made through one — a rename, or the end of a user's sessions (a
// revocation) — is what the other answers within 5 s (milliseconds on
// loopback; the bound is for correctness, not speed).
func TestReplicasOnPostgresShareWhatChanged(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	a := startApp(t, "DATABASE_URL="+dbURL)
	b := startApp(t, "DATABASE_URL="+dbURL)
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5s: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for name, e := range map[string]*env{"A": a, "B": b} {
		if e.app.userCache == nil {
			t.Fatalf("replica %s has no shared user cache", name)
		}
		within("replica "+name+" listens for changes", e.app.userCache.Live)
	}
	alice := a.signup("alice@example.com")
	a.admin()
	b.rootID = a.rootID // one admin account; each replica trusts its own test signer

	nameOnB := func() string {
		got, err := b.client.GetUser(b.admin(), &userv1.GetUserRequest{Id: alice.GetId()})
		if err != nil {
			t.Fatalf("GetUser on B: %v", err)
		}
		return got.GetUser().GetDisplayName()
	}
	if got := nameOnB(); got != "Test" {
		t.Fatalf("B answers %q", got)
	}
	if b.app.userCache.Len() == 0 {
		t.Fatal("B remembered no user after answering GetUser")
	}
	if _, err := a.client.UpdateUser(a.admin(), &userv1.UpdateUserRequest{
		Id: alice.GetId(), DisplayName: "Renamed on A",
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
	}); err != nil {
		t.Fatal(err)
	}
	within("B answers the name A wrote", func() bool { return nameOnB() == "Renamed on A" })

	// Alice's token works on B (and her user is in B's cache) until A
	// ends her sessions; then B refuses it.
	if _, err := b.client.GetUser(b.as(alice.GetId()), &userv1.GetUserRequest{Id: alice.GetId()}); err != nil {
		t.Fatalf("alice on B: %v", err)
	}
	if _, err := a.client.EndSessions(a.service(), &userv1.EndSessionsRequest{Id: alice.GetId()}); err != nil {
		t.Fatal(err)
	}
	within("B refuses alice's earlier token", func() bool {
		_, err := b.client.GetUser(b.as(alice.GetId()), &userv1.GetUserRequest{Id: alice.GetId()})
		if err == nil {
			return false
		}
		wantCode(t, err, codes.Unauthenticated)
		if r := authn.RejectionReason(err); r != authn.ReasonSessionEnded {
			t.Fatalf("reason %q, want %s", r, authn.ReasonSessionEnded)
		}
		return true
	})
}
