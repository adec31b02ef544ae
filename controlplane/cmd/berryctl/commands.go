package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"buf.build/go/protoyaml"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/balancer"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/provider"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type cli struct {
	o       *opts
	admin   berryv1.AdminServiceClient
	members berryv1.ClusterServiceClient
	out     io.Writer
}

func (c *cli) dispatch(ctx context.Context, pos []string) error {
	cmd, args := pos[0], pos[1:]
	want := func(n int, form string) error {
		if len(args) != n {
			return fmt.Errorf("usage: berryctl %s", form)
		}
		return nil
	}
	if c.o.dryRun && cmd != "import" && cmd != "apply" {
		// Silently ignoring it would make the change the operator meant to preview.
		return fmt.Errorf("--dry-run: only import and apply have a dry run, not %s", cmd)
	}
	switch cmd {
	case "import":
		if err := want(1, "import FILE [--dry-run]"); err != nil {
			return err
		}
		return c.apply(ctx, args[0])
	case "apply":
		if c.o.file == "" || len(args) != 0 {
			return errors.New("usage: berryctl apply -f FILE [--dry-run]")
		}
		return c.apply(ctx, c.o.file)
	case "version":
		if err := want(0, "version [--client]"); err != nil {
			return err
		}
		return c.versionInfo(ctx)
	case "get":
		if len(args) < 1 || len(args) > 2 {
			return errors.New("usage: berryctl get providers|models|users|settings [ID]")
		}
		return c.get(ctx, args[0], args[1:])
	case "export":
		if err := want(0, "export [--version N] [--include-secrets]"); err != nil {
			return err
		}
		r, err := c.admin.ExportConfig(ctx, &berryv1.ExportConfigRequest{Version: c.o.version, IncludeSecrets: c.o.includeSecrets})
		if err != nil {
			return err
		}
		if c.o.output == "json" || c.o.output == "yaml" {
			return c.print(r)
		}
		_, err = io.WriteString(c.out, r.Toml)
		return err
	case "versions":
		if err := want(0, "versions [--limit N]"); err != nil {
			return err
		}
		return c.versions(ctx)
	case "diff":
		if err := want(2, "diff A B"); err != nil {
			return err
		}
		a, err1 := strconv.ParseUint(args[0], 10, 64)
		b, err2 := strconv.ParseUint(args[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("diff: versions are numbers: %w", err)
		}
		return c.diff(ctx, a, b)
	case "rollback":
		if err := want(1, "rollback N"); err != nil {
			return err
		}
		n, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return fmt.Errorf("rollback: version is a number: %w", err)
		}
		r, err := c.admin.Rollback(ctx, &berryv1.RollbackRequest{ToVersion: n, Options: c.write()})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "rolled back to version %d as new version %d\n", n, r.Version)
		return nil
	case "keys":
		return c.keys(ctx, args)
	case "edges":
		if err := want(0, "edges"); err != nil {
			return err
		}
		return c.edges(ctx)
	case "scores":
		if len(args) > 1 {
			return errors.New("usage: berryctl scores [MODEL]")
		}
		model := ""
		if len(args) == 1 {
			model = args[0]
		}
		return c.scores(ctx, model)
	case "usage":
		return c.usage(ctx, args)
	case "quotas":
		return c.quotas(ctx, args)
	case "cluster":
		return c.cluster(ctx, args)
	case "help":
		_, err := io.WriteString(c.out, usage)
		return err
	}
	return fmt.Errorf("unknown command %q (see berryctl --help)", cmd)
}

func (c *cli) write() *berryv1.WriteOptions {
	return &berryv1.WriteOptions{Message: c.o.message, ExpectedVersion: c.o.expected}
}

