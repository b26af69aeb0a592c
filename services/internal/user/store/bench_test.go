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
// real SQLite file, straight from the store and through Cached (what the
// User service uses on SQLite):
// `go test -bench Get -benchmem ./services/internal/user/store/`.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	db, err := database.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "bench.db"), store.Migrations)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	plain := store.New(db)
	var ids []string
	for i := range 100 {
		id := uuid.Must(uuid.NewV7()).String()
		u := user.User{ID: id, Email: fmt.Sprintf("u%d@example.com", i), Roles: []string{"admin"}, PasswordHash: "x", CreateTime: time.Now(), UpdateTime: time.Now()}
		if err := plain.Create(ctx, u); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, bc := range []struct {
		name string
		s    user.Store
	}{
		{"store", plain},
		{"cached", store.NewCached(plain, 1000)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := bc.s.Get(ctx, ids[i%len(ids)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
