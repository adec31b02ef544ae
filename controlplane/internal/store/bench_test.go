package store

import (
	"context"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// BenchmarkWrite measures one acknowledged write (fsynced bbolt commit) of a small
// config, replacing the whole document and editing it in place.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		write func(s *Store) error
	}{
		{"Replace", func(s *Store) error { _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg("m"))}); return err }},
		{"Update", func(s *Store) error {
			_, _, err := s.Update(ctx, UpdateRequest{Mutate: func(c *berryv1.Config) error {
				c.Models = []*berryv1.Model{{Id: "m"}}
				return nil
			}})
			return err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := openTemp(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.write(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