func (c *cli) apply(ctx context.Context, path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg *berryv1.Config
	if strings.HasSuffix(path, ".json") {
		cfg = &berryv1.Config{}
		if err := protojson.Unmarshal(doc, cfg); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if c.o.dryRun {
		return c.dryRun(ctx, path, string(doc), cfg)
	}
	req := &berryv1.ApplyConfigRequest{Options: c.write()}
	if req.Options.Message == "" {
		req.Options.Message = "apply " + filepath.Base(path)
	}
	if cfg != nil {
		req.Source = &berryv1.ApplyConfigRequest_Config{Config: cfg}
	} else {
		req.Source = &berryv1.ApplyConfigRequest_Toml{Toml: string(doc)}
	}
	r, err := c.admin.ApplyConfig(ctx, req)
	if err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	fmt.Fprintf(c.out, "applied %s as version %d\n", path, r.Version)
	return nil
}

// dryRun validates a whole config on the control plane (TOML doc, or cfg when it is
// the proto form) and shows what applying it would change; it writes nothing. An
// invalid config is an error naming every problem on one line, after the response
// when it is printed as json or yaml.
func (c *cli) dryRun(ctx context.Context, path, doc string, cfg *berryv1.Config) error {
	req := &berryv1.ValidateConfigRequest{ExpectedVersion: c.o.expected}
	if cfg != nil {
		req.Source = &berryv1.ValidateConfigRequest_Config{Config: cfg}
	} else {
		req.Source = &berryv1.ValidateConfigRequest_Toml{Toml: doc}
	}
	r, err := c.admin.ValidateConfig(ctx, req)
	if err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if c.o.output != "table" {
		if err := c.print(r); err != nil {
			return err
		}
	}
	if !r.Valid {
		problems := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			problems[i] = e.Message
			if e.Path != "" {
				problems[i] = e.Path + ": " + e.Message
			}
		}
		// The same words and code as the write's refusal, so that both print alike.
		return status.Error(codes.InvalidArgument, "invalid config: "+strings.Join(problems, "; "))
	}
	if c.o.output != "table" {
		return nil
	}
	if len(r.Changes) == 0 {
		fmt.Fprintf(c.out, "%s is valid: no changes against version %d (dry run, nothing written)\n", path, r.CurrentVersion)
		return nil
	}
	fmt.Fprintf(c.out, "%s is valid: %d change(s) against version %d (dry run, nothing written)\n", path, len(r.Changes), r.CurrentVersion)
	c.changes(r.Changes)
	return nil
}

// versionInfo prints berryctl's build and, unless --client, the control plane's.
func (c *cli) versionInfo(ctx context.Context) error {
	b := buildinfo.Get()
	client := &berryv1.GetServerInfoResponse{Version: b.Version, Revision: b.Revision, Modified: b.Modified, GoVersion: b.GoVersion}
	var server *berryv1.GetServerInfoResponse
	if c.o.output == "table" {
		fmt.Fprintln(c.out, "client: berryctl", b)
	}
	if !c.o.clientOnly {
		var err error
		if server, err = c.admin.GetServerInfo(ctx, &berryv1.GetServerInfoRequest{}); err != nil {
			return err
		}
	}
	if c.o.output != "table" {
		out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, r := range map[string]*berryv1.GetServerInfoResponse{"client": client, "server": server} {
			if r == nil {
				continue
			}
			// The same field names as the RPC's JSON, under client and server.
			b, err := protojson.Marshal(r)
			if err != nil {
				return err
			}
			v := &structpb.Value{}
			if err := protojson.Unmarshal(b, v); err != nil {
				return err
			}
			out.Fields[k] = v
		}
		return c.print(out)
	}
	if server != nil {
		sb := buildinfo.Info{Version: server.Version, Revision: server.Revision, Modified: server.Modified, GoVersion: server.GoVersion}
		fmt.Fprintf(c.out, "server: berry-controlplane %s at %s, data file lineage %s\n", sb, c.o.server, server.Lineage)
	}
	return nil
}

