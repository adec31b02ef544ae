package store

import (
	"context"
	"fmt"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// BenchmarkListVersions measures listing 1,000 versions of a config of 40 providers,
// 100 models and 500 users: List, which decodes only each version's metadata, against
// decoding every record whole, as List did before.
func BenchmarkListVersions(b *testing.B) {
	const versions = 1000
	ctx := context.Background()
	s, _ := openTemp(b)
	big := largeConfig(40, 100, 500)
	err := s.db.Update(func(tx *bolt.Tx) error {
		for v := uint64(1); v <= versions; v++ {
			if err := put(tx, &berryv1.ConfigVersion{Version: v, CreatedAt: timestamppb.Now(), Author: "admin", Message: "bench", Config: big}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode=metadata", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			vs, err := s.List(ctx, 0, versions)
			if err != nil || len(vs) != versions {
				b.Fatalf("List: %d versions, %v", len(vs), err)
			}
		}
	})
	b.Run("decode=full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			err := s.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketVersions).ForEach(func(_, raw []byte) error {
					n++
					return proto.Unmarshal(raw, &berryv1.ConfigVersion{})
				})
			})
			if err != nil || n != versions {
				b.Fatalf("decoded %d versions, %v", n, err)
			}
		}
	})
}

// largeConfig is a config of realistic shape and the given size.
func largeConfig(providers, models, users int) *berryv1.Config {
	c := &berryv1.Config{Settings: &berryv1.Settings{RequestTimeoutSeconds: 30}}
	for i := range providers {
		c.Providers = append(c.Providers, &berryv1.Provider{
			Id: fmt.Sprintf("provider-%d", i), Name: fmt.Sprintf("Provider %d", i),
			BaseUrl: fmt.Sprintf("https://p%d.example.com/v1", i), ApiKey: fmt.Sprintf("sk-provider-key-%032d", i),
			Models: []string{"gpt-4o", "gpt-4o-mini", "o3", "claude-sonnet"}, Enabled: true,
			Headers: map[string]string{"X-Team": "platform"},
		})
	}
	for i := range models {
		m := &berryv1.Model{Id: fmt.Sprintf("model-%d", i), Name: fmt.Sprintf("model %d", i), Enabled: true}
		for j := range 3 {
			m.Backends = append(m.Backends, &berryv1.Backend{Provider: fmt.Sprintf("provider-%d", (i+j)%providers), Model: "gpt-4o", Weight: 1, Enabled: true})
		}
		c.Models = append(c.Models, m)
	}
	for i := range users {
		c.Users = append(c.Users, &berryv1.User{
			Id: fmt.Sprintf("user-%d", i), Name: fmt.Sprintf("User %d", i), Enabled: true,
			TokenSha256: make([]byte, 32), AllowedModels: []string{"model-1", "model-2"}, Tags: []string{"team-a"},
			RateLimit: &berryv1.RateLimit{RequestsPerMinute: 60},
		})
	}
	return c
}
