package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/user"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

// BenchmarkGet measures the read every authenticated GetUser does, on a
// real SQLite file: `go test -bench Get -benchmem ./services/internal/user/store/`.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	db, err := database.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "bench.db"), store.Migrations)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := store.New(db)
	var ids []string
	for i := range 100 {
		id := uuid.Must(uuid.NewV7()).String()
		u := user.User{ID: id, Email: fmt.Sprintf("u%d@example.com", i), Roles: []string{"admin"}, PasswordHash: "x", CreateTime: time.Now(), UpdateTime: time.Now()}
		if err := s.Create(ctx, u); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