func (c *cli) get(ctx context.Context, kind string, id []string) error {
	one := len(id) == 1
	var (
		msg  proto.Message
		cfg  = &berryv1.Config{}
		rows [][]string
		head []string
	)
	switch kind {
	case "providers", "provider":
		var ps []*berryv1.Provider
		if one {
			r, err := c.admin.GetProvider(ctx, &berryv1.GetProviderRequest{Id: id[0]})
			if err != nil {
				return err
			}
			msg, ps = r, []*berryv1.Provider{r.Provider}
		} else {
			r, err := c.admin.ListProviders(ctx, &berryv1.ListProvidersRequest{})
			if err != nil {
				return err
			}
			msg, ps = r, r.Providers
		}
		cfg.Providers = ps
		head = []string{"ID", "NAME", "TYPE", "BASE URL", "MODELS", "ENABLED", "KEY"}
		for _, p := range ps {
			rows = append(rows, []string{p.Id, p.Name, or(p.BackendType, provider.DefaultKind), p.BaseUrl,
				strings.Join(p.Models, ","), yes(p.Enabled), map[bool]string{true: "set", false: "-"}[p.ApiKeySet]})
		}
	case "models", "model":
		var ms []*berryv1.Model
		if one {
			r, err := c.admin.GetModel(ctx, &berryv1.GetModelRequest{Id: id[0]})
			if err != nil {
				return err
			}
			msg, ms = r, []*berryv1.Model{r.Model}
		} else {
			r, err := c.admin.ListModels(ctx, &berryv1.ListModelsRequest{})
			if err != nil {
				return err
			}
			msg, ms = r, r.Models
		}
		cfg.Models = ms
		head = []string{"ID", "NAME", "ALIASES", "STRATEGY", "ENABLED", "BACKENDS"}
		for _, m := range ms {
			var bs []string
			for _, b := range m.Backends {
				bs = append(bs, fmt.Sprintf("%s/%s(w=%g)", b.Provider, b.Model, b.Weight))
			}
			if m.Wildcard != "" {
				bs = append(bs, m.Wildcard)
			}
			rows = append(rows, []string{m.Id, m.Name, or(strings.Join(m.Aliases, ","), "-"), or(m.Strategy, balancer.Default),
				yes(m.Enabled), strings.Join(bs, " ")})
		}
	case "users", "user", "keys":
		var us []*berryv1.User
		if one {
			r, err := c.admin.GetUser(ctx, &berryv1.GetUserRequest{Id: id[0]})
			if err != nil {
				return err
			}
			msg, us = r, []*berryv1.User{r.User}
		} else {
			r, err := c.admin.ListUsers(ctx, &berryv1.ListUsersRequest{})
			if err != nil {
				return err
			}
			msg, us = r, r.Users
		}
		cfg.Users = us
		head = []string{"ID", "NAME", "ENABLED", "EXPIRES", "MODELS", "TAGS", "LIMITS", "BUDGET"}
		for _, u := range us {
			exp := "-"
			if u.ExpiresAt != nil {
				exp = u.ExpiresAt.AsTime().UTC().Format(time.RFC3339)
			}
			rows = append(rows, []string{u.Id, u.Name, yes(u.Enabled), exp, or(strings.Join(u.AllowedModels, ","), "all"),
				strings.Join(u.Tags, ","), limits(u.GetRateLimit()), budget(u.GetBudget())})
		}
	case "settings":
		if one {
			return errors.New("usage: berryctl get settings")
		}
		r, err := c.admin.GetSettings(ctx, &berryv1.GetSettingsRequest{})
		if err != nil {
			return err
		}
		msg, cfg.Settings = r, r.Settings
		head = []string{"SETTING", "VALUE"}
		s := r.GetSettings()
		for _, kv := range []struct {
			k string
			v uint64
		}{
			{"health_check_interval_seconds", uint64(s.GetHealthCheckIntervalSeconds())},
			{"request_timeout_seconds", uint64(s.GetRequestTimeoutSeconds())},
			{"max_retries", uint64(s.GetMaxRetries())},
			{"circuit_breaker_failure_threshold", uint64(s.GetCircuitBreakerFailureThreshold())},
			{"circuit_breaker_timeout_seconds", uint64(s.GetCircuitBreakerTimeoutSeconds())},
			{"recovery_check_interval_seconds", uint64(s.GetRecoveryCheckIntervalSeconds())},
			{"max_request_body_bytes", s.GetMaxRequestBodyBytes()},
		} {
			rows = append(rows, []string{kv.k, strconv.FormatUint(kv.v, 10)})
		}
		retention := strconv.FormatUint(uint64(s.GetUsageRetentionDays()), 10)
		if s.GetUsageRetentionDays() == 0 {
			retention = strconv.Itoa(config.DefaultUsageRetentionDays) + " (default)"
		}
		rows = append(rows, []string{"quota_when_disconnected", or(s.GetQuotaWhenDisconnected(), config.QuotaShare+" (default)")},
			[]string{"usage_retention_days", retention})
	default:
		return fmt.Errorf("get %q: use providers, models, users or settings", kind)
	}
	switch c.o.output {
	case "json", "yaml":
		return c.print(msg)
	case "toml":
		doc, err := config.ExportTOML(cfg)
		if err != nil {
			return err
		}
		if kind != "settings" {
			doc = doc[strings.Index(string(doc), "\n[")+1:] // only the section asked for
		}
		_, err = c.out.Write(doc)
		return err
	}
	return c.table(head, rows)
}

