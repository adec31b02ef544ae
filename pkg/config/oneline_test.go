package config

import "testing"

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                             "plain",
		"invalid config:\na: x\nb: y":       "invalid config: a: x; b: y",
		"snapshot 3: invalid config:\na: x": "snapshot 3: invalid config: a: x",
		"first\n\n  second  \n":             "first; second",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
