package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// usageFlags are the flags of the usage and quotas commands.
type usageFlags struct {
	usageKey, usageModel, since, until, by string
}

func (u *usageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&u.usageKey, "key", "", "")
	fs.StringVar(&u.usageModel, "model", "", "")
	fs.StringVar(&u.since, "since", "", "")
	fs.StringVar(&u.until, "until", "", "")
	fs.StringVar(&u.by, "by", "", "")
}

// csvOutput checks that -o csv is asked of a command that has it.
func csvOutput(pos []string) error {
	if len(pos) > 0 && (pos[0] == "usage" || pos[0] == "quotas") {
		return nil
	}
	return errors.New("-o csv fits usage and quotas only")
}

// usageColumns are the columns usage may group by, in the order they are shown.
var usageColumns = []string{"key", "model", "backend", "hour"}

// usage shows the ledger: requests, tokens and cost, summed per group.
func (c *cli) usage(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: berryctl usage [--key ID] [--model ID] [--since 24h|RFC3339] [--until ...] [--by key,model,backend,hour]")
	}
	req := &berryv1.GetUsageRequest{Key: c.o.usageKey, Model: c.o.usageModel}
	group := map[string]bool{}
	for _, col := range list(c.o.by) {
		col = strings.TrimSpace(col)
		if !slices.Contains(usageColumns, col) {
			return fmt.Errorf("--by %q: group by key, model, backend or hour", col)
		}
		if !group[col] {
			group[col] = true
			req.GroupBy = append(req.GroupBy, col)
		}
	}
	now := time.Now()
	for _, f := range []struct {
		name, val string
		dst       func(time.Time)
	}{
		{"--since", c.o.since, func(t time.Time) { req.Since = timestamppb.New(t) }},
		{"--until", c.o.until, func(t time.Time) { req.Until = timestamppb.New(t) }},
	} {
		if f.val == "" {
			continue
		}
		t, err := pastTime(f.val, now)
		if err != nil {
			return fmt.Errorf("%s %q: give a duration before now (24h) or an RFC 3339 time", f.name, f.val)
		}
		f.dst(t)
	}
	r, err := c.admin.GetUsage(ctx, req)
	if err != nil {
		return err
	}
	switch c.o.output {
	case "json", "yaml", "toml":
		return c.print(r)
	}
	var head []string
	for _, col := range usageColumns {
		if group[col] {
			head = append(head, col)
		}
	}
	head = append(head, "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "estimated")
	rows := make([][]string, 0, len(r.GetRows()))
	for _, u := range r.GetRows() {
		var row []string
		for _, col := range usageColumns {
			if !group[col] {
				continue
			}
			switch col {
			case "key":
				row = append(row, u.GetKey())
			case "model":
				row = append(row, u.GetModel())
			case "backend":
				row = append(row, u.GetBackend())
			case "hour":
				row = append(row, u.GetHour().AsTime().UTC().Format(time.RFC3339))
			}
		}
		row = append(row, num(u.GetRequests()), num(u.GetPromptTokens()), num(u.GetCompletionTokens()),
			num(u.GetCachedTokens()), num(u.GetReasoningTokens()), usd(u.GetCostUsd()), num(u.GetEstimated()))
		rows = append(rows, row)
	}
	return c.grid(head, rows)
}

// quotas shows each key's fleet limits and their use in the current windows.
func (c *cli) quotas(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: berryctl quotas [--key ID]")
	}
	r, err := c.admin.GetQuotas(ctx, &berryv1.GetQuotasRequest{Key: c.o.usageKey})
	if err != nil {
		return err
	}
	switch c.o.output {
	case "json", "yaml", "toml":
		return c.print(r)
	}
	head := []string{"key", "limit", "max", "used", "outstanding", "left", "window_ends"}
	var rows [][]string
	for _, k := range r.GetKeys() {
		if len(k.GetLimits()) == 0 {
			rows = append(rows, []string{k.GetKey(), "-", "-", "-", "-", "-", "-"})
			continue
		}
		for _, l := range k.GetLimits() {
			amount := func(v int64) string { return strconv.FormatInt(v, 10) }
			if isCost(l.GetDimension()) {
				amount = func(v int64) string { return usd(float64(v) / 1e6) }
			}
			rows = append(rows, []string{k.GetKey(), dimensionName(l.GetDimension()), amount(l.GetLimit()), amount(l.GetUsed()),
				amount(l.GetOutstanding()), amount(max(l.GetLimit()-l.GetUsed(), 0)),
				l.GetWindowEnd().AsTime().UTC().Format(time.RFC3339)})
		}
	}
	return c.grid(head, rows)
}

// grid prints rows as a table (upper-case headings) or, with -o csv, as CSV.
func (c *cli) grid(head []string, rows [][]string) error {
	if c.o.output == "csv" {
		w := csv.NewWriter(c.out)
		_ = w.Write(head)
		_ = w.WriteAll(rows) // flushes; the error is w.Error's
		return w.Error()
	}
	up := make([]string, len(head))
	for i, h := range head {
		up[i] = strings.ToUpper(h)
	}
	return c.table(up, rows)
}

// dimensionName names a limit as the table shows it.
func dimensionName(d berryv1.QuotaDimension) string {
	switch d {
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE:
		return "requests/minute"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_HOUR:
		return "requests/hour"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY:
		return "requests/day"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_MINUTE:
		return "tokens/minute"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_DAY:
		return "tokens/day"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY:
		return "usd/day"
	case berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH:
		return "usd/month"
	}
	return d.String()
}

func isCost(d berryv1.QuotaDimension) bool {
	return d == berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY || d == berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH
}

// pastTime reads a duration before now (24h) or an RFC 3339 time.
func pastTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d.Abs()), nil
	}
	return time.Parse(time.RFC3339, s)
}

func num(v uint64) string { return strconv.FormatUint(v, 10) }

// usd shows dollars to the micro-dollar the ledger counts in.
func usd(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