func (c *cli) versions(ctx context.Context) error {
	r, err := c.admin.ListVersions(ctx, &berryv1.ListVersionsRequest{Limit: uint32(c.o.limit)})
	if err != nil {
		return err
	}
	if c.o.output != "table" {
		return c.print(r)
	}
	var rows [][]string
	for _, v := range r.Versions {
		rows = append(rows, []string{strconv.FormatUint(v.Version, 10), v.CreatedAt.AsTime().UTC().Format(time.RFC3339), v.Author, v.Message})
	}
	return c.table([]string{"VERSION", "CREATED", "AUTHOR", "MESSAGE"}, rows)
}

func (c *cli) diff(ctx context.Context, a, b uint64) error {
	r, err := c.admin.DiffVersions(ctx, &berryv1.DiffVersionsRequest{From: a, To: b})
	if err != nil {
		return err
	}
	if c.o.output != "table" {
		return c.print(r)
	}
	if len(r.Changes) == 0 {
		fmt.Fprintf(c.out, "versions %d and %d are the same\n", r.From, r.To)
		return nil
	}
	c.changes(r.Changes)
	return nil
}

// changes prints a diff a change a line: + added, - removed, ~ changed.
func (c *cli) changes(chs []*berryv1.Change) {
	for _, ch := range chs {
		switch ch.Kind {
		case "added":
			fmt.Fprintf(c.out, "+ %s = %s\n", ch.Path, ch.After)
		case "removed":
			fmt.Fprintf(c.out, "- %s = %s\n", ch.Path, ch.Before)
		default:
			fmt.Fprintf(c.out, "~ %s: %s -> %s\n", ch.Path, ch.Before, ch.After)
		}
	}
}

