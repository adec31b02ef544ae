// Command berry-sim runs the upstream simulator (pkg/upstreamsim) as a standalone fake
// OpenAI-compatible provider, for the local demo and benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

func main() {
	var (
		o      upstreamsim.Options
		listen = flag.String("listen", "127.0.0.1:8081", "address to listen on")
		models = flag.String("models", "", "comma-separated model ids to serve (empty: accept any model)")
	)
	flag.StringVar(&o.Name, "name", upstreamsim.DefaultName, "name shown in replies and the X-Sim-Name header")
	flag.StringVar(&o.APIKey, "api-key", "", "require this API key (Bearer or api-key header)")
	flag.DurationVar(&o.Latency, "latency", 0, "delay before each response")
	flag.IntVar(&o.Chunks, "chunks", upstreamsim.DefaultChunks, "content chunks per stream")
	flag.DurationVar(&o.ChunkDelay, "chunk-delay", 0, "delay between stream events")
	flag.IntVar(&o.FailStatus, "fail-status", 0, "answer every request with this HTTP status (0: off)")
	flag.StringVar(&o.FailCode, "fail-code", "", "error code of --fail-status answers, e.g. context_length_exceeded or content_filter with 400")
	flag.IntVar(&o.FailAfterChunks, "fail-after-chunks", 0, "cut streams after this many events (0: off)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("berry-sim", buildinfo.Get())
		return
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, *listen, *models, log); err != nil {
		log.Error("berry-sim failed", "err", err)
		os.Exit(1)
	}
}

func run(o upstreamsim.Options, listen, models string, log *slog.Logger) error {
	for m := range strings.SplitSeq(models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Models = append(o.Models, m)
		}
	}
	if o.FailStatus != 0 && (o.FailStatus < 100 || o.FailStatus > 599) {
		return fmt.Errorf("--fail-status %d is not an HTTP status", o.FailStatus)
	}

	sim := upstreamsim.New(o)
	if err := sim.Start(listen); err != nil {
		return err
	}
	log.Info("berry-sim listening", "url", sim.URL(), "name", o.Name, "models", o.Models,
		"auth", o.APIKey != "", "latency", o.Latency, "chunks", o.Chunks, "chunk_delay", o.ChunkDelay,
		"fail_status", o.FailStatus, "fail_code", o.FailCode, "fail_after_chunks", o.FailAfterChunks)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	stop() // a second signal now kills the process the default way

	log.Info("shutting down")
	err := sim.Close()
	st := sim.Stats()
	log.Info("stopped", "requests", st.Requests, "chat_requests", st.ChatRequests,
		"responses_requests", st.ResponsesRequests, "models", st.Models)
	return err
}
