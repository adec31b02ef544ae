#!/usr/bin/env bash
# Side by side on loopback: the upstream simulator straight, through nginx (Debian's
# nginx-light, a plain keep-alive proxy_pass with proxy_buffering off), and through
# berry-edge (with a control plane). For every case it runs wrk against the three in
# turn, for two rounds, after waiting for the machine to be idle, and prints req/s,
# p50/p99, each proxy's CPU (cores used, and µs per request = Δ(utime+stime) of its
# processes ÷ requests served), its peak RSS, and the ratios to nginx. Not part of CI
# (too noisy for pass/fail): its output is what performance claims quote.
#
#   bash bench/compare.sh                      # 15 s per run, the cases of docs/benchmarks.md
#   DURATION=5s CASES="c16 stream64" bash bench/compare.sh
#   ACCESS_LOG=on bash bench/compare.sh        # both proxies log every request to a file
#   BASE=fc5492c bash bench/compare.sh         # also an edge built from that revision ("base")
#   CASES="idle10000 streams1000" bash bench/compare.sh   # memory
#
# Cases: c1 c16 c64 c256 (non-stream, that many connections), stream64 (20-chunk
# streams, 64 connections); memory: idleN (N keep-alive client connections, each after
# one request, held idle) and streamsN (N slow streams at once, 20 chunks 400 ms
# apart), each against a freshly started proxy, reporting the proxy's highest RSS
# while they are held (bench/conns). wrk and nginx-light are installed from Debian's
# packages when missing. Every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CASES=${CASES:-"c16 c64 c256 stream64 c1"}
ROUNDS=${ROUNDS:-2}
ACCESS_LOG=${ACCESS_LOG:-off}
SIM_PORT=${SIM_PORT:-18281}
NGINX_PORT=${NGINX_PORT:-18282}
CP_PORT=${CP_PORT:-18283}
EDGE_PORT=${EDGE_PORT:-18284}
BASE_PORT=${BASE_PORT:-18285}
SLOW_PORT=${SLOW_PORT:-18286}
NGINX_SLOW_PORT=${NGINX_SLOW_PORT:-18287}
BASE=${BASE:-}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} (Debian packages)…" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
		{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "building binaries…" >&2
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/berry-sim ./edge/cmd/berry-edge ./controlplane/cmd/berry-controlplane ./bench/conns
targets="direct nginx edge"
if [ -n "$BASE" ]; then
	# The same edge built from another revision, measured in the same run.
	rev=$(git rev-parse --short "$BASE")
	git worktree add -q --detach "$work/base-src" "$rev"
	(cd "$work/base-src" && go build -o "$work/base-bin/" ./edge/cmd/berry-edge)
	git worktree remove --force "$work/base-src"
	targets="direct nginx edge base"
fi

cat >"$work/config.toml" <<TOML
[settings]
request_timeout_seconds = 30
max_retries = 2

[providers.sim]
name = "simulator"
base_url = "http://127.0.0.1:${SIM_PORT}/v1"
api_key = "sk-sim"
models = ["bench-up"]

[models.bench]
name = "bench"
[[models.bench.backends]]
provider = "sim"
model = "bench-up"

[providers.slow]
name = "slow simulator"
base_url = "http://127.0.0.1:${SLOW_PORT}/v1"
api_key = "sk-sim"
models = ["bench-up"]

[models.slow]
name = "slow"
[[models.slow.backends]]
provider = "slow"
model = "bench-up"

[users.load]
name = "load"
token = "berry-load-key"
TOML

nginx_log="access_log off;"
edge_log="off"
if [ "$ACCESS_LOG" = on ]; then
	nginx_log="access_log $work/nginx-access.log combined buffer=64k;"
	edge_log="$work/edge-access.log"
fi
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
daemon off;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
	$nginx_log
	client_body_temp_path $work/nginx;
	proxy_temp_path $work/nginx;
	upstream sim { server 127.0.0.1:${SIM_PORT}; keepalive 256; }
	upstream slow { server 127.0.0.1:${SLOW_PORT}; keepalive 256; }
	server {
		listen 127.0.0.1:${NGINX_PORT} reuseport;
		location / {
			proxy_pass http://sim;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
	server {
		listen 127.0.0.1:${NGINX_SLOW_PORT} reuseport;
		location / {
			proxy_pass http://slow;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
NGINX

"$work/bin/berry-sim" --listen "127.0.0.1:${SIM_PORT}" --chunks 20 >"$work/sim.log" 2>&1 &
pids+=($!)
"$work/bin/berry-sim" --listen "127.0.0.1:${SLOW_PORT}" --chunks 20 --chunk-delay 400ms >"$work/slow.log" 2>&1 &
pids+=($!)
"$work/bin/berry-controlplane" --data "$work/berry.db" --grpc-listen "127.0.0.1:${CP_PORT}" --http-listen "" \
	--bootstrap "$work/config.toml" --log-level warn >"$work/cp.log" 2>&1 &
pids+=($!)

# start_nginx, start_edge BIN PORT: (re)start a proxy and wait until it answers.
nginx_master=""
start_nginx() {
	if [ -f "$work/nginx.pid" ]; then
		kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
		for _ in $(seq 1 50); do [ -f "$work/nginx.pid" ] || break; sleep 0.1; done
	fi
	"$NGINX" -c "$work/nginx.conf" -p "$work" >"$work/nginx.out" 2>&1 &
	pids+=($!)
	ready "http://127.0.0.1:${NGINX_PORT}/v1/models"
}
declare -A edge_pid
start_edge() { # target bin port
	local old=${edge_pid[$1]:-}
	if [ -n "$old" ]; then kill "$old" 2>/dev/null || true; wait "$old" 2>/dev/null || true; fi
	"$2" --listen "127.0.0.1:$3" --control-plane "127.0.0.1:${CP_PORT}" \
		--access-log "$edge_log" --cache-dir "$work/edges-$1" --log-level warn >>"$work/$1.log" 2>&1 &
	pids+=($!)
	edge_pid[$1]=$!
	ready "http://127.0.0.1:$3/readyz"
}
ready() {
	for i in $(seq 1 150); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "$1 not ready after 30s" >&2
	cat "$work"/*.log "$work/nginx.out" >&2 || true
	exit 1
}
start_proxy() {
	case $1 in
	nginx) start_nginx ;;
	edge) start_edge edge "$work/bin/berry-edge" "$EDGE_PORT" ;;
	base) start_edge base "$work/base-bin/berry-edge" "$BASE_PORT" ;;
	esac
}
for tg in $targets; do start_proxy "$tg"; done

# nginx_pids: the master and its workers.
nginx_pids() {
	local m
	m=$(cat "$work/nginx.pid" 2>/dev/null) || return 0
	echo "$m $(pgrep -P "$m" | tr '\n' ' ')"
}

# A 1,030-byte chat body, as docs/benchmarks.md describes the case.
script() { # file model stream
	local head tail pad
	head=$(printf '{"model":"%s","stream":%s,"messages":[{"role":"user","content":"' "$2" "$3")
	tail='"}],"temperature":0.7}'
	pad=$(printf 'x%.0s' $(seq 1 $((1030 - ${#head} - ${#tail}))))
	cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer berry-load-key"
wrk.body = '$head$pad$tail'
LUA
}
script "$work/up-false.lua" bench-up false
script "$work/up-true.lua" bench-up true
script "$work/edge-false.lua" bench false
script "$work/edge-true.lua" bench true

# cpu_ticks sums utime+stime (clock ticks) of the given pids.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
hwm_kb() { # peak RSS of the given pids, summed
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/status" ] || continue
		t=$((t + $(awk '/^VmHWM:/{print $2}' "/proc/$p/status")))
	done
	echo "$t"
}
# wait_idle waits (at most 30 s) until the machine's CPUs are at least 90% idle over
# half a second, so one run's leftovers do not load the next.
wait_idle() {
	local i a b
	for i in $(seq 1 60); do
		a=($(head -1 /proc/stat))
		sleep 0.5
		b=($(head -1 /proc/stat))
		local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 k
		for k in 1 2 3 4 5 6 7 8; do total=$((total + b[k] - a[k])); done
		[ "$total" -gt 0 ] && [ $((idle * 100 / total)) -ge 90 ] && return 0
	done
	echo "(machine not idle after 30 s; running anyway)" >&2
}
to_ms() {
	awk -v v="$1" 'BEGIN{
		if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 }
		else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 }
		else printf "%s", v }'
}
hz=$(getconf CLK_TCK)

# run TARGET CASE: one wrk run; prints a result line.
run() {
	local target=$1 case=$2 conns stream url lua procs
	stream=false
	case $case in
	stream*) stream=true; conns=${case#stream} ;;
	c*) conns=${case#c} ;;
	esac
	case $case in
	idle* | streams*)
		memory "$target" "$case"
		return
		;;
	esac
	case $target in
	direct) url="http://127.0.0.1:${SIM_PORT}/v1/chat/completions"; lua="$work/up-$stream.lua"; procs="" ;;
	nginx) url="http://127.0.0.1:${NGINX_PORT}/v1/chat/completions"; lua="$work/up-$stream.lua"; procs=$(nginx_pids) ;;
	edge) url="http://127.0.0.1:${EDGE_PORT}/v1/chat/completions"; lua="$work/edge-$stream.lua"; procs=${edge_pid[edge]} ;;
	base) url="http://127.0.0.1:${BASE_PORT}/v1/chat/completions"; lua="$work/edge-$stream.lua"; procs=${edge_pid[base]} ;;
	esac
	wait_idle
	local before after out t
	t=$((conns < 2 ? 1 : 2))
	# shellcheck disable=SC2086
	before=$(cpu_ticks $procs)
	out=$(wrk --latency -t"$t" -c"$conns" -d"$DURATION" -s "$lua" "$url")
	# shellcheck disable=SC2086
	after=$(cpu_ticks $procs)
	if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
		echo "$out" >&2
		echo "run $target $case had errors" >&2
		exit 1
	fi
	local reqs rps p50 p99 secs
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
	p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
	secs=${DURATION%s}
	# shellcheck disable=SC2086
	awk -v tg="$target" -v cs="$case" -v reqs="$reqs" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
		-v ticks=$((after - before)) -v hz="$hz" -v secs="$secs" -v rss="$(hwm_kb $procs)" -v procs="$procs" 'BEGIN{
		cpu_s = ticks / hz
		if (procs == "") { cores = "-"; us = "-"; mb = "-" }
		else { cores = sprintf("%.2f", cpu_s / secs); us = sprintf("%.1f", cpu_s * 1e6 / reqs); mb = sprintf("%.0f", rss / 1024) }
		printf "%-8s %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %5s cores  %7s us/req  peak RSS %4s MB\n",
			tg, cs, rps, p50, p99, cores, us, mb }'
}

# memory TARGET CASE: a freshly started proxy holds the case's connections; prints a
# result line with its highest RSS meanwhile.
memory() {
	local target=$1 case=$2 mode n url model procs line
	mode=${case%%[0-9]*}
	n=${case#"$mode"}
	model=bench
	case $target in
	nginx) url="http://127.0.0.1:${NGINX_PORT}/v1/chat/completions"; procs=$(nginx_pids) ;;
	edge) url="http://127.0.0.1:${EDGE_PORT}/v1/chat/completions"; procs=${edge_pid[edge]} ;;
	base) url="http://127.0.0.1:${BASE_PORT}/v1/chat/completions"; procs=${edge_pid[base]} ;;
	esac
	if [ "$mode" = streams ]; then
		model=slow
		[ "$target" = nginx ] && url="http://127.0.0.1:${NGINX_SLOW_PORT}/v1/chat/completions"
		[ "$target" = nginx ] && model=bench-up
	else
		[ "$target" = nginx ] && model=bench-up
	fi
	wait_idle
	line=$("$work/bin/conns" -mode "$mode" -n "$n" -url "$url" -model "$model" -pids "$(tr ' ' ',' <<<"$procs")") || {
		echo "run $target $case failed: $line" >&2
		exit 1
	}
	awk -v tg="$target" -v cs="$case" -v l="$line" 'BEGIN{
		split(l, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
		printf "%-8s %-9s RSS before %6.1f MB, highest while held %6.1f MB (+%.1f)\n", tg, cs,
			v["rss_before_mb"], v["rss_held_max_mb"], v["rss_held_max_mb"] - v["rss_before_mb"] }'
}

echo "wrk ${DURATION} per run, ${ROUNDS} rounds, access logs ${ACCESS_LOG}; $(nproc) CPUs shared by wrk, the simulator and the proxies; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///')"
results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
	echo "round $round"
	for c in $CASES; do
		# Alternate the order between rounds, so neither proxy always runs first.
		order=$targets
		[ $((round % 2)) -eq 0 ] && order="direct $(tr ' ' '\n' <<<"${targets#direct }" | tac | tr '\n' ' ')"
		for tg in $order; do
			case $c in
			idle* | streams*)
				[ "$tg" = direct ] && continue
				start_proxy "$tg" # here, not in run's subshell, so its pid is kept
				;;
			esac
			line=$(run "$tg" "$c")
			echo "  $line"
			echo "$round $line" >>"$results"
		done
	done
done

echo
echo "per case, ÷ nginx (each round; CPU per request, throughput, added p50 over direct)"
for tg in ${targets#direct nginx }; do
	awk -v tg="$tg" '
	$4 == "RSS" { next }
	{ r=$1; t=$2; cs=$3; rps[r,t,cs]=$4; p50[r,t,cs]=$7; us[r,t,cs]=$15; cases[cs]=1; rounds[r]=1 }
	END {
		for (cs in cases) for (r in rounds) {
			if (us[r,"nginx",cs] == "" || us[r,"nginx",cs] == "-") continue
			printf "  %-4s %-9s round %s: cpu/req %.2fx (%s vs %s us)  throughput %.2fx  added p50: %s %+.3f ms, nginx %+.3f ms\n",
				tg, cs, r, us[r,tg,cs] / us[r,"nginx",cs], us[r,tg,cs], us[r,"nginx",cs],
				rps[r,tg,cs] / rps[r,"nginx",cs], tg,
				p50[r,tg,cs] - p50[r,"direct",cs], p50[r,"nginx",cs] - p50[r,"direct",cs]
		}
	}' "$results" | sort
done