func (c *cli) keys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: berryctl keys create|disable ID|enable ID")
	}
	switch args[0] {
	case "create":
		if len(args) != 1 {
			return errors.New("usage: berryctl keys create [--id ID] [--name N] [--models a,b] [--tags t] [--expires D] " +
				"[--rpm N] [--rph N] [--rpd N] [--tpm N] [--tpd N] [--usd-per-day X] [--usd-per-month X]")
		}
		req := &berryv1.CreateKeyRequest{UserId: c.o.keyID, Name: c.o.keyName, AllowedModels: list(c.o.models),
			Tags: list(c.o.tags), Options: c.write()}
		for _, f := range []struct {
			name string
			v    uint
		}{{"rpm", c.o.rpm}, {"rph", c.o.rph}, {"rpd", c.o.rpd}} {
			if f.v > math.MaxUint32 {
				return fmt.Errorf("--%s %d: must be at most %d", f.name, f.v, uint32(math.MaxUint32))
			}
		}
		if c.o.rpm != 0 || c.o.rph != 0 || c.o.rpd != 0 || c.o.tpm != 0 || c.o.tpd != 0 {
			req.RateLimit = &berryv1.RateLimit{RequestsPerMinute: uint32(c.o.rpm), RequestsPerHour: uint32(c.o.rph), RequestsPerDay: uint32(c.o.rpd),
				TokensPerMinute: c.o.tpm, TokensPerDay: c.o.tpd}
		}
		// Sent as given: the control plane refuses a negative or non-finite budget,
		// naming it.
		if c.o.usdPerDay != 0 || c.o.usdPerMonth != 0 {
			req.Budget = &berryv1.Budget{UsdPerDay: c.o.usdPerDay, UsdPerMonth: c.o.usdPerMonth}
		}
		if c.o.expires != "" {
			t, err := expiry(c.o.expires)
			if err != nil {
				return err
			}
			req.ExpiresAt = timestamppb.New(t)
		}
		r, err := c.admin.CreateKey(ctx, req)
		if err != nil {
			return err
		}
		if c.o.output != "table" {
			return c.print(r)
		}
		fmt.Fprintf(c.out, "created key %s (version %d)\n%s\n", r.UserId, r.Version, r.Key)
		fmt.Fprintln(os.Stderr, "store the key now: it is shown only once; the control plane keeps only its hash")
		return nil
	case "disable", "enable":
		if len(args) != 2 {
			return fmt.Errorf("usage: berryctl keys %s ID", args[0])
		}
		r, err := c.admin.SetKeyEnabled(ctx, &berryv1.SetKeyEnabledRequest{UserId: args[1], Enabled: args[0] == "enable", Options: c.write()})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "key %s %sd (version %d)\n", args[1], args[0], r.Version)
		return nil
	}
	return fmt.Errorf("keys %q: use create, disable or enable", args[0])
}

func (c *cli) edges(ctx context.Context) error {
	r, err := c.admin.FleetStatus(ctx, &berryv1.FleetStatusRequest{})
	if err != nil {
		return err
	}
	if c.o.output != "table" {
		return c.print(r)
	}
	rolled := "rolled out"
	if !r.RolledOut {
		rolled = "NOT rolled out"
	}
	fmt.Fprintf(c.out, "current version %d: %s to %d connected edge(s)\n", r.CurrentVersion, rolled, connected(r.Edges))
	var rows [][]string
	for _, e := range r.Edges {
		state := "connected"
		if !e.Connected {
			state = "gone"
		}
		ack := "ACK " + strconv.FormatUint(e.LastAckVersion, 10)
		if e.LastNack != "" {
			ack = "NACK " + strconv.FormatUint(e.LastAckVersion, 10) + ": " + e.LastNack
		} else if e.LastAckVersion == 0 {
			ack = "-"
		}
		rows = append(rows, []string{e.EdgeId, state, e.Address, strconv.FormatUint(e.AppliedVersion, 10), ack,
			e.BuildVersion, e.ConnectedSince.AsTime().UTC().Format(time.RFC3339), e.LastSeen.AsTime().UTC().Format(time.RFC3339)})
	}
	return c.table([]string{"EDGE", "STATE", "ADDRESS", "APPLIED", "LAST ACK/NACK", "BUILD", "CONNECTED SINCE", "LAST SEEN"}, rows)
}

