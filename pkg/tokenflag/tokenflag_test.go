package tokenflag

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, blank := file("good", "\n  s3cret-token \r\n"), file("blank", " \n\t")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
		is      error
	}{
		{"none", nil, nil, "", "", nil},
		{"inline", []string{"--admin-token", "abc"}, nil, "abc", "", nil},
		{"file, trimmed", []string{"--admin-token-file", good}, nil, "s3cret-token", "", nil},
		{"both flags", []string{"--admin-token", "abc", "--admin-token-file", good}, nil, "", "--admin-token and --admin-token-file: give one of them", nil},
		{"missing file", []string{"--admin-token-file", missing}, nil, "", "--admin-token-file:", fs.ErrNotExist},
		{"blank file", []string{"--admin-token-file", blank}, nil, "", "--admin-token-file " + blank, ErrEmpty},
		{"env", nil, map[string]string{"T": "from-env"}, "from-env", "", nil},
		{"file env", nil, map[string]string{"T_FILE": good}, "s3cret-token", "", nil},
		{"both envs", nil, map[string]string{"T": "x", "T_FILE": good}, "", "T and T_FILE: set one of them", nil},
		{"blank file env", nil, map[string]string{"T_FILE": blank}, "", "T_FILE " + blank, ErrEmpty},
		{"file flag wins over env", []string{"--admin-token-file", good}, map[string]string{"T": "from-env"}, "s3cret-token", "", nil},
		{"inline flag wins over file env", []string{"--admin-token", "abc"}, map[string]string{"T_FILE": missing}, "abc", "", nil},
		{"an explicit empty flag disables the env", []string{"--admin-token", ""}, map[string]string{"T": "from-env"}, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"T", "T_FILE"} {
				t.Setenv(k, tt.env[k])
			}
			fset := flag.NewFlagSet("test", flag.ContinueOnError)
			fset.SetOutput(io.Discard)
			tok := &Token{Name: "admin-token", Env: "T", FileEnv: "T_FILE"}
			tok.Register(fset, "admin token")
			if err := fset.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := tok.Value(fset)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Value = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Value = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v is not %v", err, tt.is)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error %v shows the token", err)
			}
		})
	}
}
