// Package tokenflag lets a command take a bearer token inline (--token T), from a
// file (--token-file F) or from the environment, so that a token need not appear in
// the process list or in shell history. Every Berry binary takes its tokens this way.
package tokenflag

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// ErrEmpty is returned for a token file with nothing but whitespace in it.
var ErrEmpty = errors.New("no token in the file")

// Token is one token option: the flags --Name (the token) and --Name-file (a file
// holding it) and, when set, the environment variables Env (the token) and FileEnv
// (a file holding it), used when neither flag is given.
type Token struct {
	Name, Env, FileEnv string

	inline, file string
}

// Register defines the two flags on fs; what says whose token it is.
func (t *Token) Register(fs *flag.FlagSet, what string) {
	inlineUsage, fileUsage := what, "file holding the "+what+", surrounding whitespace ignored"
	if t.Env != "" {
		inlineUsage += " (env " + t.Env + ")"
	}
	if t.FileEnv != "" {
		fileUsage += " (env " + t.FileEnv + ")"
	}
	fs.StringVar(&t.inline, t.Name, "", inlineUsage+"; a flag shows in the process list: prefer --"+t.Name+"-file")
	fs.StringVar(&t.file, t.Name+"-file", "", fileUsage)
}

// Value returns the token once fs is parsed, "" when none is given. A flag wins over
// the environment; giving a token and a token file in the same place is an error.
// Errors name the flag or variable at fault.
func (t *Token) Value(fs *flag.FlagSet) (string, error) {
	var inlineSet, fileSet bool
	fs.Visit(func(f *flag.Flag) {
		inlineSet = inlineSet || f.Name == t.Name
		fileSet = fileSet || f.Name == t.Name+"-file"
	})
	switch {
	case inlineSet && fileSet:
		return "", fmt.Errorf("--%s and --%s-file: give one of them", t.Name, t.Name)
	case fileSet:
		return read("--"+t.Name+"-file", t.file)
	case inlineSet:
		return t.inline, nil
	}
	inline, file := t.env(t.Env), t.env(t.FileEnv)
	switch {
	case inline != "" && file != "":
		return "", fmt.Errorf("%s and %s: set one of them", t.Env, t.FileEnv)
	case file != "":
		return read(t.FileEnv, file)
	}
	return inline, nil
}

func (t *Token) env(name string) string {
	if name == "" {
		return ""
	}
	return os.Getenv(name)
}

// read returns the token in the file at path, which source named.
func read(source, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s %s: %w", source, path, ErrEmpty)
	}
	return tok, nil
}