// scores shows the fleet's merged view of each backend (of one model, when given).
func (c *cli) scores(ctx context.Context, model string) error {
	r, err := c.admin.GetScores(ctx, &berryv1.GetScoresRequest{Model: model})
	if err != nil {
		return err
	}
	if c.o.output != "table" {
		return c.print(r)
	}
	fmt.Fprintf(c.out, "fleet scores, epoch %d\n", r.GetEpoch())
	ms := func(sec float64) string {
		if sec <= 0 {
			return "-"
		}
		return strconv.FormatFloat(sec*1000, 'f', 1, 64) + "ms"
	}
	var rows [][]string
	for _, b := range r.GetBackends() {
		health := "up"
		switch {
		case b.GetDown():
			health = "DOWN"
		case b.GetProbed() && !b.GetProbeHealthy():
			health = "probe failing"
		}
		rows = append(rows, []string{b.GetProvider() + "/" + b.GetUpstreamModel(), ms(b.GetLatencySeconds()), ms(b.GetTtftSeconds()),
			decayed(b.GetWeight()), strconv.FormatUint(uint64(b.GetEdges()), 10),
			decayed(b.GetErrorRate()*100) + "%", decayed(b.GetRequests()),
			decayed(b.GetClientErrors()), decayed(b.GetServerErrors()), decayed(b.GetNoAnswer()),
			health, or(b.GetProbeOwner(), "-")})
	}
	return c.table([]string{"BACKEND", "LATENCY", "TTFT", "SAMPLES", "EDGES", "ERRORS", "REQUESTS", "4XX", "5XX", "NO ANSWER", "HEALTH", "PROBE OWNER"}, rows)
}

// decayed shows a decayed count, or a percentage, with one decimal. The fleet's
// counts decay towards zero without reaching it: a value too small for one decimal
// shows as <0.1, never as 0.0 beside the latencies it still weighs.
func decayed(x float64) string {
	if x == 0 {
		return "0"
	}
	if s := strconv.FormatFloat(x, 'f', 1, 64); s != "0.0" {
		return s
	}
	return "<0.1"
}

func connected(es []*berryv1.EdgeStatus) int {
	n := 0
	for _, e := range es {
		if e.Connected {
			n++
		}
	}
	return n
}

func (c *cli) print(m proto.Message) error {
	var (
		b   []byte
		err error
	)
	switch c.o.output {
	case "yaml":
		b, err = protoyaml.Marshal(m)
	case "toml":
		return errors.New("-o toml fits get and export only")
	default:
		b, err = protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
		b = append(b, '\n')
	}
	if err != nil {
		return err
	}
	_, err = c.out.Write(b)
	return err
}

func (c *cli) table(head []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// expiry reads --expires as a duration from now (720h) or an RFC 3339 time.
func expiry(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: give a duration (720h) or an RFC 3339 time", s)
	}
	return t, nil
}

// limits shows a rate limit compactly, its set limits only: "60rpm 100000tpm".
func limits(rl *berryv1.RateLimit) string {
	var parts []string
	for _, l := range []struct {
		n    uint64
		unit string
	}{
		{uint64(rl.GetRequestsPerMinute()), "rpm"}, {uint64(rl.GetRequestsPerHour()), "rph"}, {uint64(rl.GetRequestsPerDay()), "rpd"},
		{rl.GetTokensPerMinute(), "tpm"}, {rl.GetTokensPerDay(), "tpd"},
	} {
		if l.n != 0 {
			parts = append(parts, strconv.FormatUint(l.n, 10)+l.unit)
		}
	}
	return or(strings.Join(parts, " "), "-")
}

// budget shows a budget compactly, its set amounts only: "$5/d $100/mo".
func budget(b *berryv1.Budget) string {
	var parts []string
	if d := b.GetUsdPerDay(); d != 0 {
		parts = append(parts, "$"+strconv.FormatFloat(d, 'f', -1, 64)+"/d")
	}
	if m := b.GetUsdPerMonth(); m != 0 {
		parts = append(parts, "$"+strconv.FormatFloat(m, 'f', -1, 64)+"/mo")
	}
	return or(strings.Join(parts, " "), "-")
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
